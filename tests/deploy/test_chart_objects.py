"""The objects the pinned chart renders for each cluster deployment hold what the chapters say.

helm 3 (scripts/config/helm.py) renders the kept chart (deploy/chart/) offline with each
deployment's values, encrypted layers left out as a plan leaves them. The
expectations come from the values, the cluster specs and deploy/monitoring/, not
from copies of them: who may reach the hub and its services, that user pods get
no API rights, that deployments sharing a cluster do not collide, and how the
public Service is reached.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import yaml

from coursehub_tools.config import chart, helm
from coursehub_tools.config.deployconfig import ROOT, Layer, load, load_deployments
from coursehub_tools.config.yamlfiles import ConfigError
from coursehub_tools.deploy import cluster_services
from coursehub_tools.deploy.cluster import cluster_spec
from coursehub_tools.local import chart_parity

pytestmark = pytest.mark.chart

MONITORING = yaml.safe_load((ROOT / "deploy/monitoring/charts.yaml").read_text())
(PROMETHEUS,) = [c for c in MONITORING["charts"] if c["release"] == "prometheus"]
# Kubernetes objects without a namespace: two releases in one cluster share their names.
CLUSTER_SCOPED_KINDS = {"PriorityClass", "ClusterRole", "ClusterRoleBinding", "StorageClass"}


@pytest.fixture(scope="session")
def render(tmp_path_factory):
    """A deployment's rendered objects, each deployment rendered once a session."""
    rendered: dict[str, list[dict]] = {}

    def objects(name: str) -> list[dict]:
        if name not in rendered:
            chart.check()
            rendered[name] = chart_parity.render_deployment(
                helm.binary(), chart.pinned().folder, load(name), tmp_path_factory.mktemp(name)
            )
        return rendered[name]

    return objects


def one(objects: list[dict], kind: str, component: str) -> dict:
    """The object of `kind` the chart labels with `component`."""
    (found,) = [
        o
        for o in objects
        if o["kind"] == kind and o["metadata"]["labels"].get("component") == component
    ]
    return found


def pod_template(objects: list[dict], component: str) -> dict:
    return one(objects, "Deployment", component)["spec"]["template"]


def selects(selector: dict, labels: dict) -> bool:
    return selector.get("matchLabels", {}).items() <= labels.items()


def container_port(objects: list[dict], component: str, port) -> int:
    """A port of the component's pods as a number (a Service's targetPort may be a name)."""
    if isinstance(port, int):
        return port
    containers = pod_template(objects, component)["spec"]["containers"]
    (number,) = [p["containerPort"] for c in containers for p in c.get("ports", [])
                 if p.get("name") == port]  # fmt: skip
    return number


def service_target(objects: list[dict], service: dict, port_name: str, component: str) -> int:
    (port,) = [p for p in service["spec"]["ports"] if p["name"] == port_name]
    return container_port(objects, component, port.get("targetPort", port["port"]))


def admitted_ports(policy: dict, direction: str, peer_matches) -> set[int | str]:
    """Ports of the rules in `direction` (ingress/egress) with a peer `peer_matches` accepts."""
    side = "from" if direction == "ingress" else "to"
    return {
        port["port"]
        for rule in policy["spec"].get(direction, [])
        if any(peer_matches(peer) for peer in rule.get(side, []))
        for port in rule.get("ports", [])
    }


def test_user_pods_reach_the_hubs_api_and_only_the_proxys_public_ports(cluster_deployment, render):
    """Of the release's pods, a user's server reaches the hub's API (activity, OAuth) and the
    proxy's ports the public Service reaches anyway, never the proxy's API."""
    objects = render(cluster_deployment)
    users = one(objects, "NetworkPolicy", "singleuser")
    hub_pods = pod_template(objects, "hub")["metadata"]["labels"]
    hub_api = service_target(objects, one(objects, "Service", "hub"), "hub", "hub")

    def to(pod_labels):
        return lambda peer: "podSelector" in peer and selects(peer["podSelector"], pod_labels)

    assert hub_api in admitted_ports(users, "egress", to(hub_pods))
    (api_port,) = one(objects, "Service", "proxy-api")["spec"]["ports"]
    proxy_api = container_port(objects, "proxy", api_port["targetPort"])
    public_services = [
        o for o in objects if o["kind"] == "Service" and o["metadata"]["name"].endswith(
            ("proxy-public", "proxy-http"))
    ]  # fmt: skip
    deployed = {o["metadata"]["labels"]["component"] for o in objects if o["kind"] == "Deployment"}
    for component in {"proxy", "autohttps"} & deployed:
        labels = pod_template(objects, component)["metadata"]["labels"]
        public = {
            container_port(objects, component, port["targetPort"])
            for service in public_services
            if selects({"matchLabels": service["spec"]["selector"]}, labels)
            for port in service["spec"]["ports"]
        }
        reachable = {
            container_port(objects, component, port)
            for port in admitted_ports(users, "egress", to(labels))
        }
        assert reachable <= public, component
        assert proxy_api not in reachable


