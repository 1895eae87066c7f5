"""A hand-run `helm upgrade` of the plain chart is refused: helm fails, naming the deploy command.

The deploy hands helm the pinned chart with the generated values (hub-config/ as
hub.extraFiles, the course registry as custom.courses) in its values.yaml; z2jh's
documented `helm upgrade` passes only the values files. Both are rendered here by
helm (scripts/helm.py) from the kept chart, with each cluster deployment's values.
"""

from __future__ import annotations

import pytest
import yaml

from coursehub_tools import chart, chart_parity, helm
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
