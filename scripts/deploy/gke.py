"""A GKE cluster for a deployment, from deploy/cluster/gke.yaml: checked, then the gcloud commands.

    coursehub gke plan prod            # print every command, in order (the default)
    coursehub gke apply prod --yes     # run them (creating a cluster costs money); after a
                                       # stop, run it again: what exists is kept
    coursehub gke verify prod          # what shows the cluster is as specified
    coursehub gke scale-down prod      # after the course: the user pool to zero

Nothing is printed or run until the spec passes its schema and what a schema
cannot say: known machine types, max not below min, the zone in the region,
the z2jh node-purpose pools, a user pool whose machine holds the largest server
the deployment's values can start, a Filestore share the values can use, the
address the values name (proxy.service.loadBalancerIP), and roles that
deploy/cluster/iam-roles.yaml knows.
`commands(deployment)` is every command, in titled sections, for other tools.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from coursehub_tools.config.capacity_inputs import machine_types, node_facts, server_requests
from coursehub_tools.config.deployconfig import check_document, load, load_deployments
from coursehub_tools.config.yamlfiles import ROOT, ConfigError, read_yaml
from coursehub_tools.deploy import certificates
from coursehub_tools.deploy.gke_iam import custom_role_name, permissions_of

SCHEMA = "deploy/schema/gke.schema.yaml"
PURPOSE = "hub.jupyter.org/node-purpose"
USER_TAINT = "hub.jupyter.org_dedicated=user:NoSchedule"
# The pool `clusters create` makes carries this name; there is no flag to change it.
DEFAULT_POOL = "default-pool"
GITHUB_OIDC = "https://token.actions.githubusercontent.com"
POOL = "github"
# The branch deploy.yml deploys from; only its workflows get the deployer's credentials.
DEPLOY_BRANCH = "main"
IN_CLUSTER_NFS = "custom.clusterServices.sharedData.enabled"
LOAD_BALANCER_IP = "proxy.service.loadBalancerIP"
SUBDOMAIN_HOST = "hub.config.JupyterHub.subdomain_host"
# How GCP's APIs say a resource of that name is there already (409 / ALREADY_EXISTS),
# in the wordings gcloud prints them.
ALREADY_EXISTS = re.compile(r"already exists|ALREADY_EXISTS|code=409", re.IGNORECASE)
CREATE_VERBS = {"create", "create-oidc"}


class Step(list):
    """A gcloud command, and what `apply` checks around it.

    `expect`: what the command must print (else `fix` says what to change);
    `unless`: a lookup run first: when it prints anything, the command is not run
    (for a create that GCP would repeat rather than refuse, such as a budget).
    """

    def __init__(self, parts, *, expect: str | None = None, fix: str = "", unless=None):
        super().__init__(parts)
        self.expect, self.fix, self.unless = expect, fix, unless


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
    if not spec["zone"].startswith(spec["region"] + "-"):
        raise ConfigError(
            f"{source}: zone: {spec['zone']!r} is not in region {spec['region']!r}; "
            f"allowed: a zone of it ({spec['region']}-a, -b, ...)"
        )
    _check_pools(source, spec, root)
    _check_user_room(source, spec, values, root)
    _check_filestore(source, spec, values, deployment)
    _check_address(values, deployment, root)
    permissions_of(spec["deployer"]["roles"], root, f"{source}: deployer.roles")
    permissions_of(spec["nodeServiceAccount"]["roles"], root, f"{source}: nodeServiceAccount.roles")
    return source, spec, values


def _check_address(values: dict[str, Any], deployment: str, root: Path) -> None:
    if values["proxy"]["https"].get("hosts") and not _dotted(values, LOAD_BALANCER_IP):
        raise ConfigError(
            f"{values_file(deployment, root)}: {LOAD_BALANCER_IP}: not set; the proxy would get "
            "another address than the DNS record points at, and Let's Encrypt would fail: "
            f"set it to the address `coursehub gke apply {deployment} --yes` reserves (it stops "
            "and prints it)"
        )


def values_file(deployment: str, root: Path = ROOT) -> str:
    """The deployment's last plain values file: where its own address and sizes are set."""
    files = load_deployments(root)["deployments"][deployment]["values"]
    return [entry for entry in files if isinstance(entry, str)][-1]


