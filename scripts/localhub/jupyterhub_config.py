# The local hub's jupyterhub_config.py: this machine's counterpart of the one
# the z2jh chart ships (ref: jupyterhub/files/hub/jupyterhub_config.py).
#
# Like the chart's, it reads the merged values from <config dir>/secret/values.yaml,
# turns the chart's keys into JupyterHub config, passes hub.config through and
# then executes hub-config's jupyterhub_config.d/*.py in name order. Only the
# backend differs: local processes with a home folder each instead of pods, a
# proxy started here, SQLite in the state folder. scripts/local_hub.py lays out
# the config dir and starts the hub with this file.
c = get_config()

import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

config_dir = Path(os.environ["COURSEHUB_CONFIG_DIR"])
# The chart puts its config dir on sys.path so hub-config's package imports.
sys.path.insert(0, str(config_dir))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chart_values import apply_chart_values, apply_local_backend, run_config_d  # noqa: E402

from coursehub.values import get_config  # noqa: E402

apply_chart_values(c, get_config)
apply_local_backend(c, get_config, os.environ)
run_config_d(c, config_dir / "jupyterhub_config.d", Path(os.environ["COURSEHUB_STATE_DIR"]))
