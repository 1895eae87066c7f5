"""LSST's Unix ids on the local hub: uid from GitHub, gids from organizations and teams.

The local hub's servers all run as the person running it, so what is checked is
what the hub decides at each start (the uid and gids it gives the spawner, which
KubeSpawner puts in the pod: tests/test_authentication_units.py), from what
GitHub's API (the stand-in) answers, a page at a time.
"""

from __future__ import annotations

import re

import pytest
import yaml

from coursehub_tools.github_standin import World
from coursehub_tools.hub_client import login_with_standin
from coursehub_tools.local_hub import FIXTURE
from coursehub_tools.waiting import wait_until

pytestmark = pytest.mark.hub
# GitHub answers at most 100 items a page (per_page); more than that takes two pages.
MORE_THAN_A_PAGE = 130


def hub_decision(log_path, user: str, timeout: float = 30) -> tuple[int, list[int]]:
    pattern = re.compile(rf"Running {user}'s server as uid (\d+) with groups \[([\d, ]*)\]")
    what = f"the hub's log line with the unix ids of {user}'s start"
    match = wait_until(lambda: pattern.search(log_path.read_text()), timeout, what)
    return int(match[1]), [int(g) for g in match[2].split(",") if g.strip()]


def test_gids_are_every_organization_and_team_of_the_member_over_pages(hub_factory, tmp_path):
    world = yaml.safe_load(FIXTURE.read_text())
    first = max(spec.get("id", 0) for spec in world["organizations"].values()) + 1
    for n in range(MORE_THAN_A_PAGE):
        world["organizations"][f"lab-{n:03}"] = {"id": first + n, "members": ["sam"]}
    fixture = tmp_path / "github-users.yaml"
    fixture.write_text(yaml.safe_dump(world))
    hub = hub_factory(fixture=fixture, extra_values={"custom": {"github": {"unixIds": True}}})
    login_with_standin(hub.url, "sam")
    expected = World.from_file(fixture, "id", "secret")
    groups = expected.orgs_of("sam") + expected.teams_of("sam")
    uid, gids = hub_decision(tmp_path / "hub0.log", "sam")
    assert uid == expected.users["sam"]["id"]
    assert gids == sorted(group["id"] for group in groups)
    assert len(expected.orgs_of("sam")) > 100 and len(expected.teams_of("sam")) > 0
