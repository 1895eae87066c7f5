"""GitHub login on the local hub: who gets in, what teams make them, and every way it fails.

A real JupyterHub with the real (sub-classed) GitHubOAuthenticator, talking to
the GitHub stand-in. Team names come from the merged `local` values, users and
teams from the stand-in's fixture file.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlencode, urljoin, urlsplit, urlunsplit

import pytest
import requests
import yaml

from coursehub.courses import INSTRUCTOR, STUDENT, load_courses
from coursehub_tools.deployconfig import load
from coursehub_tools.example_content import make_content_repo
from coursehub_tools.github_standin import github_fault, set_membership
from coursehub_tools.hub_client import (
    callback_with_standin,
    error_message,
    login_with_standin,
    open_server_as,
    own_token,
    wait_for_server,
)
from coursehub_tools.local_hub import FIXTURE, LocalHub

pytestmark = pytest.mark.hub

WORLD = yaml.safe_load(FIXTURE.read_text())
# Short GitHub timeouts so "GitHub is slow" takes seconds (common.yaml's are longer).
TIMEOUT = 2
FAST_GITHUB = {
    "hub": {
        "config": {
            "GitHubOAuthenticator": {
                "http_request_kwargs": {"connect_timeout": TIMEOUT, "request_timeout": TIMEOUT}
            }
        }
    }
}

# Tests here change a team and start a server at once: no grace after a check.
RECHECK_AT_EVERY_START = {"hub": {"config": {"GitHubOAuthenticator": {"membership_fresh_for": 0}}}}


@dataclass(frozen=True)
class Teams:
    """The first admin, instructor and student team of custom.github, and all allowed ones."""

    admins: str
    instructors: str
    students: str
    allowed: list[str]


@pytest.fixture(scope="module")
def teams() -> Teams:
    github = load("local").values["custom"]["github"]
    kinds = ("adminTeams", "instructorTeams", "studentTeams")
    allowed = sorted(team for kind in kinds for team in github[kind])
    return Teams(*(github[kind][0] for kind in kinds), allowed)


def members(team: str) -> list[str]:
    org, slug = team.split(":")
    return WORLD["organizations"][org]["teams"][slug]["members"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory, start_hub):
    """This module's own hub and stand-in: tests here change teams and break GitHub."""
    with start_hub(
        tmp_path_factory.mktemp("authhub"), extra_values=[FAST_GITHUB, RECHECK_AT_EVERY_START]
    ) as hub:
        yield hub


def assert_refused(hub: LocalHub, response: requests.Response, status: int, user: str, *says):
    """A clear page, no traceback, a line in the hub log, and no user row."""
    assert response.status_code == status, response.text[:500]
    text = error_message(response.text)
    for phrase in says:
        assert phrase in text
    assert "Traceback" not in response.text
    assert f"GitHub login failed: {says[0]}" in (hub.state_dir / "hub.log").read_text()
    assert hub.api("GET", f"/users/{user}").status_code == 404


def with_query(url: str, **changes) -> str:
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    return urlunsplit(parts._replace(query=urlencode({**query, **changes})))


# --- who gets in ---------------------------------------------------------------------------


def test_student_gets_in_and_teams_become_groups(hub, teams):
    assert "sam" in members(teams.students)
    login = login_with_standin(hub.url, "sam")
    assert login.response.status_code == 200
    user = hub.api("GET", "/users/sam").json()
    assert teams.students in user["groups"]
    assert user["admin"] is False


def test_admin_team_is_admin(hub, teams):
    assert "ada" in members(teams.admins)
    login_with_standin(hub.url, "ada")
    user = hub.api("GET", "/users/ada").json()
    assert user["admin"] is True
    assert teams.admins in user["groups"]


def teams_of(login: str) -> list[str]:
    return sorted(
        f"{org}:{slug}"
        for org, spec in WORLD["organizations"].items()
        for slug, team in spec["teams"].items()
        if login in team["members"]
    )


# nora: in the organization, in no team; olga: outside it; wes: in a team the hub does not admit.
@pytest.mark.parametrize("login", ["nora", "olga", "wes"])
def test_non_members_and_wrong_team_are_refused(hub, login, teams):
    assert not set(teams_of(login)) & set(teams.allowed)
    held = ", ".join(teams_of(login)) or "no team this hub can see"
    allowed = ", ".join(teams.allowed)
    response = login_with_standin(hub.url, login).response
    assert_refused(
        hub,
        response,
        403,
        login,
        f"Login refused for GitHub user {login}: GitHub lists {held}, "
        "and none of these is a team of this hub's courses.",
        "Ask your instructor to add you",
        "approve",
    )
    # The teams the hub admits are the operator's to read, not a stranger's.
    for team in teams.allowed:
        assert team not in error_message(response.text)
    assert f"(this hub admits members of {allowed})" in (hub.state_dir / "hub.log").read_text()


