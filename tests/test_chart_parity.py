"""The pinned chart's own jupyterhub_config.py and our emulation agree, deployment by deployment.

Offline: helm 3 from its npm package (scripts/helm.py) renders the kept chart
(deploy/chart/), and the chart's hub config runs on what it rendered.
Differences must be declared in chart_values.DECLARED_DIFFERENCES.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from coursehub.values import CONFIG_DIR
from coursehub_tools import chart, chart_parity, helm
from coursehub_tools.cluster import deployed
from coursehub_tools.deployconfig import Layer, load
from coursehub_tools.localhub.chart_values import (
    DECLARED_DIFFERENCES,
    DECLARED_VALUES_DIFFERENCES,
    getter,
    resource_names,
)
from coursehub_tools.pod_manifests import hub_config

pytestmark = pytest.mark.chart


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    # No skip: a missing helm is a broken install (`npm ci`), and fails here saying so.
    return helm.binary()


@pytest.fixture(scope="session")
def chart_dir() -> Path:
    chart.check()
    return chart.pinned().folder


def cases(values: dict) -> list[dict]:
    """A student and an instructor of every course, each on the course's first day."""
    return [
        {
            "user": role[:-1],
            "groups": course["groups"][role][:1],
            "course": slug,
            "today": course["start"],
        }
        for slug, course in sorted(values["custom"]["courses"].items())
        for role in ("students", "instructors")
    ]


def chart_and_ours(deployment, helm_binary: Path, chart_dir: Path, work: Path) -> tuple[dict, dict]:
    """The hub config and course pods from the chart's own config, and from our emulation.

    Also requires the values the chart mounts for the hub to be our merge.
    """
    objects = chart_parity.render_deployment(helm_binary, chart_dir, deployment, work)
    mounted = deployment.mounted_values()
    hub_name = resource_names(getter(mounted))["hub"]
    root = work / "hub-pod"
    env = chart_parity.lay_out_hub_pod(objects, hub_name, root)
    env["POD_NAMESPACE"] = deployment.spec["namespace"]
    # What the hub reads: the chart's merge of its defaults and ours, and ours.
    charts_merge = yaml.safe_load((root / "secret" / "values.yaml").read_text())
    assert _without(charts_merge, DECLARED_VALUES_DIFFERENCES) == _without(
        mounted, DECLARED_VALUES_DIFFERENCES
    )

    theirs = chart_parity.run_in_subprocess(root, env, cases(mounted))
    theirs = chart_parity.relocated(theirs, str(root), str(CONFIG_DIR))
    # The secrets helm generated (service tokens among them), as the chart's hub reads them.
    config = hub_config(mounted, work, lambda key: (root / "secret" / key).read_text())
    ours = {"config": chart_parity.plain(config), "pods": chart_parity.pods(config, cases(mounted))}
    return theirs, ours


def undeclared_differences(theirs: dict, ours: dict) -> list[str]:
    return chart_parity.differences(
        theirs["config"],
        ours["config"],
        lambda section, trait: (section, trait) in DECLARED_DIFFERENCES,
    )


def test_chart_and_emulation_agree(cluster_deployment, helm_binary, chart_dir, tmp_path):
    import kubernetes_validate

    # As a deploy run has it: with the cluster tests' token where that service exists.
    deployment = deployed(cluster_deployment, decrypt=False)
    theirs, ours = chart_and_ours(deployment, helm_binary, chart_dir, tmp_path)
    assert undeclared_differences(theirs, ours) == []
    for pod in theirs["pods"]:
        kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)
        names = [c["name"] for c in pod["spec"]["initContainers"]]
        assert names[0] == "block-cloud-metadata", "the chart's own init container runs first"
    assert theirs["pods"] == ours["pods"]


