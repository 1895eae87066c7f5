"""What the pinned z2jh chart's jupyterhub_config.py does with a deployment's values, written out.

On a cluster the chart's own jupyterhub_config.py turns the mounted values
(the chart's defaults merged with ours, plus `Chart` and `Release`) into
JupyterHub and KubeSpawner config, then runs jupyterhub_config.d. The local
hub and the offline pods do not run that file (it reads the hub pod's files as
helm lays them out); this module does the same, key for key, from the same
values (ref: z2jh 4.4.0 jupyterhub/files/hub/jupyterhub_config.py):

- the local hub calls `apply_chart_values`, then swaps the backend with
  `apply_local_backend`, then runs hub-config with `run_config_d`;
- the offline pod manifests (scripts/pod_manifests.py) call `apply_chart_values`
  and `run_config_d` and build a KubeSpawner from the result.

tests/test_chart_parity.py runs the chart's own file (the kept copy in
deploy/chart/, rendered offline by helm) beside this one and fails on any
difference not listed in DECLARED_DIFFERENCES; tests/test_local_matches_cluster.py
fails if a values file sets a key that nothing here reads and that is not
declared cluster-only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client
from tornado.httpclient import AsyncHTTPClient

from coursehub_tools.localhub.supervisor import free_port

GetConfig = Callable[..., Any]
GetSecret = Callable[[str], str]
_UNSET = object()  # tells an explicit null in values from a missing key

# The hub container's port and the ports of the chart's hub and proxy-api
# Services (templates/hub/service.yaml, templates/proxy/service.yaml).
# The hook scripts as this checkout has them; the course image copies the same folder.
IMAGE_SOURCE = Path(__file__).resolve().parents[2] / "deploy/deployments/coursehub/image"
HOOKS_SOURCE = IMAGE_SOURCE / "hooks"
# The Jupyter settings the image puts in /etc/jupyter, read from here instead.
JUPYTER_SETTINGS = IMAGE_SOURCE / "jupyter"
HUB_CONTAINER_PORT = 8081
SERVICE_PORTS = {"hub": 8081, "proxy-api": 8001}

# hub.<camelCase> -> JupyterHub.<snake_case>, set when not null.
HUB_TRAITS = (
    "concurrent_spawn_limit",
    "active_server_limit",
    "base_url",
    "allow_named_servers",
    "named_server_limit_per_user",
    "authenticate_prometheus",
    "redirect_to_server",
    "shutdown_on_logout",
    "template_paths",
    "template_vars",
)

# KubeSpawner.<trait> <- singleuser.<key>, set when not null.
KUBESPAWNER_TRAITS = {
    "pod_name_template": "podNameTemplate",
    "start_timeout": "startTimeout",
    "image_pull_policy": "image.pullPolicy",
    "events_enabled": "events",
    "extra_labels": "extraLabels",
    "extra_annotations": "extraAnnotations",
    "uid": "uid",
    "fs_gid": "fsGid",
    "service_account": "serviceAccountName",
    "storage_extra_labels": "storage.extraLabels",
    "node_selector": "nodeSelector",
    "node_affinity_required": "extraNodeAffinity.required",
    "node_affinity_preferred": "extraNodeAffinity.preferred",
    "pod_affinity_required": "extraPodAffinity.required",
    "pod_affinity_preferred": "extraPodAffinity.preferred",
    "pod_anti_affinity_required": "extraPodAntiAffinity.required",
    "pod_anti_affinity_preferred": "extraPodAntiAffinity.preferred",
    "lifecycle_hooks": "lifecycleHooks",
    "init_containers": "initContainers",
    "extra_containers": "extraContainers",
    "mem_limit": "memory.limit",
    "mem_guarantee": "memory.guarantee",
    "cpu_limit": "cpu.limit",
    "cpu_guarantee": "cpu.guarantee",
    "extra_resource_limits": "extraResource.limits",
    "extra_resource_guarantees": "extraResource.guarantees",
    "environment": "extraEnv",
    "profile_list": "profileList",
    "extra_pod_config": "extraPodConfig",
}

# hub.config keys the chart never passes through: it loads them from its
# generated Secret instead (or, for services, from hub.services).
SECRET_CONFIG_KEYS = {
    "JupyterHub": ("proxy_auth_token", "cookie_secret", "services"),
    "ConfigurableHTTPProxy": ("auth_token",),
    "CryptKeeper": ("keys",),
}

# Where the chart and this emulation knowingly differ, and why. The parity
# test ignores exactly these (section, trait) pairs and nothing else.
DECLARED_DIFFERENCES = {
    ("JupyterHub", "cookie_secret"): "a random secret helm generates into the hub's Secret",
    ("CryptKeeper", "keys"): "random secrets helm generates into the hub's Secret",
}

# Where the values the chart mounts for the hub differ from our merge, and why.
DECLARED_VALUES_DIFFERENCES = {
    "proxy.traefik": "with proxy.https on, the chart's autohttps templates merge their traefik "
    "settings into the values before the hub's Secret is rendered; the hub never reads them",
}

# Keys that mean something only where there are pods, nodes and a Helm
# release: the local backend does not use them (tests/test_local_matches_cluster.py).
# The local backend's servers, by the name LocalHub(server=...) takes.
LOCAL_SPAWNERS = {
    "jupyterlab": "LocalCourseSpawner",
    "lightweight": "LightweightCourseSpawner",
}

CLUSTER_ONLY_KEYS = (
    "hub.extraFiles",  # laid out as files by scripts/local_hub.py instead
    "hub.args",  # the hub container's command; the local hub starts jupyterhub itself
    "hub.service",
    "hub.networkPolicy",
    "singleuser.image",
    "singleuser.memory",
    "singleuser.cpu",
    "singleuser.storage",
    "singleuser.uid",
    "singleuser.fsGid",
    "singleuser.lifecycleHooks",
    "singleuser.initContainers",
    "singleuser.extraContainers",
    "singleuser.extraLabels",
    "singleuser.extraAnnotations",
    "singleuser.nodeSelector",
    "singleuser.extraPodConfig",
    "singleuser.cloudMetadata",
    "scheduling",
    "prePuller",
    "proxy",
    "ingress",
    "custom.clusterServices",  # objects scripts/cluster.py creates beside the chart
)


def getter(values: dict) -> GetConfig:
    """A get_config("a.b", default) over `values` in memory, like hub-config's over the file."""

    def get_config(key: str, default=None):
        value = values
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                return default
            value = value[part]
        return value

    return get_config