def _check_pools(source: str, spec: dict[str, Any], root: Path) -> None:
    table, _ = machine_types(root)
    for index, pool in enumerate(spec["nodePools"]):
        where = f"{source}: nodePools.{index}"
        if pool["machineType"] not in table:
            raise ConfigError(
                f"{where}.machineType: {pool['machineType']!r} is unknown; known: "
                f"{', '.join(sorted(table))} (deploy/cluster/machine-types.yaml)"
            )
        if pool["maxNodes"] < pool["minNodes"]:
            raise ConfigError(
                f"{where}.maxNodes: {pool['maxNodes']} is below minNodes {pool['minNodes']}; "
                f"allowed: {pool['minNodes']} or more"
            )
    for purpose in ("core", "user"):
        if not pools_for(spec, purpose):
            raise ConfigError(
                f"{source}: nodePools: no pool labelled {PURPOSE}: {purpose}; the chart "
                "schedules the hub on core nodes and users' pods on user nodes"
            )
    core = spec["nodePools"].index(pools_for(spec, "core")[0])
    if core != 0 or spec["nodePools"][0]["name"] != DEFAULT_POOL:
        raise ConfigError(
            f"{source}: nodePools.{core}: the core pool must come first and be named "
            f"{DEFAULT_POOL}: the cluster is created with it, and GKE gives it that name"
        )
    if spec["nodePools"][0]["minNodes"] < 1:
        raise ConfigError(
            f"{source}: nodePools.0.minNodes: 0 leaves the hub and the proxy nowhere to run; "
            "allowed: 1 or more"
        )
    for pool in pools_for(spec, "user"):
        if USER_TAINT not in pool.get("taints", []):
            index = spec["nodePools"].index(pool)
            raise ConfigError(
                f"{source}: nodePools.{index}.taints: a user pool needs {USER_TAINT} so that "
                "only users' pods (which tolerate it) land there"
            )


def _check_user_room(source: str, spec: dict[str, Any], values: dict[str, Any], root: Path) -> None:
    """Every user pool's machine holds one server of the largest guarantee the values set."""
    table, _ = machine_types(root)
    facts = node_facts(root)
    servers = server_requests(values)
    memory = max(requests.memory for requests in servers.values())
    cpu = max(requests.cpu for requests in servers.values())
    fitting = [
        name
        for name, machine in sorted(table.items())
        if facts.allocatable(machine).memory >= memory and facts.allocatable(machine).cpu >= cpu
    ]
    for pool in pools_for(spec, "user"):
        room = facts.allocatable(table[pool["machineType"]])
        for where, requests in servers.items():
            if requests.memory > room.memory or requests.cpu > room.cpu:
                index = spec["nodePools"].index(pool)
                raise ConfigError(
                    f"{source}: nodePools.{index}.machineType: {pool['machineType']} has "
                    f"{room.memory / 2**30:.1f} GiB and {room.cpu:.2f} CPU for pods, less than "
                    f"one server of {where} guarantees ({requests.memory / 2**30:.1f} GiB, "
                    f"{requests.cpu:.2f} CPU); allowed: {', '.join(fitting) or 'none known'}"
                )


def _check_filestore(
    source: str, spec: dict[str, Any], values: dict[str, Any], deployment: str
) -> None:
    filestore = spec["filestore"]
    if not filestore["enabled"]:
        return
    if _dotted(values, filestore["backs"]) is None:
        raise ConfigError(
            f"{source}: filestore.backs: {deployment}'s values have no {filestore['backs']}"
        )
    if _dotted(values, IN_CLUSTER_NFS):
        raise ConfigError(
            f"{source}: filestore.enabled: {deployment}'s values still make the in-cluster NFS "
            f"server ({IN_CLUSTER_NFS}: true); set that false, or filestore.enabled: false"
        )


def _dotted(values: dict[str, Any], key: str) -> Any:
    node: Any = values
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def pools_for(spec: dict[str, Any], purpose: str) -> list[dict[str, Any]]:
    return [pool for pool in spec["nodePools"] if pool["labels"].get(PURPOSE) == purpose]


