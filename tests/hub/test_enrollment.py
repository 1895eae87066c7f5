"""Enrollment by invite link: the link's check, and the service on a real local hub.

Someone outside every team (nora: in the organization, in no team; olga: outside
it) follows a course's invite link, logs in through the GitHub stand-in and
applies; the course's instructor (ian) approves or rejects; an approved
applicant starts the course like a team member and keeps the course at later logins.
"""

from __future__ import annotations

import html
from datetime import timedelta
from urllib.parse import parse_qs, quote, urlencode, urlparse

import pytest
import requests

from coursehub.courses import INSTRUCTOR, STUDENT, Course, load_courses
from coursehub.enrollment import (
    check_invite,
    enrollment_group,
    invited_course,
    make_invite,
    service_role,
)
from coursehub.github import team_names
from coursehub.refusal import Refused
from coursehub_tools.config.deployconfig import load
from coursehub_tools.config.hub_client import (
    Login,
    error_message,
    follow_progress,
    login_with_standin,
    own_token,
)
from coursehub_tools.local.github_standin import World, set_membership
from coursehub_tools.local.local_hub import FIXTURE

COURSES = load("local").values["custom"]["courses"]
SLUG = "data-science-101"
COURSE = next(course for course in load_courses(COURSES) if course.slug == SLUG)
KEY = "the enrollment service's token"
# The hub's pinned date: data-science-101 is open to students, climate-lab
# (starting later) takes applications.
DAY = COURSE.start + timedelta(days=1)
SERVICE = "/services/enrollment/"
WORLD = World.from_file(FIXTURE, "id", "secret")


def teams_of(login: str) -> list[str]:
    """The groups the GitHub login gives `login`: their teams in the stand-in's fixture."""
    return team_names({"teams": WORLD.teams_of(login)})


def refusal(check, *args) -> Refused:
    """The refusal `check(*args)` raises: what the person is shown, and its status."""
    with pytest.raises(Refused) as refused:
        check(*args)
    return refused.value


# --- the link -------------------------------------------------------------------------------


@pytest.mark.unit
def test_an_invite_works_until_its_last_day():
    last = DAY + timedelta(days=14)
    token = make_invite(KEY, SLUG, last)
    assert check_invite(KEY, SLUG, token, last, COURSE) == last
    expired = refusal(check_invite, KEY, SLUG, token, last + timedelta(days=1), COURSE)
    assert expired.status_code == 410 and f"expired on {last}" in expired.jupyterhub_message


@pytest.mark.unit
@pytest.mark.parametrize(
    "forge",
    [
        lambda token: token[:-1] + ("0" if token[-1] != "0" else "1"),  # one character changed
        lambda token: "2099-12-31." + token.partition(".")[2],  # a later last day
        lambda token: make_invite("another key", SLUG, DAY + timedelta(days=3)),
    ],
)
def test_a_forged_or_damaged_invite_is_refused(forge):
    token = forge(make_invite(KEY, SLUG, DAY + timedelta(days=3)))
    refused = refusal(check_invite, KEY, SLUG, token, DAY, COURSE)
    assert refused.status_code == 403
    assert "not valid for data-science-101" in refused.jupyterhub_message


# What a careless copy or a curious visitor makes of a link: none of it is an invite.
MALFORMED_INVITES = {
    "non-ascii signature": "2027-02-14.\u00e9",  # ?invite=2027-02-14.%C3%A9
    "copied incompletely": "2027-02-14.0123456789abcdef",
    "no signature": "2027-02-14",
    "empty": "",
    "no such day": "2027-02-30." + "0" * 32,
    "upper-case hex": "2027-02-14." + "A" * 32,
    "nul": "2027-02-14.\x00" + "0" * 31,
}


