"""A hand-run `helm upgrade` of the plain chart, or with `--reuse-values`, is refused: helm fails,
naming the deploy command.

The deploy hands helm the pinned chart with the generated values (hub-config/ as
hub.extraFiles, the course registry as custom.courses) in its values.yaml; z2jh's
documented `helm upgrade` passes only the values files. Both are rendered here by
helm (scripts/helm.py) from the kept chart, with each cluster deployment's values.
`--reuse-values` hands the chart it is given the last release's values (ref: helm's
pkg/action/upgrade.go, reuseValues): rendered here as that chart with those values.
"""

from __future__ import annotations

import shutil

import pytest
import yaml

from coursehub_tools import chart, chart_parity, cluster, helm, hubploy_deploy
from coursehub_tools.deployconfig import load, merge

pytestmark = pytest.mark.chart

CHART_ARGS = ["jupyterhub", "--config", f"{chart_parity.MOUNT_ROOT}/jupyterhub_config.py"]


def hub_args(objects: list[dict]) -> list[str]:
    (hub,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "hub"]
    (container,) = [c for c in hub["spec"]["template"]["spec"]["containers"] if c["name"] == "hub"]
    return container["args"]


def test_the_deploy_renders_the_charts_own_hub_command(cluster_deployment, tmp_path):
    chart.check()
    objects = chart_parity.render_deployment(
        helm.binary(), chart.pinned().folder, load(cluster_deployment), tmp_path
    )
    assert hub_args(objects) == CHART_ARGS


def test_the_plain_chart_with_the_values_files_alone_is_refused(cluster_deployment, tmp_path):
    """What `helm upgrade -f <each values file>` hands the chart: the files, nothing generated."""
    deployment = load(cluster_deployment)
    listed = {entry for entry in deployment.spec["values"] if isinstance(entry, str)}
    files = [layer for layer in deployment.layers if layer.source in listed]
    assert len(files) == len(listed)
    values: dict = {}
    for layer in files:
        values = merge(values, layer.values)
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    spec = deployment.spec
    with pytest.raises(RuntimeError) as refused:
        chart_parity.render(
            helm.binary(), chart.pinned().folder, spec["release"], spec["namespace"],
            tmp_path / "values.yaml",
        )  # fmt: skip
    message = str(refused.value)
    assert f"coursehub: release {spec['release']} lacks the values the deploy generates" in message
    assert f"deploy with `nox -s deploy -- {cluster_deployment}` (hubploy;" in message


def deploy_chart_folder(deployment, into):
    """The chart folder a hubploy deploy hands helm: generated values, stamped version."""
    folder = into / "chart"
    shutil.copytree(chart.pinned().folder, folder)
    hubploy_deploy.add_generated_values(deployment, folder)
    return folder


def as_deployed(name: str):
    """The deployment as its deploy run has it, custom.generated included."""
    return load(name, extra_layers=cluster.runtime_layers(name, token="a-token"))


def render(folder, deployment, values: dict, tmp_path):
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    spec = deployment.spec
    return chart_parity.render(
        helm.binary(), folder, spec["release"], spec["namespace"], tmp_path / "values.yaml"
    )


@pytest.mark.parametrize("name", ["staging", "prod"])
def test_a_hubploy_deploy_carries_its_revision_and_renders(name, tmp_path):
    deployment = as_deployed(name)
    revision = deployment.values["custom"]["generated"]
    folder = deploy_chart_folder(deployment, tmp_path)
    assert yaml.safe_load((folder / "Chart.yaml").read_text())["version"].endswith(f"+{revision}")
    objects = render(folder, deployment, deployment.helm_values, tmp_path)
    assert hub_args(objects) == CHART_ARGS


def reuse_refusal(message: str, deployment) -> bool:
    spec = deployment.spec
    return (
        f"coursehub: release {spec['release']}: its generated values" in message
        and "`helm upgrade --reuse-values` keeps the last deploy's hub-config/ and courses"
        in message
        and f"deploy with `nox -s deploy -- {deployment.name}` (hubploy)" in message
    )


def test_reuse_values_with_the_plain_chart_is_refused(tmp_path):
    """`helm upgrade coursehub-staging jupyterhub/jupyterhub --reuse-values`: the last
    release's values (generated layers and all) beside the plain chart's version."""
    deployment = as_deployed("staging")
    with pytest.raises(RuntimeError) as refused:
        render(chart.pinned().folder, deployment, deployment.helm_values, tmp_path)
    assert reuse_refusal(str(refused.value), deployment)


def test_reuse_values_with_a_new_deploys_chart_folder_is_refused(tmp_path):
    """The chart folder of a new deploy (a course changed), with the last release's values."""
    deployment = as_deployed("staging")
    last = merge(deployment.helm_values, {"custom": {"generated": "0" * 12}})
    folder = deploy_chart_folder(deployment, tmp_path)
    with pytest.raises(RuntimeError) as refused:
        render(folder, deployment, last, tmp_path)
    assert reuse_refusal(str(refused.value), deployment)
