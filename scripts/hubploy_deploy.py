"""Deploying with hubploy: the chart folder it is handed, and its command.

`hubploy deploy coursehub <chart> <environment>` hands helm the files of
config/ and secrets/ and nothing else. What the repository generates (the
course registry as custom.courses, hub-config/ as hub.extraFiles, the course
images for the pre-puller) travels in the chart folder instead: the pinned
chart as helm pulls it, with those values added to its own defaults. Helm reads
a chart's values.yaml first, so the generated layers come before the values
files, which is also where deployconfig.load puts them.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import yaml

from coursehub_tools.deployconfig import (
    Deployment,
    Layer,
    load_deployments,
    merge,
    prepuller_images,
)
from coursehub_tools.yamlfiles import ROOT, read_yaml

HELM_TIMEOUT = "10m"
GENERATED_REVISION_LENGTH = 12
# The source of the layers a deploy run adds itself (scripts/cluster.py).
RUNTIME_SOURCE = "runtime (scripts/cluster.py)"


def pull_chart_command(into: Path) -> list[str]:
    chart = load_deployments()["chart"]
    return [
        "helm", "pull", chart["name"], "--repo", chart["repository"],
        "--version", chart["version"], "--untar", "--untardir", str(into),
    ]  # fmt: skip


def pull_chart(into: Path) -> Path:
    """The pinned chart, downloaded and unpacked into `into`; its folder."""
    subprocess.run(pull_chart_command(into), check=True)
    return into / load_deployments()["chart"]["name"]


def add_generated_values(deployment: Deployment, chart_folder: Path) -> dict:
    """Rewrite the chart folder's values.yaml: its defaults, then the generated layers.

    `deployment.layers[1:3]` are the registry and hub-config/ (deployconfig.load);
    the pre-puller's course images are derived from the merged courses, as the
    merge does.
    """
    values_file = chart_folder / "values.yaml"
    values = read_yaml(values_file, chart_folder)
    for layer in deployment.layers[1:3]:
        values = merge(values, layer.values)
    values = merge(values, prepuller_images(deployment.values["custom"]["courses"]))
    values_file.write_text(yaml.safe_dump(values, sort_keys=False))
    stamp_chart(chart_folder, generated_revision(deployment.layers))
    return values


def generated_revision(layers: list[Layer]) -> str:
    """A digest of the generated layers (`layers[1:3]`: the registry and hub-config/)."""
    text = json.dumps([layer.values for layer in layers[1:3]], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:GENERATED_REVISION_LENGTH]


def stamp_chart(chart_folder: Path, revision: str) -> None:
    """The chart's version with the generated layers' revision as SemVer build metadata.

    `helm upgrade --reuse-values` renders the chart it is given with the last release's
    values (ref: helm's pkg/action/upgrade.go reuseValues): the old custom.generated
    beside this version, or beside the plain chart's, which config/common.yaml's hub
    command refuses by name.
    """
    chart_file = chart_folder / "Chart.yaml"
    chart = read_yaml(chart_file, chart_folder)
    chart["version"] = f"{chart['version'].split('+')[0]}+{revision}"
    chart_file.write_text(yaml.safe_dump(chart, sort_keys=False))


def command(deployment: Deployment, chart_folder: Path) -> list[str]:
    """hubploy's deploy command for `deployment`, run in `hubploy_root()`.

    The deployment's runtime layers (a deploy run's own values, such as the
    cluster tests' token: `RUNTIME_SOURCE`) become --set-string flags, which
    hubploy passes on to helm. They are taken from the deployment itself, so
    no caller can load them and then leave them out of helm's command.
    """
    project = load_deployments()["hubploy"]["deployment"]
    environment = deployment.spec["hubploy"]
    flags = [
        arg
        for layer in runtime_layers(deployment)
        for key, value in dotted(layer.values).items()
        for arg in ("--set-string", f"{key}={value}")
    ]
    return [
        "hubploy", "deploy", project, str(chart_folder), environment,
        "--timeout", HELM_TIMEOUT, "--cleanup-on-fail", *flags,
    ]  # fmt: skip


def runtime_layers(deployment: Deployment) -> list[Layer]:
    """The layers only a deploy run adds (scripts/cluster.py), in their order."""
    return [layer for layer in deployment.layers if layer.source == RUNTIME_SOURCE]


def dotted(values: dict, prefix: str = "") -> dict[str, str]:
    """{"a": {"b": "c"}} as {"a.b": "c"}: helm's --set-string keys."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


def hubploy_root(root: Path = ROOT) -> Path:
    return root / load_deployments(root)["hubploy"]["root"]