@pytest.mark.unit
@pytest.mark.parametrize("token", MALFORMED_INVITES.values(), ids=MALFORMED_INVITES.keys())
def test_a_malformed_invite_is_refused_saying_what_an_invite_looks_like(token):
    refused = refusal(check_invite, KEY, SLUG, token, DAY, COURSE)
    assert refused.status_code == 400 and refused.why == "malformed invite"
    assert "must be a day (YYYY-MM-DD), a dot and 32 hexadecimal digits" in (
        refused.jupyterhub_message
    )


@pytest.mark.unit
def test_an_invite_to_one_course_does_not_open_another():
    other = next(course for course in load_courses(COURSES) if course.slug != SLUG)
    token = make_invite(KEY, SLUG, DAY + timedelta(days=3))
    assert (
        "not valid" in refusal(check_invite, KEY, other.slug, token, DAY, other).jupyterhub_message
    )


@pytest.mark.unit
@pytest.mark.parametrize(
    ("state", "day", "why"),
    [
        ("DEGRADED", DAY, "not open on this hub"),
        ("REQUESTED", DAY, "not open on this hub"),
        ("DEPLOYED", COURSE.end + timedelta(days=1), f"closed on {COURSE.end}"),
    ],
)  # fmt: skip
def test_an_invite_to_a_closed_course_is_refused(state, day, why):
    entry = {**COURSES[SLUG], "lifecycle": {**COURSES[SLUG]["lifecycle"], "state": state}}
    course = Course.from_values(entry)
    token = make_invite(KEY, SLUG, day + timedelta(days=3))
    refused = refusal(check_invite, KEY, SLUG, token, day, course)
    assert refused.status_code == 410 and why in refused.jupyterhub_message


@pytest.mark.unit
def test_an_accepted_course_takes_applications_before_it_starts():
    entry = {**COURSES[SLUG], "lifecycle": {**COURSES[SLUG]["lifecycle"], "state": "ACCEPTED"}}
    before = COURSE.start - timedelta(days=7)
    token = make_invite(KEY, SLUG, before + timedelta(days=3))
    assert check_invite(KEY, SLUG, token, before, Course.from_values(entry))


@pytest.mark.unit
@pytest.mark.parametrize(
    ("next_url", "invited"),
    [
        (f"{SERVICE}invite/{SLUG}?invite=t", (SLUG, "t")),
        (f"{SERVICE}invite/{SLUG}", (SLUG, "")),
        (f"https://elsewhere.example{SERVICE}invite/{SLUG}?invite=t", None),
        (f"/hub/spawn?next={SERVICE}invite/{SLUG}", None),
        (f"{SERVICE}invite/{SLUG}/more?invite=t", None),
        (None, None),
    ],
)  # fmt: skip
def test_only_this_hubs_invite_path_counts_as_an_invite(next_url, invited):
    assert invited_course(next_url, SERVICE) == invited


@pytest.mark.unit
def test_an_enrolled_student_is_a_student_and_no_team_can_be_one():
    group = enrollment_group(SLUG)
    assert COURSE.role([group]) == STUDENT
    assert ":" not in group, "every GitHub team's group is organization:team"
    role = service_role(COURSES)
    assert {scope.split("!group=")[1] for scope in role["scopes"]} == {
        enrollment_group(slug) for slug in COURSES
    }


# --- the service on a local hub ---------------------------------------------------------------


@pytest.fixture(scope="module")
def hub(tmp_path_factory, start_hub):
    today = {"hub": {"config": {"CourseSpawner": {"today": DAY.isoformat()}}}}
    with start_hub(
        tmp_path_factory.mktemp("enrollment"), extra_values=today, server="lightweight"
    ) as hub:
        yield hub


def invite_link(hub, slug: str = SLUG) -> str:
    """The link ian's page shows for `slug`, as a path on the hub."""
    ian = login_with_standin(hub.url, "ian", next_url=SERVICE).response
    assert ian.status_code == 200 and "Invite link" in ian.text
    start = ian.text.index(f"{SERVICE}invite/{slug}?")
    url = ian.text[start : ian.text.index("<", start)].replace("&amp;", "&")
    return url


