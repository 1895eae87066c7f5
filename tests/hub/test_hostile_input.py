"""What strangers and careless links send the hub: every answer a clear 4xx, nothing changed.

A real local hub with a student's JupyterLab running. Each request below is
malformed, oversized, forged, borrowed from another user or climbs out of a
path; each must get a 4xx (or the login redirect), never a 5xx, never a
traceback, and afterwards the users, groups, tokens and servers are as they were.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests

from coursehub import launch
from coursehub.courses import load_courses
from coursehub_tools.config.deployconfig import load
from coursehub_tools.config.hub_client import login_with_standin, own_token, wait_for_server

pytestmark = pytest.mark.hub

PREFIX = launch.notebook_prefix("/hub/")


@dataclass
class Visitors:
    hub: Any
    sam: requests.Session  # a student, server running
    sky: requests.Session  # another student, server stopped
    sam_token: str
    course: str
    anonymous: requests.Session = field(default_factory=requests.Session)


@pytest.fixture(scope="module")
def visitors(tmp_path_factory, start_hub):
    with start_hub(tmp_path_factory.mktemp("hostile")) as hub:
        sam = login_with_standin(hub.url, "sam", next_url="/hub/spawn").session
        wait_for_server(sam, hub.url, "sam")
        sky = login_with_standin(hub.url, "sky", next_url="/hub/home").session
        courses = load_courses(load("local").values["custom"]["courses"])
        yield Visitors(hub, sam, sky, own_token(sam, hub.url, "sam"), courses[0].slug)


def bearer(token: str) -> dict:
    return {"Authorization": f"token {token}"}


# (who, method, path, request keyword arguments): each must be refused.
HOSTILE = {
    # Malformed and oversized.
    "api-bad-json": ("sam-token", "POST", "/hub/api/users/sam/tokens", {"data": b"{not json"}),
    "api-json-not-object": ("sam-token", "POST", "/hub/api/users/sam/tokens", {"data": b"[1,"}),
    "api-huge-body": ("sam-token", "POST", "/hub/api/users/sam/tokens",
                      {"data": b'{"note": "' + b"x" * (8 << 20)}),
    "huge-header": ("sam", "GET", "/hub/home", {"headers": {"X-Junk": "x" * (32 << 10)}}),
    "huge-url": ("sam", "GET", "/hub/spawn?profile=" + "a" * (32 << 10), {}),
    "long-course-name": ("sam", "GET", "/hub/spawn?profile=" + "a" * 4000, {}),
    "nul-in-course": ("sky", "GET", "/hub/spawn?profile=%00", {}),
    "unicode-course": ("sky", "GET", "/hub/spawn?profile=" + quote("数据科学"), {}),
    "api-unknown-user": ("sam-token", "GET", "/hub/api/users/" + "x" * 300, {}),
    # Forged or borrowed credentials.
    "api-no-token": ("anonymous", "GET", "/hub/api/users", {}),
    "api-garbage-token": ("anonymous", "GET", "/hub/api/users", {"headers": bearer("garbage")}),
    "api-list-users": ("sam-token", "GET", "/hub/api/users", {}),
    "api-another-users-tokens": ("sam-token", "GET", "/hub/api/users/sky/tokens", {}),
    "api-make-token-for-another": ("sam-token", "POST", "/hub/api/users/sky/tokens", {"json": {}}),
    "api-start-another": ("sam-token", "POST", "/hub/api/users/sky/server", {}),
    "api-make-self-admin": ("sam-token", "PATCH", "/hub/api/users/sam", {"json": {"admin": True}}),
    "api-join-a-group": ("sam-token", "POST", "/hub/api/groups/coursehub-school:hub-admins/users",
                         {"json": {"users": ["sam"]}}),
    "api-delete-another": ("sam-token", "DELETE", "/hub/api/users/sky", {}),
    "another-users-server": ("sky", "GET", "/user/sam/api/contents", {}),
    "token-on-another-server": ("sam-token", "GET", "/user/sky/api/contents", {}),
    "cookie-without-xsrf": ("sam", "POST", "/hub/api/users/sam/tokens", {"json": {}}),
    "admin-page": ("sam", "GET", "/hub/admin", {}),
    "forged-oauth-state": ("anonymous", "GET", "/hub/oauth_callback?code=abc&state=forged", {}),
    "oauth-callback-no-args": ("anonymous", "GET", "/hub/oauth_callback", {}),
    # Paths that climb out.
    "api-user-dotdot": ("sam-token", "GET", "/hub/api/users/..%2f..%2fetc%2fpasswd", {}),
    "user-prefix-dotdot": ("sky", "GET", "/user/sky/..%2f..%2fhub%2fadmin", {}),
    "contents-dotdot": ("sam", "GET", "/user/sam/api/contents/..%2f..%2f..%2fetc%2fpasswd", {}),
    "files-dotdot": ("sam", "GET", "/user/sam/files/..%2f..%2f..%2fetc%2fpasswd", {}),
    "spawn-other-user": ("sam", "GET", "/hub/spawn/sky", {}),
    "launch-dotdot-running": ("sam", "GET",
                              "/hub/spawn?profile={course}&next=" + quote(PREFIX + "../../x"), {}),
    "launch-dotdot-stopped": ("sky", "GET",
                              "/hub/spawn?profile={course}&next=" + quote(PREFIX + "../../x"), {}),
    "launch-other-server": ("sky", "GET",
                            "/hub/spawn?profile={course}&next=" + quote("/user/sam/lab"), {}),
    "launch-offsite": ("sky", "GET",
                       "/hub/spawn?profile={course}&next=" + quote("https://evil.example/"), {}),
}  # fmt: skip


def session_for(visitors: Visitors, who: str) -> tuple[requests.Session, dict]:
    if who == "sam-token":
        return requests.Session(), bearer(visitors.sam_token)
    return getattr(visitors, who), {}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_request_is_refused_and_changes_nothing(visitors, case):
    who, method, path, kwargs = HOSTILE[case]
    session, headers = session_for(visitors, who)
    kwargs = {**kwargs, "headers": {**headers, **kwargs.get("headers", {})}}
    before = visitors.hub.snapshot()
    # Redirects are followed: where they end is what the visitor is told.
    response = session.request(
        method, visitors.hub.url + path.format(course=visitors.course), timeout=60, **kwargs
    )
    status = response.status_code
    assert 400 <= status < 500 or is_login_page(response), f"{case}: {status} {response.url}"
    assert "Traceback" not in response.text
    assert visitors.hub.snapshot() == before


def is_login_page(response: requests.Response) -> bool:
    """Someone not logged in is sent to log in: that is the refusal for them."""
    return response.status_code == 200 and urlsplit(response.url).path == "/hub/login"


def test_a_launch_link_before_login_keeps_the_link_through_login(visitors):
    courses = load_courses(load("local").values["custom"]["courses"])
    link = launch.launch_link("/hub/", courses[0])
    response = requests.get(visitors.hub.url + link, timeout=30)
    assert is_login_page(response)
    assert parse_qs(urlsplit(response.url).query)["next"] == [link]


def test_the_hub_logged_no_server_error(visitors):
    """Run last: no hostile request above made the hub answer 5xx.

    (JupyterHub does log a client's unparsable JSON at error level with a
    traceback, while the client gets a plain 400; that is upstream's choice.)
    """
    log = (visitors.hub.state_dir / "hub.log").read_text()
    assert "POST /hub/api/users/sam/tokens" in log, "the hub's log is where the tests expect it"
    assert re.findall(r"\] 5\d\d (?:GET|POST|PUT|PATCH|DELETE) \S+", log) == []
