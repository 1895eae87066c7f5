"""The GKE cluster's commands follow its spec and the values; a spec that cannot work is refused."""

from __future__ import annotations

import pytest
import yaml

from coursehub_tools import gke
from coursehub_tools.capacity_inputs import machine_types, node_facts
from coursehub_tools.deployconfig import ROOT, load, load_deployments
from coursehub_tools.yamlfiles import ConfigError

pytestmark = pytest.mark.unit

GKE_DEPLOYMENTS = [
    name
    for name, entry in load_deployments()["deployments"].items()
    if entry.get("cluster")
    and yaml.safe_load((ROOT / entry["cluster"]).read_text()).get("provider") == "gke"
]


def spec() -> dict:
    return yaml.safe_load((ROOT / gke.cluster_file(GKE_DEPLOYMENTS[0])).read_text())


def flat(sections) -> list[list[str]]:
    return [command for _, section in sections for command in section]


def value(command: list[str], flag: str) -> str:
    for i, part in enumerate(command):
        if part == flag:
            return command[i + 1]
        if part.startswith(flag + "="):
            return part.split("=", 1)[1]
    raise AssertionError(f"{flag} not in {command}")


@pytest.mark.parametrize("deployment", GKE_DEPLOYMENTS)
def test_the_cluster_enforces_network_policies_and_has_both_pools(deployment):
    commands = flat(gke.commands(deployment))
    (create,) = [c for c in commands if c[1:4] == ["container", "clusters", "create"]]
    assert "--enable-dataplane-v2" in create and "--enable-ip-alias" in create
    assert value(create, "--workload-pool") == f"{spec()['project']}.svc.id.goog"
    pools = [create] + [c for c in commands if c[1:4] == ["container", "node-pools", "create"]]
    for command, pool in zip(pools, spec()["nodePools"], strict=True):
        assert value(command, "--machine-type") == pool["machineType"]
        assert value(command, "--min-nodes") == str(pool["minNodes"])
        assert value(command, "--max-nodes") == str(pool["maxNodes"])


@pytest.mark.parametrize("deployment", GKE_DEPLOYMENTS)
def test_every_host_gets_a_record_at_the_deployments_own_address(deployment):
    commands = flat(gke.commands(deployment))
    hosts = load(deployment).values["proxy"]["https"]["hosts"]
    records = [c for c in commands if c[1:4] == ["dns", "record-sets", "create"]]
    assert [c[4] for c in records] == [f"{host}." for host in hosts]
    address = gke.address_name(spec(), deployment)
    assert ["gcloud", "compute", "addresses", "create", address] == commands[
        [c[1:4] for c in commands].index(["compute", "addresses", "create"])
    ][:5]
    assert all(address in value(c, "--rrdatas") for c in records)


def test_the_deployer_is_bound_to_this_repository_only():
    commands = flat(gke.commands(GKE_DEPLOYMENTS[0]))
    repository = spec()["deployer"]["githubRepository"]
    (provider,) = [c for c in commands if "create-oidc" in c]
    assert value(provider, "--attribute-condition") == f'assertion.repository=="{repository}"'
    (binding,) = [c for c in commands if "--role=roles/iam.workloadIdentityUser" in c]
    assert value(binding, "--member").endswith(f"/attribute.repository/{repository}")
    granted = [value(c, "--role") for c in commands if "add-iam-policy-binding" in c[2:4]]
    assert set(spec()["deployer"]["roles"]) <= set(granted)
    assert not any("keys" in c for c in commands), "no service-account key is ever made"


def test_scale_down_takes_the_user_pool_to_zero():
    (update, resize) = gke.scale_down(GKE_DEPLOYMENTS[0])
    (user,) = [p for p in spec()["nodePools"] if p["labels"][gke.PURPOSE] == "user"]
    assert value(update, "--node-pool") == value(resize, "--node-pool") == user["name"]
    assert value(update, "--min-nodes") == value(resize, "--num-nodes") == "0"


def too_small() -> str:
    """A known machine type smaller than the largest server any deployment guarantees."""
    table, _ = machine_types()
    return min(table.values(), key=lambda m: node_facts().allocatable(m).memory).name


BAD = {
    "unknown-machine": (lambda s: s["nodePools"][1].update(machineType="n9-huge-1"),
                        r"nodePools\.1\.machineType: 'n9-huge-1' is unknown; known: "),
    "max-below-min": (lambda s: s["nodePools"][0].update(minNodes=3, maxNodes=2),
                      r"nodePools\.0\.maxNodes: 2 is below minNodes 3"),
    "zone-elsewhere": (lambda s: s.update(zone="europe-west1-b"),
                       r"zone: 'europe-west1-b' is not in region 'us-central1'"),
    "no-user-pool": (lambda s: s["nodePools"][1]["labels"].update({gke.PURPOSE: "other"}),
                     r"nodePools: no pool labelled hub.jupyter.org/node-purpose: user"),
    "untainted-user-pool": (lambda s: s["nodePools"][1].pop("taints"),
                            r"nodePools\.1\.taints: the user pool needs"),
    "unknown-key": (lambda s: s.update(nodepools=[]), r"nodepools"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_spec_that_cannot_work_is_refused_by_field(project_copy, case):
    change, message = BAD[case]
    source = gke.cluster_file(GKE_DEPLOYMENTS[0])
    project_copy.edit(source, change)
    with pytest.raises(ConfigError, match=rf"^{source}: .*{message}"):
        gke.commands(GKE_DEPLOYMENTS[0], root=project_copy.root)


def test_a_user_pool_too_small_for_one_server_is_refused(project_copy):
    source = gke.cluster_file(GKE_DEPLOYMENTS[0])
    project_copy.edit(source, lambda s: s["nodePools"][1].update(machineType=too_small()))
    values = {"singleuser": {"memory": {"guarantee": "60G"}}}
    project_copy.edit("deploy/deployments/coursehub/config/prod.yaml", lambda v: v.update(values))
    with pytest.raises(ConfigError, match=rf"^{source}: nodePools\.1\.machineType: .* less than"):
        gke.commands("prod", root=project_copy.root)


def test_apply_without_yes_runs_nothing(capsys):
    assert gke.main(["apply", GKE_DEPLOYMENTS[0]]) == 1
    assert "add --yes" in capsys.readouterr().err
