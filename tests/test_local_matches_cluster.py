"""The local hub runs what staging and prod run, except the backend and the GitHub endpoint.

Expectations come from the merged deployments themselves, not from a second list.
"""

from __future__ import annotations

import pytest
from helpers import leaves

from coursehub_tools.cluster import SMOKE_TEST_KEYS
from coursehub_tools.deployconfig import ROOT, load, read_yaml
from coursehub_tools.localhub.chart_values import (
    CLUSTER_ONLY_KEYS,
    HUB_TRAITS,
    KUBESPAWNER_TRAITS,
    camel,
)

pytestmark = pytest.mark.unit

# Keys chart_values.apply_chart_values and apply_local_backend read besides
# the trait tables, and `custom`, which hub-config reads.
MAPPED_KEYS = {
    "hub.db.type",
    "hub.db.url",
    "hub.db.password",
    "hub.config",
    "hub.services",
    "hub.loadRoles",
    "hub.consecutiveFailureLimit",
    "singleuser.cmd",
    "singleuser.defaultUrl",
    "singleuser.startTimeout",
    "singleuser.extraEnv",
    "singleuser.allowPrivilegeEscalation",
    "cull",
    "debug",
    "custom",
    *(f"hub.{camel(trait)}" for trait in HUB_TRAITS),
    *(f"singleuser.{key}" for key in KUBESPAWNER_TRAITS.values()),
}


def covered(path: str, keys) -> bool:
    return any(path == key or path.startswith(f"{key}.") for key in keys)


def test_every_key_our_files_set_is_used_locally_or_declared_cluster_only(deployment):
    layers = load(deployment).layers[1:]  # the first is the chart's own defaults
    unaccounted = sorted(
        path
        for layer in layers
        for path in leaves(layer.values)
        if not covered(path, MAPPED_KEYS) and not covered(path, CLUSTER_ONLY_KEYS)
    )
    assert unaccounted == [], (
        "set these up in scripts/localhub/chart_values.py or declare them cluster-only"
    )


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
        if not covered(path, CLUSTER_ONLY_KEYS)
    }
    differing |= {
        path
        for path in leaves(local).keys() & leaves(cluster).keys()
        if not covered(path, CLUSTER_ONLY_KEYS) and _get(local, path) != _get(cluster, path)
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