def test_user_pods_take_traffic_only_from_the_hub_and_the_proxy(cluster_deployment, render):
    """The singleuser policy admits pods by label; of the release's workloads, only the hub's
    and the proxy's pods carry a label it admits (user pods are checked in test_security)."""
    objects = render(cluster_deployment)
    users = one(objects, "NetworkPolicy", "singleuser")
    peers = [peer for rule in users["spec"]["ingress"] for peer in rule["from"]]
    assert peers and all(set(peer) == {"podSelector"} for peer in peers), "pods of this namespace"
    admitted = {
        o["spec"]["template"]["metadata"]["labels"]["component"]
        for o in objects
        if "template" in o.get("spec", {})
        and any(selects(p["podSelector"], o["spec"]["template"]["metadata"]["labels"])
                for p in peers)
    }  # fmt: skip
    assert admitted == {"hub", "proxy"}


def test_each_hub_service_with_a_url_is_reachable_from_the_proxy(cluster_deployment, render):
    """A service in the hub pod (enrollment) is served through the hub's Service, and the
    hub's NetworkPolicy admits the proxy pods on its port."""
    objects = render(cluster_deployment)
    services = load(cluster_deployment).values["hub"]["services"]
    with_url = {name: urlsplit(entry["url"]) for name, entry in services.items() if "url" in entry}
    assert with_url, "common.yaml serves enrollment from the hub pod"
    hub_policy = one(objects, "NetworkPolicy", "hub")
    hub_pods = pod_template(objects, "hub")["metadata"]["labels"]
    proxy_pods = pod_template(objects, "proxy")["metadata"]["labels"]
    from_proxy = admitted_ports(
        hub_policy,
        "ingress",
        lambda peer: (
            "namespaceSelector" not in peer and selects(peer.get("podSelector", {}), proxy_pods)
        ),
    )
    rendered_services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    for name, url in with_url.items():
        service = rendered_services[url.hostname]
        (port,) = [p for p in service["spec"]["ports"] if p["port"] == url.port]
        assert selects({"matchLabels": service["spec"]["selector"]}, hub_pods), name
        assert container_port(objects, "hub", port["targetPort"]) in from_proxy, name


def test_only_the_monitoring_prometheus_scrapes_the_hub_with_its_token(cluster_deployment, render):
    """Prometheus's annotation job sends no token, so the hub's Service opts out of it; the
    job with the token is let through the hub's NetworkPolicy from its namespace."""
    objects = render(cluster_deployment)
    hub_service = one(objects, "Service", "hub")
    assert hub_service["metadata"]["annotations"]["prometheus.io/scrape"] == "false"
    namespace = load(cluster_deployment).spec["namespace"]
    values = yaml.safe_load((ROOT / PROMETHEUS["values"]).read_text())
    jobs = [
        job
        for job in yaml.safe_load(values["extraScrapeConfigs"])
        if namespace in job["kubernetes_sd_configs"][0]["namespaces"]["names"]
    ]
    hub_policy = one(objects, "NetworkPolicy", "hub")

    def from_monitoring(peer):
        selector = peer.get("namespaceSelector", {}).get("matchLabels", {})
        return selector == {"kubernetes.io/metadata.name": MONITORING["namespace"]}

    for job in jobs:
        keep = {r["source_labels"][0]: r["regex"] for r in job["relabel_configs"]
                if r.get("action") == "keep"}  # fmt: skip
        assert hub_service["metadata"]["name"] == keep["__meta_kubernetes_service_name"]
        port = keep["__meta_kubernetes_endpoint_port_name"]
        target = service_target(objects, hub_service, port, "hub")
        assert target in admitted_ports(hub_policy, "ingress", from_monitoring)