def camel(snake: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), snake)


def _set_if_given(section, trait: str, value: Any) -> None:
    if value is not None:
        setattr(section, trait, value)


def resource_names(get_config: GetConfig) -> dict[str, str]:
    """The names the chart gives its objects (ref: z2jh templates/_helpers-names.tpl).

    Cluster-wide objects (priority classes, the user scheduler's name) carry
    the release's name when no fullname is set, so two releases can share a cluster.
    """
    release = get_config("Release.Name") or ""
    override = get_config("fullnameOverride")
    if isinstance(override, str):
        fullname = override
    else:
        name = get_config("nameOverride") or get_config("Chart.Name", "jupyterhub")
        fullname = release if name in release else f"{release}-{name}"
    prefix = f"{fullname}-" if fullname else ""
    return {
        "hub": f"{prefix}hub",
        "proxy-api": f"{prefix}proxy-api",
        "singleuser": f"{prefix}singleuser",
        "image-pull-secret": f"{prefix}image-pull-secret",
        "user-scheduler": f"{prefix}user-scheduler" if fullname else f"{release}-user-scheduler",
        "priority": fullname or f"{release}-default-priority",
    }


def apply_chart_values(c, get_config: GetConfig, get_secret: GetSecret) -> None:
    """Set what the chart sets from values, before jupyterhub_config.d runs.

    `get_secret(key)` stands for the chart's generated Secret (cookie secret,
    CryptKeeper keys, service tokens not given in values).
    """
    names = resource_names(get_config)
    # The chart's hub uses tornado's curl client for all its HTTP calls
    # (GitHub, the proxy API), so OAuthenticator's requests behave the same here.
    AsyncHTTPClient.configure("tornado.curl_httpclient.CurlAsyncHTTPClient")
    c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
    c.ConfigurableHTTPProxy.api_url = f"http://{names['proxy-api']}:{SERVICE_PORTS['proxy-api']}"
    c.ConfigurableHTTPProxy.should_start = False
    # User pods outlive a hub restart; the chart's hub polls the proxy's
    # routes every minute and shows the spawn page at once.
    c.JupyterHub.cleanup_servers = False
    c.JupyterHub.last_activity_interval = 60
    c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}
    _apply_database(c, get_config, get_secret)
    for trait in HUB_TRAITS:
        _set_if_given(c.JupyterHub, trait, get_config(f"hub.{camel(trait)}"))
    c.JupyterHub.hub_bind_url = f"http://:{HUB_CONTAINER_PORT}"
    c.JupyterHub.hub_connect_url = f"http://{names['hub']}:{SERVICE_PORTS['hub']}"
    c.KubeSpawner.common_labels = _common_labels(get_config)
    c.KubeSpawner.namespace = get_config("Release.Namespace") or "default"
    _set_if_given(c.Spawner, "consecutive_failure_limit", get_config("hub.consecutiveFailureLimit"))
    for trait, key in KUBESPAWNER_TRAITS.items():
        _set_if_given(c.KubeSpawner, trait, get_config(f"singleuser.{key}"))
    image = get_config("singleuser.image.name")
    if image:
        tag = get_config("singleuser.image.tag")
        c.KubeSpawner.image = f"{image}:{tag}" if tag else image
    # None, False and True all mean something to KubeSpawner here, so null is passed on.
    c.KubeSpawner.allow_privilege_escalation = get_config("singleuser.allowPrivilegeEscalation")
    pull_secrets = _image_pull_secrets(get_config, names)
    if pull_secrets:
        c.KubeSpawner.image_pull_secrets = pull_secrets
    _apply_scheduling(c, get_config, names)
    if get_config("singleuser.storage.type") == "dynamic":
        _apply_dynamic_claims(c, get_config)
    c.KubeSpawner.volumes, c.KubeSpawner.volume_mounts = storage_volumes(get_config, names)
    _apply_services(c, get_config, get_secret)
    if get_config("singleuser.cmd", _UNSET) is not _UNSET:
        # An explicit null means "the image's own command", unlike a missing key.
        c.Spawner.cmd = get_config("singleuser.cmd")
    _set_if_given(c.Spawner, "default_url", get_config("singleuser.defaultUrl"))
    if (get_config("singleuser.cloudMetadata") or {}).get("blockWithIptables") is True:
        c.KubeSpawner.init_containers.append(cloud_metadata_block(get_config))
    if get_config("debug.enabled"):
        c.JupyterHub.log_level = "DEBUG"
        c.Spawner.debug = True
    c.JupyterHub.cookie_secret = get_secret("hub.config.JupyterHub.cookie_secret")
    c.CryptKeeper.keys = get_secret("hub.config.CryptKeeper.keys").split(";")
    _apply_pass_through(c, get_config)


