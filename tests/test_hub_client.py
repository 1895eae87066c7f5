"""The hub API client reads every page of a list, on a real local hub with two-item pages.

(Waiting out a busy hub and naming a refused call: tests/test_hub_api.py.)
"""

from __future__ import annotations

import pytest

from coursehub.courses import load_courses
from coursehub.github import team_names
from coursehub_tools.deployconfig import load
from coursehub_tools.dispatcher import Hub
from coursehub_tools.github_standin import World
from coursehub_tools.hub_api import PAGINATION, HubAPI, HubAPIError
from coursehub_tools.hub_client import login_with_standin
from coursehub_tools.local_hub import FIXTURE, LocalHub
from coursehub_tools.waiting import wait_until

pytestmark = pytest.mark.hub

PAGE = 2  # items a page, so that the fixture's few users fill several
WORLD = World.from_file(FIXTURE, "id", "secret")


def total(hub: LocalHub, path: str) -> int:
    """How many items the hub says the list has, from its first page."""
    first = hub.api("GET", path, headers={"Accept": PAGINATION})
    return first.json()["_pagination"]["total"]


def test_every_page_of_users_and_groups_is_read(hub_factory):
    courses = load_courses(load("local").values["custom"]["courses"])
    course = courses[0]
    short_pages = {"JupyterHub": {"api_page_default_limit": PAGE, "api_page_max_limit": PAGE}}
    today = {"CourseSpawner": {"today": course.start.isoformat()}}
    hub = hub_factory(extra_values={"hub": {"config": {**short_pages, **today}}},
                      server="lightweight")  # fmt: skip
    # Everyone the fixture's teams put in the course, each running it.
    members = sorted(
        login for login in WORLD.users if course.role(team_names({"teams": WORLD.teams_of(login)}))
    )
    assert len(members) > PAGE, "more servers than a page holds"
    for login in members:
        login_with_standin(hub.url, login, next_url="/hub/home").response.raise_for_status()
        started = hub.api("POST", f"/users/{login}/server", json={"profile": course.slug})
        assert started.status_code in (201, 202), started.text

    def all_ready() -> bool:
        users = hub.client.every("/users", state="ready")
        return sorted(user["name"] for user in users) == members

    wait_until(all_ready, 60, f"servers of {members} ready", every=0.5)
    unpaged = hub.api("GET", "/users", params={"state": "active"}).json()
    assert len(unpaged) == PAGE, "without paging, the hub answers one page and says no more"

    # The dispatcher stops every server of a course that ended, not a page of them.
    assert sorted(Hub(hub.url, hub.operator_token).running(course.slug, courses)) == members
    users = hub.client.every("/users")
    assert sorted(user["name"] for user in users) == members
    groups = [group["name"] for group in hub.client.every("/groups")]
    assert len(groups) == len(set(groups)) == total(hub, "/groups") > PAGE
    # A page's own limit, if asked for, is kept to the end.
    one_at_a_time = hub.client.every("/users", state="active", limit=1)
    assert sorted(user["name"] for user in one_at_a_time) == members
    with pytest.raises(HubAPIError, match=r"^GET /users: the hub answered 403"):
        HubAPI(hub.url, "not-a-token").every("/users")
