"""The local hub runs what staging and prod run, except the backend and the GitHub endpoint.

Expectations come from the merged deployments themselves, not from a second list.
"""

from __future__ import annotations

import pytest

from coursehub_tools.deployconfig import load, load_deployments
from coursehub_tools.localhub.chart_values import (
    CLUSTER_ONLY_KEYS,
    HUB_TRAITS,
    KUBESPAWNER_TRAITS,
    camel,
)

pytestmark = pytest.mark.unit
CLUSTER_DEPLOYMENTS = [
    name
    for name, spec in load_deployments()["deployments"].items()
    if spec["backend"] == "kubernetes"
]

# Keys read by chart_values.apply_chart_values besides the trait tables.
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
    "cull",
    "debug",
    "custom",
    *(f"hub.{camel(trait)}" for trait in HUB_TRAITS),
    *(f"singleuser.{key}" for key in KUBESPAWNER_TRAITS),
}


def leaf_paths(values: dict, prefix: str = "") -> set[str]:
    paths = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            paths |= leaf_paths(value, f"{path}.")
        else:
            paths.add(path)
    return paths


def covered(path: str, keys) -> bool:
    return any(path == key or path.startswith(f"{key}.") for key in keys)


@pytest.mark.parametrize("name", ["local", *CLUSTER_DEPLOYMENTS])
def test_every_key_set_is_used_locally_or_declared_cluster_only(name):
    values = load(name).values
    unaccounted = sorted(
        path
        for path in leaf_paths(values)
        if not covered(path, MAPPED_KEYS) and not covered(path, CLUSTER_ONLY_KEYS)
    )
    assert unaccounted == [], (
        "set these up in scripts/localhub/chart_values.py or declare them cluster-only"
    )


@pytest.mark.parametrize("name", CLUSTER_DEPLOYMENTS)
def test_local_hub_config_is_the_clusters(name):
    assert load("local").values["hub"]["extraFiles"] == load(name).values["hub"]["extraFiles"]


@pytest.mark.parametrize("name", CLUSTER_DEPLOYMENTS)
def test_local_differs_from_cluster_only_in_cluster_keys(name):
    local, cluster = load("local").values, load(name).values
    differing = {
        path
        for path in leaf_paths(local) ^ leaf_paths(cluster)
        if not covered(path, CLUSTER_ONLY_KEYS)
    }
    differing |= {
        path
        for path in leaf_paths(local) & leaf_paths(cluster)
        if not covered(path, CLUSTER_ONLY_KEYS) and _get(local, path) != _get(cluster, path)
    }
    # The database is the one declared difference: SQLite here, PostgreSQL there
    # (tests/test_postgres.py runs the local hub with staging's hub.db too).
    assert differing <= {"hub.db.type", "hub.db.url"}


def _get(values: dict, path: str):
    for part in path.split("."):
        values = values[part]
    return values
