"""What only this run of the local hub knows, handed to its JupyterHub in one file.

LocalHub.prepare writes it to <state>/this-machine.json and names it in the
hub's environment ($COURSEHUB_THIS_MACHINE); scripts/localhub/jupyterhub_config.py
reads it to swap what this machine cannot have. Everything the chart reads
reaches the hub as on a cluster: values in the laid-out Secret, names in its
ConfigMap, Services' ports in the environment (layout.hub_environment).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from coursehub_tools.localhub.supervisor import MARKER_VARIABLE

FACTS_VARIABLE = "COURSEHUB_THIS_MACHINE"
# Users' servers of the `local` backend, by the name LocalHub(server=...) takes.
LOCAL_SPAWNERS = {
    "jupyterlab": "LocalCourseSpawner",
    "lightweight": "LightweightCourseSpawner",
}
# What LocalHub.api may do: manage users, groups and servers, read the proxy's
# routes and the services (LocalHub.services_routed), reach servers, and make
# tokens for others (a load test's cull pass runs with one, as the culler does).
OPERATOR_SCOPES = [
    "admin:users", "admin:servers", "admin:groups", "proxy", "read:hub",
    "list:services", "read:services", "access:servers", "tokens",
]  # fmt: skip


@dataclass(frozen=True)
class LocalFacts:
    state_dir: Path
    pod_dir: Path
    public_port: int
    hub_port: int
    proxy_api_port: int
    backend: str
    server: str
    marker: str
    operator_token: str

    @property
    def spawner_class(self) -> str:
        return f"coursehub_tools.localhub.spawner.{LOCAL_SPAWNERS[self.server]}"

    @property
    def running_as_root(self) -> bool:
        return os.geteuid() == 0

    @property
    def marker_env(self) -> dict[str, str]:
        """A service gets only the environment it is given: with this, a service left
        by a killed hub is still found and stopped by the runner."""
        return {MARKER_VARIABLE: self.marker}

    @property
    def operator_scopes(self) -> list[str]:
        return OPERATOR_SCOPES

    def write(self) -> Path:
        path = self.state_dir / "this-machine.json"
        path.write_text(json.dumps(asdict(self), default=str, indent=2))
        path.chmod(0o600)
        return path

    @classmethod
    def read(cls) -> LocalFacts:
        data = json.loads(Path(os.environ[FACTS_VARIABLE]).read_text())
        return cls(
            **{**data, "state_dir": Path(data["state_dir"]), "pod_dir": Path(data["pod_dir"])}
        )