def test_user_pods_and_the_default_account_get_no_api_rights(cluster_deployment, render):
    objects = render(cluster_deployment)
    deployment = load(cluster_deployment)
    bindings = [o for o in objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert bindings, "the hub needs rights to start pods"
    namespace = deployment.spec["namespace"]
    # A RoleBinding's subject without a namespace is of the binding's own, which helm
    # installs in the release's (ref: z2jh templates/proxy/autohttps/rbac.yaml leaves it out).
    subjects = {
        (s["kind"], s.get("namespace", namespace if b["kind"] == "RoleBinding" else None),
         s["name"])
        for b in bindings
        for s in b["subjects"]
    }  # fmt: skip
    assert {kind for kind, _, _ in subjects} == {"ServiceAccount"}
    assert {ns for _, ns, _ in subjects} == {namespace}
    user_account = deployment.values["singleuser"].get("serviceAccountName") or "default"
    assert user_account not in {name for _, _, name in subjects}
    # The hub's rights end at its namespace: a Role, bound by a RoleBinding only.
    hub_account = pod_template(objects, "hub")["spec"]["serviceAccountName"]
    hub_bindings = [b for b in bindings if any(s["name"] == hub_account for s in b["subjects"])]
    assert hub_bindings
    assert {(b["kind"], b["roleRef"]["kind"]) for b in hub_bindings} == {("RoleBinding", "Role")}


def test_deployments_sharing_a_cluster_name_their_cluster_wide_objects_apart(render):
    """deploy/deployments.yaml: staging and prod share one cluster because the chart names
    its cluster-wide objects after the release (ref: z2jh#3190)."""
    by_cluster: dict[str, list[str]] = {}
    for name, spec in load_deployments()["deployments"].items():
        if spec["backend"] == "kubernetes":
            by_cluster.setdefault(spec["cluster"], []).append(name)
    assert any(len(names) > 1 for names in by_cluster.values()), "staging and prod share one"
    for names in by_cluster.values():
        owners: dict[tuple[str, str], str] = {}
        for name in names:
            for o in render(name):
                if o["kind"] in CLUSTER_SCOPED_KINDS:
                    key = (o["kind"], o["metadata"]["name"])
                    assert key not in owners, f"{key} of {name} is also {owners[key]}'s"
                    owners[key] = name


def test_users_servers_are_on_hosts_of_their_own_with_a_wildcard_certificate(
    cluster_deployment, render
):
    """On a public cluster each user's server is <user>.<host> (subdomain_host), the proxy
    routes by host, and TLS comes from a Secret holding a wildcard certificate: the
    chart's Let's Encrypt (HTTP-01) cannot certify *.<host>."""
    values = load(cluster_deployment).values
    _, cluster = cluster_spec(cluster_deployment)
    if cluster.get("kind") == "Cluster":
        return  # kind: http on the loopback, no public host (chapter "Run it on kind")
    https = values["proxy"]["https"]
    (host,) = https["hosts"]
    assert values["hub"]["config"]["JupyterHub"]["subdomain_host"] == f"https://{host}"
    assert https["type"] == "secret" and https["secret"]["name"]
    objects = render(cluster_deployment)
    (proxy,) = pod_template(objects, "proxy")["spec"]["containers"]
    assert "--host-routing" in proxy["command"] + proxy.get("args", [])
    assert not [o for o in objects if o["metadata"]["labels"].get("component") == "autohttps"]


def test_the_public_service_is_exposed_the_way_its_cluster_reaches_it(cluster_deployment, render):
    public = one(render(cluster_deployment), "Service", "proxy-public")["spec"]
    _, cluster = cluster_spec(cluster_deployment)
    if cluster.get("kind") != "Cluster":
        # GKE: a cloud load balancer in front, for the DNS record (chapter "Setting up GKE").
        assert public["type"] == "LoadBalancer"
        return
    # kind: the node's port that the kind cluster maps to the host.
    assert public["type"] == "NodePort"
    mapped = {
        mapping["containerPort"]
        for node in cluster["nodes"]
        for mapping in node.get("extraPortMappings", [])
    }
    (http,) = [p for p in public["ports"] if p["name"] == "http"]
    assert http["nodePort"] in mapped


WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet"}


def policies_selecting(objects: list[dict], pod: dict) -> list[dict]:
    return [
        o for o in objects
        if o["kind"] == "NetworkPolicy"
        and selects(o["spec"]["podSelector"], pod["metadata"]["labels"])
    ]  # fmt: skip


def test_only_the_clusters_nodes_reach_the_nfs_server(cluster_deployment):
    """The privileged NFS server admits the nodes' addresses, whose kubelets mount the
    share, and no pod: not users' pods, not the other deployment's (same cluster)."""
    deployment = load(cluster_deployment)
    ours = cluster_services.manifests(deployment)
    servers = [o for o in ours if o["kind"] == "StatefulSet"
               and o["metadata"]["labels"]["app.kubernetes.io/name"] == "nfs-server"]  # fmt: skip
    if not servers:
        return
    (server,) = servers
    server_pod = server["spec"]["template"]
    (policy,) = policies_selecting(ours, server_pod)
    assert policy["metadata"]["namespace"] == deployment.spec["namespace"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    node_cidr = deployment.values["custom"]["clusterServices"]["sharedData"]["nodeCidr"]
    assert rule["from"] == [{"ipBlock": {"cidr": node_cidr}}], "the nodes, and no pod selector"
    (port,) = server_pod["spec"]["containers"][0]["ports"]
    assert rule["ports"] == [{"port": port["name"], "protocol": "TCP"}]

    without = load(cluster_deployment, extra_layers=[Layer("test-layer", {"custom": {
        "clusterServices": {"sharedData": {"nodeCidr": None}}}})])  # fmt: skip
    with pytest.raises(ConfigError, match=r"^[^\n]*nodeCidr: required"):
        cluster_services.manifests(without)


def test_only_the_hub_of_its_own_deployment_reaches_the_database(cluster_deployment, render):
    """Staging and prod share a cluster: the other deployment's pods, users' pods and the
    chart's other pods do not reach a deployment's PostgreSQL; its hub does."""
    deployment = load(cluster_deployment)
    ours = cluster_services.manifests(deployment)
    databases = [o for o in ours if o["kind"] == "StatefulSet"
                 and o["metadata"]["labels"]["app.kubernetes.io/name"] == "postgresql"]  # fmt: skip
    if not databases:
        assert not any(o["metadata"]["name"].endswith("-db") for o in ours), "nor its policy"
        return
    (database,) = databases
    database_pod = database["spec"]["template"]
    (policy,) = policies_selecting(ours, database_pod)
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert all(set(peer) == {"podSelector"} for peer in rule["from"]), (
        "pods of the database's own namespace, and only those"
    )
    (backup,) = [o for o in ours if o["kind"] == "CronJob"]
    dump_pod = backup["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    hub_peers = [p for p in rule["from"] if not selects(p["podSelector"], dump_pod)]
    assert len(hub_peers) == len(rule["from"]) - 1, "one peer admits the nightly dump's pods"
    (peer,) = hub_peers
    (port,) = database_pod["spec"]["containers"][0]["ports"]
    assert rule["ports"] == [{"port": port["name"], "protocol": "TCP"}]

    rendered = render(cluster_deployment)
    admitted = [
        o["metadata"]["labels"]["component"]
        for o in rendered
        if o["kind"] in WORKLOADS
        and selects(peer["podSelector"], o["spec"]["template"]["metadata"]["labels"])
    ]
    assert admitted == ["hub"], "of the pods the chart renders, only the hub"
    (dump_peer,) = [p for p in rule["from"] if p is not peer]
    assert not any(
        selects(dump_peer["podSelector"], o["spec"]["template"]["metadata"]["labels"])
        for o in rendered
        if o["kind"] in WORKLOADS
    ), "the dump's peer admits none of the chart's pods"
    user_pods = one(rendered, "NetworkPolicy", "singleuser")["spec"]["podSelector"]
    assert not selects(peer["podSelector"], user_pods["matchLabels"]), "no user's server"
    for other in load_deployments()["deployments"]:
        if other != cluster_deployment and load(other).backend == "kubernetes":
            their_hub = pod_template(render(other), "hub")["metadata"]["labels"]
            assert not selects(peer["podSelector"], their_hub), f"not {other}'s hub"
