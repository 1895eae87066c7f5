"""`coursehub status`: the bootcamp's daily checks, from kubectl's output and from the local hub.

A cluster cannot run here, so the cluster checks read kubectl's output as
recorded from a GKE deployment (tests/recorded/): one object of each kind,
assembled into the lists `kubectl get -o json` returns.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime

import pytest

from coursehub_tools import cli
from coursehub_tools.config.deployconfig import ROOT, load
from coursehub_tools.lifecycle import hub_status

RECORDED = ROOT / "tests" / "recorded"
# The demo school's first morning, in the hub pod's clock (UTC).
MORNING = datetime(2026, 11, 16, 9, 5)


def recorded(name: str) -> dict:
    return json.loads((RECORDED / name).read_text())


def as_list(items: list[dict]) -> str:
    """What `kubectl get ... -o json` prints for several objects."""
    return json.dumps(
        {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}
    )


def renamed(obj: dict, name: str) -> dict:
    copied = copy.deepcopy(obj)
    copied["metadata"]["name"] = name
    return copied


def core_node() -> dict:
    node = renamed(recorded("kubectl-node-user.json"), "gke-coursehub-core-1a2b3c4d-q9w8")
    node["metadata"]["labels"]["hub.jupyter.org/node-purpose"] = "core"
    node["status"]["images"] = []
    return node


def kubectl_for(placeholders_running: int, placeholders_pending: int, *, user_ready: bool = True):
    """A stand-in for kubectl that answers the three commands with recorded output."""
    user = recorded("kubectl-node-user.json")
    # The user image's tag is hubploy's (the last commit that changed the image), so the
    # node recorded with an older tag is given the one deployed now, as the pre-puller would.
    image = load("prod").values["singleuser"]["image"]
    (held,) = [i for i in user["status"]["images"] if image["name"] in i["names"][-1]]
    held["names"][-1] = f"{image['name']}:{image['tag']}"
    if not user_ready:
        ready = next(c for c in user["status"]["conditions"] if c["type"] == "Ready")
        ready.update(status="Unknown", reason="NodeStatusUnknown")
    running = recorded("kubectl-pod-placeholder.json")
    pending = recorded("kubectl-pod-placeholder-pending.json")
    pods = [recorded("kubectl-pod-hub.json")]
    pods += [renamed(running, f"user-placeholder-{i}") for i in range(placeholders_running)]
    pods += [renamed(pending, f"user-placeholder-p{i}") for i in range(placeholders_pending)]
    answers = {
        "nodes": as_list([core_node(), user]),
        "pods": as_list(pods),
        "logs": (RECORDED / "kubectl-logs-hub.txt").read_text(),
    }
    ran = []

    def kubectl(command: list[str]) -> str:
        ran.append(command)
        return answers["logs" if command[1] == "logs" else command[2]]

    return kubectl, ran


def by_name(checks) -> dict[str, hub_status.Check]:
    return {c.name: c for c in checks}


@pytest.mark.unit
def test_prod_status_reads_kubectl_in_the_namespace_of_the_deployment():
    prod = load("prod")
    wanted = prod.values["scheduling"]["userPlaceholder"]["replicas"]
    kubectl, ran = kubectl_for(wanted - 1, 1)
    checks = by_name(
        hub_status.cluster_checks(prod, MORNING, kubectl, lambda host: "Feb 14 08:00:00 2027 GMT")
    )
    namespace = prod.spec["namespace"]
    assert ran == list(hub_status.kubectl_commands(namespace).values())
    assert all(["--namespace", namespace] == c[c.index("--namespace") :][:2] for c in ran[1:])
    assert checks["hub"] == hub_status.Check(
        "hub", "warn", "hub-6f9c7d8b5-x2v7q Ready, 1 restart(s)"
    )
    assert checks["nodes"].state == "ok" and checks["nodes"].detail == "2 Ready (1 core, 1 user)"
    assert checks["placeholders"].detail == f"{wanted - 1} of {wanted} running, 1 pending"
    # The recorded node has the hub's image and data-science-101's, not climate-lab's.
    climate = prod.values["prePuller"]["extraImages"]["course-climate-lab"]
    assert checks["images"].state == "warn"
    assert checks["images"].detail == (
        f"not pulled: {climate['name']}:{climate['tag']} on gke-coursehub-user-5d1c2f7a-8k2m"
    )
    assert (
        checks["hub log"].state == "warn"
        and "jupyter-sam did not start" in checks["hub log"].detail
    )
    assert (
        checks["culler"].state == "ok" and "2026-11-16 08:50 (15 min ago" in checks["culler"].detail
    )
    host = prod.values["proxy"]["https"]["hosts"][0]
    assert checks["certificate"].detail == f"{host} valid until 2027-02-14 (89 days)"
    assert hub_status.exit_status(checks.values()) == 0


@pytest.mark.unit
def test_a_stopped_culler_a_lost_node_and_an_expiring_certificate_fail_the_status():
    prod = load("prod")
    every = prod.values["cull"]["every"]
    wanted = prod.values["scheduling"]["userPlaceholder"]["replicas"]
    kubectl, _ = kubectl_for(wanted, 0, user_ready=False)
    # Two culler periods after its last request (08:50), plus a minute.
    late = datetime(2026, 11, 16, 8, 50) + 2 * hub_status.timedelta(seconds=every)
    late += hub_status.timedelta(minutes=1)
    checks = by_name(
        hub_status.cluster_checks(prod, late, kubectl, lambda host: "Nov 16 08:00:00 2026 GMT")
    )
    assert (
        checks["nodes"].state == "FAIL"
        and "gke-coursehub-user-5d1c2f7a-8k2m" in checks["nodes"].detail
    )
    assert checks["placeholders"].state == "ok"
    assert checks["culler"].state == "FAIL"
    assert checks["certificate"].state == "FAIL"
    assert hub_status.exit_status(checks.values()) == 1


@pytest.mark.unit
def test_errors_older_than_a_day_and_other_processes_lines_are_not_counted():
    log = (RECORDED / "kubectl-logs-hub.txt").read_text()
    # A user's server logs in the same format under its own name: not the hub's.
    log += "[E 2026-11-16 09:00:00.000 ServerApp] a kernel died\n"
    assert hub_status.log_errors_check(log, MORNING).detail.startswith("1 error(s)")
    next_day = datetime(2026, 11, 17, 9, 0)
    assert hub_status.log_errors_check(log, next_day).state == "ok"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("reference", "kubelet_name"),
    [
        ("jupyter/base-notebook:2024-01-01", "docker.io/jupyter/base-notebook:2024-01-01"),
        ("python:3.11", "docker.io/library/python:3.11"),
        ("ghcr.io/coursehub/x:1@sha256:ab", "ghcr.io/coursehub/x@sha256:ab"),
        ("localhost:5000/x:1", "localhost:5000/x:1"),
    ],
)
def test_image_names_are_spelled_as_kubelet_reports_them(reference, kubelet_name):
    assert hub_status.image_names(reference) == {kubelet_name}


@pytest.mark.hub
def test_status_of_the_local_hub(local_hub, capsys):
    values = load("local").values
    status = cli.main(
        ["status", "local", "--state-dir", str(local_hub.state_dir), "--url", local_hub.url]
    )
    out = capsys.readouterr().out
    lines = {line[:15].strip(): line for line in out.splitlines()[1:]}
    assert status == 0, out
    assert "JupyterHub 5.5.0" in lines["hub"]
    # The culler makes its first pass when the hub starts it.
    assert f"every {values['cull']['every']} s" in lines["culler"] and " ok " in lines["culler"]
    assert " n/a " in lines["nodes"] and " n/a " in lines["certificate"]


@pytest.mark.unit
def test_status_of_a_hub_that_never_ran_says_so(tmp_path, capsys):
    assert cli.main(["status", "local", "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "operator-token.secret does not exist" in err
    assert "Traceback" not in err


@pytest.mark.hub
def test_status_without_the_hubs_log_says_where_it_looked(local_hub, tmp_path, capsys):
    missing = tmp_path / "hub.log"
    args = ["--state-dir", str(local_hub.state_dir), "--url", local_hub.url, "--log", str(missing)]
    assert cli.main(["status", "local", *args]) == 2
    assert capsys.readouterr().err == (
        f"error: no hub log at {missing}: pass --log with the file the hub's output goes to\n"
    )
