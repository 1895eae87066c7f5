"""What several test files need and is not a fixture (fixtures: tests/conftest.py).

Imported as `helpers`: pytest puts tests/ on sys.path, as for runner_checks.
"""

from __future__ import annotations

from coursehub_tools.deployconfig import Deployment, load


def leaves(values: dict, prefix: str = "") -> dict[str, object]:
    """Each leaf of a values tree by its dotted path ("hub.config.JupyterHub.admin_access").

    An empty mapping is a leaf: a layer may set a key to {} on purpose.
    """
    found: dict[str, object] = {}
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            found.update(leaves(value, f"{path}."))
        else:
            found[path] = value
    return found


def students_pod(deployment: str, user: str = "sam", extra_values: dict | None = None) -> dict:
    """The pod `user`, of the first course's first student team, gets on the course's first day,
    as KubeSpawner builds it offline with the deployment's merged values."""
    from coursehub_tools.pod_manifests import build  # imports KubeSpawner: only when asked

    slug, course = next(iter(load(deployment).values["custom"]["courses"].items()))
    return build(deployment, user, course["groups"]["students"][:1], course=slug,
                 today=course["start"], extra_values=extra_values)  # fmt: skip


def has_database(deployment: Deployment) -> bool:
    """The deploy makes the hub a PostgreSQL server of its own (scripts/cluster_services.py)."""
    values = deployment.values
    return bool(
        values["custom"]["clusterServices"]["database"]["enabled"]
        and values["hub"]["db"]["type"] == "postgres"
    )


def has_encrypted_layer(deployment: Deployment) -> bool:
    """Some layer is read only when decrypted (listed in deploy/deployments.yaml as encrypted)."""
    layers = deployment.spec["values"]
    return any(isinstance(item, dict) and item.get("encrypted") for item in layers)
