# The local hub's jupyterhub_config.py: this machine's counterpart of the one
# the z2jh chart ships (ref: jupyterhub/files/hub/jupyterhub_config.py).
#
# Like the chart's, it reads the merged values from <config dir>/secret/values.yaml,
# turns the chart's keys into JupyterHub config, passes hub.config through and
# then executes hub-config's jupyterhub_config.d/*.py in name order. Only the
# backend differs: local processes with a home folder each instead of pods, a
# proxy started here, SQLite in the state folder. scripts/local_hub.py lays out
# the config dir, puts it first on the hub's PYTHONPATH (the chart puts its
# config dir on sys.path, so hub-config's `coursehub` imports from the mounted
# files, not from anywhere else) and starts the hub with this file.
c = get_config()

import os
from pathlib import Path

from coursehub.values import get_config
from coursehub_tools.localhub.chart_values import (
    apply_chart_values,
    apply_local_backend,
    run_config_d,
    state_secrets,
)
from coursehub_tools.localhub.spawner import services_share_the_clock

state = Path(os.environ["COURSEHUB_STATE_DIR"])
apply_chart_values(c, get_config, state_secrets(state))
apply_local_backend(c, get_config, os.environ)
run_config_d(
    c,
    get_config,
    Path(os.environ["COURSEHUB_CONFIG_DIR"]) / "jupyterhub_config.d",
    record=state / "loaded-config.json",
)
services_share_the_clock(c.JupyterHub.services, os.environ)
