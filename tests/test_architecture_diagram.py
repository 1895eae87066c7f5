"""The architecture picture is drawn from the configuration it shows."""

from __future__ import annotations

import shutil

import pytest
import yaml

from coursehub_tools.architecture_diagram import dot_source, svg
from coursehub_tools.deployconfig import load

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("deployment", ["staging", "prod"])
def test_every_course_host_and_setting_shown_comes_from_the_values(deployment):
    values = load(deployment).values
    source = dot_source(deployment)
    for slug, course in values["custom"]["courses"].items():
        assert f"{slug} server: {course['image']}" in source
    for host in values["proxy"]["https"]["hosts"]:
        assert host in source
    assert f"idle after {values['cull']['timeout'] // 60} min" in source
    assert f"{values['scheduling']['userPlaceholder']['replicas']} placeholders" in source


def test_it_renders_offline():
    if shutil.which("dot") is None:
        pytest.skip("graphviz's dot is not installed (nox -s book installs it)")
    assert svg(dot_source("prod")).lstrip().startswith("<?xml")


def test_the_pipeline_picture_is_the_workflows():
    from coursehub_tools.architecture_diagram import pipeline_source
    from coursehub_tools.deployconfig import ROOT

    source = pipeline_source()
    for path in (ROOT / ".github" / "workflows").glob("*.yml"):
        workflow = yaml.safe_load(path.read_text())
        for job, spec in workflow["jobs"].items():
            assert f'"{workflow["name"]}.{job}" [label="{job}"]' in source
            needs = spec.get("needs", [])
            for need in [needs] if isinstance(needs, str) else needs:
                assert f'"{workflow["name"]}.{need}" -> "{workflow["name"]}.{job}";' in source
    assert '"ci.tests" -> "deploy.image" [style=dashed];' in source, "deploy waits for ci"