def test_teams_are_refreshed_at_login(hub, teams):
    assert "ian" not in members(teams.students)
    set_membership(hub.standin_url, teams.students, "ian", True)
    try:
        login_with_standin(hub.url, "ian")
        assert teams.students in hub.api("GET", "/users/ian").json()["groups"]
    finally:
        set_membership(hub.standin_url, teams.students, "ian", False)
    login_with_standin(hub.url, "ian")
    assert teams.students not in hub.api("GET", "/users/ian").json()["groups"]


# --- every way a login fails -----------------------------------------------------------------


def test_denied_consent(hub):
    response = login_with_standin(hub.url, None).response
    assert_refused(
        hub,
        response,
        403,
        "sky",
        "You declined to share your GitHub identity with this hub",
        "choose Authorize",
    )


def test_forged_state(hub):
    session, url = callback_with_standin(hub.url, "sky")
    forged = base64.urlsafe_b64encode(json.dumps({"state_id": "0" * 32}).encode()).decode()
    response = session.get(with_query(url, state=forged), timeout=30)
    assert_refused(
        hub, response, 400, "sky", "This login link is not valid for this browser", "Start again"
    )


def test_replayed_callback(hub):
    session, url = callback_with_standin(hub.url, "tara")
    assert session.get(url, timeout=60).status_code == 200
    for replay in (session, requests.Session()):  # the same browser, and someone else's
        response = replay.get(url, timeout=30)
        assert response.status_code == 400
        assert "This login link is not valid for this browser" in error_message(response.text)


def test_code_github_does_not_accept(hub):
    session, url = callback_with_standin(hub.url, "sky")
    response = session.get(with_query(url, code="made-up"), timeout=30)
    assert_refused(
        hub,
        response,
        403,
        "sky",
        "GitHub refused to confirm this login: The code passed is incorrect or expired.",
        "tell the hub's admins",
    )


@pytest.mark.parametrize("endpoint, status", [("token", 502), ("user", 503), ("teams", 500)])
def test_github_answers_5xx(hub, endpoint, status):
    with github_fault(hub.standin_url, endpoint, status=status):
        response = login_with_standin(hub.url, "sky").response
    assert_refused(
        hub,
        response,
        502,
        "sky",
        f"GitHub answered {status}",
        "wait a minute and log in again",
    )


def test_github_answers_slowly(hub):
    with github_fault(hub.standin_url, "teams", delay=TIMEOUT + 2):
        started = time.monotonic()
        response = login_with_standin(hub.url, "sky").response
    assert time.monotonic() - started < TIMEOUT + 2, "the hub waited longer than its timeout"
    assert_refused(hub, response, 504, "sky", "GitHub did not answer in time", "log in again")


# --- instructors and TAs ---------------------------------------------------------------------


def test_ta_reaches_student_servers_but_is_not_admin(hub, teams):
    assert "tara" in members(teams.instructors)
    student = login_with_standin(hub.url, "sam")
    wait_for_server(student.session, hub.url, "sam")
    ta = login_with_standin(hub.url, "tara")
    as_ta = {"Authorization": f"token {own_token(ta.session, hub.url, 'tara')}"}

    def api(method, path):
        return requests.request(method, f"{hub.url}/hub/api{path}", headers=as_ta, timeout=60)

    # Students: listed, readable, their servers reachable and stoppable.
    assert "sam" in [user["name"] for user in api("GET", "/users").json()]
    assert api("GET", "/users/sam").status_code == 200
    lab = open_server_as(ta.session, hub.url, "sam")
    assert lab.status_code == 200 and "/user/sam/lab" in lab.url, "the TA opens sam's server"
    assert "JupyterLab" in lab.text
    assert ta.session.get(f"{hub.url}/hub/admin", timeout=30).status_code == 200
    assert api("DELETE", "/users/sam/server").status_code in (202, 204)
    # Not admin: no one outside the student teams, no groups, no user management.
    assert "ada" not in [user["name"] for user in api("GET", "/users").json()]
    assert api("GET", "/users/ada").status_code in (403, 404)
    assert api("GET", "/groups").status_code == 403
    assert api("POST", "/users/newcomer").status_code == 403
    assert api("DELETE", "/users/sam").status_code == 403
    assert hub.api("GET", "/users/tara").json()["admin"] is False
    # A student has none of it.
    assert student.session.get(f"{hub.url}/hub/admin", timeout=30).status_code == 403


