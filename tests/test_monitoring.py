"""Prometheus and Grafana beside the hub: what they are told agrees with the deployed values."""

from __future__ import annotations

import pytest
import yaml

from coursehub_tools.deployconfig import ROOT, load, load_deployments
from coursehub_tools.localhub.layout import HUB_PORT, names_of

pytestmark = pytest.mark.unit

MONITORING = yaml.safe_load((ROOT / "deploy/monitoring/charts.yaml").read_text())
CHARTS = {chart["release"]: chart for chart in MONITORING["charts"]}
PROMETHEUS = yaml.safe_load((ROOT / CHARTS["prometheus"]["values"]).read_text())
GRAFANA = yaml.safe_load((ROOT / CHARTS["grafana"]["values"]).read_text())
WATCHED = [name for name, entry in load_deployments()["deployments"].items() if "hubploy" in entry]


def scrape_job(namespace: str) -> dict:
    jobs = yaml.safe_load(PROMETHEUS["extraScrapeConfigs"])
    (job,) = [
        j for j in jobs if j["kubernetes_sd_configs"][0]["namespaces"]["names"] == [namespace]
    ]
    return job


@pytest.mark.parametrize("deployment", WATCHED)
def test_each_hub_is_scraped_where_its_chart_serves_metrics(deployment):
    merged = load(deployment)
    namespace = merged.spec["namespace"]
    job = scrape_job(namespace)
    assert job["metrics_path"] == merged.values["hub"]["baseUrl"].rstrip("/") + "/hub/metrics"
    hub_service = names_of(merged)["hub"]
    # The hub Service's port that reaches the hub's own listener, as its
    # prometheus.io/port annotation (8081) says (ref: z2jh templates/hub/service.yaml).
    port_name = "hub"
    keep = {r["source_labels"][0]: r["regex"] for r in job["relabel_configs"]
            if r.get("action") == "keep"}  # fmt: skip
    assert keep == {
        "__meta_kubernetes_service_name": hub_service,
        "__meta_kubernetes_endpoint_port_name": port_name,
    }
    mount = PROMETHEUS["server"]["extraSecretMounts"][0]["mountPath"]
    assert job["authorization"]["credentials_file"] == f"{mount}/{namespace}"


@pytest.mark.parametrize("deployment", WATCHED)
def test_the_scraper_may_read_metrics_and_nothing_else(deployment):
    hub = load(deployment).values["hub"]
    role = hub["loadRoles"]["prometheus"]
    assert role["scopes"] == ["read:metrics"] and role["services"] == ["prometheus"]
    assert not role.get("users") and not role.get("groups")
    granting = [
        name for name, r in hub["loadRoles"].items() if "prometheus" in (r.get("services") or [])
    ]
    assert granting == ["prometheus"], "no other role gives the scraper more"
    assert not hub["services"]["prometheus"].get("admin")
    assert hub["config"].get("JupyterHub", {}).get("authenticate_prometheus", True)
    assert hub.get("authenticatePrometheus") in (None, True), "metrics stay behind a token"
    secrets_layer = next(i["path"] for i in load_deployments()["deployments"][deployment]["values"]
                         if isinstance(i, dict))  # fmt: skip
    stored = yaml.safe_load((ROOT / secrets_layer).read_text())
    assert stored["hub"]["services"]["prometheus"]["apiToken"].startswith("ENC["), "encrypted"


@pytest.mark.parametrize("deployment", WATCHED)
def test_the_hubs_policy_admits_prometheus_and_its_default_job_leaves_it(deployment):
    hub = load(deployment).values["hub"]
    assert hub["service"]["annotations"]["prometheus.io/scrape"] == "false"
    # The rule admitting another namespace's pods; the others admit this release's.
    (rule,) = [rule for rule in hub["networkPolicy"]["ingress"]
               if any("namespaceSelector" in peer for peer in rule["from"])]  # fmt: skip
    (peer,) = rule["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": MONITORING["namespace"]
    }
    # The prometheus chart's server pod (its prometheus.server.matchLabels).
    prometheus = CHARTS["prometheus"]
    assert peer["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": prometheus["name"],
        "app.kubernetes.io/instance": prometheus["release"],
        "app.kubernetes.io/component": "server",
    }
    assert rule["ports"] == [{"port": HUB_PORT}]


def test_grafana_reads_this_prometheus():
    (source,) = GRAFANA["datasources"]["datasources.yaml"]["datasources"]
    expected = f"http://{CHARTS['prometheus']['release']}-server.{MONITORING['namespace']}.svc"
    assert source["type"] == "prometheus" and source["url"].startswith(expected)


def test_the_dashboards_are_pinned():
    dashboards = MONITORING["dashboards"]
    assert len(dashboards["commit"]) == 40 and int(dashboards["commit"], 16) >= 0
    assert all(chart["version"].count(".") == 2 for chart in CHARTS.values())
