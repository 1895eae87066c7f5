"""The `local-kube` backend: the chart's KubeSpawner, with the Kubernetes stand-in as API server.

A deployment whose backend is `local-kube` runs the local hub as `local` does,
except that users' servers are not local processes started by a local spawner:
the hub keeps the chart's spawner (CourseKubeSpawner, i.e. KubeSpawner) and
finds its API server through $KUBECONFIG, which names the stand-in
(scripts/kube_standin/). Its kubelet runs each pod's containers here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from coursehub_tools.deployconfig import Deployment
from coursehub_tools.kube_standin.launch import StandinSettings
from coursehub_tools.localhub import lightweight_server
from coursehub_tools.localhub.spawner import HOOKS_SOURCE

BACKEND = "local-kube"


def runtime_values() -> dict:
    """What only this machine can say: the uid and gid its containers really run as.

    The kubelet stand-in runs every container as the user it runs as, so the
    ids the start-up hooks hand the home to (singleuser.uid, fsGid) are this
    user's; any other would need root to chown to.
    """
    return {"singleuser": {"uid": os.getuid(), "fsGid": os.getgid()}}


def claims_beside_the_chart(values: dict) -> list[str]:
    """Claims the values mount but KubeSpawner does not create: made by the cluster's set-up
    (scripts/cluster_services.py makes the shared-data claim), so the stand-in starts with them."""
    volumes = (values.get("singleuser", {}).get("storage") or {}).get("extraVolumes") or []
    if isinstance(volumes, dict):
        volumes = list(volumes.values())
    return [
        volume["persistentVolumeClaim"]["claimName"]
        for volume in volumes
        if "persistentVolumeClaim" in volume
    ]


def standin_settings(deployment: Deployment, state_dir: Path, port: int) -> StandinSettings:
    values = deployment.values
    hooks_path = values["custom"]["startupHooks"]["path"]
    return StandinSettings(
        state_dir=state_dir,
        port=port,
        namespace=deployment.spec["namespace"],
        claims=claims_beside_the_chart(values),
        # The course image carries the hook scripts (image/Dockerfile copies them there).
        image_files={hooks_path: HOOKS_SOURCE},
    )


def lightweight_values() -> dict:
    """Pods whose container runs the load tests' lightweight server instead of JupyterLab.

    The local spawner swaps its command (LightweightCourseSpawner); with KubeSpawner
    the command is the pod's, so it is set where the chart sets it: singleuser.cmd.
    """
    return {"singleuser": {"cmd": [sys.executable, "-I", "-S", lightweight_server.__file__]}}