def test_a_ta_reaches_the_students_of_their_own_courses_and_no_others(hub_factory, tmp_path):
    """The wall between courses: who reaches whom comes from the registry and the fixture's
    teams (a TA of one course, an instructor of both, one student of each course)."""
    entries = load("local").values["custom"]["courses"]
    courses = load_courses(entries)
    day = max(course.start for course in courses)  # every course open to its students
    assert all(day <= course.end for course in courses)
    # GitHub's content repositories are out of reach here: the example content stands in.
    content = {"repo": make_content_repo(tmp_path / "content"), "branch": "main"}
    walled = hub_factory(extra_values={
        "hub": {"config": {"CourseSpawner": {"today": day.isoformat()}}},
        "custom": {"courses": {slug: {"content": content} for slug in entries}},
    })  # fmt: skip

    def teaches(login: str, student: str) -> bool:
        return any(
            c.role(teams_of(login)) == INSTRUCTOR and c.role(teams_of(student)) == STUDENT
            for c in courses
        )

    students, staff = ("sam", "bea"), ("tom", "ian")
    expected = {(who, student): teaches(who, student) for who in staff for student in students}
    assert set(expected.values()) == {True, False}, "the fixture has a wall to test"
    assert [who for who in staff if all(teaches(who, s) for s in students)] == ["ian"]
    for student in students:
        wait_for_server(login_with_standin(walled.url, student).session, walled.url, student)
    # Each server on its own host (subdomain_host), asked there: its own OAuth decides.
    servers = {s: urljoin(walled.url, walled.api("GET", f"/users/{s}").json()["servers"][""]["url"])
               for s in students}  # fmt: skip
    for who in staff:
        login = login_with_standin(walled.url, who)
        token = {"Authorization": f"token {own_token(login.session, walled.url, who)}"}
        for student in students:
            reached = expected[(who, student)]
            record = requests.get(f"{walled.url}/hub/api/users/{student}", headers=token,
                                  timeout=30)  # fmt: skip
            if reached:
                lab = open_server_as(login.session, walled.url, student)
                assert lab.url.startswith(f"{servers[student]}lab"), (who, student)
            else:
                lab = login.session.get(f"{servers[student]}lab", timeout=60)
            # The server's API with the cookie the hub's OAuth gave the browser. (Not with a
            # hub token: a server cannot tell a group's members, so a token whose access is
            # by group opens no server's API. ref: jupyterhub 5.5 services/auth.py check_scopes)
            files = login.session.get(f"{servers[student]}api/contents", timeout=60)
            statuses = (record.status_code, files.status_code, lab.status_code)
            # Out of reach, the hub's API does not even say whether the user exists.
            assert statuses == ((200, 200, 200) if reached else (404, 403, 403)), (who, student)


# --- revocation ------------------------------------------------------------------------------


def server_running(hub: LocalHub, user: str) -> bool:
    return bool(hub.api("GET", f"/users/{user}").json()["servers"])


def test_removed_student_cannot_start_a_server_or_log_in(hub, teams):
    login = login_with_standin(hub.url, "sam")
    assert login.response.status_code == 200
    hub.client.stop_servers({"sam"}, timeout=30)
    set_membership(hub.standin_url, teams.students, "sam", False)
    try:
        # The browser session is recent, but starting a server re-checks GitHub.
        spawn = login.session.get(f"{hub.url}/hub/spawn", timeout=30)
        assert spawn.status_code == 403
        assert "login again" in error_message(spawn.text)
        assert not server_running(hub, "sam")
        again = login_with_standin(hub.url, "sam").response
        assert again.status_code == 403
        assert "Login refused for GitHub user sam" in error_message(again.text)
        assert "Revoking sam's session" in (hub.state_dir / "hub.log").read_text()
        assert teams.students not in hub.api("GET", "/users/sam").json()["groups"]
    finally:
        set_membership(hub.standin_url, teams.students, "sam", True)