def location(spec: dict[str, Any]) -> list[str]:
    """Where the cluster's control plane is: the region or the zone, and the project."""
    where = ["--region", spec["region"]] if spec["regional"] else ["--zone", spec["zone"]]
    return [*where, "--project", spec["project"]]


def commands(deployment: str, root: Path = ROOT) -> list[Section]:
    """Every command, in titled sections, for the cluster of `deployment` and its address."""
    _, spec, values = checked_spec(deployment, root)
    sections: list[Section] = [
        ("project and APIs", _project(spec)),
        ("the image registry", [[
            "gcloud", "artifacts", "repositories", "create", spec["artifactRegistry"],
            "--repository-format=docker", f"--location={spec['region']}",
            "--project", spec["project"],
        ]]),
        ("the network", [[
            "gcloud", "compute", "networks", "create", spec["network"],
            "--subnet-mode=auto", "--project", spec["project"],
        ]]),
        ("the nodes' identity", _node_account(spec)),
        ("the cluster, with its core pool", [_cluster(spec)]),
        ("the other node pools", [_pool(spec, pool) for pool in spec["nodePools"][1:]]),
        ("this deployment's address", _address(spec, deployment, values, root)),
        ("the deploy job's identity (Workload Identity Federation)", _deployer(spec)),
    ]  # fmt: skip
    if "certificates" in spec:
        sections.append(
            ("the certificates' DNS-01 identity (cert-manager)", certificates.gcloud_commands(spec))
        )
    if spec["filestore"]["enabled"]:
        sections.append(("the shared-data share (Filestore)", _filestore(spec)))
    if spec.get("cloudSql", {}).get("enabled"):
        namespace = load_deployments(root)["deployments"][deployment]["namespace"]
        sections.append(("the hub's database (Cloud SQL)", _cloud_sql(spec, namespace)))
    sections.append(("a budget alert", [_budget(spec)]))
    return sections


def _project(spec: dict[str, Any]) -> list[Command]:
    project = spec["project"]
    return [
        ["gcloud", "billing", "projects", "link", project,
         f"--billing-account={spec['budget']['billingAccount']}"],
        ["gcloud", "services", "enable", *spec["apis"], "--project", project],
    ]  # fmt: skip


def _cluster(spec: dict[str, Any]) -> Command:
    # A regional control plane with the nodes in one zone, where the disks are.
    nodes_at = ["--node-locations", spec["zone"]] if spec["regional"] else []
    return [
        "gcloud", "container", "clusters", "create", spec["name"], *location(spec), *nodes_at,
        "--release-channel", spec["releaseChannel"], "--network", spec["network"],
        "--enable-ip-alias", "--enable-dataplane-v2",
        f"--workload-pool={spec['project']}.svc.id.goog",
        *_pool_flags(spec, spec["nodePools"][0]),
    ]  # fmt: skip


def _pool(spec: dict[str, Any], pool: dict[str, Any]) -> Command:
    return [
        "gcloud", "container", "node-pools", "create", pool["name"],
        "--cluster", spec["name"], *location(spec), *_pool_flags(spec, pool),
    ]  # fmt: skip


def node_account(spec: dict[str, Any]) -> str:
    return f"{spec['nodeServiceAccount']['name']}@{spec['project']}.iam.gserviceaccount.com"


def _node_account(spec: dict[str, Any]) -> list[Command]:
    nodes, project = spec["nodeServiceAccount"], spec["project"]
    made = [["gcloud", "iam", "service-accounts", "create", nodes["name"], "--project", project]]
    made += [
        ["gcloud", "projects", "add-iam-policy-binding", project,
         f"--member=serviceAccount:{node_account(spec)}", f"--role={role}"]
        for role in nodes["roles"]
    ]  # fmt: skip
    return made


def _pool_flags(spec: dict[str, Any], pool: dict[str, Any]) -> list[str]:
    # All nodes are in one zone, so the per-zone counts these flags take are the pool's.
    flags = [
        "--machine-type", pool["machineType"], "--service-account", node_account(spec),
        "--enable-autoscaling",
        "--num-nodes", str(pool["minNodes"]),
        "--min-nodes", str(pool["minNodes"]), "--max-nodes", str(pool["maxNodes"]),
        "--node-labels", ",".join(f"{k}={v}" for k, v in pool["labels"].items()),
    ]  # fmt: skip
    if pool.get("taints"):
        flags += ["--node-taints", ",".join(pool["taints"])]
    return flags


