"""What the z2jh chart's jupyterhub_config.py does with our values, written out.

The chart turns values (hub.*, singleuser.*, cull.*) into JupyterHub and
KubeSpawner config before it runs jupyterhub_config.d. Off the cluster there is
no chart, so this module does the same for the keys coursehub sets, with the
same meaning (ref: z2jh 4.4.0 jupyterhub/files/hub/jupyterhub_config.py):

- the local hub calls `apply_chart_values`, then swaps the backend with
  `apply_local_backend`, then runs hub-config with `run_config_d`;
- the offline pod-manifest tests call `apply_chart_values` and build a
  KubeSpawner from the result.

tests/test_local_matches_cluster.py fails if a values file sets a key that is
neither mapped here nor listed in CLUSTER_ONLY_KEYS, so nothing is silently
dropped on this machine.
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

from tornado.httpclient import AsyncHTTPClient

GetConfig = Callable[..., Any]

# hub.<camelCase> -> JupyterHub.<snake_case>, as the chart maps them.
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

# singleuser.<key> -> KubeSpawner.<trait>, as the chart maps them.
KUBESPAWNER_TRAITS = {
    "startTimeout": "start_timeout",
    "extraLabels": "extra_labels",
    "extraAnnotations": "extra_annotations",
    "uid": "uid",
    "fsGid": "fs_gid",
    "nodeSelector": "node_selector",
    "lifecycleHooks": "lifecycle_hooks",
    "initContainers": "init_containers",
    "extraContainers": "extra_containers",
    "memory.limit": "mem_limit",
    "memory.guarantee": "mem_guarantee",
    "cpu.limit": "cpu_limit",
    "cpu.guarantee": "cpu_guarantee",
    "extraEnv": "environment",
    "profileList": "profile_list",
    "extraPodConfig": "extra_pod_config",
    "allowPrivilegeEscalation": "allow_privilege_escalation",
}

# Keys that mean something only where there are pods, nodes and a Helm
# release; the local hub leaves them alone on purpose.
CLUSTER_ONLY_KEYS = (
    "hub.extraFiles",  # laid out as files by scripts/local_hub.py instead
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
    "scheduling",
    "prePuller",
    "proxy",
    "ingress",
)


def camel(snake: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), snake)


def _set_if_given(section, trait: str, value: Any) -> None:
    if value is not None:
        setattr(section, trait, value)


def apply_chart_values(c, get_config: GetConfig) -> None:
    """Set what the chart would set from values, before jupyterhub_config.d runs."""
    # The chart's hub uses tornado's curl client for all its HTTP calls
    # (GitHub, the proxy API), so OAuthenticator's requests behave the same here.
    AsyncHTTPClient.configure("tornado.curl_httpclient.CurlAsyncHTTPClient")
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
    if password and db_type in ("postgres", "mysql"):
        # The chart hands the password to the database driver through its
        # environment, not the URL (ref: z2jh jupyterhub_config.py, hub.db.password).
        os.environ["PGPASSWORD" if db_type == "postgres" else "MYSQL_PWD"] = password

    for trait in HUB_TRAITS:
        _set_if_given(c.JupyterHub, trait, get_config(f"hub.{camel(trait)}"))
    _set_if_given(c.Spawner, "consecutive_failure_limit", get_config("hub.consecutiveFailureLimit"))

    for key, trait in KUBESPAWNER_TRAITS.items():
        _set_if_given(c.KubeSpawner, trait, get_config(f"singleuser.{key}"))
    apply_storage(c, get_config)
    image = get_config("singleuser.image.name")
    if image:
        tag = get_config("singleuser.image.tag")
        c.KubeSpawner.image = f"{image}:{tag}" if tag else image

    # Generic Spawner traits: the chart sets them on Spawner, so any backend
    # (KubeSpawner there, local processes here) gets them.
    _set_if_given(c.Spawner, "cmd", get_config("singleuser.cmd"))
    _set_if_given(c.Spawner, "default_url", get_config("singleuser.defaultUrl"))
    _set_if_given(c.Spawner, "start_timeout", get_config("singleuser.startTimeout"))

    c.JupyterHub.services = []
    c.JupyterHub.load_roles = []
    if get_config("cull.enabled"):
        # The chart's culler runs in the hub pod and reaches the hub on localhost:8081.
        hub_api = "http://localhost:8081" + _hub_api_path(get_config)
        service, role = culler_service(get_config, hub_api, "python3")
        c.JupyterHub.services.append(service)
        c.JupyterHub.load_roles.append(role)
    for name, service in (get_config("hub.services") or {}).items():
        service = {"name": name, **service}
        # The chart passes hub.services.<name>.apiToken on as the service's api_token.
        if "apiToken" in service:
            service["api_token"] = service.pop("apiToken")
        c.JupyterHub.services.append(service)
    for name, role in (get_config("hub.loadRoles") or {}).items():
        c.JupyterHub.load_roles.append({"name": name, **role})

    if get_config("debug.enabled"):
        c.JupyterHub.log_level = "DEBUG"
        c.Spawner.debug = True

    for section, settings in (get_config("hub.config") or {}).items():
        # The chart refuses lowercase section names: they are misplaced keys.
        if not section[:1].isupper():
            raise SystemExit(f"hub.config.{section}: section names must be class names")
        c[section].update(settings)


def apply_storage(c, get_config: GetConfig) -> None:
    """singleuser.storage -> KubeSpawner's home volume and extra volumes, as the chart does.

    ref: z2jh 4.4.0 jupyterhub_config.py, "# storage"; used by the offline pod
    manifests (the local backend has no volumes).
    """
    storage = get_config("singleuser.storage") or {}
    home = storage.get("homeMountPath")
    volumes, mounts = [], []
    if storage.get("type") == "dynamic":
        dynamic = storage["dynamic"]
        c.KubeSpawner.pvc_name_template = dynamic["pvcNameTemplate"]
        c.KubeSpawner.storage_pvc_ensure = True
        _set_if_given(c.KubeSpawner, "storage_class", dynamic.get("storageClass"))
        _set_if_given(c.KubeSpawner, "storage_access_modes", dynamic.get("storageAccessModes"))
        _set_if_given(c.KubeSpawner, "storage_capacity", storage.get("capacity"))
        name = dynamic["volumeNameTemplate"]
        volumes.append({"name": name, "persistentVolumeClaim": {"claimName": "{pvc_name}"}})
        mounts.append({"mountPath": home, "name": name, "subPath": dynamic.get("subPath")})
    elif storage.get("type") == "static":
        static = storage["static"]
        volumes.append({"name": "home", "persistentVolumeClaim": {"claimName": static["pvcName"]}})
        mounts.append({"mountPath": home, "name": "home", "subPath": static.get("subPath")})
    c.KubeSpawner.volumes = volumes + _as_list(storage.get("extraVolumes"))
    c.KubeSpawner.volume_mounts = [
        {key: value for key, value in mount.items() if value is not None}
        for mount in mounts + _as_list(storage.get("extraVolumeMounts"))
    ]


def _as_list(items) -> list:
    """The chart takes extraVolumes and extraVolumeMounts as a list or a dict of them."""
    return list(items.values()) if isinstance(items, dict) else list(items or [])


def _hub_api_path(get_config: GetConfig) -> str:
    return (get_config("hub.baseUrl") or "/").rstrip("/") + "/hub/api"


def culler_service(get_config: GetConfig, hub_api: str, python: str) -> tuple[dict, dict]:
    """The jupyterhub-idle-culler service and its role, from cull.* (the chart's arguments)."""
    command = [python, "-m", "jupyterhub_idle_culler", f"--url={hub_api}"]
    for key, flag in (
        ("timeout", "timeout"),
        ("every", "cull-every"),
        ("concurrency", "concurrency"),
        ("maxAge", "max-age"),
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
    service = {"name": "jupyterhub-idle-culler", "command": command}
    role = {
        "name": "jupyterhub-idle-culler",
        "scopes": scopes,
        "services": ["jupyterhub-idle-culler"],
    }
    return service, role


def apply_local_backend(c, get_config: GetConfig, env: Mapping[str, str]) -> None:
    """Swap the cluster backend for this machine's: processes, a local proxy, local secrets."""
    state = Path(env["COURSEHUB_STATE_DIR"])
    public, hub, proxy_api = (
        env[f"COURSEHUB_{name}_PORT"] for name in ("PUBLIC", "HUB", "PROXY_API")
    )

    c.JupyterHub.bind_url = f"http://127.0.0.1:{public}" + (get_config("hub.baseUrl") or "/")
    c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{hub}"
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{proxy_api}"
    c.ConfigurableHTTPProxy.command = [env["COURSEHUB_CHP"]]
    c.ConfigurableHTTPProxy.should_start = True
    c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
    c.CryptKeeper.keys = [_state_secret(state, "crypt-key")]
    # Stop users' servers with the hub: locally they are child processes.
    c.JupyterHub.cleanup_servers = True

    # scripts/localhub/spawner.py: the cluster's course rules, local processes.
    c.JupyterHub.spawner_class = "coursehub_tools.localhub.spawner.LocalCourseSpawner"
    c.LocalCourseSpawner.home_dir_template = str(state / "homes" / "{username}")
    c.LocalCourseSpawner.hooks_dir = str(Path(__file__).resolve().parents[2] / "deploy/image/hooks")
    c.LocalCourseSpawner.shared_root = str(state / "shared")
    c.LocalCourseSpawner.hook_log_dir = str(state / "hook-logs")
    # Every process of this hub carries the marker, so the runner can prove
    # none is left behind.
    c.Spawner.environment = {
        **(get_config("singleuser.extraEnv") or {}),
        "COURSEHUB_LOCALHUB": env["COURSEHUB_LOCALHUB"],
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
                "read:services",
                "access:servers",
            ],
            "services": ["local-operator"],
        }
    )
    if get_config("cull.enabled"):
        # Same arguments; only where the hub listens and which Python runs it differ.
        hub_api = f"http://127.0.0.1:{hub}" + _hub_api_path(get_config)
        local_culler, _role = culler_service(get_config, hub_api, sys.executable)
        c.JupyterHub.services = [
            local_culler if service["name"] == local_culler["name"] else service
            for service in c.JupyterHub.services
        ]


def _state_secret(state: Path, name: str) -> str:
    """A random secret kept in the state folder, as the chart keeps its own in a Secret."""
    path = state / f"{name}.secret"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def run_config_d(c, config_d: Path, state: Path) -> None:
    """Execute jupyterhub_config.d/*.py in name order with `c` defined, as the chart does.

    Also records which files ran, with their hashes, in <state>/loaded-config.json:
    the tests compare it with what staging and prod mount.
    """
    loaded = []
    for path in sorted(config_d.glob("*.py")):
        print(f"Loading {config_d} config: {path.name}", file=sys.stderr)
        source = path.read_text()
        exec(compile(source, path.name, "exec"), {"c": c, "__file__": str(path)})
        loaded.append({"file": path.name, "sha256": hashlib.sha256(source.encode()).hexdigest()})
    (state / "loaded-config.json").write_text(json.dumps(loaded, indent=2))
