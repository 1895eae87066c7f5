"""The hub pod's configuration folder, laid out on this machine.

On a cluster the chart mounts the merged values at <config dir>/secret/values.yaml
and every hub.extraFiles entry at its mountPath (hub-config/ under
/usr/local/etc/jupyterhub). The local hub gets the same tree under
<state>/etc/jupyterhub, written from the same deployment.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from coursehub_tools.deployconfig import Deployment


def lay_out(deployment: Deployment, config_dir: Path, mount_root: str) -> None:
    """Write `deployment`'s mounted values and hub files into `config_dir`, replacing it."""
    shutil.rmtree(config_dir, ignore_errors=True)
    (config_dir / "secret").mkdir(parents=True)
    mounted = deployment.mounted_values()
    (config_dir / "secret" / "values.yaml").write_text(yaml.safe_dump(mounted))
    prefix = mount_root.rstrip("/") + "/"
    for entry in mounted["hub"]["extraFiles"].values():
        target = config_dir / entry["mountPath"].removeprefix(prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(entry["stringData"])
