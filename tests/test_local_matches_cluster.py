"""The local hub's values are staging's and prod's, except the backend and the GitHub endpoint.

Expectations come from the merged deployments themselves, not from a second list.
"""

from __future__ import annotations

import pytest
from helpers import leaves

from coursehub_tools.cluster import SMOKE_TEST_KEYS
from coursehub_tools.deployconfig import ROOT, load, read_yaml

pytestmark = pytest.mark.unit

# Keys only a cluster reads: the hub pod's and users' pods' Kubernetes objects,
# which the local backend has none of. The local hub runs the chart's own
# config (scripts/localhub/jupyterhub_config.py), so every other key it reads
# as the cluster does; here they only say where local values may differ.
# hub.extraFiles is compared whole (test_local_hub_config_is_the_clusters).
CLUSTER_ONLY = (
    "hub.extraFiles", "hub.args", "hub.service", "hub.networkPolicy", "singleuser.image",
    "singleuser.memory", "singleuser.cpu", "singleuser.storage", "singleuser.uid",
    "singleuser.fsGid",
    "singleuser.lifecycleHooks", "singleuser.initContainers", "singleuser.extraContainers",
    "singleuser.extraLabels", "singleuser.extraAnnotations", "singleuser.nodeSelector",
    "singleuser.extraPodConfig", "singleuser.cloudMetadata", "scheduling", "prePuller",
    "proxy", "ingress", "custom.clusterServices",
)  # fmt: skip


def covered(path: str, keys) -> bool:
    return any(path == key or path.startswith(f"{key}.") for key in keys)


def test_local_hub_config_is_the_clusters(cluster_deployment):
    local = load("local").values["hub"]["extraFiles"]
    assert local == load(cluster_deployment).values["hub"]["extraFiles"]


def test_every_deployment_starts_from_the_pinned_charts_defaults(deployment):
    from coursehub_tools import chart

    first = load(deployment).layers[0]
    assert first.source == f"deploy/chart/{chart.pinned().folder.name}/values.yaml"
    assert first.values == chart.defaults()


def test_local_differs_from_cluster_only_in_cluster_keys(cluster_deployment):
    local, cluster = load("local").values, load(cluster_deployment).values
    differing = {
        path
        for path in leaves(local).keys() ^ leaves(cluster).keys()
        if not covered(path, CLUSTER_ONLY)
    }
    differing |= {
        path
        for path in leaves(local).keys() & leaves(cluster).keys()
        if not covered(path, CLUSTER_ONLY) and _get(local, path) != _get(cluster, path)
    }
    # The cluster tests' service where a cluster carries it (kind, staging), and
    # its parents where the local hub has none.
    differing = {
        path
        for path in differing
        if not covered(path, SMOKE_TEST_KEYS)
        and not any(key.startswith(f"{path}.") for key in SMOKE_TEST_KEYS)
    }
    # The database is another declared difference: SQLite here, PostgreSQL there
    # (tests/test_postgres.py runs the local hub with staging's hub.db too). The
    # demo school's date is the last: a real school's hub never lists that file.
    # Users' servers' hosts hang off each hub's own address: the local runner sets
    # subdomain_host from the port it binds (LocalHub.runtime_layer).
    demo_date = leaves(read_yaml(ROOT / "deploy/deployments/coursehub/config/demo-date.yaml"))
    per_address = {"hub.config.JupyterHub.subdomain_host"}
    assert differing <= {"hub.db.type", "hub.db.url", *per_address, *demo_date}


def _get(values: dict, path: str):
    for part in path.split("."):
        values = values[part]
    return values
