"""The hub pod's files and environment, laid out on this machine, and its config loaded.

On a cluster the chart's hub container sees, under /usr/local/etc/jupyterhub
(ref: z2jh templates/hub/deployment.yaml, volumeMounts):

- jupyterhub_config.py and z2jh.py, the chart's files/hub/, from its ConfigMap;
- config/, the ConfigMap's keys: the names the chart gives its objects;
- secret/, the chart's Secret: values.yaml (the merged values with `Chart` and
  `Release`), the generated tokens and keys, hub.db.password if given;
- every hub.extraFiles entry at its mountPath (hub-config/ here).

`lay_out` writes the same tree into a folder, the two chart files byte for byte
but for the mount root, which names that folder instead. `hub_environment` is
what Kubernetes and the hub Deployment give the container. `load_hub_config`
runs a config file over such a folder as JupyterHub does, so the local hub, the
offline pod builder and the tests all get their config from one run of the
chart's own file.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from pathlib import Path

import yaml
from traitlets.config import Config, PyFileConfigLoader

from coursehub_tools import chart, helm
from coursehub_tools.deployconfig import Deployment, load_deployments

CHART_FILES = ("jupyterhub_config.py", "z2jh.py")
# The hub container's port, which the chart's Deployment and hub Service share
# (templates/hub/deployment.yaml, templates/hub/service.yaml).
HUB_PORT = 8081
# The proxy's API port on its proxy-api Service (templates/proxy/service.yaml).
PROXY_API_PORT = 8001
# The Secret's keys the chart generates when the values give none
# (templates/hub/_helpers-passwords.tpl), by the values key that would give one.
GENERATED_SECRETS = {
    "hub.config.ConfigurableHTTPProxy.auth_token": ("ConfigurableHTTPProxy", "auth_token"),
    "hub.config.JupyterHub.cookie_secret": ("JupyterHub", "cookie_secret"),
    "hub.config.CryptKeeper.keys": ("CryptKeeper", "keys"),
}
PROXY_TOKEN_KEY = "hub.config.ConfigurableHTTPProxy.auth_token"

GetSecret = Callable[[str], str]


def mount_root() -> str:
    """Where the chart mounts the hub's files: /usr/local/etc/jupyterhub."""
    return load_deployments()["hubConfig"]["mountRoot"].rstrip("/")


def release_of(deployment: Deployment) -> tuple[str, str]:
    """The Helm release and namespace a deployment is (or would be) installed as."""
    spec = deployment.spec
    return spec.get("release", deployment.name), spec.get("namespace", deployment.name)