def _apply_database(c, get_config: GetConfig, get_secret: GetSecret) -> None:
    db_type = get_config("hub.db.type")
    if db_type == "sqlite-pvc":
        # The chart runs the hub in /srv/jupyterhub on the PVC; the local hub
        # runs in its state folder, so the same relative URL lands there.
        c.JupyterHub.db_url = "sqlite:///jupyterhub.sqlite"
    elif db_type == "sqlite-memory":
        c.JupyterHub.db_url = "sqlite://"
    else:
        _set_if_given(c.JupyterHub, "db_url", get_config("hub.db.url"))
    password = get_config("hub.db.password")
    if password is not None and db_type in ("postgres", "mysql"):
        # The chart hands the password to the database driver through its
        # environment, not the URL (ref: z2jh jupyterhub_config.py, hub.db.password).
        os.environ["PGPASSWORD" if db_type == "postgres" else "MYSQL_PWD"] = password


def _common_labels(get_config: GetConfig) -> dict[str, str]:
    """Labels on every user pod: the chart's NetworkPolicies and PDBs select on them."""
    name = get_config("nameOverride", default=get_config("Chart.Name", "jupyterhub"))
    labels = {"app.kubernetes.io/name": name, "app": name}
    release = get_config("Release.Name")
    if release:
        labels["app.kubernetes.io/instance"] = labels["release"] = release
    chart_name, chart_version = get_config("Chart.Name"), get_config("Chart.Version")
    if chart_name and chart_version:
        labels["helm.sh/chart"] = labels["chart"] = (
            f"{chart_name}-{chart_version.replace('+', '_')}"
        )
    labels["app.kubernetes.io/managed-by"] = "kubespawner"
    return labels