# Settings no deployment uses today, so the emulation's other branches meet the
# chart's own code too: each set is laid over staging's values.
OTHER_SETTINGS = {
    "names, pull secrets, required user nodes, full culling, static homes": {
        "fullnameOverride": "course-hub",
        "debug": {"enabled": True},
        "imagePullSecret": {
            "create": True,
            "automaticReferenceInjection": True,
            "registry": "ghcr.io",
            "username": "puller",
            "password": "not-a-secret",
        },
        "imagePullSecrets": ["registry-b"],
        "scheduling": {
            "userPods": {"nodeAffinity": {"matchNodePurpose": "require"}},
            "userScheduler": {"enabled": True},
            "podPriority": {"enabled": True},
        },
        "cull": {
            "enabled": True,
            "users": True,
            "adminUsers": False,
            "maxAge": 3600,
            "removeNamedServers": True,
        },
        "hub": {"baseUrl": "/course/", "db": {"type": "sqlite-memory"}},
        "singleuser": {
            "extraFiles": {"motd": {"mountPath": "/etc/motd", "stringData": "hi", "mode": 0o644}},
            "storage": {"type": "static", "static": {"pvcName": "homes", "subPath": "{username}"}},
            "extraTolerations": [{"key": "course", "operator": "Exists"}],
            "image": {"pullPolicy": "Always", "pullSecrets": ["registry-c"]},
        },
    },
    "name override, no culling, scheduling, storage or metadata block": {
        "nameOverride": "course",
        "cull": {"enabled": False},
        "scheduling": {
            "userPods": {"nodeAffinity": {"matchNodePurpose": "ignore"}},
            "userScheduler": {"enabled": False},
            "podPriority": {"enabled": False},
        },
        "hub": {"db": {"type": "sqlite-pvc"}},
        "singleuser": {"storage": {"type": "none"}, "cloudMetadata": {"blockWithIptables": False}},
    },
}


@pytest.mark.parametrize("settings", OTHER_SETTINGS.values(), ids=OTHER_SETTINGS)
def test_chart_and_emulation_agree_on_other_settings(settings, helm_binary, chart_dir, tmp_path):
    deployment = load("staging", extra_layers=[Layer("other settings", settings)])
    theirs, ours = chart_and_ours(deployment, helm_binary, chart_dir, tmp_path)
    assert undeclared_differences(theirs, ours) == []
    assert theirs["pods"] == ours["pods"]


def _without(values: dict, paths) -> dict:
    trimmed = copy.deepcopy(values)
    for path in paths:
        *parents, last = path.split(".")
        node = trimmed
        for part in parents:
            node = node.get(part, {})
        node.pop(last, None)
    return trimmed


# Private ranges and the metadata server: what a user pod must not reach unless a
# rule of the chart lets it (the hub, DNS).
CLOSED_TO_USERS = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.169.254/32"}


def test_the_charts_network_policies_keep_users_apart(
    cluster_deployment, helm_binary, chart_dir, tmp_path
):
    """The NetworkPolicies the chart renders from our values (GKE enforces them with
    Dataplane V2): a user pod takes traffic only from the proxy and the hub, and its
    open egress leaves out private addresses and the metadata server."""
    deployment = load(cluster_deployment)
    objects = chart_parity.render_deployment(helm_binary, chart_dir, deployment, tmp_path)
    policies = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "NetworkPolicy"}
    assert {"hub", "proxy", "singleuser"} <= set(policies)
    singleuser = policies["singleuser"]
    assert singleuser["podSelector"]["matchLabels"]["component"] == "singleuser-server"
    sources = [peer for rule in singleuser["ingress"] for peer in rule["from"]]
    assert sources and all(
        peer["podSelector"]["matchLabels"] == {"hub.jupyter.org/network-access-singleuser": "true"}
        for peer in sources
    )
    open_egress = [
        peer["ipBlock"]
        for rule in singleuser["egress"]
        for peer in rule.get("to", [])
        if peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0"
    ]
    assert open_egress and all(set(b.get("except", [])) >= CLOSED_TO_USERS for b in open_egress)
