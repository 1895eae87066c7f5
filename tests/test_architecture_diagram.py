"""The architecture picture is drawn from the configuration it shows."""

from __future__ import annotations

import shutil

import pytest

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