def address_name(spec: dict[str, Any], deployment: str) -> str:
    return f"{spec['name']}-{deployment}"


def _address(
    spec: dict[str, Any], deployment: str, values: dict[str, Any], root: Path
) -> list[Command]:
    """The static address, checked against the values' before any record points at it.

    GCP picks the address; the values must name it (the proxy's load balancer
    takes it), so apply stops here until they do, and the records use the same.
    """
    name, at = address_name(spec, deployment), ["--project", spec["project"]]
    where = [f"--region={spec['region']}", *at]
    ip = _dotted(values, LOAD_BALANCER_IP)
    made: list[Command] = [["gcloud", "compute", "addresses", "create", name, *where]]
    if not ip:
        return made
    made.append(Step(
        ["gcloud", "compute", "addresses", "describe", name, *where, "--format=value(address)"],
        expect=str(ip),
        fix=f"{values_file(deployment, root)}: {LOAD_BALANCER_IP}: {ip}, but GCP reserved "
        "{found} as " + name + ": set it to {found} and run apply again (what exists is kept)",
    ))  # fmt: skip
    hosts = list(values["proxy"]["https"].get("hosts") or [])
    if _dotted(values, SUBDOMAIN_HOST):
        # Each user's server is <user>.<host> (JupyterHub's subdomain_host):
        # one wildcard record per host sends them all to the same proxy.
        hosts += [f"*.{host}" for host in hosts]
    for host in hosts:
        made.append([
            "gcloud", "dns", "record-sets", "create", f"{host}.", f"--zone={spec['dnsZone']}",
            "--type=A", "--ttl=300", f"--rrdatas={ip}", *at,
        ])  # fmt: skip
    return made


def deployer_account(spec: dict[str, Any]) -> str:
    return f"{spec['deployer']['serviceAccount']}@{spec['project']}.iam.gserviceaccount.com"


def _deployer(spec: dict[str, Any]) -> list[Command]:
    deployer, project = spec["deployer"], spec["project"]
    at, account = ["--project", project], deployer_account(spec)
    number = f"$(gcloud projects describe {project} --format='value(projectNumber)')"
    repository = deployer["githubRepository"]
    member = (
        f"principalSet://iam.googleapis.com/projects/{number}/locations/global/"
        f"workloadIdentityPools/{POOL}/attribute.repository/{repository}"
    )
    made = [["gcloud", "iam", "service-accounts", "create", deployer["serviceAccount"], *at]]
    roles = list(deployer["roles"])
    if custom := deployer.get("customRole"):
        made.append([
            "gcloud", "iam", "roles", "create", custom["id"], *at, f"--title={custom['title']}",
            f"--permissions={','.join(custom['permissions'])}", "--stage=GA",
        ])  # fmt: skip
        roles.append(custom_role_name(spec))
    made += [
        ["gcloud", "projects", "add-iam-policy-binding", project,
         f"--member=serviceAccount:{account}", f"--role={role}"]
        for role in roles
    ]  # fmt: skip
    # ref: https://cloud.google.com/iam/docs/workload-identity-federation-with-deployment-pipelines
    # GitHub's issuer is shared by every repository: the condition is what keeps others out.
    # It names the branch too: deploys and the dispatcher run on it (a workflow_run or a
    # schedule runs on the default branch), and a workflow pushed to any other branch of
    # this repository gets no credentials.
    made += [
        ["gcloud", "iam", "workload-identity-pools", "create", POOL, "--location=global", *at],
        ["gcloud", "iam", "workload-identity-pools", "providers", "create-oidc", spec["name"],
         f"--workload-identity-pool={POOL}", "--location=global", f"--issuer-uri={GITHUB_OIDC}",
         "--attribute-mapping=google.subject=assertion.sub,attribute.repository=assertion.repository",
         f'--attribute-condition=assertion.repository=="{repository}"'
         f' && assertion.ref=="refs/heads/{DEPLOY_BRANCH}"', *at],
        ["gcloud", "iam", "service-accounts", "add-iam-policy-binding", account,
         "--role=roles/iam.workloadIdentityUser", f"--member={member}", *at],
    ]  # fmt: skip
    return made


