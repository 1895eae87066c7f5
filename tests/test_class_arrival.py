"""A class arriving: every student reaches JupyterLab and the hub never exits.

scripts/class_arrival.py walks each student through the real login and start.

A small class here, so it fits in `nox -s tests`; `nox -s loadtest` runs larger ones.
"""

from __future__ import annotations

import pytest
import yaml

from coursehub_tools import chart
from coursehub_tools.class_arrival import class_fixture, run_class, stock_settings
from coursehub_tools.deployconfig import Layer, load
from coursehub_tools.local_hub import FIXTURE


@pytest.mark.unit
def test_the_class_joins_the_student_team_of_the_values():
    team = load("local").values["custom"]["github"]["studentTeams"][0]
    org, _, slug = team.partition(":")
    world = class_fixture(3, team)
    base = yaml.safe_load(FIXTURE.read_text())
    added = ["s001", "s002", "s003"]
    assert world["organizations"][org]["teams"][slug]["members"] == [
        *base["organizations"][org]["teams"][slug]["members"],
        *added,
    ]
    assert len({world["users"][login]["id"] for login in world["users"]}) == len(world["users"])


@pytest.mark.unit
def test_stock_settings_are_the_charts_defaults():
    stock = load("local", extra_layers=[Layer("stock", stock_settings())]).values["hub"]
    defaults = chart.defaults()["hub"]
    assert stock["consecutiveFailureLimit"] == defaults["consecutiveFailureLimit"]
    assert stock["concurrentSpawnLimit"] == defaults["concurrentSpawnLimit"]
    assert "http_timeout" not in stock["config"].get("Spawner", {})


@pytest.mark.hub
def test_a_small_class_arrives_and_the_hub_stays_up(local_hub_pieces, tmp_path):
    result = run_class(6, 3, stock=False, state=tmp_path)
    assert result["hub_exited_with"] is None, (tmp_path / "hub.log").read_text()[-3000:]
    assert result["failures"] == {}
    assert result["ready"] == 6
    assert all(a["ready_seconds"] > a["login_seconds"] for a in result["arrivals"])
