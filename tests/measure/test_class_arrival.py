"""A class arriving: every student reaches JupyterLab and the hub never exits.

scripts/measure/class_arrival.py walks each student through the real login and start.

A small class here, so it fits in `nox -s tests`; `nox -s loadtest` runs larger ones.
"""

from __future__ import annotations

from concurrent.futures import Future

import pytest
import yaml

from coursehub_tools.config import chart
from coursehub_tools.config.deployconfig import Layer, load
from coursehub_tools.local.local_hub import FIXTURE
from coursehub_tools.measure.class_arrival import (
    Arrival,
    class_fixture,
    run_class,
    stock_settings,
    why_stop,
)


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
    assert "tornado_settings" not in stock["config"]["JupyterHub"]
    assert stock["config"]["GitHubOAuthenticator"]["membership_fresh_for"] == 0


class FakeWatch:
    def __init__(self, exited_with=None):
        self.exited_with = exited_with


def done(arrival: Arrival) -> Future:
    future = Future()
    future.set_result(arrival)
    return future


@pytest.mark.unit
def test_the_run_stops_when_the_hub_exits_or_refuses_every_login():
    refused = [
        done(Arrival(f"s{i}", failure="HTTP 403 from /hub/oauth_callback")) for i in range(5)
    ]
    assert "exited with status 1" in why_stop(FakeWatch(exited_with=1), [])
    assert "refused every login so far (5): HTTP 403" in why_stop(FakeWatch(), refused)
    assert why_stop(FakeWatch(), refused[:4]) is None, "too few to tell"
    one_in = [*refused, done(Arrival("s9", login_seconds=1.0))]
    assert why_stop(FakeWatch(), one_in) is None, "someone got in: the hub is not refusing"


@pytest.mark.hub
def test_a_small_class_arrives_and_the_hub_stays_up(local_hub_pieces, tmp_path):
    result = run_class(6, 3, stock=False, state=tmp_path)
    assert result["hub_exited_with"] is None, (tmp_path / "hub.log").read_text()[-3000:]
    assert result["failures"] == {}
    assert result["ready"] == 6
    assert all(a["ready_seconds"] > a["login_seconds"] for a in result["arrivals"])


@pytest.mark.hub
def test_a_class_the_hub_refuses_stops_early_and_leaves_nothing_running(local_hub_pieces, tmp_path):
    # alumni: a team of the organization this hub does not admit (the stand-in's fixture).
    result = run_class(
        12, 3, stock=False, state=tmp_path, server="lightweight", team="coursehub-school:alumni"
    )
    assert "refused every login" in result["stopped_early_because"]
    assert result["ready"] == 0
    assert result["failures"]["not sent: the run stopped early"] >= 1
    assert result["cull"] is None
    assert result["processes_left"] == 0


@pytest.mark.hub
def test_a_lightweight_class_is_culled_in_one_pass_and_the_active_kept(local_hub_pieces, tmp_path):
    result = run_class(12, 2, stock=False, state=tmp_path, server="lightweight", stop_seconds=0.2)
    assert result["server"].startswith("lightweight")
    assert result["ready"] == 12, result["failures"]
    cull = result["cull"]
    assert cull["active"] >= 1 and cull["idle"] == 12 - cull["active"]
    assert cull["idle_left_running"] == 0, "every idle server stopped"
    assert cull["hub_cpu_seconds"] > 0, "the hub's CPU time during the pass, from /proc"
    assert cull["active_stopped"] == 0, "nobody active stopped"
    assert result["processes_left"] == 0
    assert "hub_profile" not in cull and "hub_profile_during_arrival" not in result


@pytest.mark.hub
def test_a_class_arrives_and_is_culled_through_kubespawner(local_hub_pieces, tmp_path):
    result = run_class(
        5, 2, stock=False, state=tmp_path, server="lightweight", deployment="local-kube"
    )
    assert result["spawner"] == "KubeSpawner on the Kubernetes stand-in"
    assert result["ready"] == 5, result["failures"]
    assert result["standin_cpu_seconds"] > 0, "the stand-in's own CPU, from /proc"
    assert result["cull"]["idle_left_running"] == 0 and result["cull"]["active_stopped"] == 0
    assert result["processes_left"] == 0, "no pod's process outlives the hub"


@pytest.mark.hub
def test_a_profiled_class_says_where_the_hubs_time_went(local_hub_pieces, tmp_path):
    # Forty, so that even the short cull gives py-spy enough samples for every step.
    result = run_class(
        40, 4, stock=False, state=tmp_path, server="lightweight", stop_seconds=0.2, profile=True
    )
    arrival, cull = result["hub_profile_during_arrival"], result["cull"]["hub_profile"]
    if arrival.get("unavailable", "").startswith("py-spy could not sample"):
        pytest.skip(f"py-spy cannot sample the hub on this machine: {arrival['unavailable']}")
    # The steps are named by upstream's functions: a rename upstream shows here as a zero.
    assert arrival["samples"] > 0 and cull["samples"] > 0
    assert arrival["share_by_step"]["logging in: GitHub's OAuth callback"] > 0
    assert arrival["share_by_step"]["starting servers (BaseHandler.spawn_single_user)"] > 0
    assert arrival["share_by_step"]["the servers' own OAuth with the hub"] > 0
    assert cull["share_by_step"]["stopping a server (JupyterHub's User.stop)"] > 0
    assert cull["share_by_step"]["database commits (in any step)"] > 0
    # Our share may round to 0 on a class this small, but it is never most.
    assert arrival["share_in_our_code"] < 0.5, "most of the hub's work is upstream's"