def follow_invite(hub, login: str, link: str) -> Login:
    """What a browser does with the link: the service sends it to the hub's login, the
    stand-in logs `login` in, and the hub sends it back to the link."""
    first = requests.get(hub.url + link, allow_redirects=False, timeout=30)
    assert first.status_code == 302, first.text
    next_url = parse_qs(urlparse(first.headers["Location"]).query)["next"][0]
    return login_with_standin(hub.url, login, next_url=next_url)


def invite_of(link: str) -> str:
    return parse_qs(urlparse(link).query)["invite"][0]


def api(token: str, hub, method: str, path: str, **kwargs) -> requests.Response:
    """The service's REST API, with a user's token."""
    headers = {"Authorization": f"token {token}"}
    return requests.request(
        method, f"{hub.url}{SERVICE}api/{path}", headers=headers, timeout=30, **kwargs
    )


def token_of(hub, login: str) -> str:
    session = login_with_standin(hub.url, login).session
    return own_token(session, hub.url, login)


@pytest.mark.hub
def test_each_course_on_the_hub_has_its_enrollment_group_before_anyone_applies(hub):
    # The service makes the groups before it listens: once it answers, they are there.
    assert requests.get(hub.url + SERVICE, allow_redirects=False, timeout=30).status_code == 302
    for slug in COURSES:
        group = hub.api("GET", f"/groups/{quote(enrollment_group(slug))}")
        assert group.status_code == 200, f"{slug}'s enrollment group is missing"
        # No applications yet, and noted for this run of the course (its start).
        start = str(COURSES[slug]["start"])
        assert group.json()["users"] == [] and group.json()["properties"] == {"run": start}


@pytest.mark.hub
def test_an_applicant_outside_every_team_applies_is_approved_and_starts_the_course(hub):
    link = invite_link(hub)
    login = follow_invite(hub, "nora", link)
    assert login.response.status_code == 200 and "id='apply'" in login.page
    assert hub.api("GET", "/users/nora").json()["groups"] == [], "let in, admitted to nothing"
    session, invite = login.session, invite_of(link)

    # REST: nora applies; ian (an instructor) sees it; sam (a student) may not look.
    nora_token = own_token(session, hub.url, "nora")
    applied = api(nora_token, hub, "POST", f"courses/{SLUG}/applications", json={"invite": invite})
    assert applied.status_code == 200 and applied.json()["state"] == "pending"
    again = api(nora_token, hub, "POST", f"courses/{SLUG}/applications", json={"invite": invite})
    assert again.json()["applied"] == applied.json()["applied"], "applying twice is one application"
    ian = token_of(hub, "ian")
    listed = api(ian, hub, "GET", f"courses/{SLUG}/applications").json()["applications"]
    assert listed["nora"]["state"] == "pending"
    sam = token_of(hub, "sam")
    refused = api(sam, hub, "GET", f"courses/{SLUG}/applications")
    assert refused.status_code == 403 and "Only the instructors" in refused.json()["message"]

    # Nobody approves themself; a pending applicant cannot start the course yet.
    self_approval = api(nora_token, hub, "POST", f"courses/{SLUG}/applications/nora",
                        json={"decision": "approve"})  # fmt: skip
    assert self_approval.status_code == 403
    assert hub.api("GET", "/users/nora").json()["groups"] == []
    waiting = session.get(f"{hub.url}/hub/spawn", timeout=30)
    assert waiting.status_code == 403
    assert f"Your application to {SLUG} waits for an instructor's approval" in html.unescape(
        waiting.text
    )
    home = session.get(f"{hub.url}/hub/home", allow_redirects=False, timeout=30)
    assert home.status_code == 200, "the refresh at Start kept the applicant's session"

    approved = api(
        ian, hub, "POST", f"courses/{SLUG}/applications/nora", json={"decision": "approve"}
    )
    assert approved.status_code == 200 and approved.json()["by"] == "ian"
    group = hub.api("GET", f"/groups/{quote(enrollment_group(SLUG))}").json()
    assert group["users"] == ["nora"]

    # A later login, without the link, keeps the course; nora starts it.
    later = login_with_standin(hub.url, "nora", next_url="/hub/spawn")
    assert enrollment_group(SLUG) in hub.api("GET", "/users/nora").json()["groups"]
    ready = follow_progress(later.session, hub.url, "nora")
    assert ready.status_code == 200
    server = hub.api("GET", "/users/nora").json()["servers"][""]
    assert server["user_options"].get("profile", SLUG) == SLUG
    hub.api("DELETE", "/users/nora/server")


