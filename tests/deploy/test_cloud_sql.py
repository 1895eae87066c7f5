"""The hub's database on Cloud SQL, the managed alternative to the in-cluster PostgreSQL.

The values layer (deploy/deployments/coursehub/config/cloudsql.yaml) over prod is
rendered by the pinned chart with helm; the instance, the hub's identity and the
backups are the plan `coursehub gke` prints from deploy/cluster/gke.yaml's
cloudSql. Each name one side uses is read from the other, so they cannot drift.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest
import yaml

from coursehub_tools.config import chart, helm
from coursehub_tools.config.deployconfig import ROOT, Layer, load
from coursehub_tools.config.yamlfiles import read_yaml
from coursehub_tools.deploy import cluster_services, gke
from coursehub_tools.local import chart_parity

pytestmark = pytest.mark.chart
LAYER = "deploy/deployments/coursehub/config/cloudsql.yaml"
DEPLOYMENT = "prod"


def with_cloud_sql():
    return load(DEPLOYMENT, extra_layers=[Layer(LAYER, read_yaml(ROOT / LAYER))])


def cloud_sql_plan(project_copy) -> list[list[str]]:
    project_copy.edit("deploy/cluster/gke.yaml", lambda spec: spec["cloudSql"].update(enabled=True))
    sections = dict(gke.commands(DEPLOYMENT, root=project_copy.root))
    return [list(command) for command in sections["the hub's database (Cloud SQL)"]]


def flags(command: list[str]) -> dict[str, str]:
    return dict(part[2:].split("=", 1) for part in command if part.startswith("--") and "=" in part)


def test_the_layer_renders_a_hub_that_reaches_cloud_sql_through_the_proxy(tmp_path, project_copy):
    import kubernetes_validate

    spec = read_yaml(ROOT / "deploy/cluster/gke.yaml")
    sql = spec["cloudSql"]
    deployment = with_cloud_sql()
    chart.check()
    objects = chart_parity.render_deployment(
        helm.binary(), chart.pinned().folder, deployment, tmp_path
    )
    (hub,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "hub"]
    kubernetes_validate.validate(hub, kubernetes_validate.latest_version(), strict=True)
    pod = hub["spec"]["template"]["spec"]
    (proxy,) = [c for c in pod["containers"] if c["name"] == "cloud-sql-proxy"]
    assert f"{spec['project']}:{spec['region']}:{sql['instance']}" in proxy["args"]
    assert "--auto-iam-authn" in proxy["args"], "no password: the hub's IAM identity signs in"
    assert proxy["securityContext"]["runAsNonRoot"] is True
    # The hub connects to the proxy on its own loopback, as the service account's IAM user.
    url = urlsplit(deployment.values["hub"]["db"]["url"])
    port = next(a for a in proxy["args"] if a.startswith("--port=")).removeprefix("--port=")
    assert (url.hostname, str(url.port)) == ("127.0.0.1", port)
    assert unquote(url.username) == gke.cloud_sql_user(spec)
    assert url.path.lstrip("/") == sql["database"]
    # Workload Identity: the pod's service account names the Google one the plan makes,
    # and the plan lets exactly that Kubernetes account (in this namespace) act as it.
    (account,) = [
        o
        for o in objects
        if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == pod["serviceAccountName"]
    ]
    annotation = account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
    assert annotation == gke.cloud_sql_account(spec)
    plan = cloud_sql_plan(project_copy)
    (binding,) = [c for c in plan if "roles/iam.workloadIdentityUser" in " ".join(c)]
    namespace = deployment.spec["namespace"]
    assert flags(binding)["member"] == (
        f"serviceAccount:{spec['project']}.svc.id.goog[{namespace}/{account['metadata']['name']}]"
    )
    assert annotation in binding
    # The in-cluster server and its dump CronJob are not made: Cloud SQL keeps the backups.
    made = cluster_services.manifests(deployment)
    assert [o for o in made if o["kind"] in ("CronJob", "Secret")] == []
    assert not any(
        o["metadata"]["labels"].get("app.kubernetes.io/name") == "postgresql" for o in made
    )


def test_the_plan_makes_the_instance_with_backups_and_point_in_time_recovery(project_copy):
    sql = read_yaml(ROOT / "deploy/cluster/gke.yaml")["cloudSql"]
    plan = cloud_sql_plan(project_copy)
    (instance,) = [c for c in plan if c[1:4] == ["sql", "instances", "create"]]
    given = flags(instance)
    assert instance[4] == sql["instance"]
    assert given["backup-start-time"] == sql["backups"]["startTime"]
    assert given["retained-backups-count"] == str(sql["backups"]["retained"])
    assert "--enable-point-in-time-recovery" in instance
    assert given["retained-transaction-log-days"] == str(sql["backups"]["pointInTimeRecoveryDays"])
    assert given["database-flags"] == "cloudsql.iam_authentication=on"
    (database,) = [c for c in plan if c[1:4] == ["sql", "databases", "create"]]
    assert database[4] == sql["database"]
    (user,) = [c for c in plan if c[1:4] == ["sql", "users", "create"]]
    assert flags(user)["type"] == "cloud_iam_service_account"
    roles = {flags(c)["role"] for c in plan if "add-iam-policy-binding" in c}
    assert {"roles/cloudsql.client", "roles/cloudsql.instanceUser"} <= roles


def test_the_in_cluster_database_stays_the_default():
    spec = read_yaml(ROOT / "deploy/cluster/gke.yaml")
    assert spec["cloudSql"]["enabled"] is False
    assert "the hub's database (Cloud SQL)" not in dict(gke.commands(DEPLOYMENT))
    deployment = load(DEPLOYMENT)
    assert LAYER not in [layer.source for layer in deployment.layers]
    made = cluster_services.manifests(deployment)
    assert any(o["metadata"]["labels"].get("app.kubernetes.io/name") == "postgresql" for o in made)
    assert yaml.safe_dump(deployment.values["hub"]["db"]).count("127.0.0.1") == 0
