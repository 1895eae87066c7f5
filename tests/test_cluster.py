"""The deployed hub on a real cluster (kind in CI), and the deploy commands offline.

Cluster tests need COURSEHUB_CLUSTER=<deployment> and kubectl reaching that
cluster (`nox -s kind` sets both up); otherwise they skip and say why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import tomllib
from datetime import date

import pytest
import requests
import yaml

from coursehub.courses import load_courses, open_to
from coursehub_tools.cluster import (
    TEST_TOKEN_FILE,
    cluster_commands,
    helm_command,
    runtime_layers,
    write_values,
)
from coursehub_tools.deployconfig import ROOT, load, load_deployments, read_yaml

SPEC = load_deployments()


@pytest.mark.unit
@pytest.mark.parametrize(
    "name", [n for n, d in SPEC["deployments"].items() if d["backend"] == "kubernetes"]
)
def test_helm_deploys_the_pinned_chart_with_the_checked_values(name, tmp_path):
    values_file = write_values(name, tmp_path, decrypt=False)
    command = helm_command(name, values_file)
    assert command[command.index("--version") + 1] == SPEC["chart"]["version"]
    assert command[command.index("--namespace") + 1] == SPEC["deployments"][name]["namespace"]
    deployed = yaml.safe_load(values_file.read_text())
    assert deployed == load(name, extra_layers=runtime_layers(name)).values


@pytest.mark.unit
def test_gke_node_pools_come_from_the_cluster_spec():
    spec = read_yaml(ROOT / SPEC["deployments"]["prod"]["cluster"])
    commands = cluster_commands("prod")
    assert len(commands) == len(spec["nodePools"])
    for command, pool in zip(commands, spec["nodePools"], strict=True):
        assert command[command.index("--machine-type") + 1] == pool["machineType"]
        assert command[command.index("--max-nodes") + 1] == str(pool["maxNodes"])


def cluster_deployment() -> str:
    name = os.environ.get("COURSEHUB_CLUSTER")
    if not name:
        pytest.skip("no cluster: set COURSEHUB_CLUSTER=<deployment> (nox -s kind does) to run")
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    reachable = subprocess.run(
        ["kubectl", "get", "--raw", "/readyz"], capture_output=True, check=False
    )
    if reachable.returncode != 0:
        pytest.skip(f"no cluster reachable with kubectl: {reachable.stderr.decode().strip()}")
    return name


def kubectl(name: str, *args: str) -> str:
    namespace = SPEC["deployments"][name]["namespace"]
    return subprocess.run(
        ["kubectl", "--namespace", namespace, *args], capture_output=True, text=True, check=True
    ).stdout


def public_url(values: dict) -> str:
    """Where the deployed hub answers, from its own values."""
    proxy = values.get("proxy", {})
    if proxy.get("service", {}).get("type") == "NodePort":
        return f"http://127.0.0.1:{proxy['service']['nodePorts']['http']}"
    return f"https://{proxy['https']['hosts'][0]}"


@pytest.mark.cluster
def test_hub_pod_mounts_hub_config():
    name = cluster_deployment()
    listed = kubectl(
        name, "exec", "deploy/hub", "--", "ls", "/usr/local/etc/jupyterhub/jupyterhub_config.d"
    )
    expected = sorted(p.name for p in (ROOT / "hub-config" / "jupyterhub_config.d").glob("*.py"))
    assert sorted(listed.split()) == expected


@pytest.mark.cluster
def test_hub_runs_the_pinned_jupyterhub_and_spawns_a_pod():
    name = cluster_deployment()
    hub = public_url(load(name).values) + "/hub/api"
    version = requests.get(hub + "/", timeout=30).json()["version"]
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]
    pinned = next(req for req in groups["hub"] if req.startswith("jupyterhub=="))
    assert version == pinned.split("==")[1]
    if not TEST_TOKEN_FILE.exists():
        pytest.skip(
            f"no {TEST_TOKEN_FILE.name}: only the kind deployment carries a test service token"
        )
    headers = {"Authorization": f"token {TEST_TOKEN_FILE.read_text().strip()}"}
    values = load(name).values
    students = values["custom"]["github"]["studentTeams"][0]
    courses = open_to(load_courses(values["custom"]["courses"]), [students], date.today())
    requests.post(f"{hub}/users/cluster-probe", headers=headers, timeout=30)
    requests.post(f"{hub}/groups/{students}/users", json={"users": ["cluster-probe"]},
                  headers=headers, timeout=30)  # fmt: skip
    started = requests.post(f"{hub}/users/cluster-probe/server", headers=headers, timeout=30)
    assert started.status_code in (201, 202), started.text
    # The pod is created with the course's image; whether the registry can be
    # pulled from inside kind is not what this checks.
    for _ in range(60):
        image = kubectl(name, "get", "pod", "--ignore-not-found", "jupyter-cluster-probe",
                        "-o", "jsonpath={.spec.containers[0].image}")  # fmt: skip
        if image:
            break
        time.sleep(2)
    assert image == courses[0].image
    requests.delete(f"{hub}/users/cluster-probe/server", headers=headers, timeout=30)
