"""How a local hub or a test starts the Kubernetes stand-in and points a client at it.

The hub finds its API server as any kubernetes client outside a cluster does:
through the kubeconfig named by $KUBECONFIG (KubeSpawner's load_config falls
back to it when there is no in-cluster service account). Only the server
address and the token in that file differ from a cluster's.
"""

from __future__ import annotations

import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass
class StandinSettings:
    """What one stand-in serves and where it keeps its volumes, logs and token."""

    state_dir: Path
    port: int
    namespace: str
    claims: list[str] = field(default_factory=list)
    # Folders the image carries: path in the image -> folder on this machine.
    image_files: dict[str, Path] = field(default_factory=dict)
    backoff_seconds: float = 10
    # Changes kept for watches; a watch from before them is answered 410 Gone.
    history: int = 1000

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_file(self) -> Path:
        return self.state_dir / "kube-standin.token"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig.yaml"

    def token(self) -> str:
        if not self.token_file.exists():
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self.token_file.write_text(secrets.token_hex(32))
            self.token_file.chmod(0o600)
        return self.token_file.read_text().strip()

    def command(self) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "coursehub_tools.local.kube_standin.api",
            f"--port={self.port}",
            f"--namespace={self.namespace}",
            f"--state-dir={self.state_dir / 'kube'}",
            f"--token-file={self.token_file}",
            f"--backoff-seconds={self.backoff_seconds:g}",
            f"--history={self.history}",
        ]
        command += [f"--claim={claim}" for claim in self.claims]
        command += [f"--image-path={inside}={local}" for inside, local in self.image_files.items()]
        return command

    def write_kubeconfig(self) -> Path:
        """A kubeconfig with one context: this stand-in, its token, its namespace."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kube-standin", "cluster": {"server": self.url}}],
            "users": [{"name": "hub", "user": {"token": self.token()}}],
            "contexts": [
                {
                    "name": "kube-standin",
                    "context": {
                        "cluster": "kube-standin",
                        "user": "hub",
                        "namespace": self.namespace,
                    },
                }
            ],
            "current-context": "kube-standin",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig.chmod(0o600)
        return self.kubeconfig
