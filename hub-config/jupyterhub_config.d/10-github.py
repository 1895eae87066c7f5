# GitHub login gated by organization teams; teams become JupyterHub groups.
# Executed by the chart's jupyterhub_config.py (and the local hub's) with `c` defined.
# Set on GitHubOAuthenticator, the section hub.config uses; our subclass reads it.
from coursehub.github import authenticator_config
from coursehub.values import get_config

for trait, value in authenticator_config(get_config("custom.github")).items():
    setattr(c.GitHubOAuthenticator, trait, value)
