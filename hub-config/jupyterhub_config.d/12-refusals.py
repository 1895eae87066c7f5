# A "no" the hub says on purpose (coursehub.refusal.Refused) is logged as one warning
# line, also where JupyterHub logs what a hook raised as an error with a traceback.
# The hub logs through the logger named after its application class.
# ref: traitlets 5 Application._log_default; jupyterhub 5.5 app.py init_logging
import logging

from coursehub.refusal import RefusalsAsWarnings

logging.getLogger("JupyterHub").addFilter(RefusalsAsWarnings())
