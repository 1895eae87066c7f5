"""What the reference deployment's settings protect, checked on what would be deployed.

Pods come from the configured spawner offline (scripts/local/pod_manifests.py); the
rest from each cluster deployment's merged values and its layers. The chapter
"Reliability and security" lists what each setting protects against.
"""

from __future__ import annotations

import re
from urllib.parse import urlparse

import pytest
from helpers import leaves, students_pod

from coursehub import course_request_service, enrollment
from coursehub.github import authenticator_config
from coursehub_tools.config.deployconfig import load, load_deployments

pytestmark = pytest.mark.unit

# Keys whose values are credentials: allowed in encrypted layers only.
SECRET_KEY = re.compile(
    r"(^|\.)(client_secret|password|apiToken|api_token|secretToken|cookieSecret|cookie_secret|"
    r"auth_token|keys|githubToken)$"
)
# Where the chart lets only its own pods in (z2jh's network-access-* labels).
PRIVILEGED_ACCESS_LABELS = (
    "hub.jupyter.org/network-access-proxy-api",
    "hub.jupyter.org/network-access-proxy-http",
    "hub.jupyter.org/network-access-singleuser",
)


def test_the_students_container_runs_unprivileged(cluster_deployment):
    pod = students_pod(cluster_deployment)
    (notebook,) = pod["spec"]["containers"]
    context = notebook["securityContext"]
    assert context["runAsUser"] != 0 and context["runAsNonRoot"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["spec"].get("automountServiceAccountToken") is False, "no Kubernetes API token"


def test_only_the_metadata_block_is_privileged_and_it_runs_first(cluster_deployment):
    values = load(cluster_deployment).values
    assert values["singleuser"]["cloudMetadata"]["blockWithIptables"] is True
    init = students_pod(cluster_deployment)["spec"]["initContainers"]
    privileged = [c["name"] for c in init if c.get("securityContext", {}).get("privileged")]
    assert privileged == [init[0]["name"]] == ["block-cloud-metadata"]
    for container in init[1:]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert set(context["capabilities"].get("add", [])) <= {"CHOWN", "FOWNER"}


def test_admin_hooks_get_only_what_writing_the_log_and_becoming_the_user_need(cluster_deployment):
    """hooks: admin runs the image's runner as root: no more than these capabilities."""

    from coursehub.hooks import STEPS, container_name

    course = next(iter(load(cluster_deployment).values["custom"]["courses"].values()))
    admin = {"custom": {"courses": {course["slug"]: {"hooks": "admin"}}}}
    pod = students_pod(cluster_deployment, extra_values=admin)
    hooks = {c["name"]: c for c in pod["spec"]["initContainers"]}
    for step in STEPS:
        context = hooks[container_name(step)]["securityContext"]
        assert not context.get("privileged") and context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert set(context["capabilities"]["add"]) <= {
            "CHOWN", "FOWNER", "DAC_OVERRIDE", "SETUID", "SETGID"}  # fmt: skip


def test_user_pods_reach_the_hub_but_not_the_proxy_api_or_other_users(cluster_deployment):
    values = load(cluster_deployment).values
    labels = students_pod(cluster_deployment)["metadata"]["labels"]
    assert labels["hub.jupyter.org/network-access-hub"] == "true", "activity and OAuth"
    assert not set(PRIVILEGED_ACCESS_LABELS) & set(labels)
    policy = values["singleuser"]["networkPolicy"]
    assert policy["enabled"] is True
    # Other pods (other users, the database, the NFS server) are private IPs; the
    # metadata server holds the node's credentials. The internet stays open.
    rules = policy["egressAllowRules"]
    assert (rules["privateIPs"], rules["cloudMetadataServer"]) == (False, False)
    assert rules["nonPrivateIPs"] is True
    assert policy["ingress"] == [] and policy["allowedIngressPorts"] == []
    assert values["hub"]["networkPolicy"]["enabled"] is True
    assert values["proxy"]["chp"]["networkPolicy"]["enabled"] is True


def test_credentials_only_in_encrypted_layers(cluster_deployment):
    listed = load_deployments()["deployments"][cluster_deployment]["values"]
    plain = {item for item in listed if isinstance(item, str)}
    for layer in load(cluster_deployment).layers:
        if layer.source not in plain:
            continue
        found = [path for path, value in leaves(layer.values).items()
                 if SECRET_KEY.search(path) and value not in (None, "", {}, [])]  # fmt: skip
        assert found == [], f"{layer.source} sets credentials in the clear"


def test_cookie_and_xsrf_defaults_are_jupyterhubs(deployment):
    jupyterhub = load(deployment).values["hub"]["config"].get("JupyterHub", {})
    assert set(jupyterhub.get("tornado_settings", {})) <= {
        "slow_spawn_timeout",
        "slow_stop_timeout",
        "spawn_throttle_retry_range",  # the 429 page's retry (book/class-arrival.md)
    }, "nothing about cookies or XSRF"
    for key in ("cookie_options", "cookie_max_age_days", "cookie_secret", "xsrf_cookies"):
        assert key not in jupyterhub


def test_admins_come_only_from_the_admin_team(deployment):
    values = load(deployment).values
    config = values["hub"]["config"]
    for section in config.values():
        assert not section.get("admin_users"), "no admin by name"
    github = values["custom"]["github"]
    assert authenticator_config(github)["admin_groups"] == set(github["adminTeams"])
    for name, role in values["hub"].get("loadRoles", {}).items():
        if any(scope.startswith("admin:") for scope in role.get("scopes", [])):
            assert not role.get("users") and not role.get("groups"), (
                f"role {name}: admin scopes go to services only"
            )


@pytest.mark.parametrize("service", [enrollment.SERVICE_NAME, course_request_service.SERVICE_NAME])
def test_only_the_proxy_reaches_the_services_in_the_hub_pod(cluster_deployment, service):
    """Each service listens in the hub pod on its URL's port: the hub's Service must
    expose that port and the hub's NetworkPolicy admit the proxy's pods there, and no
    one else (user pods carry the network-access-hub label, which opens 8081 only)."""
    values = load(cluster_deployment).values
    port = urlparse(values["hub"]["services"][service]["url"]).port
    exposed = {
        entry["port"]: entry["targetPort"] for entry in values["hub"]["service"]["extraPorts"]
    }
    assert exposed.get(port) == port
    hub_policy = values["hub"]["networkPolicy"]
    assert port not in hub_policy["allowedIngressPorts"], "open to every pod"
    admitted = [
        source["podSelector"]["matchLabels"]
        for rule in hub_policy["ingress"]
        if {"port": port} in rule["ports"]
        for source in rule["from"]
    ]
    assert admitted == [{"app": "jupyterhub", "component": "proxy"}]
