"""The pod a user's course server gets on a cluster deployment, built offline from the real config.

    coursehub-pod prod sam coursehub-school:students [--course SLUG] [--github-id N]

Merges the deployment (the chart's defaults, then deploy/deployments.yaml's
files), lays out the hub pod's files for it and runs the chart's own
jupyterhub_config.py there (scripts/localhub/layout.py), which runs
hub-config's jupyterhub_config.d, then walks JupyterHub's spawn path: the
configured authenticator's pre_spawn_start, then the configured spawner
(CourseKubeSpawner) loads the course and builds the pod. No cluster is
contacted: KubeSpawner builds manifests locally. The tests validate these
manifests with kubernetes-validate; the book shows them.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import yaml
from jupyterhub.objects import Hub
from kubernetes_asyncio.config import kube_config
from traitlets.config import Config
from traitlets.utils.importstring import import_item

from coursehub.refusal import Refused
from coursehub_tools.deployconfig import (
    ConfigError,
    Deployment,
    Layer,
    load,
)
from coursehub_tools.localhub.layout import load_chart_config
from coursehub_tools.registry_check import split

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


def offline_secret(key: str) -> str:
    """Stands for a secret helm would generate: fixed, so manifests are reproducible."""
    return hashlib.sha256(f"offline {key}".encode()).hexdigest()


def hub_config(
    deployment: Deployment, work: Path, get_secret: Callable[[str], str] = offline_secret
) -> Config:
    """The hub's traitlets config for a deployment: the chart's own file run over its hub pod's
    files laid out in `work` (scripts/localhub/layout.py), as on the cluster.

    `get_secret` stands for the values helm generates into the hub's Secret.
    """
    config = load_chart_config(deployment, work / "hub-pod", get_secret)
    use_offline_kubeconfig(work)
    return config


def use_offline_kubeconfig(work: Path) -> None:
    """Give KubeSpawner a kubeconfig to load that names no reachable cluster."""
    kubeconfig = work / "kubeconfig.yaml"
    kubeconfig.write_text(yaml.safe_dump(OFFLINE_KUBECONFIG))
    # Read when KubeSpawner is created; the module took $KUBECONFIG at import.
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(kubeconfig)


def github_auth_state(user: str, groups: list[str], github_id: int) -> dict:
    """What GitHubOAuthenticator keeps for a member of `groups` (org:team), ids included."""
    teams = [
        {"organization": {"login": org}, "slug": team, "id": github_id + index + 1}
        for index, (org, _, team) in enumerate(group.partition(":") for group in groups)
    ]
    return {"github_user": {"login": user, "id": github_id}, "teams": teams}


def make_user(user: str, groups: list[str], github_id: int) -> SimpleNamespace:
    """The parts of a JupyterHub user the authenticator and the spawner read."""
    auth_state = github_auth_state(user, groups, github_id)

    async def get_auth_state():
        return auth_state

    return SimpleNamespace(
        name=user,
        id=1,
        url=f"/user/{user}/",
        escaped_name=user,
        # No hub database offline (see waiting_for_approval).
        db=None,
        groups=[SimpleNamespace(name=group) for group in groups],
        get_auth_state=get_auth_state,
    )


def make_spawner(config: Config, person: SimpleNamespace, today: str | None = None):
    """The configured spawner for `person`, without a cluster behind it."""
    if today:
        config.CourseSpawner.today = today
    spawner_class = import_item(config.JupyterHub.spawner_class)
    # _mock: KubeSpawner's own switch for building objects without a cluster.
    # The hub as user pods reach it (the chart's hub Service), as JupyterHub builds it.
    hub = Hub(base_url="/hub/", connect_url=config.JupyterHub.hub_connect_url)
    return spawner_class(config=config, user=person, hub=hub, _mock=True)


async def pod_manifest(config: Config, spawner, course: str | None = None) -> dict:
    """The pod `spawner` would create for `course` (its default if None), as plain data.

    In JupyterHub's order (ref: jupyterhub/user.py User.spawn): the
    authenticator's pre_spawn_start (GitHub uid/gids), then the spawner's start
    (KubeSpawner loads the profile, then builds the pod).
    """
    authenticator = import_item(config.JupyterHub.authenticator_class)(config=config)
    await authenticator.pre_spawn_start(spawner.user, spawner)
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
    github_id: int = 0,
) -> dict:
    """One pod manifest, from the deployment's merged values (plus `extra_values`)."""
    layers = [Layer("extra values", extra_values)] if extra_values else []
    merged = load(deployment, extra_layers=layers)
    with tempfile.TemporaryDirectory() as work:
        config = hub_config(merged, Path(work))
        # KubeSpawner makes its (unused) API client on the running event loop.
        spawner = make_spawner(config, make_user(user, groups, github_id), today)
        try:
            return await pod_manifest(config, spawner, course)
        finally:
            await spawner.api.api_client.close()


def build(*args, **kwargs) -> dict:
    """build_async, for callers without an event loop (the CLI, the tests)."""
    return asyncio.run(build_async(*args, **kwargs))


def image_pull_policy(container: dict) -> str:
    """The pull policy a node applies to `container`: its own, else Kubernetes' default.

    Kubernetes defaults an unset imagePullPolicy to Always for a :latest or
    untagged image and IfNotPresent for any other tag or a digest, so a node
    that already has a tag keeps it when the tag is pushed again.
    ref: https://kubernetes.io/docs/concepts/containers/images/#imagepullpolicy-defaulting
    """
    if container.get("imagePullPolicy"):
        return container["imagePullPolicy"]
    reference = container["image"]
    if "@" in reference:
        return "IfNotPresent"
    return "Always" if split(reference)[2] == "latest" else "IfNotPresent"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coursehub-pod", description=__doc__.split("\n\n")[0])
    parser.add_argument("deployment")
    parser.add_argument("user")
    parser.add_argument("groups", nargs="+", help="the user's groups, organization:team")
    parser.add_argument("--course", help="a course slug (default: the user's first)")
    parser.add_argument(
        "--today", type=date.fromisoformat, help="pretend today is this date, YYYY-MM-DD"
    )
    parser.add_argument(
        "--github-id", type=int, default=0, help="the user's GitHub id (custom.github.unixIds)"
    )
    args = parser.parse_args(argv)
    try:
        manifest = build(
            args.deployment,
            args.user,
            args.groups,
            args.course,
            args.today and args.today.isoformat(),
            github_id=args.github_id,
        )
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Refused as refused:  # what the hub would tell this user, not a crash
        print(f"error: {args.user}: {refused.jupyterhub_message}", file=sys.stderr)
        return 1
    print(yaml.safe_dump(manifest, sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
