# Users' servers on hosts of their own when hub.config.JupyterHub.subdomain_host is
# set (staging and prod from their host, the local hub from its port); the
# hub's services stay on the hub's host (coursehub/origins.py).
from coursehub.origins import subdomain_hook

c.JupyterHub.subdomain_hook = subdomain_hook
