"""The pinned chart rendered by helm, offline, and its hub pod's files laid out as helm mounts them.

`helm template` renders the kept chart (deploy/chart/<name>-<version>/) with a
deployment's values. `lay_out_hub_pod` writes what the hub container sees (its
ConfigMap and Secret, mounted as the hub Deployment mounts them) into a folder,
the chart's two files with the mount root moved to that folder, as
scripts/localhub/layout.py does from the values: tests/test_chart_parity.py
runs the chart's own jupyterhub_config.py over both and compares the results.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from traitlets.config import Config, LazyConfigValue

from coursehub_tools.localhub.layout import CHART_FILES, mount_root

MOUNT_ROOT = mount_root()


def render(helm: Path, chart_dir: Path, release: str, namespace: str, values: Path) -> list[dict]:
    """`helm template` of the chart with these values: every object, as data."""
    result = subprocess.run(
        [str(helm), "template", release, str(chart_dir), "--namespace", namespace,
         "--values", str(values)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"helm template {chart_dir.name}: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_deployment(helm: Path, chart_dir: Path, deployment, scratch: Path) -> list[dict]:
    """Every object helm renders for a deployment (a deployconfig.Deployment) with its values."""
    values = scratch / f"{deployment.name}.values.yaml"
    values.write_text(yaml.safe_dump(deployment.helm_values))
    spec = deployment.spec
    return render(helm, chart_dir, spec["release"], spec["namespace"], values)


def _find(objects: list[dict], kind: str, name: str) -> dict:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def _volume_files(volume: dict, objects: list[dict]) -> dict[str, bytes]:
    """The files a ConfigMap or Secret volume holds, by key."""
    if "configMap" in volume:
        data = _find(objects, "ConfigMap", volume["configMap"]["name"]).get("data", {})
        return {key: value.encode() for key, value in data.items()}
    secret = _find(objects, "Secret", volume["secret"]["secretName"])
    files = {key: base64.b64decode(value) for key, value in secret.get("data", {}).items()}
    files.update({key: value.encode() for key, value in secret.get("stringData", {}).items()})
    return files


def lay_out_hub_pod(objects: list[dict], hub_name: str, target: Path) -> dict[str, str]:
    """Write what the hub container sees under MOUNT_ROOT into `target`, the chart's
    files naming `target` where they name MOUNT_ROOT (as layout.lay_out does).

    Returns the environment Kubernetes gives the hub for the Services it uses
    (<SERVICE>_SERVICE_PORT), which the chart's config reads.
    """
    deployment = _find(objects, "Deployment", hub_name)
    pod = deployment["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    container = next(c for c in pod["containers"] if c["name"] == "hub")
    for mount in container["volumeMounts"]:
        path = mount["mountPath"]
        volume = volumes[mount["name"]]
        if not path.startswith(MOUNT_ROOT) or not ({"configMap", "secret"} & set(volume)):
            continue
        local = target / path.removeprefix(MOUNT_ROOT).lstrip("/")
        files = _volume_files(volume, objects)
        if "subPath" in mount:
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(files[mount["subPath"]])
        else:
            local.mkdir(parents=True, exist_ok=True)
            for key, content in files.items():
                (local / key).write_bytes(content)
    for name in CHART_FILES:
        path = target / name
        path.write_text(path.read_text().replace(MOUNT_ROOT, str(target)))
    env = {}
    for service in (o for o in objects if o["kind"] == "Service"):
        variable = service["metadata"]["name"].upper().replace("-", "_") + "_SERVICE_PORT"
        env[variable] = str(service["spec"]["ports"][0]["port"])
    return env


def plain(value: Any) -> Any:
    """Config values as comparable data: model objects serialized, callables named."""
    from kubernetes_asyncio.client import ApiClient

    if isinstance(value, Config | dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, LazyConfigValue):
        return {"<lazy>": plain(value.to_dict())}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted(plain(item) for item in value)
    if isinstance(value, bytes):
        return value.decode()
    if hasattr(value, "openapi_types"):
        # Serializing needs no connection; a real ApiClient would open one.
        return ApiClient.sanitize_for_serialization(ApiClient.__new__(ApiClient), value)
    if callable(value):
        return f"<callable {value.__module__}.{value.__qualname__}>"
    return value


def pods(config: Config, cases: list[dict]) -> list[dict]:
    """The pod of each case (user, groups, course, today) under `config`."""
    from coursehub_tools.pod_manifests import make_spawner, make_user, pod_manifest

    async def build(case: dict) -> dict:
        person = make_user(case["user"], case["groups"], case.get("github_id", 0))
        spawner = make_spawner(config, person, case["today"])
        try:
            return await pod_manifest(config, spawner, case["course"])
        finally:
            await spawner.api.api_client.close()

    return [asyncio.run(build(case)) for case in cases]


def differences(chart: dict, ours: dict, ignore: Callable[[str, str], bool]) -> list[str]:
    """(section.trait: chart value != our value) for every trait either config sets."""
    found = []
    for section in sorted(set(chart) | set(ours)):
        theirs_section, ours_section = chart.get(section, {}), ours.get(section, {})
        for trait in sorted(set(theirs_section) | set(ours_section)):
            if ignore(section, trait):
                continue
            theirs_value = theirs_section.get(trait, "<unset>")
            our_value = ours_section.get(trait, "<unset>")
            if theirs_value != our_value:
                found.append(f"{section}.{trait}: chart {theirs_value!r} != ours {our_value!r}")
    return found