def _image_pull_secrets(get_config: GetConfig, names: Mapping[str, str]) -> list:
    secrets = []
    if get_config("imagePullSecret.automaticReferenceInjection") and get_config(
        "imagePullSecret.create"
    ):
        secrets.append(names["image-pull-secret"])
    secrets += get_config("imagePullSecrets") or []
    secrets += get_config("singleuser.image.pullSecrets") or []
    return secrets


def _apply_scheduling(c, get_config: GetConfig, names: Mapping[str, str]) -> None:
    if get_config("scheduling.userScheduler.enabled"):
        c.KubeSpawner.scheduler_name = names["user-scheduler"]
    if get_config("scheduling.podPriority.enabled"):
        c.KubeSpawner.priority_class_name = names["priority"]
    purpose = get_config("scheduling.userPods.nodeAffinity.matchNodePurpose")
    user_nodes = {
        "matchExpressions": [
            {"key": "hub.jupyter.org/node-purpose", "operator": "In", "values": ["user"]}
        ]
    }
    if purpose == "prefer":
        c.KubeSpawner.node_affinity_preferred.append({"weight": 100, "preference": user_nodes})
    elif purpose == "require":
        c.KubeSpawner.node_affinity_required.append(user_nodes)
    elif purpose not in (None, "ignore"):
        raise ValueError(f"scheduling.userPods.nodeAffinity.matchNodePurpose: {purpose!r}")
    tolerations = (get_config("scheduling.userPods.tolerations") or []) + (
        get_config("singleuser.extraTolerations") or []
    )
    if tolerations:
        c.KubeSpawner.tolerations = tolerations


def _apply_dynamic_claims(c, get_config: GetConfig) -> None:
    """One PVC a user server, created by KubeSpawner on first start."""
    _set_if_given(
        c.KubeSpawner,
        "pvc_name_template",
        get_config("singleuser.storage.dynamic.pvcNameTemplate") or None,
    )
    c.KubeSpawner.storage_pvc_ensure = True
    for trait, key in (
        ("storage_class", "dynamic.storageClass"),
        ("storage_access_modes", "dynamic.storageAccessModes"),
        ("storage_capacity", "capacity"),
    ):
        _set_if_given(c.KubeSpawner, trait, get_config(f"singleuser.storage.{key}"))


