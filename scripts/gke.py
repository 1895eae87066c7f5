"""A GKE cluster for a deployment, from deploy/cluster/gke.yaml: checked, then the gcloud commands.

    coursehub-gke plan prod            # print every command, in order (the default)
    coursehub-gke apply prod --yes     # run them (creating a cluster costs money)
    coursehub-gke scale-down prod      # after the course: the user pool to zero

Nothing is printed or run until the spec passes its schema and what a schema
cannot say: known machine types, max not below min, the zone in the region,
the z2jh node-purpose pools, and a user pool whose machine holds the largest
server the deployment's values can start.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from coursehub_tools.capacity_inputs import machine_types, node_facts, server_requests
from coursehub_tools.deployconfig import check_document, load, load_deployments
from coursehub_tools.yamlfiles import ROOT, ConfigError, read_yaml

SCHEMA = "deploy/schema/gke.schema.yaml"
PURPOSE = "hub.jupyter.org/node-purpose"
USER_TAINT = "hub.jupyter.org_dedicated=user:NoSchedule"
GITHUB_OIDC = "https://token.actions.githubusercontent.com"
POOL = "github"

Command = list[str]
Section = tuple[str, list[Command]]


def cluster_file(deployment: str, root: Path = ROOT) -> str:
    entry = load_deployments(root)["deployments"].get(deployment, {})
    if entry.get("backend") != "kubernetes" or "cluster" not in entry:
        raise ConfigError(f"deploy/deployments.yaml: {deployment!r} is not a cluster deployment")
    return entry["cluster"]


def checked_spec(deployment: str, root: Path = ROOT) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The cluster file, its spec and the deployment's values, or ConfigError naming the field."""
    source = cluster_file(deployment, root)
    spec = read_yaml(root / source, root)
    if spec.get("provider") != "gke":
        raise ConfigError(f"{source}: provider: not gke; this command makes GKE clusters only")
    check_document(spec, read_yaml(root / SCHEMA, root), source)
    values = load(deployment, root=root).values
    _check_meaning(source, spec, values, root)
    return source, spec, values


def _check_meaning(source: str, spec: dict[str, Any], values: dict[str, Any], root: Path) -> None:
    if not spec["zone"].startswith(spec["region"] + "-"):
        raise ConfigError(
            f"{source}: zone: {spec['zone']!r} is not in region {spec['region']!r} "
            f"(zones of a region are named {spec['region']}-a, -b, ...)"
        )
    table, _ = machine_types(root)
    purposes: dict[str, dict[str, Any]] = {}
    for index, pool in enumerate(spec["nodePools"]):
        where = f"{source}: nodePools.{index}"
        if pool["machineType"] not in table:
            raise ConfigError(
                f"{where}.machineType: {pool['machineType']!r} is unknown; known: "
                f"{', '.join(sorted(table))} (deploy/cluster/machine-types.yaml)"
            )
        if pool["maxNodes"] < pool["minNodes"]:
            raise ConfigError(
                f"{where}.maxNodes: {pool['maxNodes']} is below minNodes {pool['minNodes']}"
            )
        purposes[pool["labels"].get(PURPOSE, "")] = pool
    for purpose in ("core", "user"):
        if purpose not in purposes:
            raise ConfigError(
                f"{source}: nodePools: no pool labelled {PURPOSE}: {purpose}; the chart "
                "schedules the hub on core nodes and users' pods on user nodes"
            )
    user = purposes["user"]
    index = spec["nodePools"].index(user)
    if USER_TAINT not in user.get("taints", []):
        raise ConfigError(
            f"{source}: nodePools.{index}.taints: the user pool needs {USER_TAINT} so that "
            "only users' pods (which tolerate it) land there"
        )
    allocatable = node_facts(root).allocatable(table[user["machineType"]])
    for where, requests in server_requests(values).items():
        if requests.memory > allocatable.memory or requests.cpu > allocatable.cpu:
            raise ConfigError(
                f"{source}: nodePools.{index}.machineType: {user['machineType']} has "
                f"{allocatable.memory / 2**30:.1f} GiB and {allocatable.cpu:.2f} CPU for pods, "
                f"less than one server of {where} guarantees "
                f"({requests.memory / 2**30:.1f} GiB, {requests.cpu:.2f} CPU)"
            )


def commands(deployment: str, root: Path = ROOT) -> list[Section]:
    """Every command, in sections, for the cluster of `deployment` and its address."""
    _, spec, values = checked_spec(deployment, root)
    project, region, zone, name = spec["project"], spec["region"], spec["zone"], spec["name"]
    at = ["--project", project]
    account = f"{spec['deployer']['serviceAccount']}@{project}.iam.gserviceaccount.com"
    sections: list[Section] = [
        ("project and APIs", [["gcloud", "services", "enable", *spec["apis"], *at]]),
        ("the image registry", [[
            "gcloud", "artifacts", "repositories", "create", spec["artifactRegistry"],
            "--repository-format=docker", f"--location={region}", *at,
        ]]),
        ("the cluster and its pools", _cluster(spec)),
        ("this deployment's address", _address(spec, deployment, values)),
        ("the deploy job's identity (Workload Identity Federation)", _deployer(spec, account)),
    ]  # fmt: skip
    filestore = spec["filestore"]
    if filestore["enabled"]:
        sections.append(("the shared-data share (Filestore)", [[
            "gcloud", "filestore", "instances", "create", filestore["name"], *at,
            f"--zone={zone}", f"--tier={filestore['tier']}",
            f"--file-share=name={filestore['share']},capacity={filestore['capacity']}",
            "--network=name=default",
        ]]))  # fmt: skip
    budget = spec["budget"]
    sections.append(("a budget alert", [[
        "gcloud", "billing", "budgets", "create",
        f"--billing-account={budget['billingAccount']}", f"--display-name={name}",
        f"--budget-amount={budget['amount']}", f"--filter-projects=projects/{project}",
        *(f"--threshold-rule=percent={share}" for share in budget["thresholds"]),
    ]]))  # fmt: skip
    return sections