def run_of_the_course(years_later: int) -> dict:
    """Values for a run of SLUG `years_later` years after the registry's, on its second day."""
    moved = timedelta(days=364 * years_later)  # whole weeks: the same weekdays
    start, end = COURSE.start + moved, COURSE.end + moved
    return {
        "hub": {"config": {"CourseSpawner": {"today": (DAY + moved).isoformat()}}},
        "custom": {"courses": {SLUG: {"start": start.isoformat(), "end": end.isoformat()}}},
    }


@pytest.mark.hub
def test_a_later_run_of_a_course_under_the_same_slug_starts_with_no_applications(
    tmp_path, start_hub
):
    """An applicant approved (then taken out when the run ended) or rejected in an earlier
    run is neither told "approved" or "declined" nor let in: they apply again."""
    with start_hub(tmp_path, extra_values=run_of_the_course(0), server="lightweight") as first:
        link = invite_link(first)
        ian = token_of(first, "ian")
        for applicant, decision in (("nora", "approve"), ("olga", "reject")):
            login = follow_invite(first, applicant, link)
            token = own_token(login.session, first.url, applicant)
            body = {"invite": invite_of(link)}
            assert api(token, first, "POST", f"courses/{SLUG}/applications", json=body).ok
            decided = api(ian, first, "POST", f"courses/{SLUG}/applications/{applicant}",
                          json={"decision": decision})  # fmt: skip
            assert decided.ok, decided.text
        # The end of the run, as the dispatcher ends it: the group is emptied.
        group = f"/groups/{quote(enrollment_group(SLUG))}"
        assert first.api("DELETE", f"{group}/users", json={"users": ["nora"]}).ok

    with start_hub(tmp_path, extra_values=run_of_the_course(1), server="lightweight") as second:
        link = invite_link(second)
        nora = follow_invite(second, "nora", link)
        assert "approved" not in nora.page and "id='apply'" in nora.page, nora.page
        assert login_with_standin(second.url, "nora").response.status_code == 403, "not let in"
        for applicant in ("nora", "olga"):
            login = follow_invite(second, applicant, link)
            token = own_token(login.session, second.url, applicant)
            body = {"invite": invite_of(link)}
            again = api(token, second, "POST", f"courses/{SLUG}/applications", json=body)
            assert again.status_code == 200 and again.json()["state"] == "pending", again.text
        # The earlier run's decisions are kept, not used.
        properties = second.api("GET", group).json()["properties"]
        (earlier,) = properties["earlier"].values()
        assert {name: a["state"] for name, a in earlier.items()} == {
            "nora": "approved", "olga": "rejected"}  # fmt: skip


