"""The GKE cluster's commands follow its spec and the values; a spec that cannot work is refused."""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest
import yaml

from coursehub_tools import gcloud_standin, gke, gke_iam
from coursehub_tools.capacity_inputs import machine_types, node_facts, server_requests
from coursehub_tools.deployconfig import ROOT, load, load_deployments
from coursehub_tools.yamlfiles import ConfigError

pytestmark = pytest.mark.unit

GKE_DEPLOYMENTS = [
    name
    for name, entry in load_deployments()["deployments"].items()
    if entry.get("cluster")
    and yaml.safe_load((ROOT / entry["cluster"]).read_text()).get("provider") == "gke"
]
DEPLOYMENT = GKE_DEPLOYMENTS[0]
SOURCE = gke.cluster_file(DEPLOYMENT)


def spec() -> dict:
    return yaml.safe_load((ROOT / SOURCE).read_text())


def flat(sections) -> list[list[str]]:
    return [command for _, section in sections for command in section]


def with_verb(commands, *verb: str) -> list[list[str]]:
    return [c for c in commands if tuple(c[1 : 1 + len(verb)]) == verb]


def value(command: list[str], flag: str) -> str:
    for i, part in enumerate(command):
        if part == flag:
            return command[i + 1]
        if part.startswith(flag + "="):
            return part.split("=", 1)[1]
    raise AssertionError(f"{flag} not in {command}")


def user_index(data: dict) -> int:
    return next(i for i, p in enumerate(data["nodePools"]) if p["labels"][gke.PURPOSE] == "user")


def values_layer(deployment: str) -> str:
    """The deployment's last plain (not encrypted) values file: where a test changes values."""
    files = load_deployments()["deployments"][deployment]["values"]
    return [entry for entry in files if isinstance(entry, str)][-1]


def set_value(path: str, setting: str):
    """A ProjectCopy.edit change that sets dotted `path` in a values file."""

    def change(data: dict) -> None:
        *parents, last = path.split(".")
        for part in parents:
            data = data.setdefault(part, {})
        data[last] = setting

    return change


@pytest.mark.parametrize("deployment", GKE_DEPLOYMENTS)
def test_the_cluster_enforces_network_policies_and_has_every_pool(deployment):
    commands = flat(gke.commands(deployment))
    (create,) = with_verb(commands, "container", "clusters", "create")
    assert "--enable-dataplane-v2" in create and "--enable-ip-alias" in create
    assert value(create, "--workload-pool") == f"{spec()['project']}.svc.id.goog"
    assert value(create, "--network") == spec()["network"]
    pools = [create, *with_verb(commands, "container", "node-pools", "create")]
    for command, pool in zip(pools, spec()["nodePools"], strict=True):
        assert value(command, "--machine-type") == pool["machineType"]
        assert value(command, "--min-nodes") == str(pool["minNodes"])
        assert value(command, "--max-nodes") == str(pool["maxNodes"])
        labels = dict(label.split("=") for label in value(command, "--node-labels").split(","))
        assert labels == pool["labels"]
        if pool.get("taints"):
            assert value(command, "--node-taints").split(",") == pool["taints"]
        else:
            assert "--node-taints" not in command


@pytest.mark.parametrize("regional", [False, True])
def test_a_zonal_or_regional_cluster_keeps_its_nodes_in_the_zone(project_copy, regional):
    project_copy.edit(SOURCE, lambda s: s.update(regional=regional))
    commands = flat(gke.commands(DEPLOYMENT, root=project_copy.root))
    for command in with_verb(commands, "container"):
        if regional:
            assert value(command, "--region") == spec()["region"] and "--zone" not in command
        else:
            assert value(command, "--zone") == spec()["zone"] and "--region" not in command
    (create,) = with_verb(commands, "container", "clusters", "create")
    if regional:
        assert value(create, "--node-locations") == spec()["zone"]
    else:
        assert "--node-locations" not in create