def _cluster(spec: dict[str, Any]) -> list[Command]:
    where = ["--project", spec["project"], "--zone", spec["zone"]]
    core, *others = spec["nodePools"]
    network = ["--enable-ip-alias"] + (["--enable-dataplane-v2"] if spec["dataplaneV2"] else [])
    created = [[
        "gcloud", "container", "clusters", "create", spec["name"], *where,
        "--release-channel", spec["releaseChannel"], *network,
        f"--workload-pool={spec['project']}.svc.id.goog", *_pool_flags(core),
    ]]  # fmt: skip
    for pool in others:
        created.append([
            "gcloud", "container", "node-pools", "create", pool["name"],
            "--cluster", spec["name"], *where, *_pool_flags(pool),
        ])  # fmt: skip
    return created


def _pool_flags(pool: dict) -> list[str]:
    flags = [
        "--machine-type", pool["machineType"], "--enable-autoscaling",
        "--num-nodes", str(pool["minNodes"]),
        "--min-nodes", str(pool["minNodes"]), "--max-nodes", str(pool["maxNodes"]),
        "--node-labels", ",".join(f"{k}={v}" for k, v in pool["labels"].items()),
    ]  # fmt: skip
    if pool.get("taints"):
        flags += ["--node-taints", ",".join(pool["taints"])]
    return flags


def address_name(spec: dict[str, Any], deployment: str) -> str:
    return f"{spec['name']}-{deployment}"


def _address(spec: dict[str, Any], deployment: str, values: dict[str, Any]) -> list[Command]:
    name, at = address_name(spec, deployment), ["--project", spec["project"]]
    made = [["gcloud", "compute", "addresses", "create", name, f"--region={spec['region']}", *at]]
    ip = f"$(gcloud compute addresses describe {name} --region={spec['region']} "
    ip += f"--project={spec['project']} --format='value(address)')"
    for host in values["proxy"]["https"].get("hosts", []):
        made.append([
            "gcloud", "dns", "record-sets", "create", f"{host}.", f"--zone={spec['dnsZone']}",
            "--type=A", "--ttl=300", f"--rrdatas={ip}", *at,
        ])  # fmt: skip
    return made


def _deployer(spec: dict[str, Any], account: str) -> list[Command]:
    deployer, project = spec["deployer"], spec["project"]
    at = ["--project", project]
    number = f"$(gcloud projects describe {project} --format='value(projectNumber)')"
    repository = deployer["githubRepository"]
    member = (
        f"principalSet://iam.googleapis.com/projects/{number}/locations/global/"
        f"workloadIdentityPools/{POOL}/attribute.repository/{repository}"
    )
    made = [["gcloud", "iam", "service-accounts", "create", deployer["serviceAccount"], *at]]
    made += [
        ["gcloud", "projects", "add-iam-policy-binding", project,
         f"--member=serviceAccount:{account}", f"--role={role}"]
        for role in deployer["roles"]
    ]  # fmt: skip
    made += [
        ["gcloud", "iam", "workload-identity-pools", "create", POOL, "--location=global", *at],
        ["gcloud", "iam", "workload-identity-pools", "providers", "create-oidc", spec["name"],
         f"--workload-identity-pool={POOL}", "--location=global", f"--issuer-uri={GITHUB_OIDC}",
         "--attribute-mapping=google.subject=assertion.sub,attribute.repository=assertion.repository",
         f'--attribute-condition=assertion.repository=="{repository}"', *at],
        ["gcloud", "iam", "service-accounts", "add-iam-policy-binding", account,
         "--role=roles/iam.workloadIdentityUser", f"--member={member}", *at],
    ]  # fmt: skip
    return made


def scale_down(deployment: str, root: Path = ROOT) -> list[Command]:
    """After the course: the user pool to no nodes (placeholders to 0 first, in the values)."""
    _, spec, _ = checked_spec(deployment, root)
    (user,) = [p for p in spec["nodePools"] if p["labels"].get(PURPOSE) == "user"]
    where = ["--project", spec["project"], "--zone", spec["zone"]]
    return [
        ["gcloud", "container", "clusters", "update", spec["name"], *where,
         "--node-pool", user["name"], "--enable-autoscaling", "--min-nodes", "0",
         "--max-nodes", str(user["maxNodes"])],
        ["gcloud", "container", "clusters", "resize", spec["name"], *where,
         "--node-pool", user["name"], "--num-nodes", "0", "--quiet"],
    ]  # fmt: skip


def shown(command: Command) -> str:
    """A command as a shell line; `$(...)` is left for the shell to run."""
    return " ".join(part if "$(" in part else shlex.quote(part) for part in command)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["plan", "apply", "scale-down"])
    parser.add_argument("deployment")
    parser.add_argument("--yes", action="store_true", help="with apply: really run the commands")
    args = parser.parse_args(argv)
    try:
        if args.action == "scale-down":
            sections = [("after the course: the user pool to zero", scale_down(args.deployment))]
        else:
            sections = commands(args.deployment)
        if args.action == "apply" and not args.yes:
            raise ConfigError("apply creates billable resources; add --yes to run the commands")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for title, section in sections:
        print(f"# {title}")
        for command in section:
            print(shown(command), flush=True)
            if args.action == "apply":
                subprocess.run(shown(command), shell=True, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
