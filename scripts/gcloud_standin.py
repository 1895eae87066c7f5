"""A stand-in for `gcloud`, for running `coursehub-gke plan/apply` where there is no Google Cloud.

It is not gcloud and says so (`gcloud --version`, and every answer on stderr
names it). It knows the commands scripts/gke.py runs, keeps what they make in
a state folder, records every call, and fails as GCP does:

- a create of something that exists: the service's "already exists" answer;
- a command whose permission the caller's roles lack (deploy/cluster/iam-roles.yaml):
  PERMISSION_DENIED naming the permission;
- a command on, or naming, something that does not exist: NOT_FOUND;
- a command it does not know: exit 2, saying it is a stand-in.

    with gcloud_standin.installed(state, spec) as env:   # env: PATH with this gcloud first
        subprocess.run(["coursehub-gke", "apply", "staging", "--yes"], env=env)
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from coursehub_tools.gke_iam import permissions_of
from coursehub_tools.yamlfiles import ROOT

STATE_ENV = "COURSEHUB_GCLOUD_STATE"
NAME = "coursehub gcloud stand-in (not Google Cloud)"
# The owner of the project and of its billing account: who runs `coursehub-gke apply`.
MAINTAINER_ROLES = ("roles/owner", "roles/billing.admin")

# command words -> (the permission GCP checks, what the command does: create, get, list,
# or set, which GCP repeats without complaint: enable, link, a policy binding)
COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("billing", "projects", "link"): ("billing.resourceAssociations.create", "set"),
    ("services", "enable"): ("serviceusage.services.enable", "set"),
    ("artifacts", "repositories", "create"): ("artifactregistry.repositories.create", "create"),
    ("compute", "networks", "create"): ("compute.networks.create", "create"),
    ("compute", "addresses", "create"): ("compute.addresses.create", "create"),
    ("compute", "addresses", "describe"): ("compute.addresses.get", "get"),
    ("iam", "service-accounts", "create"): ("iam.serviceAccounts.create", "create"),
    ("iam", "service-accounts", "add-iam-policy-binding"): (
        "iam.serviceAccounts.setIamPolicy", "set"),
    ("iam", "roles", "create"): ("iam.roles.create", "create"),
    ("iam", "workload-identity-pools", "create"): ("iam.workloadIdentityPools.create", "create"),
    ("iam", "workload-identity-pools", "providers", "create-oidc"): (
        "iam.workloadIdentityPoolProviders.create", "create"),
    ("projects", "add-iam-policy-binding"): ("resourcemanager.projects.setIamPolicy", "set"),
    ("projects", "describe"): ("resourcemanager.projects.get", "get"),
    ("container", "clusters", "create"): ("container.clusters.create", "create"),
    ("container", "clusters", "describe"): ("container.clusters.get", "get"),
    ("container", "node-pools", "create"): ("container.clusters.update", "create"),
    ("dns", "record-sets", "create"): ("dns.changes.create", "create"),
    ("filestore", "instances", "create"): ("file.instances.create", "create"),
    ("filestore", "instances", "describe"): ("file.instances.get", "get"),
    ("billing", "budgets", "create"): ("billing.budgets.create", "create"),
    ("billing", "budgets", "list"): ("billing.budgets.list", "list"),
}  # fmt: skip
# Flags that say where a resource lives: part of its identity.
SCOPE_FLAGS = ("--project", "--region", "--zone", "--location", "--cluster",
               "--workload-identity-pool", "--billing-account", "--type")  # fmt: skip
# What a create needs to exist first: the flag naming it, and its command words.
PARENTS = {
    ("container", "node-pools", "create"): ("--cluster", ("container", "clusters")),
    ("iam", "workload-identity-pools", "providers", "create-oidc"): (
        "--workload-identity-pool",
        ("iam", "workload-identity-pools"),
    ),
}


class Failure(Exception):
    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def parse(argv: Sequence[str]) -> tuple[tuple[str, ...], str | None, dict[str, str]]:
    """(command words, the resource's name, flags) of a gcloud command line."""
    for size in sorted({len(key) for key in COMMANDS}, reverse=True):
        if tuple(argv[:size]) in COMMANDS:
            words, rest = tuple(argv[:size]), list(argv[size:])
            break
    else:
        raise Failure(f"ERROR: (gcloud) {NAME}: `gcloud {shlex.join(argv)}` is not a command "
                      "this stand-in knows", 2)  # fmt: skip
    name, flags = None, {}
    while rest:
        part = rest.pop(0)
        if part.startswith("--"):
            key, equals, value = part.partition("=")
            if not equals:
                value = rest.pop(0) if rest and not rest[0].startswith("--") else ""
            flags[key] = value
        elif name is None:
            name = part
    return words, name, flags


def key(kind: Sequence[str], name: str | None, flags: Mapping[str, str]) -> str:
    """A resource's identity: its kind (command words without the verb), name and scope."""
    scope = [f"{flag}={flags[flag]}" for flag in SCOPE_FLAGS if flags.get(flag)]
    return " ".join([*kind, name or "-", *scope])


class Cloud:
    """The state folder: what exists (resources.json), who calls (caller.json), every call."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.resources: dict[str, dict[str, Any]] = json.loads(
            (folder / "resources.json").read_text()
        )
        self.caller = json.loads((folder / "caller.json").read_text())
        self.dotted = "gcloud"  # the command's name in GCP's error lines, set by run

    def run(self, argv: Sequence[str]) -> str:
        with (self.folder / "calls.log").open("a") as log:
            log.write(shlex.join(argv) + "\n")
        words, name, flags = parse(argv)
        permission, kind = COMMANDS[words]
        project = flags.get("--project") or (name if words[0] in ("projects", "billing") else None)
        self.dotted = "gcloud." + ".".join(words)
        if permission not in self.caller["permissions"]:
            on = f"projects/{project}" if project else flags.get("--billing-account", "")
            self.fail(f"PERMISSION_DENIED: Permission '{permission}' denied on resource "
                      f"'{on}' (or it may not exist).")  # fmt: skip
        if project and key(["projects"], project, {}) not in self.resources:
            self.fail(f"NOT_FOUND: project '{project}' not found (or the caller may not see it).")
        for needed in self._references(words, name, flags):
            if needed not in self.resources:
                self.fail(f"NOT_FOUND: The resource '{needed}' was not found.")
        resource = key(words[:-1], name, flags)
        if kind == "create":
            return self._create(resource, name, flags)
        if kind == "get":
            found = self.resources.get(resource)
            if found is None:
                self.fail(f"NOT_FOUND: The resource '{resource}' was not found.")
            field = flags.get("--format", "").removeprefix("value(").removesuffix(")")
            return f"{found.get(field, '')}\n"
        if kind == "list":
            wanted = flags.get("--filter", "").partition("=")[2]
            kept = [k for k, found in self.resources.items()
                    if k.startswith(" ".join(words[:-1]) + " ")
                    and found["flags"].get("--display-name") == wanted]  # fmt: skip
            return "".join(f"billingAccounts/-/budgets/{n}\n" for n, _ in enumerate(kept))
        return ""

    def fail(self, message: str):
        raise Failure(f"ERROR: ({self.dotted}) {message}")

    def _references(self, words, name, flags) -> list[str]:
        """What the command names that must exist: a parent, a zone, an account, a role."""
        project = {"--project": flags.get("--project", "")}
        needed = []
        if words in PARENTS:
            flag, kind = PARENTS[words]
            parent_flags = {k: v for k, v in flags.items() if k != flag}
            needed.append(key(kind, flags.get(flag), parent_flags))
        if words[0] == "dns":
            needed.append(key(["dns", "managed-zones"], flags.get("--zone"), project))
        member = flags.get("--member", "")
        accounts = [flags.get("--service-account", "")]
        # A Kubernetes service account (serviceAccount:<project>.svc.id.goog[ns/name]) is
        # Workload Identity's, which the cluster's --workload-pool makes: no account to find.
        kubernetes = ".svc.id.goog[" in member
        accounts += (
            [member.removeprefix("serviceAccount:")]
            if member.startswith("serviceA") and not kubernetes
            else []
        )
        if words[:2] == ("iam", "service-accounts") and words[-1] != "create":
            accounts.append(name or "")
        for account in filter(None, accounts):
            local, _, domain = account.partition("@")
            needed.append(key(["iam", "service-accounts"], local,
                              {"--project": domain.split(".")[0]}))  # fmt: skip
        role = flags.get("--role", "")
        if role.startswith("projects/"):
            _, owner, _, role_id = role.split("/")
            needed.append(key(["iam", "roles"], role_id, {"--project": owner}))
        return needed

    def _create(self, resource, name, flags) -> str:
        if resource.startswith("billing budgets "):
            # Budgets are not named: GCP makes another of the same display name.
            resource = f"{resource} #{len(self.resources)}"
        if resource in self.resources:
            self.fail(f"ALREADY_EXISTS: {name} already exists ({resource}).")
        record: dict[str, Any] = {"flags": dict(flags)}
        if resource.startswith("compute addresses "):
            digest = hashlib.sha256(resource.encode()).digest()
            # TEST-NET-3 (RFC 5737): documentation addresses, never a real one.
            record["address"] = f"203.0.113.{10 + digest[0] % 240}"
        self.resources[resource] = record
        (self.folder / "resources.json").write_text(json.dumps(self.resources, indent=1))
        return f"Created [{name or flags.get('--display-name')}]. ({NAME})\n"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--version"]:
        print(NAME)
        return 0
    try:
        cloud = Cloud(Path(os.environ[STATE_ENV]))
        print(cloud.run(argv), end="")
    except Failure as failure:
        print(failure, file=sys.stderr)
        return failure.code
    return 0


def seed(folder: Path, spec: Mapping[str, Any], roles: Sequence[str], root: Path) -> None:
    """What exists before the first command (the project, its DNS zone) and who calls."""
    folder.mkdir(parents=True, exist_ok=True)
    project = spec["project"]
    if not (folder / "resources.json").exists():
        resources = {
            key(["projects"], project, {}): {"flags": {}, "projectNumber": "123456789012"},
            key(["dns", "managed-zones"], spec["dnsZone"], {"--project": project}): {"flags": {}},
        }
        (folder / "resources.json").write_text(json.dumps(resources, indent=1))
    caller = {"roles": list(roles), "permissions": sorted(permissions_of(roles, root))}
    (folder / "caller.json").write_text(json.dumps(caller, indent=1))


@contextmanager
def installed(
    folder: Path,
    spec: Mapping[str, Any],
    roles: Sequence[str] = MAINTAINER_ROLES,
    root: Path = ROOT,
) -> Iterator[dict[str, str]]:
    """The environment to run commands in: PATH with this `gcloud` first, its state in `folder`.

    `roles` are the caller's (deploy/cluster/iam-roles.yaml says what each
    allows). The state outlives the block, so a second `installed` on the same
    folder sees what the first made, as a second apply sees the cloud.
    """
    state = folder / "cloud"
    seed(state, spec, roles, root)
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    gcloud = bin_dir / "gcloud"
    gcloud.write_text(
        f"#!/bin/sh\n# {NAME}\nexec {shlex.quote(sys.executable)} -m "
        'coursehub_tools.gcloud_standin "$@"\n'
    )
    gcloud.chmod(0o755)
    yield {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        STATE_ENV: str(state),
    }


def resources(folder: Path) -> dict[str, dict[str, Any]]:
    """What the stand-in in `folder` holds, by identity."""
    return json.loads((folder / "cloud" / "resources.json").read_text())


def calls(folder: Path) -> list[str]:
    """Every gcloud command the stand-in in `folder` answered, in order."""
    log = folder / "cloud" / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


if __name__ == "__main__":
    sys.exit(main())
