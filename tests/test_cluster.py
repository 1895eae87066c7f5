"""The deployed hub on a real cluster (kind in CI), and the deploy commands offline.

Cluster tests need COURSEHUB_CLUSTER=<deployment> and kubectl reaching that
cluster (`nox -s kind` sets both up); otherwise they skip and say why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import tomllib
from urllib.parse import quote

import pytest
import requests
import yaml

from coursehub.courses import course_day, load_courses, open_to
from coursehub_tools.cluster import (
    TEST_TOKEN_FILE,
    cluster_commands,
    helm_command,
    runtime_layers,
    write_values,
)
from coursehub_tools.deployconfig import ROOT, load, load_deployments, merge, read_yaml
from coursehub_tools.localhub.layout import names_of


@pytest.mark.unit
def test_helm_deploys_the_pinned_chart_with_the_checked_values(cluster_deployment, tmp_path):
    name, spec = cluster_deployment, load_deployments()
    values_file = write_values(name, tmp_path, decrypt=False)
    command = helm_command(name, values_file)
    assert command[command.index("--version") + 1] == spec["chart"]["version"]
    assert command[command.index("--namespace") + 1] == spec["deployments"][name]["namespace"]
    deployed = yaml.safe_load(values_file.read_text())
    checked = load(name, extra_layers=runtime_layers(name))
    assert deployed == checked.helm_values
    # The chart adds its defaults itself (dropping its own nulls, as merging
    # does): with ours on top, that is what was checked.
    chart_defaults = merge({}, checked.layers[0].values)
    assert merge(chart_defaults, deployed) == checked.values


@pytest.mark.unit
def test_gke_node_pools_come_from_the_cluster_spec():
    spec = read_yaml(ROOT / load_deployments()["deployments"]["prod"]["cluster"])
    commands = [
        c
        for c in cluster_commands("prod")
        if c[1:3] in (["container", "clusters"], ["container", "node-pools"])
    ]
    assert len(commands) == len(spec["nodePools"])
    for command, pool in zip(commands, spec["nodePools"], strict=True):
        assert command[command.index("--machine-type") + 1] == pool["machineType"]
        assert command[command.index("--max-nodes") + 1] == str(pool["maxNodes"])


def reachable_deployment() -> str:
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
    namespace = load_deployments()["deployments"][name]["namespace"]
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
    name = reachable_deployment()
    listed = kubectl(
        name, "exec", "deploy/hub", "--", "ls", "/usr/local/etc/jupyterhub/jupyterhub_config.d"
    )
    expected = sorted(p.name for p in (ROOT / "hub-config" / "jupyterhub_config.d").glob("*.py"))
    assert sorted(listed.split()) == expected


# How long a server may take to be reachable: the chart's singleuser.startTimeout
# is 300 s; pulling a course image on a fresh node can take as long again.
SERVER_DEADLINE = 600


def service_headers() -> dict:
    if not TEST_TOKEN_FILE.exists():
        pytest.skip(
            f"no {TEST_TOKEN_FILE.name}: the deploy that made the cluster-tests service's token "
            "ran elsewhere (the tests run in the job that deployed)"
        )
    return {"Authorization": f"token {TEST_TOKEN_FILE.read_text().strip()}"}


def make_student(hub_api: str, headers: dict, values: dict, user: str) -> None:
    """A user in the first student team's group and the smoke-test group, through the REST
    API as the test service (the smoke-test group spares it the GitHub re-check)."""
    github = values["custom"]["github"]
    created = requests.post(f"{hub_api}/users/{user}", headers=headers, timeout=30)
    assert created.status_code in (201, 409), created.text  # 409: it exists
    for name in (github["studentTeams"][0], github["smokeTestGroup"]):
        group = quote(name, safe="")
        created = requests.post(f"{hub_api}/groups/{group}", headers=headers, timeout=30)
        assert created.status_code in (201, 409), created.text
        joined = requests.post(f"{hub_api}/groups/{group}/users", json={"users": [user]},
                               headers=headers, timeout=30)  # fmt: skip
        assert joined.status_code == 200, joined.text


def remove_user(hub_api: str, headers: dict, user: str) -> None:
    requests.delete(f"{hub_api}/users/{user}/server", headers=headers, timeout=30)
    for _ in range(30):
        if requests.delete(f"{hub_api}/users/{user}", headers=headers, timeout=30).ok:
            return
        time.sleep(2)  # 400 while the server is still stopping


@pytest.mark.cluster
def test_hub_runs_the_pinned_jupyterhub_and_spawns_a_pod():
    name = reachable_deployment()
    hub = public_url(load(name).values) + "/hub/api"
    version = requests.get(hub + "/", timeout=30).json()["version"]
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]
    pinned = next(req for req in groups["hub"] if req.startswith("jupyterhub=="))
    assert version == pinned.split("==")[1]
    headers = service_headers()
    values = load(name).values
    students = values["custom"]["github"]["studentTeams"][0]
    # The hub judges courses by the deployment's date (kind lists config/demo-date.yaml).
    day = course_day(values["hub"]["config"].get("CourseSpawner", {}).get("today", ""))
    courses = open_to(load_courses(values["custom"]["courses"]), [students], day)
    make_student(hub, headers, values, "cluster-probe")
    try:
        started = requests.post(f"{hub}/users/cluster-probe/server", headers=headers, timeout=30)
        assert started.status_code in (201, 202), started.text
        image = ""
        for _ in range(60):
            image = kubectl(name, "get", "pod", "--ignore-not-found", "jupyter-cluster-probe",
                            "-o", "jsonpath={.spec.containers[0].image}")  # fmt: skip
            if image:
                break
            time.sleep(2)
        assert image == courses[0].image
    finally:
        remove_user(hub, headers, "cluster-probe")


@pytest.mark.cluster
def test_a_student_reaches_jupyterlab_through_the_proxy():
    """The course image (loaded into kind by `nox -s kind`) starts and JupyterLab answers."""
    name = reachable_deployment()
    values = load(name).values
    base = public_url(values)
    hub = base + "/hub/api"
    headers = service_headers()
    user = "cluster-lab"
    make_student(hub, headers, values, user)
    try:
        started = requests.post(f"{hub}/users/{user}/server", headers=headers, timeout=30)
        assert started.status_code in (201, 202), started.text
        lab = f"{base}/user/{user}/lab"
        deadline = time.monotonic() + SERVER_DEADLINE
        answer = None
        while time.monotonic() < deadline:
            # Until the server is up, the proxy sends /user/... to the hub, which
            # redirects; 200 comes only from the user's own server.
            answer = requests.get(lab, headers=headers, allow_redirects=False, timeout=30)
            if answer.status_code == 200:
                break
            time.sleep(5)
        status = requests.get(f"{hub}/users/{user}", headers=headers, timeout=30).json()
        assert answer is not None and answer.status_code == 200, (
            f"{lab} answered {answer.status_code if answer else 'nothing'} after "
            f"{SERVER_DEADLINE} s; the hub says: {status.get('servers')}"
        )
        assert "JupyterLab" in answer.text
    finally:
        remove_user(hub, headers, user)


@pytest.mark.cluster
def test_continuous_image_puller_is_ready_on_every_node():
    name = reachable_deployment()
    values = load(name).values
    if not values["prePuller"]["continuous"]["enabled"]:
        pytest.skip(f"{name}: prePuller.continuous.enabled is false")
    # The chart's name for it (its ConfigMap's, rendered by helm).
    daemonset = names_of(load(name))["continuous-image-puller"]
    deadline = time.monotonic() + SERVER_DEADLINE
    while True:
        # numberReady is left out while it is 0, so each side may be empty.
        desired, _, ready = kubectl(
            name, "get", "daemonset", daemonset, "-o",
            "jsonpath={.status.desiredNumberScheduled}/{.status.numberReady}",
        ).partition("/")  # fmt: skip
        if int(desired or 0) > 0 and int(desired) == int(ready or 0):
            break
        assert time.monotonic() < deadline, (
            f"daemonset {daemonset}: {ready} of {desired} ready after {SERVER_DEADLINE} s"
        )
        time.sleep(10)


def kubectl_apply(name: str, manifest: dict) -> None:
    namespace = load_deployments()["deployments"][name]["namespace"]
    command = ["kubectl", "--namespace", namespace, "apply", "-f", "-"]
    subprocess.run(command, input=json.dumps(manifest), text=True, check=True, capture_output=True)


def run_pod(name: str, pod: str, image: str, claim: str, mount: str, script: str) -> str:
    """Run `script` in a pod that mounts `claim` at `mount`; its output, once it succeeded."""
    kubectl_apply(name, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod},
        "spec": {
            "restartPolicy": "Never",
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
            "containers": [{
                "name": "run", "image": image, "command": ["sh", "-c", script],
                "securityContext": {"runAsUser": 0},
                "volumeMounts": [{"name": "data", "mountPath": mount}],
            }],
        },
    })  # fmt: skip
    try:
        kubectl(name, "wait", "--for=jsonpath={.status.phase}=Succeeded", f"pod/{pod}",
                f"--timeout={SERVER_DEADLINE}s")  # fmt: skip
        return kubectl(name, "logs", f"pod/{pod}")
    finally:
        kubectl(name, "delete", "--ignore-not-found", f"pod/{pod}")


@pytest.mark.cluster
def test_an_ended_courses_homes_are_archived_by_jobs_on_the_cluster():
    """What `coursehub-dispatch --cluster-homes` does when a course ends: a home written
    through a pod is archived by a Job, a member with no home gets none, and a second
    run finds the Job and keeps the archive."""
    import asyncio

    from coursehub_tools.home_archive import ClusterHomes, HomeVolumes, job_name

    name = reachable_deployment()
    values = load(name).values
    if values["singleuser"]["storage"]["type"] != "dynamic":
        pytest.skip(f"{name}: homes are not one claim a user")
    image = next(iter(values["custom"]["courses"].values()))["image"]
    user, slug, archive = "archive-probe", "probe-course", "coursehub-archive-probe"
    home, _ = asyncio.run(HomeVolumes(name).of(user))
    claims = [home, archive]
    try:
        for claim in claims:
            kubectl_apply(name, {
                "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim},
                "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "1Gi"}}},
            })  # fmt: skip
        run_pod(name, "write-home", image, home, f"/homes/{user}",
                f"echo week one > /homes/{user}/notes.txt")  # fmt: skip
        homes = ClusterHomes(name, archive, timeout=SERVER_DEADLINE)
        done = homes.archive(slug, [user, "never-started"], image)
        assert done == [f"archived {user}'s home (Job {job_name(slug, user)})"]
        target = f"/archive/{slug}/{user}.tar.gz"
        read = f"tar -tzf {target} && md5sum {target}"
        first = run_pod(name, "read-archive", image, archive, "/archive", read)
        assert f"{user}/notes.txt" in first
        assert homes.archive(slug, [user], image) == done, "the Job is found, not made again"
        assert run_pod(name, "read-archive", image, archive, "/archive", read) == first
    finally:
        kubectl(name, "delete", "--ignore-not-found", "--wait=false",
                f"job/{job_name(slug, user)}", *(f"pvc/{claim}" for claim in claims))  # fmt: skip