def storage_volumes(get_config: GetConfig, names: Mapping[str, str]) -> tuple[dict, dict]:
    """KubeSpawner.volumes and volume_mounts, keyed as the chart keys them."""
    storage = get_config("singleuser.storage") or {}
    home = storage.get("homeMountPath")
    volumes, mounts = {}, {}
    if storage.get("type") == "dynamic":
        dynamic = storage["dynamic"]
        volume = dynamic.get("volumeNameTemplate")
        volumes[volume] = {"name": volume, "persistentVolumeClaim": {"claimName": "{pvc_name}"}}
        # subPath stays even when null, as the chart leaves it.
        mounts[volume] = {"mountPath": home, "name": volume, "subPath": dynamic.get("subPath")}
    elif storage.get("type") == "static":
        static = storage["static"]
        volumes["home"] = {
            "name": "home",
            "persistentVolumeClaim": {"claimName": static["pvcName"]},
        }
        mounts["home"] = {"mountPath": home, "name": "home", "subPath": static.get("subPath")}
    files = get_config("singleuser.extraFiles") or {}
    if files:
        items = [
            {"key": key, "path": key, **({"mode": f["mode"]} if "mode" in f else {})}
            for key, f in files.items()
        ]
        volumes["files"] = {
            "name": "files",
            "secret": {"secretName": names["singleuser"], "items": items},
        }
        for index, (key, details) in enumerate(files.items()):
            mounts[f"{index}-files"] = {
                "mountPath": details["mountPath"],
                "subPath": key,
                "name": "files",
            }
    extra_volumes = storage.get("extraVolumes") or {}
    if isinstance(extra_volumes, Mapping):
        volumes.update(extra_volumes)
    else:
        volumes.update({volume["name"]: volume for volume in extra_volumes})
    extra_mounts = storage.get("extraVolumeMounts") or {}
    if isinstance(extra_mounts, Mapping):
        mounts.update(extra_mounts)
    else:
        # Mount names need not be unique, so the chart keys them by position too.
        mounts.update({f"{i}-{mount['name']}": mount for i, mount in enumerate(extra_mounts)})
    return volumes, mounts


def _hub_api_path(get_config: GetConfig) -> str:
    return (get_config("hub.baseUrl") or "/").rstrip("/") + "/hub/api"


def culler_service(get_config: GetConfig, hub_api: str, python: str) -> tuple[dict, dict]:
    """The jupyterhub-idle-culler service and its role, from cull.* (the chart's arguments)."""
    command = [python, "-m", "jupyterhub_idle_culler", f"--url={hub_api}"]
    for key, flag in (
        ("timeout", "timeout"),
        ("every", "cull-every"),
        ("concurrency", "concurrency"),
    ):
        value = get_config(f"cull.{key}")
        if value:
            command.append(f"--{flag}={value}")
    scopes = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
    if get_config("cull.users"):
        command.append("--cull-users")
        scopes.append("admin:users")
    if not get_config("cull.adminUsers"):
        command.append("--cull-admin-users=false")
    if get_config("cull.removeNamedServers"):
        command.append("--remove-named-servers")
    if get_config("cull.maxAge"):
        command.append(f"--max-age={get_config('cull.maxAge')}")
    service = {"name": "jupyterhub-idle-culler", "command": command}
    role = {
        "name": "jupyterhub-idle-culler",
        "scopes": scopes,
        "services": ["jupyterhub-idle-culler"],
    }
    return service, role


def _apply_services(c, get_config: GetConfig, get_secret: GetSecret) -> None:
    c.JupyterHub.services = []
    c.JupyterHub.load_roles = []
    if get_config("cull.enabled"):
        # The chart's culler runs in the hub pod and reaches the hub on localhost.
        hub_api = f"http://localhost:{HUB_CONTAINER_PORT}" + _hub_api_path(get_config)
        service, role = culler_service(get_config, hub_api, "python3")
        c.JupyterHub.services.append(service)
        c.JupyterHub.load_roles.append(role)
    for name, entry in (get_config("hub.services") or {}).items():
        service = {key: value for key, value in entry.items() if key != "apiToken"}
        service.setdefault("name", name)
        # The chart's Secret holds the token: the one in values, else a generated one.
        service["api_token"] = entry.get("apiToken") or get_secret(f"hub.services.{name}.apiToken")
        c.JupyterHub.services.append(service)
    for name, entry in (get_config("hub.loadRoles") or {}).items():
        c.JupyterHub.load_roles.append({"name": name, **entry})