def _filestore(spec: dict[str, Any]) -> list[Command]:
    filestore = spec["filestore"]
    where = [f"--zone={spec['zone']}", "--project", spec["project"]]
    return [
        ["gcloud", "filestore", "instances", "create", filestore["name"], *where,
         f"--tier={filestore['tier']}",
         f"--file-share=name={filestore['share']},capacity={filestore['capacity']}",
         f"--network=name={spec['network']}"],
        # The address the shared-data PersistentVolume mounts.
        ["gcloud", "filestore", "instances", "describe", filestore["name"], *where,
         "--format=value(networks[0].ipAddresses[0])"],
    ]  # fmt: skip


# The chart's name for the hub's Kubernetes service account (hub.serviceAccount.name unset).
HUB_SERVICE_ACCOUNT = "hub"


def cloud_sql_account(spec: dict[str, Any]) -> str:
    return f"{spec['cloudSql']['serviceAccount']}@{spec['project']}.iam.gserviceaccount.com"


def cloud_sql_user(spec: dict[str, Any]) -> str:
    """The IAM database user of the hub's service account: its e-mail without the domain's end."""
    return cloud_sql_account(spec).removesuffix(".gserviceaccount.com")


def _cloud_sql(spec: dict[str, Any], namespace: str) -> list[Command]:
    """The instance with automated backups and point-in-time recovery, the hub's database, and
    the hub's identity: a service account its pod becomes (Workload Identity) and signs in as.

    ref: https://cloud.google.com/sql/docs/postgres/connect-kubernetes-engine
    """
    sql, project = spec["cloudSql"], spec["project"]
    at, account, backups = ["--project", project], cloud_sql_account(spec), sql["backups"]
    instance = [f"--instance={sql['instance']}", *at]
    member = f"serviceAccount:{project}.svc.id.goog[{namespace}/{HUB_SERVICE_ACCOUNT}]"
    return [
        ["gcloud", "services", "enable", "sqladmin.googleapis.com", *at],
        # Enterprise edition: new PostgreSQL 16 instances default to Enterprise Plus,
        # which has no shared-core machines.
        ["gcloud", "sql", "instances", "create", sql["instance"], "--edition=enterprise",
         f"--database-version={sql['databaseVersion']}", f"--tier={sql['tier']}",
         f"--region={spec['region']}", "--database-flags=cloudsql.iam_authentication=on",
         f"--backup-start-time={backups['startTime']}",
         f"--retained-backups-count={backups['retained']}",
         "--enable-point-in-time-recovery",
         f"--retained-transaction-log-days={backups['pointInTimeRecoveryDays']}", *at],
        ["gcloud", "sql", "databases", "create", sql["database"], *instance],
        ["gcloud", "iam", "service-accounts", "create", sql["serviceAccount"], *at],
        *[["gcloud", "projects", "add-iam-policy-binding", project,
           f"--member=serviceAccount:{account}", f"--role={role}"]
          for role in ("roles/cloudsql.client", "roles/cloudsql.instanceUser")],
        ["gcloud", "sql", "users", "create", cloud_sql_user(spec),
         "--type=cloud_iam_service_account", *instance],
        ["gcloud", "iam", "service-accounts", "add-iam-policy-binding", account,
         "--role=roles/iam.workloadIdentityUser", f"--member={member}", *at],
    ]  # fmt: skip


def _budget(spec: dict[str, Any]) -> Command:
    budget = spec["budget"]
    account = f"--billing-account={budget['billingAccount']}"
    # GCP makes a second budget of the same name rather than refuse: look first.
    existing = [
        "gcloud", "billing", "budgets", "list", account,
        f"--filter=displayName={spec['name']}", "--format=value(name)",
    ]  # fmt: skip
    return Step([
        "gcloud", "billing", "budgets", "create", account, f"--display-name={spec['name']}",
        f"--budget-amount={budget['amount']}", f"--filter-projects=projects/{spec['project']}",
        *(f"--threshold-rule=percent={share}" for share in budget["thresholds"]),
    ], unless=existing)  # fmt: skip