def test_a_start_right_after_login_does_not_ask_github_again(hub_factory, tmp_path):
    fresh = hub_factory()
    fresh_for = load("local").values["hub"]["config"]["GitHubOAuthenticator"][
        "membership_fresh_for"
    ]
    assert fresh_for > 0
    login = login_with_standin(fresh.url, "sam")
    wait_for_server(login.session, fresh.url, "sam")
    # The stand-in logs each call into the hub's log: the login's teams call only.
    log = next(tmp_path.glob("hub*.log")).read_text()
    assert log.count("GET /api/v3/user/teams") == 1


def test_only_the_smoke_test_group_starts_without_a_github_check(hub_factory, teams):
    """The deploy pipeline's test users come through the REST API, with no GitHub token:
    in custom.github.smokeTestGroup they start; a user made the same way outside it
    is refused, as the GitHub re-check before each start refuses anyone it cannot ask."""
    smoke = "smoke-tests"
    api_hub = hub_factory(
        extra_values=[RECHECK_AT_EVERY_START, {"custom": {"github": {"smokeTestGroup": smoke}}}]
    )
    for group, users in ((teams.students, ["probe", "stranger"]), (smoke, ["probe"])):
        api_hub.api("POST", f"/groups/{quote(group, safe='')}")
        for user in users:
            api_hub.api("POST", f"/users/{user}")
        joined = api_hub.api(
            "POST", f"/groups/{quote(group, safe='')}/users", json={"users": users}
        )
        assert joined.status_code == 200, joined.text
    assert api_hub.api("POST", "/users/probe/server").status_code in (201, 202)
    refused = api_hub.api("POST", "/users/stranger/server")
    assert refused.status_code == 403, refused.text
    assert "login again" in refused.json()["message"]


def test_removed_student_loses_the_session_at_auth_refresh(hub_factory, teams):
    age = 2
    refreshing = hub_factory(
        extra_values={"hub": {"config": {"Authenticator": {"auth_refresh_age": age}}}}
    )
    login = login_with_standin(refreshing.url, "sky")
    wait_for_server(login.session, refreshing.url, "sky")
    assert login.session.get(f"{refreshing.url}/hub/home", timeout=30).url.endswith("/hub/home")
    set_membership(refreshing.standin_url, teams.students, "sky", False)
    time.sleep(age + 0.5)
    home = login.session.get(f"{refreshing.url}/hub/home", timeout=30)
    assert "/hub/login" in home.url, "the stale session is sent back to log in"
    # Her running server stops with the session, rather than running on until culled.
    refreshing.client.wait_stopped({"sky"}, timeout=30)
    assert "/user/sky/" not in refreshing.api("GET", "/proxy").json()


# --- the whole flow in a browser -------------------------------------------------------------


@pytest.mark.browser
def test_browser_logs_in_through_github_and_lands_in_jupyterlab(hub, browser, teams):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    # A student of one open course: no course choice between login and JupyterLab.
    assert "sam" in members(teams.students)
    browser.get(f"{hub.url}/hub/login")
    browser.find_element(By.PARTIAL_LINK_TEXT, "Sign in with GitHub").click()
    assert "NOT GitHub" in browser.title, "the stand-in says what it is"
    browser.find_element(By.CSS_SELECTOR, 'button[value="sam"]').click()
    WebDriverWait(browser, 120).until(ready.url_contains("/user/sam/lab"))
    WebDriverWait(browser, 120).until(
        ready.presence_of_element_located((By.CSS_SELECTOR, ".jp-LabShell"))
    )
    assert server_running(hub, "sam")


# --- the SSO alternative ---------------------------------------------------------------------


def test_sso_overlay_makes_a_new_user_per_visit_and_culls_them(hub_factory):
    values = load("local-sso").values
    guests = values["hub"]["config"]["GuestTmpAuthenticator"]["guest_groups"]
    sso = hub_factory(deployment="local-sso")
    names = []
    for _visit in range(2):
        session = requests.Session()
        session.get(f"{sso.url}/hub/login", timeout=60)
        model = session.get(f"{sso.url}/hub/api/user", timeout=30).json()
        user = model["name"]
        assert model["groups"] == guests, "courses open to these groups are open to guests"
        wait_for_server(session, sso.url, user)
        names.append(user)
    listed = {user["name"] for user in sso.api("GET", "/users").json()}
    assert len(set(names)) == 2 and set(names) <= listed, "each visit is a new user"
    culler = sso.api("GET", "/services/jupyterhub-idle-culler").json()["command"]
    assert "--cull-users" in culler
    assert f"--timeout={values['cull']['timeout']}" in culler
