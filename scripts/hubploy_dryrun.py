"""Run the real hubploy deploy with no cluster, and record what it hands helm.

hubploy runs in a throwaway git copy of deploy/ and hub-config/, where:
- the environment's secrets layer is replaced by stand-in values encrypted to
  the test-only key, so hubploy's own `sops --decrypt` really runs;
- the kubeconfig it decrypts points at a stand-in Kubernetes API that answers
  the one call hubploy makes itself (read the namespace);
- HELM_EXECUTABLE (hubploy's own switch) is a recorder that keeps every
  command line and the content of every `-f` file while the file exists.
The deployment is loaded as a deploy run has it (scripts/cluster.py `deployed`,
the cluster tests' token included). The result is compared with deployconfig.load
of the same copy (tests/test_hubploy.py) and shown in the chapter on auto-deploy.
The rehearsal (scripts/rehearsal.py) runs the deploy job's own command instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import yaml

from coursehub_tools import cluster, hubploy_deploy, sops_files
from coursehub_tools.chart import pinned
from coursehub_tools.deployconfig import Deployment, load_deployments
from coursehub_tools.hubploy_layout import deployment_dir
from coursehub_tools.serving import serving
from coursehub_tools.yamlfiles import ROOT, ConfigError

# What the stand-in secrets layer sets; a test finds these values in helm's input.
STANDIN_SECRETS = {
    "hub": {
        "config": {"GitHubOAuthenticator": {"client_id": "dry-run", "client_secret": "dry-run"}},
        "db": {"password": "dry-run"},
    }
}
COPIED = ("deploy", "hub-config")

# The recorder helm: one JSON line a call, with every -f file's text.
RECORDER = """\
import json, os, sys
args = sys.argv[1:]
files = [args[i + 1] for i, arg in enumerate(args) if arg == "-f"]
record = {"argv": args, "files": [open(path).read() for path in files]}
with open(os.environ["COURSEHUB_HELM_RECORD"], "a") as out:
    out.write(json.dumps(record) + "\\n")
"""


@dataclass
class Recorded:
    """hubploy's helm calls, and our own merge of the same copy."""

    calls: list[dict[str, Any]]
    namespaces_read: list[str]
    deployment: Deployment
    chart_values: dict[str, Any]
    hubploy_argv: list[str]
    # The chart folder hubploy deployed, with the generated values (gone after `record`).
    chart_folder: Path

    @property
    def upgrade(self) -> dict[str, Any]:
        (call,) = [call for call in self.calls if call["argv"][0] == "upgrade"]
        return call

    def set_strings(self) -> dict[str, str]:
        argv = self.upgrade["argv"]
        pairs = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--set-string"]
        return dict(pair.split("=", 1) for pair in pairs)


class _NamespaceAPI(BaseHTTPRequestHandler):
    """GET /api/v1/namespaces/<name>: the namespace exists (a stand-in Kubernetes API).

    Records each namespace read and the Authorization header it came with.
    """

    read: list[str]
    authorizations: list[str]

    def do_GET(self):
        name = self.path.rstrip("/").rsplit("/", 1)[-1]
        self.read.append(name)
        self.authorizations.append(self.headers.get("Authorization", ""))
        body = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


@dataclass
class NamespaceReads:
    """What the stand-in Kubernetes API was asked: namespaces, with which credentials."""

    read: list[str]
    authorizations: list[str]


@contextmanager
def namespace_api() -> Iterator[tuple[str, NamespaceReads]]:
    reads = NamespaceReads([], [])
    handler = type(
        "Handler", (_NamespaceAPI,), {"read": reads.read, "authorizations": reads.authorizations}
    )
    with serving(handler) as port:
        yield f"http://127.0.0.1:{port}", reads


def _kubeconfig(server: str) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "dry-run",
        "clusters": [{"name": "dry-run", "cluster": {"server": server}}],
        "contexts": [{"name": "dry-run", "context": {"cluster": "dry-run", "user": "dry-run"}}],
        "users": [{"name": "dry-run", "user": {}}],
    })  # fmt: skip


def _git(copy: Path, *args: str) -> None:
    identity = ["-c", "user.name=dry run", "-c", "user.email=dry-run@localhost"]
    subprocess.run(["git", *identity, *args], cwd=copy, check=True, capture_output=True)


