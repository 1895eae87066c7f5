"""The deployer's IAM roles allow writing every object helm renders for each GKE deployment.

The kinds come from the pinned chart rendered by helm (scripts/helm.py) with the
deployment's merged values, as the deploy job's helm renders them; what each
predefined role allows comes from deploy/cluster/iam-roles.yaml (Google's pages).
"""

from __future__ import annotations

import pytest
import yaml

from coursehub_tools import certificates, chart, chart_parity, cluster_services, gke, gke_iam, helm
from coursehub_tools.deployconfig import ROOT, load, load_deployments

pytestmark = pytest.mark.chart

GKE_DEPLOYMENTS = [
    name
    for name, entry in load_deployments()["deployments"].items()
    if entry.get("cluster")
    and yaml.safe_load((ROOT / entry["cluster"]).read_text()).get("provider") == "gke"
]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    chart.check()
    return {
        name: chart_parity.render_deployment(
            helm.binary(), chart.pinned().folder, load(name), tmp_path_factory.mktemp(name)
        )
        for name in GKE_DEPLOYMENTS
    }


def spec() -> dict:
    return yaml.safe_load((ROOT / gke.cluster_file(GKE_DEPLOYMENTS[0])).read_text())


@pytest.mark.parametrize("deployment", GKE_DEPLOYMENTS)
def test_the_deployer_may_write_every_kind_the_chart_renders(rendered, deployment):
    objects = rendered[deployment]
    kinds = {o["kind"] for o in objects}
    assert {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"} <= kinds
    assert gke_iam.missing(objects, spec()) == []


@pytest.mark.parametrize("deployment", GKE_DEPLOYMENTS)
def test_the_developer_role_alone_cannot_write_the_charts_rbac(rendered, deployment):
    """Why the deployer has a project role beside roles/container.developer."""
    alone = {**spec(), "deployer": {**spec()["deployer"], "customRole": None}}
    lacking = gke_iam.missing(rendered[deployment], alone)
    for kind in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"):
        assert any(
            line.startswith(f"container.{gke_iam.resource(kind)}.create ") for line in lacking
        )
    assert all(".create " in line or ".update " in line or ".delete " in line
               or ".bind " in line or ".escalate " in line for line in lacking)  # fmt: skip


def test_the_project_role_adds_only_what_the_predefined_roles_lack(rendered):
    """Least privilege: every permission of the project role is needed and not granted otherwise."""
    custom = set(spec()["deployer"]["customRole"]["permissions"])
    needed = {p for objects in rendered.values() for p in gke_iam.needed(objects)}
    predefined = gke_iam.permissions_of(spec()["deployer"]["roles"])
    assert custom <= needed, f"not needed by the chart: {sorted(custom - needed)}"
    assert not custom & predefined, "already granted by a predefined role"


@pytest.mark.parametrize(
    ("kind", "permission"),
    [("ConfigMap", "configMaps"), ("NetworkPolicy", "networkPolicies"),
     ("PriorityClass", "priorityClasses"), ("Ingress", "ingresses"),
     ("ClusterRoleBinding", "clusterRoleBindings")],
)  # fmt: skip
def test_kinds_are_named_as_gke_permissions_name_them(kind, permission):
    assert gke_iam.resource(kind) == permission


@pytest.mark.parametrize("deployment", GKE_DEPLOYMENTS)
def test_the_deployer_may_write_what_coursehub_cluster_up_applies_besides_the_chart(deployment):
    """The cluster services (namespace, database and its backup, shared data and its volume)
    and the wildcard certificate's cert-manager objects, which the deploy job applies too."""
    loaded = load(deployment)
    objects = cluster_services.manifests(loaded) + certificates.objects(loaded)
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "CronJob", "PersistentVolume", "Certificate", "ClusterIssuer"} <= kinds
    assert gke_iam.missing(objects, spec()) == []