@cache
def object_names(release: str, names: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """The chart ConfigMap's names for its objects (config/<short name>), rendered by helm.

    Only the release and the name overrides decide them, so helm renders the
    ConfigMap alone with only those, once per process for each.
    """
    with tempfile.TemporaryDirectory(prefix="coursehub-names-") as work:
        values = Path(work) / "names.yaml"
        values.write_text(yaml.safe_dump(dict(names)))
        result = subprocess.run(
            [str(helm.binary()), "template", release, str(chart.pinned().folder),
             "--values", str(values), "--show-only", "templates/hub/configmap.yaml"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"helm template (the chart's names): {result.stderr.strip()}")
    data = yaml.safe_load(result.stdout)["data"]
    return {key: value for key, value in data.items() if "." not in key and "_" not in key}


def names_of(deployment: Deployment) -> dict[str, str]:
    values = deployment.values
    overrides = tuple(
        (key, values[key]) for key in ("nameOverride", "fullnameOverride") if values.get(key)
    )
    return object_names(release_of(deployment)[0], overrides)


def secret_files(deployment: Deployment, get_secret: GetSecret) -> dict[str, str]:
    """The chart's Secret for the hub, but values.yaml: what values give, else a generated value."""
    values = deployment.values
    hub_config = values["hub"].get("config") or {}
    files = {}
    for key, (section, trait) in GENERATED_SECRETS.items():
        given = (hub_config.get(section) or {}).get(trait)
        if isinstance(given, list):
            given = ";".join(given)
        files[key] = given or get_secret(key)
    for name, service in (values["hub"].get("services") or {}).items():
        key = f"hub.services.{name}.apiToken"
        files[key] = service.get("apiToken") or service.get("api_token") or get_secret(key)
    if values["hub"]["db"].get("password"):
        files["hub.db.password"] = values["hub"]["db"]["password"]
    return files


def lay_out(deployment: Deployment, pod_dir: Path, get_secret: GetSecret) -> None:
    """Write the hub pod's files for `deployment` into `pod_dir`, replacing it.

    `get_secret(key)` stands for a value the chart generates into its Secret.
    """
    shutil.rmtree(pod_dir, ignore_errors=True)
    root = mount_root()
    files_dir = chart.pinned().folder / "files" / "hub"
    for name in CHART_FILES:
        text = (files_dir / name).read_text()
        # The one change: the chart's mount root is this folder.
        (pod_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (pod_dir / name).write_text(text.replace(root, str(pod_dir)))
    (pod_dir / "config").mkdir()
    for key, value in names_of(deployment).items():
        (pod_dir / "config" / key).write_text(value)
    secret = pod_dir / "secret"
    secret.mkdir(mode=0o700)
    mounted = deployment.mounted_values()
    (secret / "values.yaml").write_text(yaml.safe_dump(mounted))
    for key, value in secret_files(deployment, get_secret).items():
        (secret / key).write_text(value)
    for key, entry in mounted["hub"]["extraFiles"].items():
        # The Secret holds each file too, so its folder shows it as well.
        (secret / key).write_text(entry["stringData"])
        target = pod_dir / entry["mountPath"].removeprefix(root + "/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(entry["stringData"])


def hub_environment(pod_dir: Path, namespace: str, ports: Mapping[str, int]) -> dict[str, str]:
    """What the hub container's environment has on a cluster, for the folder `pod_dir`.

    The hub Deployment sets POD_NAMESPACE and CONFIGPROXY_AUTH_TOKEN (from the
    Secret) and hub.extraEnv; Kubernetes adds <SERVICE>_SERVICE_HOST/_PORT for
    each Service, which the chart's config reads for the hub and the proxy's
    API. `ports` gives the port of each by short name ("hub", "proxy-api").
    """
    values = yaml.safe_load((pod_dir / "secret" / "values.yaml").read_text())
    env = {
        "PYTHONUNBUFFERED": "1",
        "POD_NAMESPACE": namespace,
        "CONFIGPROXY_AUTH_TOKEN": (pod_dir / "secret" / PROXY_TOKEN_KEY).read_text(),
    }
    if "Release" in values:
        env["HELM_RELEASE_NAME"] = values["Release"]["Name"]
    for short, port in ports.items():
        service = (pod_dir / "config" / short).read_text().upper().replace("-", "_")
        env[f"{service}_SERVICE_HOST"] = "127.0.0.1"
        env[f"{service}_SERVICE_PORT"] = str(port)
    extra = values["hub"].get("extraEnv") or {}
    env.update({key: str(value) for key, value in extra.items() if isinstance(value, str)})
    return env


@contextlib.contextmanager
def _hub_process_state(env: Mapping[str, str]) -> Iterator[None]:
    """os.environ with `env`, and sys.path/z2jh as they were, for a load in this process.

    The chart's file reads its environment, puts its folder first on sys.path and
    imports z2jh from there; a second load here must find its own z2jh, not the
    first one's (z2jh caches what it read). The z2jh just loaded stays imported,
    as in the hub, for what reads values afterwards (coursehub.values).
    """
    saved_env, saved_path = dict(os.environ), list(sys.path)
    sys.modules.pop("z2jh", None)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path


def load_hub_config(config_file: Path, env: Mapping[str, str], quiet: bool = False) -> Config:
    """The traitlets config JupyterHub gets from `config_file` (`jupyterhub -f`), with `env` set.

    With `quiet`, what the chart's file prints (each file it loads) is dropped:
    for a tool whose own output is on stdout.
    """
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file}: no such config file")
    loader = PyFileConfigLoader(config_file.name, str(config_file.parent))
    output = io.StringIO() if quiet else sys.stderr
    with _hub_process_state(env), contextlib.redirect_stdout(output):
        return loader.load_config()


def load_chart_config(
    deployment: Deployment, pod_dir: Path, get_secret: GetSecret, quiet: bool = True
) -> Config:
    """The chart's own config for `deployment`: its hub pod's files in `pod_dir`, its file run."""
    lay_out(deployment, pod_dir, get_secret)
    env = hub_environment(
        pod_dir, release_of(deployment)[1], {"hub": HUB_PORT, "proxy-api": PROXY_API_PORT}
    )
    return load_hub_config(pod_dir / "jupyterhub_config.py", env, quiet=quiet)