def _copy_project(into: Path, root: Path) -> None:
    for folder in COPIED:
        shutil.copytree(root / folder, into / folder)
    _git(into, "init", "-q")
    _git(into, "add", "-A")
    _git(into, "commit", "-q", "-m", "copy for hubploy's dry run")


def _stand_in_secrets(copy: Path, environment: str, api: str) -> None:
    recipient = sops_files.test_only_recipient()
    secrets = deployment_dir(load_deployments(copy), copy) / "secrets"
    layer = yaml.safe_dump(STANDIN_SECRETS)
    (secrets / f"{environment}.yaml").write_text(sops_files.encrypt(layer, "yaml", recipient))
    hubploy_config = yaml.safe_load((secrets.parent / "hubploy.yaml").read_text())
    kubeconfig = secrets / hubploy_config["cluster"]["kubeconfig"]["filename"]
    kubeconfig.write_text(sops_files.encrypt(_kubeconfig(api), "yaml", recipient))


@contextmanager
def _key(key: dict[str, str]) -> Iterator[None]:
    """Only `key` (SOPS_AGE_KEY_FILE or SOPS_AGE_KEY) in this process's environment."""
    saved = {name: os.environ.pop(name, None) for name in sops_files.KEY_ENVIRONMENT}
    os.environ.update(key)
    try:
        yield
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value


def record(name: str, root: Path = ROOT) -> Recorded:
    """Run `hubploy deploy` for deployment `name` (one with `hubploy:`) and record it.

    The deployment is loaded as a deploy run has it (scripts/cluster.py `deployed`),
    runtime layers included, so helm's command is the one `coursehub-cluster up` runs.
    """
    _require_hubploy(name, root)
    with tempfile.TemporaryDirectory(prefix="hubploy-dry-run-") as tmp, namespace_api() as api:
        copy, server, reads = Path(tmp) / "project", api[0], api[1]
        _copy_project(copy, root)
        environment = load_deployments(copy)["deployments"][name]["hubploy"]
        _stand_in_secrets(copy, environment, server)
        with _key({"SOPS_AGE_KEY_FILE": str(sops_files.TEST_ONLY_KEY)}):
            deployment = cluster.deployed(name, decrypt=True, root=copy)
        env = {k: v for k, v in os.environ.items() if k not in sops_files.KEY_ENVIRONMENT}
        env["SOPS_AGE_KEY_FILE"] = str(sops_files.TEST_ONLY_KEY)
        env.pop("KUBECONFIG", None)
        return _run_hubploy(deployment, copy, Path(tmp), env, reads)


def _require_hubploy(name: str, root: Path) -> None:
    if shutil.which("hubploy") is None:
        raise ConfigError("hubploy is not installed (the `deploy` dependency group installs it)")
    if "hubploy" not in load_deployments(root)["deployments"][name]:
        raise ConfigError(f"deploy/deployments.yaml: deployments.{name}: not deployed by hubploy")


def _run_hubploy(
    deployment: Deployment, project: Path, tmp: Path, env: dict[str, str], reads: NamespaceReads
) -> Recorded:
    chart = tmp / "chart" / "jupyterhub"
    # The kept chart data stands in for the pulled chart: helm is the recorder.
    shutil.copytree(pinned(project).folder, chart)
    chart_values = hubploy_deploy.add_generated_values(deployment, chart)
    helm = tmp / "helm"
    helm.write_text(f"#!{sys.executable}\n{RECORDER}")
    helm.chmod(0o755)
    record_file = tmp / "helm-calls.jsonl"
    env.update(HELM_EXECUTABLE=str(helm), COURSEHUB_HELM_RECORD=str(record_file))
    argv = hubploy_deploy.command(deployment, chart)[1:]
    result = subprocess.run(
        [shutil.which("hubploy"), *argv], cwd=hubploy_deploy.hubploy_root(project), env=env,
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise ConfigError(f"hubploy failed: {result.stderr.strip().splitlines()[-1:]}")
    calls = [json.loads(line) for line in record_file.read_text().splitlines()]
    for call in calls:
        call["argv"] = [arg.replace(str(chart), "<chart folder>") for arg in call["argv"]]
    shown = [arg.replace(str(chart), "<chart folder>") for arg in argv]
    return Recorded(calls, list(reads.read), deployment, chart_values, shown, chart)