def cloud_metadata_block(get_config: GetConfig) -> client.V1Container:
    """The chart's privileged init container that drops traffic to the cloud metadata server.

    Built as a kubernetes model object, as the chart builds it: hub-config must
    accept those beside dicts (coursehub.storage.keyed_by_name).
    """
    image = get_config("singleuser.networkTools.image")
    ip = get_config("singleuser.cloudMetadata.ip")
    # Drop outgoing TCP to the metadata server's port 80 for every process of the pod.
    command = "iptables --append OUTPUT --protocol tcp --destination {ip} --destination-port 80"
    return client.V1Container(
        name="block-cloud-metadata",
        image=f"{image['name']}:{image['tag']}",
        command=[*command.format(ip=ip).split(), "--jump", "DROP"],
        security_context=client.V1SecurityContext(
            privileged=True,
            run_as_user=0,
            capabilities=client.V1Capabilities(add=["NET_ADMIN"]),
        ),
        resources=get_config("singleuser.networkTools.resources"),
    )


def _apply_pass_through(c, get_config: GetConfig) -> None:
    for section, settings in (get_config("hub.config") or {}).items():
        # The chart refuses lowercase section names: they are misplaced keys.
        if not section[:1].isupper():
            raise SystemExit(f"hub.config.{section}: section names must be class names")
        settings = {
            key: value
            for key, value in settings.items()
            if key not in SECRET_CONFIG_KEYS.get(section, ())
        }
        c[section].update(settings)