@pytest.mark.hub
def test_a_rejected_applicant_stays_out(hub):
    link = invite_link(hub)
    olga = follow_invite(hub, "olga", link)
    assert olga.response.status_code == 200
    token, invite = own_token(olga.session, hub.url, "olga"), invite_of(link)
    assert api(token, hub, "POST", f"courses/{SLUG}/applications", json={"invite": invite}).ok
    ian = token_of(hub, "ian")
    rejected = api(
        ian, hub, "POST", f"courses/{SLUG}/applications/olga", json={"decision": "reject"}
    )
    assert rejected.json()["state"] == "rejected"
    twice = api(ian, hub, "POST", f"courses/{SLUG}/applications/olga", json={"decision": "approve"})
    assert twice.status_code == 409 and "rejected already" in twice.json()["message"]
    retry = api(token, hub, "POST", f"courses/{SLUG}/applications", json={"invite": invite})
    assert retry.status_code == 409 and "declined" in retry.json()["message"]
    assert login_with_standin(hub.url, "olga").response.status_code == 403, "no link, no team: out"
    assert enrollment_group(SLUG) not in hub.api("GET", "/users/olga").json()["groups"]


@pytest.mark.hub
def test_only_a_valid_token_lets_a_request_skip_the_xsrf_check(hub):
    # ada (an admin, in no team of the course) applies; ian's browser is logged in to the service.
    ada = token_of(hub, "ada")
    invite = invite_of(invite_link(hub))
    assert api(ada, hub, "POST", f"courses/{SLUG}/applications", json={"invite": invite}).ok
    browser = login_with_standin(hub.url, "ian", next_url=SERVICE).session
    decide = f"{hub.url}{SERVICE}api/courses/{SLUG}/applications/ada"
    for header in ("x", "token not-a-token", "bearer "):
        # What another site's page could send with ian's cookie: no _xsrf.
        forged = browser.post(decide, json={"decision": "approve"},
                              headers={"Authorization": header}, timeout=30)  # fmt: skip
        assert forged.status_code == 403 and "_xsrf" in forged.json()["message"], header
    assert "ada" not in hub.api("GET", f"/groups/{quote(enrollment_group(SLUG))}").json()["users"]
    ian = token_of(hub, "ian")
    listed = api(ian, hub, "GET", f"courses/{SLUG}/applications").json()["applications"]
    assert listed["ada"]["state"] == "pending"
    # ian's own token needs no _xsrf.
    decided = api(ian, hub, "POST", f"courses/{SLUG}/applications/ada", json={"decision": "reject"})
    assert decided.status_code == 200 and decided.json()["state"] == "rejected"


@pytest.mark.hub
def test_nobody_decides_their_own_application_even_once_they_teach_the_course(hub):
    """tom, a TA of another course, applies; then joins the course's instructor team (as a
    student who becomes a TA would). His own application stays for another instructor."""
    (team,) = COURSE.instructor_groups
    assert COURSE.role(teams_of("tom")) is None, "tom starts outside the course"
    tom, invite = token_of(hub, "tom"), invite_of(invite_link(hub))
    assert api(tom, hub, "POST", f"courses/{SLUG}/applications", json={"invite": invite}).ok
    set_membership(hub.standin_url, team, "tom", True)
    try:
        teaching = token_of(hub, "tom")  # a new login: the hub now puts him in the team's group
        assert team in hub.api("GET", "/users/tom").json()["groups"]
        own = api(teaching, hub, "POST", f"courses/{SLUG}/applications/tom",
                  json={"decision": "approve"})  # fmt: skip
        assert own.status_code == 403 and "Nobody decides their own" in own.json()["message"]
    finally:
        set_membership(hub.standin_url, team, "tom", False)
    assert "tom" not in hub.api("GET", f"/groups/{quote(enrollment_group(SLUG))}").json()["users"]
    listed = api(token_of(hub, "ian"), hub, "GET", f"courses/{SLUG}/applications")
    assert listed.json()["applications"]["tom"]["state"] == "pending"


