"""What IAM lets an account do on GKE: the roles' permissions, and what writing the chart needs.

deploy/cluster/iam-roles.yaml says what the predefined roles allow (as far as
the checks ask); deploy/cluster/gke.yaml grants the deployer some of them and
a project role of its own. `missing(objects, spec)` names every permission the
deployer lacks to write the objects helm renders for a deployment; the deploy
job creates, updates and deletes them (helm install, upgrade and uninstall).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from coursehub_tools.yamlfiles import ROOT, ConfigError, read_yaml

ROLES_FILE = "deploy/cluster/iam-roles.yaml"
WRITES = ("create", "update", "delete")
RBAC_ROLE_KINDS = {"Role", "ClusterRole"}
RBAC_BINDING_KINDS = {"RoleBinding", "ClusterRoleBinding"}
THIRD_PARTY = "thirdPartyObjects"


def predefined(root: Path = ROOT) -> dict[str, set[str]]:
    """Each predefined role of the table, with the permissions it lists."""
    roles = read_yaml(root / ROLES_FILE, root)["roles"]
    return {name: set(entry["permissions"]) for name, entry in roles.items()}


def permissions_of(roles: Iterable[str], root: Path = ROOT, where: str = "roles") -> set[str]:
    table = predefined(root)
    granted: set[str] = set()
    for role in roles:
        if role not in table:
            raise ConfigError(
                f"{where}: {role!r} is not in {ROLES_FILE}; known: {', '.join(sorted(table))} "
                "(add what Google's page says it allows)"
            )
        granted |= table[role]
    return granted


def deployer_permissions(spec: Mapping[str, Any], root: Path = ROOT) -> set[str]:
    """The deployer's predefined roles' permissions and its project role's."""
    deployer = spec["deployer"]
    granted = permissions_of(deployer["roles"], root, "deployer.roles")
    return granted | set((deployer.get("customRole") or {}).get("permissions", []))


def custom_role_name(spec: Mapping[str, Any]) -> str:
    return f"projects/{spec['project']}/roles/{spec['deployer']['customRole']['id']}"


def resource(kind: str) -> str:
    """A kind as GKE's permissions name it: NetworkPolicy -> networkPolicies."""
    name = kind[0].lower() + kind[1:]
    if name.endswith("y"):
        return name[:-1] + "ies"
    if name.endswith("s"):
        return name + "es"
    return name + "s"


def needed(objects: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Every permission writing `objects` needs, each with the first object that needs it.

    Kubernetes lets an account create a Role only with rights it holds, and
    bind a role only if it holds its rights, unless `escalate` and `bind` allow
    it; an account whose rights come from IAM holds none through RBAC.
    ref: https://kubernetes.io/docs/reference/access-authn-authz/rbac/#privilege-escalation-prevention-and-bootstrapping
    """
    found: dict[str, str] = {}
    for item in objects:
        kind, name = item["kind"], item["metadata"]["name"]
        # A custom resource (cert-manager's Certificate) is one of GKE's thirdPartyObjects.
        group = item["apiVersion"].rpartition("/")[0]
        plural = THIRD_PARTY if "." in group and not group.endswith(".k8s.io") else resource(kind)
        wanted = [f"container.{plural}.{verb}" for verb in WRITES]
        if kind in RBAC_ROLE_KINDS:
            wanted.append(f"container.{resource(kind)}.escalate")
        if kind in RBAC_BINDING_KINDS:
            wanted.append(f"container.{resource(item['roleRef']['kind'])}.bind")
        for permission in wanted:
            found.setdefault(permission, f"{kind} {name}")
    return found


def missing(
    objects: Iterable[Mapping[str, Any]], spec: Mapping[str, Any], root: Path = ROOT
) -> list[str]:
    """One line per permission the deployer lacks, naming the object that needs it."""
    granted = deployer_permissions(spec, root)
    return [
        f"{permission} (for {what})"
        for permission, what in sorted(needed(objects).items())
        if permission not in granted
    ]