@pytest.mark.parametrize("deployment", GKE_DEPLOYMENTS)
def test_every_host_gets_a_record_at_the_deployments_own_address(deployment):
    commands = flat(gke.commands(deployment))
    values = load(deployment).values
    hosts = values["proxy"]["https"]["hosts"]
    records = with_verb(commands, "dns", "record-sets", "create")
    # Users' servers live on <user>.<host> when subdomain_host is set: a wildcard each.
    assert values["hub"]["config"]["JupyterHub"]["subdomain_host"] == f"https://{hosts[0]}"
    wildcards = [f"*.{host}." for host in hosts]
    assert [c[4] for c in records] == [f"{host}." for host in hosts] + wildcards
    assert len({value(c, "--rrdatas") for c in records}) == 1, "one address for all"
    assert all(value(c, "--zone") == spec()["dnsZone"] for c in records)
    (address,) = with_verb(commands, "compute", "addresses", "create")
    assert address[4] == gke.address_name(spec(), deployment)
    assert value(address, "--region") == spec()["region"]


def test_no_wildcard_record_without_users_on_subdomains(project_copy):
    # null in a later layer removes the key (Helm's rule): users' servers on paths.
    project_copy.edit(values_layer(DEPLOYMENT), set_value(gke.SUBDOMAIN_HOST, None))
    commands = flat(gke.commands(DEPLOYMENT, root=project_copy.root))
    records = with_verb(commands, "dns", "record-sets", "create")
    assert records and all(not c[4].startswith("*.") for c in records)


def test_billing_is_linked_and_every_api_enabled_first():
    commands = flat(gke.commands(DEPLOYMENT))
    link, enable = commands[:2]
    assert link[1:4] == ["billing", "projects", "link"] and link[4] == spec()["project"]
    assert value(link, "--billing-account") == spec()["budget"]["billingAccount"]
    assert enable[1:3] == ["services", "enable"]
    assert enable[3 : 3 + len(spec()["apis"])] == spec()["apis"]


def test_the_deployer_is_bound_to_this_repository_and_its_deploy_branch_only():
    commands = flat(gke.commands(DEPLOYMENT))
    repository = spec()["deployer"]["githubRepository"]
    (provider,) = [c for c in commands if "create-oidc" in c]
    assert value(provider, "--attribute-condition") == (
        f'assertion.repository=="{repository}" && assertion.ref=="refs/heads/{gke.DEPLOY_BRANCH}"'
    )
    deploy = yaml.safe_load((ROOT / ".github/workflows/deploy.yml").read_text())
    on = deploy.get("on", deploy.get(True))
    assert on["workflow_run"]["branches"] == [gke.DEPLOY_BRANCH], "the branch deploys come from"
    # The deployer's binding (cert-manager's DNS-01 account has one of its own).
    (binding,) = [
        c
        for c in commands
        if "--role=roles/iam.workloadIdentityUser" in c and c[4] == gke.deployer_account(spec())
    ]
    assert value(binding, "--member").endswith(f"/attribute.repository/{repository}")
    granted = [
        value(c, "--role")
        for c in with_verb(commands, "projects", "add-iam-policy-binding")
        if value(c, "--member") == f"serviceAccount:{gke.deployer_account(spec())}"
    ]
    assert granted == [*spec()["deployer"]["roles"], gke_iam.custom_role_name(spec())]
    assert not any("keys" in c for c in commands), "no service-account key is ever made"


def test_the_budget_alerts_at_every_threshold():
    (budget,) = with_verb(flat(gke.commands(DEPLOYMENT)), "billing", "budgets", "create")
    assert value(budget, "--budget-amount") == spec()["budget"]["amount"]
    assert value(budget, "--filter-projects") == f"projects/{spec()['project']}"
    rules = [part for part in budget if part.startswith("--threshold-rule=")]
    assert rules == [f"--threshold-rule=percent={t}" for t in spec()["budget"]["thresholds"]]


def test_filestore_is_made_only_when_chosen_and_the_values_use_it(project_copy):
    assert spec()["filestore"]["enabled"] or not with_verb(
        flat(gke.commands(DEPLOYMENT)), "filestore"
    )
    project_copy.edit(SOURCE, lambda s: s["filestore"].update(enabled=True))
    with pytest.raises(
        ConfigError, match=rf"^{SOURCE}: filestore\.enabled: .*{gke.IN_CLUSTER_NFS}"
    ):
        gke.commands(DEPLOYMENT, root=project_copy.root)
    project_copy.edit(values_layer(DEPLOYMENT), set_value(gke.IN_CLUSTER_NFS, False))
    commands = flat(gke.commands(DEPLOYMENT, root=project_copy.root))
    (create,) = with_verb(commands, "filestore", "instances", "create")
    filestore = spec()["filestore"]
    assert create[4] == filestore["name"] and value(create, "--tier") == filestore["tier"]
    share = f"name={filestore['share']},capacity={filestore['capacity']}"
    assert value(create, "--file-share") == share
    assert value(create, "--network") == f"name={spec()['network']}"