def scale_down(deployment: str, root: Path = ROOT) -> list[Command]:
    """After the course: every user pool to no nodes (placeholders to 0 first, in the values)."""
    _, spec, _ = checked_spec(deployment, root)
    made = []
    for pool in pools_for(spec, "user"):
        at = ["--node-pool", pool["name"], *location(spec)]
        made += [
            ["gcloud", "container", "clusters", "update", spec["name"], *at,
             "--enable-autoscaling", "--min-nodes", "0", "--max-nodes", str(pool["maxNodes"])],
            ["gcloud", "container", "clusters", "resize", spec["name"], *at,
             "--num-nodes", "0", "--quiet"],
        ]  # fmt: skip
    return made


def verify(deployment: str, root: Path = ROOT) -> list[Command]:
    """Commands whose output shows the cluster is as specified (the chapter says what to expect)."""
    _, spec, _ = checked_spec(deployment, root)
    namespace = load_deployments(root)["deployments"][deployment]["namespace"]
    return [
        ["gcloud", "container", "clusters", "get-credentials", spec["name"], *location(spec)],
        ["gcloud", "container", "clusters", "describe", spec["name"], *location(spec),
         "--format=value(networkConfig.datapathProvider,workloadIdentityConfig.workloadPool)"],
        ["gcloud", "container", "node-pools", "list", "--cluster", spec["name"], *location(spec),
         "--format=table(name,config.machineType,autoscaling.minNodeCount,"
         "autoscaling.maxNodeCount)"],
        ["kubectl", "get", "nodes", "--label-columns", PURPOSE],
        ["kubectl", "get", "networkpolicies", "--namespace", namespace],
    ]  # fmt: skip


def shown(command: Command) -> str:
    """A command as a shell line; `$(...)` is left for the shell to run."""
    line = " ".join(part if "$(" in part else shlex.quote(part) for part in command)
    if unless := getattr(command, "unless", None):
        line = f'[ -n "$({shown(unless)})" ] || {line}'
    return line


def planned(command: Command) -> str:
    """A command as the plan prints it: with what it must print, if anything."""
    expect = getattr(command, "expect", None)
    return shown(command) + (f"  # must print {expect}" if expect is not None else "")


def apply(sections: list[Section]) -> int:
    """Run the plan in order; what exists is kept, so apply can be run again after a stop."""
    for title, section in sections:
        print(f"# {title}")
        for command in section:
            print(planned(command), flush=True)
            # shell: the `$(...)` parts look up what earlier commands made.
            done = subprocess.run(shown(command), shell=True, capture_output=True, text=True)
            print(done.stdout, end="", flush=True)
            answer = (done.stderr.strip().splitlines() or ["no message"])[-1]
            if done.returncode == 0:
                found = done.stdout.strip()
                expect = getattr(command, "expect", None)
                if expect is not None and found != expect:
                    print(f"error: {command.fix.format(found=found)}", file=sys.stderr)
                    return 1
                continue
            if CREATE_VERBS & set(command[1:6]) and ALREADY_EXISTS.search(done.stderr):
                print("  (already exists, kept)", flush=True)
                continue
            print(
                f"error: {' '.join(command[:4])} failed (exit {done.returncode}): {answer}; "
                "the commands above it have run, the rest have not; once fixed, run apply "
                "again (what exists is kept)",
                file=sys.stderr,
            )
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the project folder (default: this checkout)"
    )
    parser.add_argument("action", choices=["plan", "apply", "verify", "scale-down"])
    parser.add_argument("deployment")
    parser.add_argument("--yes", action="store_true", help="with apply: really run the commands")
    args = parser.parse_args(argv)
    try:
        if args.action == "scale-down":
            sections = [
                ("after the course: the user pool to zero", scale_down(args.deployment, args.root))
            ]
        elif args.action == "verify":
            sections = [("once the commands have run", verify(args.deployment, args.root))]
        else:
            sections = commands(args.deployment, args.root)
        if args.action == "apply" and not args.yes:
            raise ConfigError("apply creates billable resources; add --yes to run the commands")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.action == "apply":
        return apply(sections)
    for title, section in sections:
        print(f"# {title}")
        for command in section:
            print(planned(command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