@pytest.mark.hub
def test_the_instructors_of_one_course_neither_see_nor_decide_anothers_applications(hub):
    other = next(course for course in load_courses(COURSES) if course.slug != SLUG)
    bea, invite = token_of(hub, "bea"), invite_of(invite_link(hub))
    assert COURSE.role(teams_of("bea")) is None and other.role(teams_of("tom")) == INSTRUCTOR
    assert api(bea, hub, "POST", f"courses/{SLUG}/applications", json={"invite": invite}).ok
    tom = token_of(hub, "tom")  # teaches the other course only
    page = login_with_standin(hub.url, "tom", next_url=SERVICE).page
    assert f"{SERVICE}invite/{other.slug}?" in page and f"{SERVICE}invite/{SLUG}?" not in page
    listed = api(tom, hub, "GET", f"courses/{SLUG}/applications")
    assert listed.status_code == 403 and "Only the instructors" in listed.json()["message"]
    decided = api(tom, hub, "POST", f"courses/{SLUG}/applications/bea",
                  json={"decision": "approve"})  # fmt: skip
    assert decided.status_code == 403 and "Only the instructors" in decided.json()["message"]
    assert "bea" not in hub.api("GET", f"/groups/{quote(enrollment_group(SLUG))}").json()["users"]
    # Nor does anyone without a login: the service sends them to log in.
    anonymous = requests.get(f"{hub.url}{SERVICE}api/courses/{SLUG}/applications",
                             allow_redirects=False, timeout=30)  # fmt: skip
    assert anonymous.status_code == 302 and "bea" not in anonymous.text


@pytest.mark.hub
def test_a_member_of_the_course_has_nothing_to_apply_for(hub):
    assert COURSE.role(teams_of("sam")) == STUDENT
    sam = token_of(hub, "sam")
    applied = api(sam, hub, "POST", f"courses/{SLUG}/applications",
                  json={"invite": invite_of(invite_link(hub))})  # fmt: skip
    assert applied.status_code == 409 and "nothing to apply for" in applied.json()["message"]
    listed = api(token_of(hub, "ian"), hub, "GET", f"courses/{SLUG}/applications")
    assert "sam" not in listed.json()["applications"]


def service_key(hub) -> str:
    """The local hub's generated token of the service, which signs its links."""
    return (hub.state_dir / "hub.services.enrollment.apiToken.secret").read_text().strip()


@pytest.mark.hub
@pytest.mark.parametrize(
    ("damage", "status", "says"),
    [
        (lambda hub, token: token[:-1] + ("0" if token[-1] != "0" else "1"), 403,
         "not valid for data-science-101"),
        (lambda hub, token: make_invite("guessed", SLUG, DAY), 403, "not valid for data-science"),
        (lambda hub, token: make_invite(service_key(hub), SLUG, DAY - timedelta(days=1)), 410,
         f"expired on {DAY - timedelta(days=1)}"),
    ],
)  # fmt: skip
def test_a_bad_invite_lets_nobody_in_and_changes_nothing(hub, damage, status, says):
    link = invite_link(hub)
    assert check_invite(service_key(hub), SLUG, invite_of(link), DAY, COURSE), "the key is right"
    bad = link.replace(invite_of(link), damage(hub, invite_of(link)))
    users = {user["name"] for user in hub.api("GET", "/users").json()}
    # The service refuses it before any login...
    page = requests.get(hub.url + bad, timeout=30)
    assert page.status_code == status and says in page.text
    # ...and the hub's login refuses someone outside the teams who comes with it.
    response = login_with_standin(hub.url, "wes", next_url=bad + "&signed_in=1").response
    assert response.status_code == status and says in error_message(response.text)
    assert {user["name"] for user in hub.api("GET", "/users").json()} == users


@pytest.mark.hub
def test_an_invite_for_a_course_that_is_not_on_the_hub_is_refused(hub):
    token = make_invite("guessed", "no-such-course", DAY)
    page = requests.get(f"{hub.url}{SERVICE}invite/no-such-course?invite={token}", timeout=30)
    assert page.status_code == 404 and "no course 'no-such-course'" in html.unescape(page.text)


def log_from(hub, offset: int) -> str:
    """What the hub and its services wrote to the hub's log since `offset` (bytes)."""
    return (hub.state_dir / "hub.log").read_bytes()[offset:].decode(errors="replace")


