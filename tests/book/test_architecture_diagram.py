"""The architecture picture is drawn from the configuration it shows."""

from __future__ import annotations

import re
import shutil

import pytest
import yaml

from coursehub_tools.book.architecture_diagram import (
    dot_source,
    label_text,
    lifecycle_source,
    login_flow_source,
    svg,
)
from coursehub_tools.book.book_check import PAGE_WIDTH_PX, SMALLEST_READABLE_PX, smallest_text_px
from coursehub_tools.config.deployconfig import ROOT, Layer, load
from coursehub_tools.config.yamlfiles import read_yaml
from coursehub_tools.lifecycle import course_lifecycle
from coursehub_tools.local.local_hub import FIXTURE

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("deployment", ["staging", "prod"])
def test_every_course_host_and_setting_shown_comes_from_the_values(deployment):
    values = load(deployment).values
    source = label_text(dot_source(deployment))
    for slug, course in values["custom"]["courses"].items():
        assert f"{slug} server: {course['image']}" in source
    for host in values["proxy"]["https"]["hosts"]:
        assert host in source
    assert f"idle after {values['cull']['timeout'] // 60} min" in source
    assert f"{values['scheduling']['userPlaceholder']['replicas']} placeholders" in source


@pytest.mark.parametrize(
    "source",
    [lambda: dot_source("prod"), lambda: login_flow_source("prod"), lifecycle_source],
    ids=["architecture", "login", "lifecycle"],
)
def test_it_renders_offline_and_reads_at_the_pages_width(source):
    if shutil.which("dot") is None:
        pytest.fail("graphviz's dot is not installed (nox -s book installs it)")
    picture = svg(source())
    assert picture.lstrip().startswith("<?xml")
    smallest = smallest_text_px(picture)
    assert smallest >= SMALLEST_READABLE_PX, (
        f"shrunk to {PAGE_WIDTH_PX} px, its smallest text is {smallest:.1f} px"
    )


def test_the_pipeline_picture_is_the_workflows():
    from coursehub_tools.book.architecture_diagram import pipeline_source
    from coursehub_tools.config.deployconfig import ROOT

    source = pipeline_source()
    for path in (ROOT / ".github" / "workflows").glob("*.yml"):
        workflow = yaml.safe_load(path.read_text())
        for job, spec in workflow["jobs"].items():
            assert f'"{workflow["name"]}.{job}" [label="{job}"]' in source
            needs = spec.get("needs", [])
            for need in [needs] if isinstance(needs, str) else needs:
                assert f'"{workflow["name"]}.{need}" -> "{workflow["name"]}.{job}";' in source
    assert '"ci.tests" -> "deploy.image" [style=dashed];' in source, "deploy waits for ci"


def _fixture_teams() -> set[str]:
    """Every "org:team" of the GitHub stand-in's world, admitted or not."""
    world = read_yaml(FIXTURE)
    return {
        f"{organization}:{team}"
        for organization, spec in world["organizations"].items()
        for team in spec["teams"]
    }


@pytest.mark.parametrize("deployment", ["staging", "prod"])
def test_the_login_flow_shows_the_values_teams_scopes_and_refresh_times(deployment):
    values = load(deployment).values
    github = values["custom"]["github"]
    config = values["hub"]["config"]
    source = label_text(login_flow_source(deployment))
    admitted = {*github["adminTeams"], *github["instructorTeams"], *github["studentTeams"]}
    for team in admitted:
        assert team in source
    # Teams the stand-in knows but the values do not admit are not drawn as a way in.
    for team in _fixture_teams() - admitted:
        assert team not in source
    assert f"hub: {config['JupyterHub']['authenticator_class']}" in source
    for scope in config["GitHubOAuthenticator"]["scope"]:
        assert scope in source
    assert f"older than {config['Authenticator']['auth_refresh_age']} s" in source
    assert f"in the last {config['GitHubOAuthenticator']['membership_fresh_for']} s" in source
    for slug in values["custom"]["courses"]:
        assert slug in source


def test_the_login_flow_follows_a_change_in_the_values():
    team = "coursehub-school:visiting-students"
    refresh = {"auth_refresh_age": 42, "refresh_pre_spawn": False}
    values = {"custom": {"github": {"studentTeams": [team]}},
              "hub": {"config": {"Authenticator": refresh}}}  # fmt: skip
    change = Layer("a test layer", values)
    source = label_text(login_flow_source("prod", extra_layers=[change]))
    assert f"{team} (student)" in source
    assert "older than 42 s" in source
    assert "before each start" not in source, "no re-check before a start when it is off"


# One move of the lifecycle picture: "BEFORE" -> "AFTER" [label="who"];
MOVE = re.compile(r'^  "([A-Z]+)" -> "([A-Z]+)" \[label="([^"]*)"\];$', re.MULTILINE)
STATE = re.compile(r'^  "([A-Z]+)";$', re.MULTILINE)


def test_the_lifecycle_picture_is_the_table_of_moves():
    source = label_text(lifecycle_source())
    allowed = course_lifecycle.ALLOWED
    drawn = {(before, after): who for before, after, who in MOVE.findall(source)}
    assert set(drawn) == set(allowed), "every allowed move drawn, and nothing else"
    states = {state for move in allowed for state in move}
    assert set(STATE.findall(source)) == states
    approvers = read_yaml(ROOT / course_lifecycle.LIFECYCLE_FILE)["approvers"]
    for move, role in allowed.items():
        assert drawn[move].startswith(role)
        if role == "approver":
            assert all(name in drawn[move] for name in approvers)
    assert f'"request" -> "{course_lifecycle.REQUESTED}"' in source, "where a course starts"


def test_the_lifecycle_picture_follows_a_new_move(monkeypatch):
    moves = {**course_lifecycle.ALLOWED, ("DEGRADED", "ARCHIVED"): "dispatcher"}
    monkeypatch.setattr(course_lifecycle, "ALLOWED", moves)
    source = label_text(lifecycle_source())
    assert ("DEGRADED", "ARCHIVED", "dispatcher") in MOVE.findall(source)
    assert "ARCHIVED" in STATE.findall(source)