def test_scale_down_takes_every_user_pool_to_zero():
    commands = gke.scale_down(DEPLOYMENT)
    users = [p for p in spec()["nodePools"] if p["labels"][gke.PURPOSE] == "user"]
    updates = with_verb(commands, "container", "clusters", "update")
    resizes = with_verb(commands, "container", "clusters", "resize")
    assert [value(c, "--node-pool") for c in updates] == [p["name"] for p in users]
    assert [value(c, "--node-pool") for c in resizes] == [p["name"] for p in users]
    assert all(value(c, "--min-nodes") == "0" for c in updates)
    assert all(value(c, "--num-nodes") == "0" for c in resizes)


def _user(change):
    return lambda s: change(s["nodePools"][user_index(s)])


BAD = {
    "unknown-machine": (_user(lambda p: p.update(machineType="n9-huge-1")),
                        r"nodePools\.\d+\.machineType: 'n9-huge-1' is unknown; known: "),
    "max-below-min": (lambda s: s["nodePools"][0].update(minNodes=3, maxNodes=2),
                      r"nodePools\.0\.maxNodes: 2 is below minNodes 3; allowed: 3 or more"),
    "zone-elsewhere": (lambda s: s.update(zone="europe-west1-b"),
                       r"zone: 'europe-west1-b' is not in region '[a-z0-9-]+'; allowed: "),
    "no-user-pool": (_user(lambda p: p["labels"].update({gke.PURPOSE: "other"})),
                     r"nodePools: no pool labelled hub.jupyter.org/node-purpose: user"),
    "no-core-pool": (lambda s: s["nodePools"][0]["labels"].pop(gke.PURPOSE),
                     r"nodePools: no pool labelled hub.jupyter.org/node-purpose: core"),
    "untainted-user-pool": (_user(lambda p: p.pop("taints")),
                            r"nodePools\.\d+\.taints: a user pool needs"),
    "user-pool-first": (lambda s: s["nodePools"].reverse(),
                        r"nodePools\.\d+: the core pool must come first"),
    "renamed-core-pool": (lambda s: s["nodePools"][0].update(name="core"),
                          r"nodePools\.0: the core pool must come first and be named"),
    "core-pool-to-zero": (lambda s: s["nodePools"][0].update(minNodes=0),
                          r"nodePools\.0\.minNodes: 0 leaves the hub"),
    "no-dataplane-v2": (lambda s: s.update(dataplaneV2=False),
                        r"dataplaneV2: must be True, the chart's NetworkPolicies"),
    "unknown-key": (lambda s: s.update(nodepools=[]), r"nodepools: unknown key"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_spec_that_cannot_work_is_refused_by_field(project_copy, case):
    change, message = BAD[case]
    project_copy.edit(SOURCE, change)
    with pytest.raises(ConfigError, match=rf"^{SOURCE}: {message}"):
        gke.commands(DEPLOYMENT, root=project_copy.root)


@pytest.mark.parametrize("resource", ["memory", "cpu"])
def test_a_user_pool_too_small_for_one_server_is_refused(project_copy, resource):
    table, _ = machine_types()
    room = node_facts().allocatable(table[spec()["nodePools"][user_index(spec())]["machineType"]])
    # Just more than the user pool's machine has room for.
    too_much = {"memory": str(int(room.memory) + 2**30), "cpu": room.cpu + 0.5}[resource]
    layer = values_layer(DEPLOYMENT)
    project_copy.edit(layer, set_value(f"singleuser.{resource}.guarantee", too_much))
    asked = server_requests(load(DEPLOYMENT, root=project_copy.root).values)["singleuser"]
    assert getattr(asked, resource) > getattr(room, resource)
    pattern = rf"^{SOURCE}: nodePools\.{user_index(spec())}\.machineType: .* less than .*allowed: "
    with pytest.raises(ConfigError, match=pattern):
        gke.commands(DEPLOYMENT, root=project_copy.root)


def test_apply_without_yes_runs_nothing(capsys):
    assert gke.main(["apply", DEPLOYMENT]) == 1
    assert "add --yes" in capsys.readouterr().err


@pytest.fixture
def cloud(tmp_path):
    """The gcloud stand-in, first on PATH for gke.main, with the maintainer's roles."""

    def standin(roles=gcloud_standin.MAINTAINER_ROLES):
        return gcloud_standin.installed(tmp_path, spec(), roles)

    return standin


def run_apply(env, deployment, monkeypatch, capsys, root=ROOT):
    for name in (gcloud_standin.STATE_ENV, "PATH"):
        monkeypatch.setenv(name, env[name])
    code = gke.main(["--root", str(root), "apply", deployment, "--yes"])
    return code, capsys.readouterr()


def test_apply_runs_the_plan_in_order(cloud, tmp_path, monkeypatch, capsys):
    with cloud() as env:
        code, out = run_apply(env, DEPLOYMENT, monkeypatch, capsys)
    assert code == 0, out.err
    ran = gcloud_standin.calls(tmp_path)
    commands = flat(gke.commands(DEPLOYMENT))
    plain = [shlex.join(c[1:]) for c in commands if not any("$(" in part for part in c)]
    assert [line for line in ran if line in plain] == plain


@pytest.mark.parametrize("deployment", GKE_DEPLOYMENTS)
def test_apply_can_be_run_again_and_reaches_the_address_and_records(
    cloud, tmp_path, monkeypatch, capsys, deployment
):
    """A second apply (or another deployment's on the same cluster) keeps what exists."""
    with cloud() as env:
        assert run_apply(env, DEPLOYMENT, monkeypatch, capsys)[0] == 0
        code, out = run_apply(env, deployment, monkeypatch, capsys)
    assert code == 0, out.err
    assert "(already exists, kept)" in out.out
    made = gcloud_standin.resources(tmp_path)
    hosts = load(deployment).values["proxy"]["https"]["hosts"]
    for host in hosts:
        (record,) = [r for k, r in made.items() if k.startswith(f"dns record-sets {host}. ")]
        assert (
            record["flags"]["--rrdatas"]
            == load(deployment).values["proxy"]["service"]["loadBalancerIP"]
        )
    budgets = [k for k in made if k.startswith("billing budgets ")]
    assert len(budgets) == 1, "a budget is made once, however often apply runs"


@pytest.mark.parametrize("deployment", GKE_DEPLOYMENTS)
def test_the_address_reserved_is_the_values_and_the_records(deployment):
    """The plan reserves one address, checks the values name it, and points every record there."""
    commands = flat(gke.commands(deployment))
    ip = load(deployment).values["proxy"]["service"]["loadBalancerIP"]
    (made,) = with_verb(commands, "compute", "addresses", "create")
    (check,) = with_verb(commands, "compute", "addresses", "describe")
    assert check[4] == made[4] == gke.address_name(spec(), deployment)
    assert check.expect == ip and value(check, "--format") == "value(address)"
    records = with_verb(commands, "dns", "record-sets", "create")
    assert records and all(value(c, "--rrdatas") == ip for c in records)
    assert commands.index(check) < commands.index(records[0])


def test_apply_stops_when_the_values_name_another_address(cloud, project_copy, monkeypatch, capsys):
    layer = values_layer(DEPLOYMENT)
    project_copy.edit(layer, set_value(gke.LOAD_BALANCER_IP, "198.51.100.7"))
    with cloud() as env:
        code, out = run_apply(env, DEPLOYMENT, monkeypatch, capsys, root=project_copy.root)
    assert code == 1
    (line,) = out.err.splitlines()
    reserved = load(DEPLOYMENT).values["proxy"]["service"]["loadBalancerIP"]
    assert line.startswith(f"error: {layer}: {gke.LOAD_BALANCER_IP}: 198.51.100.7, but GCP ")
    assert f"set it to {reserved} and run apply again" in line
    assert "dns record-sets create" not in out.out


def test_values_without_the_address_are_refused(project_copy):
    layer = values_layer(DEPLOYMENT)
    project_copy.edit(layer, lambda data: data["proxy"].pop("service"))
    with pytest.raises(ConfigError, match=rf"^{layer}: {gke.LOAD_BALANCER_IP}: not set; "):
        gke.commands(DEPLOYMENT, root=project_copy.root)


@pytest.mark.parametrize(
    ("roles", "answer"),
    [
        (["roles/owner"], "PERMISSION_DENIED: Permission 'billing.resourceAssociations.create'"),
        (["roles/container.developer", "roles/billing.admin"],
         "PERMISSION_DENIED: Permission 'serviceusage.services.enable'"),
    ],
)  # fmt: skip
def test_apply_stops_at_the_first_failure_with_one_line(
    cloud, tmp_path, monkeypatch, capsys, roles, answer
):
    with cloud(roles) as env:
        code, out = run_apply(env, DEPLOYMENT, monkeypatch, capsys)
    assert code == 1
    (line,) = out.err.splitlines()
    failed = flat(gke.commands(DEPLOYMENT))[len(gcloud_standin.calls(tmp_path)) - 1]
    assert line.startswith(f"error: {' '.join(failed[:4])} failed (exit 1): ERROR: ")
    assert answer in line and "run apply again" in line


def test_a_missing_parent_is_not_found_and_stops_apply(cloud, tmp_path, monkeypatch, capsys):
    """Only an "already exists" answer is taken as done; NOT_FOUND still stops apply."""
    with cloud() as env:
        assert run_apply(env, DEPLOYMENT, monkeypatch, capsys)[0] == 0
        state = tmp_path / "cloud" / "resources.json"
        made = json.loads(state.read_text())
        made = {k: v for k, v in made.items() if not k.startswith("container clusters ")}
        state.write_text(json.dumps(made))
        code, out = run_apply(env, DEPLOYMENT, monkeypatch, capsys)
    assert code == 0, "the cluster is made again: it was missing"
    made = {k: v for k, v in json.loads(state.read_text()).items() if k.startswith("dns managed")}
    state.write_text(json.dumps(made))  # the DNS zone gone: a prerequisite, not ours to make
    with cloud() as env:
        code, out = run_apply(env, DEPLOYMENT, monkeypatch, capsys)
    assert code == 1 and "NOT_FOUND" in out.err


@pytest.mark.parametrize("deployment", GKE_DEPLOYMENTS)
def test_every_pool_runs_as_the_nodes_own_account_with_its_roles(deployment):
    commands = flat(gke.commands(deployment))
    account = gke.node_account(spec())
    pools = [*with_verb(commands, "container", "clusters", "create"),
             *with_verb(commands, "container", "node-pools", "create")]  # fmt: skip
    assert len(pools) == len(spec()["nodePools"])
    assert all(value(c, "--service-account") == account for c in pools)
    (made,) = [c for c in with_verb(commands, "iam", "service-accounts", "create")
               if c[4] == spec()["nodeServiceAccount"]["name"]]  # fmt: skip
    granted = [value(c, "--role") for c in with_verb(commands, "projects", "add-iam-policy-binding")
               if value(c, "--member") == f"serviceAccount:{account}"]  # fmt: skip
    assert granted == spec()["nodeServiceAccount"]["roles"]
    assert commands.index(made) < commands.index(pools[0])
    pulls = gke_iam.permissions_of(granted)
    assert "artifactregistry.repositories.downloadArtifacts" in pulls, "nodes pull the user image"
    assert "logging.logEntries.create" in pulls and "monitoring.timeSeries.create" in pulls


def test_the_gcloud_standin_says_what_it_is_and_refuses_what_it_does_not_know(cloud):
    with cloud() as env:
        version = subprocess.run(["gcloud", "--version"], env=env, capture_output=True, text=True)
        unknown = subprocess.run(
            ["gcloud", "compute", "instances", "delete", "x"], env=env, capture_output=True,
            text=True,
        )  # fmt: skip
    assert "stand-in (not Google Cloud)" in version.stdout
    assert unknown.returncode == 2 and "not a command this stand-in knows" in unknown.stderr