def log_size(hub) -> int:
    return (hub.state_dir / "hub.log").stat().st_size


@pytest.mark.hub
def test_a_malformed_invite_gets_a_400_saying_why_on_every_path_and_no_traceback(hub):
    token = MALFORMED_INVITES["non-ascii signature"]
    bad = f"{SERVICE}invite/{SLUG}?{urlencode({'invite': token})}"
    says = "must be a day (YYYY-MM-DD), a dot and 32 hexadecimal digits"
    users, logged = {user["name"] for user in hub.api("GET", "/users").json()}, log_size(hub)
    # The service's page, before any login.
    page = requests.get(hub.url + bad, timeout=30)
    assert page.status_code == 400 and says in html.unescape(page.text)
    # The hub's GitHub login, for someone outside the teams who comes with the link.
    response = login_with_standin(hub.url, "wes", next_url=bad + "&signed_in=1").response
    assert response.status_code == 400 and says in error_message(response.text)
    assert {user["name"] for user in hub.api("GET", "/users").json()} == users
    # The REST call, with a token.
    applied = api(token_of(hub, "ian"), hub, "POST", f"courses/{SLUG}/applications",
                  json={"invite": token})  # fmt: skip
    assert applied.status_code == 400 and says in applied.json()["message"]
    log = log_from(hub, logged)
    assert "Traceback" not in log
    refusals = [line for line in log.splitlines() if "malformed invite" in line]
    assert len(refusals) >= 3, log  # the service twice, the hub once
    assert not [line for line in refusals if line.startswith("[E")], "warnings, not errors"


@pytest.mark.hub
def test_bad_rest_requests_get_a_message_not_a_traceback(hub):
    ian = token_of(hub, "ian")
    for body, says in [("not json", "not JSON"), ("[1]", "JSON object"), ("{}", "Apply with")]:
        response = api(ian, hub, "POST", f"courses/{SLUG}/applications", data=body)
        assert response.status_code == 400 and says in response.json()["message"]
    odd = api(ian, hub, "POST", f"courses/{SLUG}/applications/nobody", json={"decision": "maybe"})
    assert odd.status_code == 400 and "approve, reject" in odd.json()["message"]
    missing = api(
        ian, hub, "POST", f"courses/{SLUG}/applications/nobody", json={"decision": "approve"}
    )
    assert missing.status_code == 404 and "has not applied" in missing.json()["message"]
    # The service's stderr is in the hub's log: none of its frames, so no traceback.
    assert 'enrollment_service.py", line' not in (hub.state_dir / "hub.log").read_text()


@pytest.mark.browser
def test_browser_applicant_applies_and_the_instructor_approves(hub, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import WebDriverWait

    from coursehub_tools.book.browser import headless_chromium, sign_in_with_standin

    link = invite_link(hub, "climate-lab")
    browser.get(hub.url + link)
    sign_in_with_standin(browser, "wes")
    WebDriverWait(browser, 60).until(shown.presence_of_element_located((By.ID, "apply")))
    browser.find_element(By.ID, "apply").click()
    WebDriverWait(browser, 60).until(
        shown.text_to_be_present_in_element((By.ID, "state"), "pending")
    )

    instructor = headless_chromium()
    try:
        instructor.get(f"{hub.url}/hub/login?next={quote(SERVICE)}")
        sign_in_with_standin(instructor, "ian")
        approve = (By.CSS_SELECTOR, "button[value='approve']")
        WebDriverWait(instructor, 60).until(shown.presence_of_element_located(approve))
        instructor.find_element(*approve).click()
        WebDriverWait(instructor, 60).until(shown.text_to_be_present_in_element(
            (By.TAG_NAME, "body"), "approved"))  # fmt: skip
    finally:
        instructor.quit()
    assert hub.api("GET", f"/groups/{enrollment_group('climate-lab')}").json()["users"] == ["wes"]