def apply_local_backend(c, get_config: GetConfig, env: Mapping[str, str]) -> None:
    """Swap the cluster backend for this machine's: processes and local ports."""
    state = Path(env["COURSEHUB_STATE_DIR"])
    public, hub, proxy_api = (
        env[f"COURSEHUB_{name}_PORT"] for name in ("PUBLIC", "HUB", "PROXY_API")
    )
    c.JupyterHub.bind_url = f"http://127.0.0.1:{public}" + (get_config("hub.baseUrl") or "/")
    c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{hub}"
    c.JupyterHub.hub_connect_url = f"http://127.0.0.1:{hub}"
    # The proxy is started beside the hub, as the chart's proxy pod is
    # (scripts/local_hub.py): should_start stays False, as the chart sets it.
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{proxy_api}"
    c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
    # Stop users' servers with the hub: locally they are child processes.
    c.JupyterHub.cleanup_servers = True

    # scripts/localhub/spawner.py: the cluster's course rules, local processes:
    # JupyterLab, or for load tests the lightweight server (LocalHub(server=...)).
    # A `local-kube` hub keeps the chart's KubeSpawner (scripts/localhub/kube_backend.py).
    if env.get("COURSEHUB_BACKEND") != "local-kube":
        c.JupyterHub.spawner_class = (
            "coursehub_tools.localhub.spawner."
            + LOCAL_SPAWNERS[env.get("COURSEHUB_LOCAL_SERVER", "jupyterlab")]
        )
    c.LocalCourseSpawner.home_dir_template = str(state / "homes" / "{username}")
    c.LocalCourseSpawner.hooks_dir = str(HOOKS_SOURCE)
    c.LocalCourseSpawner.shared_root = str(state / "shared")
    c.LocalCourseSpawner.hook_log_dir = str(state / "hook-logs")
    # The KubeSpawner settings that mean something for a process.
    _set_if_given(c.Spawner, "start_timeout", get_config("singleuser.startTimeout"))
    # Every process of this hub carries the marker, so the runner can prove
    # none is left behind.
    c.Spawner.environment = {
        **(get_config("singleuser.extraEnv") or {}),
        "COURSEHUB_LOCALHUB": env["COURSEHUB_LOCALHUB"],
        "JUPYTER_CONFIG_PATH": str(JUPYTER_SETTINGS),
    }
    if env.get("COURSEHUB_RUNNING_AS_ROOT") == "1":
        # CI and many containers run as root; jupyter-server refuses that unless told.
        c.Spawner.args = ["--ServerApp.allow_root=True"]

    # A service token for scripts/local_hub.py's REST API calls (the book and
    # the tests); on a cluster an operator uses their own admin token instead.
    c.JupyterHub.services.append(
        {"name": "local-operator", "api_token": env["COURSEHUB_OPERATOR_TOKEN"]}
    )
    c.JupyterHub.load_roles.append(
        {
            "name": "local-operator",
            "scopes": [
                "admin:users",
                "admin:servers",
                "admin:groups",
                "proxy",
                "read:hub",
                # Which services to wait for at start (LocalHub.services_routed).
                "list:services",
                "read:services",
                "access:servers",
                # Tokens for others: a load test's cull pass runs with a token
                # the hub made, as the culler service's is (scripts/culling.py).
                "tokens",
            ],
            "services": ["local-operator"],
        }
    )
    # A service the values give a URL runs in the hub pod, behind the hub's
    # Service name there; here it listens on a free loopback port, and carries
    # the marker (a service gets only the environment it is given).
    for service in c.JupyterHub.services:
        if service.get("url"):
            service["url"] = f"http://127.0.0.1:{free_port()}"
            service["environment"] = {
                **service.get("environment", {}),
                "COURSEHUB_LOCALHUB": env["COURSEHUB_LOCALHUB"],
            }
    if get_config("cull.enabled"):
        # Same arguments; only where the hub listens and which Python runs it differ.
        hub_api = f"http://127.0.0.1:{hub}" + _hub_api_path(get_config)
        local_culler, _role = culler_service(get_config, hub_api, sys.executable)
        # A service gets only the environment given here, not the hub's: without
        # the marker, a culler left by a killed hub would escape the runner.
        local_culler["environment"] = {"COURSEHUB_LOCALHUB": env["COURSEHUB_LOCALHUB"]}
        c.JupyterHub.services = [
            local_culler if service["name"] == local_culler["name"] else service
            for service in c.JupyterHub.services
        ]


def state_secrets(state: Path) -> GetSecret:
    """The chart's generated Secret on this machine: random values kept in the state folder."""

    def get_secret(key: str) -> str:
        path = state / f"{key}.secret"
        if not path.exists():
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        return path.read_text().strip()

    return get_secret


def config_d_globals(c, get_config: GetConfig) -> dict[str, Any]:
    """The names jupyterhub_config.d files see: the chart runs them in its own module's globals."""
    import glob

    return {
        "c": c,
        "get_config": get_config,
        "set_config_if_not_none": lambda parent, name, key: _set_if_given(
            parent, name, get_config(key)
        ),
        "os": os,
        "sys": sys,
        "re": re,
        "glob": glob,
        "client": client,
    }


def run_config_d(
    c, get_config: GetConfig, config_d: Path, record: Path | None = None, announce: bool = True
) -> None:
    """Execute jupyterhub_config.d/*.py in name order, one shared namespace, as the chart does.

    With `record`, also writes which files ran, with their hashes, to that JSON
    file: the tests compare it with what staging and prod mount. A hub's log
    names each file as the chart's does; `announce=False` is for building a
    spawner offline, where nobody reads a log.
    """
    namespace = config_d_globals(c, get_config)
    loaded = []
    for path in sorted(config_d.glob("*.py")):
        if announce:
            print(f"Loading {config_d} config: {path.name}", file=sys.stderr)
        source = path.read_text()
        exec(compile(source, path.name, "exec"), namespace)
        loaded.append({"file": path.name, "sha256": hashlib.sha256(source.encode()).hexdigest()})
    if record is not None:
        record.write_text(json.dumps(loaded, indent=2))
