"""The pod a user's course server gets on a cluster deployment, built offline from the real config.

    coursehub-pod prod sam coursehub-school:students [--course SLUG]

Merges the deployment (deploy/deployments.yaml), points hub-config's get_config
at the merged values, applies them the way the chart does
(scripts/localhub/chart_values.py), runs hub-config/jupyterhub_config.d, then
asks the spawner class that config names (CourseKubeSpawner) for the user's pod
manifest. No cluster is contacted: KubeSpawner builds manifests locally. The
tests validate these manifests with kubernetes-validate; the book shows them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import yaml
from jupyterhub.objects import Hub
from kubernetes_asyncio.config import kube_config
from traitlets.config import Config
from traitlets.utils.importstring import import_item

from coursehub import values as hub_values
from coursehub_tools.deployconfig import ROOT, ConfigError, Layer, load
from coursehub_tools.localhub.chart_values import apply_chart_values, run_config_d

# KubeSpawner loads a kubeconfig when it is created; this one names a cluster
# that is never contacted, since building a manifest makes no API call.
OFFLINE_KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "offline", "cluster": {"server": "https://127.0.0.1:9"}}],
    "users": [{"name": "offline", "user": {"token": "offline"}}],
    "contexts": [{"name": "offline", "context": {"cluster": "offline", "user": "offline"}}],
    "current-context": "offline",
}


def hub_config(values: dict, work: Path) -> Config:
    """The hub's traitlets config for these merged values, as the chart would build it."""
    values_file = work / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    # The chart mounts one values file where coursehub.values looks; here the
    # same reader is pointed at this deployment's file instead.
    hub_values.VALUES_FILE = values_file
    hub_values._values.cache_clear()
    config = Config()
    apply_chart_values(config, hub_values.get_config)
    run_config_d(config, ROOT / "hub-config" / "jupyterhub_config.d", work)
    kubeconfig = work / "kubeconfig.yaml"
    kubeconfig.write_text(yaml.safe_dump(OFFLINE_KUBECONFIG))
    # Read when KubeSpawner is created; the module took $KUBECONFIG at import.
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(kubeconfig)
    return config


def make_spawner(config: Config, user: str, groups: list[str], today: str | None = None):
    """The configured spawner for `user` (in `groups`), without a cluster behind it."""
    if today:
        config.CourseSpawner.today = today
    spawner_class = import_item(config.JupyterHub.spawner_class)
    person = SimpleNamespace(
        name=user,
        id=1,
        url=f"/user/{user}/",
        escaped_name=user,
        groups=[SimpleNamespace(name=group) for group in groups],
    )
    # _mock: KubeSpawner's own switch for building objects without a cluster.
    return spawner_class(config=config, user=person, hub=Hub(base_url="/hub/"), _mock=True)


async def pod_manifest(spawner, course: str | None = None) -> dict:
    """The pod `spawner` would create for `course` (its default if None), as plain data."""
    spawner.user_options = {"profile": course} if course else {}
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    data = spawner.api.api_client.sanitize_for_serialization(pod)
    return {"apiVersion": "v1", "kind": "Pod", **data}


async def build_async(
    deployment: str,
    user: str,
    groups: list[str],
    course: str | None = None,
    today: str | None = None,
    extra_values: dict | None = None,
) -> dict:
    """One pod manifest, from the deployment's merged values (plus `extra_values`)."""
    layers = [Layer("extra values", extra_values)] if extra_values else []
    values = load(deployment, extra_layers=layers).values
    with tempfile.TemporaryDirectory() as work:
        # KubeSpawner makes its (unused) API client on the running event loop.
        spawner = make_spawner(hub_config(values, Path(work)), user, groups, today)
        try:
            return await pod_manifest(spawner, course)
        finally:
            await spawner.api.api_client.close()


def build(*args, **kwargs) -> dict:
    """build_async, for callers without an event loop (the CLI, the tests)."""
    return asyncio.run(build_async(*args, **kwargs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("deployment")
    parser.add_argument("user")
    parser.add_argument("groups", nargs="+", help="the user's groups, organization:team")
    parser.add_argument("--course", help="a course slug (default: the user's first)")
    parser.add_argument("--today", help="pretend today is this date, YYYY-MM-DD")
    args = parser.parse_args(argv)
    try:
        manifest = build(args.deployment, args.user, args.groups, args.course, args.today)
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(yaml.safe_dump(manifest, sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
