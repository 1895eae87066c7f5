"""get_config("a.b"): the deployment's merged values, read by the chart's own z2jh.

The chart mounts z2jh.py beside its jupyterhub_config.py and puts that folder
on sys.path (ref: z2jh files/hub/jupyterhub_config.py); the local hub lays out
the same folder. z2jh reads <config dir>/secret/values.yaml, merged with
existing-secret/values.yaml if mounted. This package lives at <config dir>/coursehub/.
"""

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent.parent


def get_config(key: str, default=None):
    """The value at dotted `key` ("custom.github.organization"), or `default` if unset."""
    # Looked up at each call: a tool that loads the chart's config for several
    # deployments in one process (scripts/localhub/layout.py) imports a fresh z2jh each time.
    import z2jh

    return z2jh.get_config(key, default)
