"""Launch links, end to end on a real local hub: good links open the notebook, bad ones say why.

The hub runs the real registry plus courses derived from its first course
(closed, not open yet, staff only, failing hooks), with "today" fixed at that
course's start date, so nothing here depends on the real date. Expectations
come from the merged values and coursehub's own rules.
"""

from __future__ import annotations

import copy
import html
import logging
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from urllib.parse import quote, urlencode, urljoin

import pytest
import requests

from coursehub import launch
from coursehub.courses import load_courses, open_to
from coursehub.refusal import RefusalsAsWarnings, Refused
from coursehub_tools.deployconfig import Layer, load
from coursehub_tools.example_content import NOTEBOOK as CONTENT_NOTEBOOK
from coursehub_tools.example_content import TITLE, make_content_repo
from coursehub_tools.hub_client import login_with_standin, page_of
from coursehub_tools.waiting import wait_until

PREFIX = launch.notebook_prefix("/hub/")


@dataclass(frozen=True)
class Registry:
    """The local registry as these tests use it: its earliest course is the base of the rest."""

    courses: dict
    base: dict

    @classmethod
    def load(cls) -> Registry:
        courses = load("local").values["custom"]["courses"]
        return cls(courses, min(courses.values(), key=lambda c: (c["start"], c["slug"])))

    @property
    def today(self) -> date:
        return date.fromisoformat(self.base["start"])

    @property
    def students(self) -> list[str]:
        return self.base["groups"]["students"]

    @property
    def instructors(self) -> list[str]:
        return self.base["groups"]["instructors"]

    @property
    def notebook(self) -> str:
        return f"{self.base['slug']}/{CONTENT_NOTEBOOK}"

    def derived(self, slug: str, **changes) -> dict:
        course = copy.deepcopy(self.base)
        course.update(slug=slug, title=f"Test course {slug}", **changes)
        return course


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


def courses_for_tests(registry: Registry, content_repo: str) -> dict:
    day = timedelta(days=1)
    today, instructors, derived = registry.today, registry.instructors, registry.derived
    return {
        registry.base["slug"]: {
            "content": {"repo": content_repo, "branch": "main"},
            "defaultNotebook": registry.notebook,
        },
        "closed-course": derived(
            "closed-course",
            start=(today - 30 * day).isoformat(),
            end=(today - day).isoformat(),
        ),
        "future-course": derived(
            "future-course", start=(today + day).isoformat(), end=(today + 30 * day).isoformat()
        ),
        "staff-only": derived("staff-only", groups={"instructors": instructors, "students": []}),
        "broken-hooks": derived(
            "broken-hooks",
            groups={"instructors": instructors, "students": []},
            content={"repo": "file:///nonexistent/course-content", "branch": "main"},
        ),
    }


@pytest.fixture(scope="module")
def course_hub(tmp_path_factory, local_hub_pieces, registry):
    from coursehub_tools.local_hub import LocalHub, free_port

    state = tmp_path_factory.mktemp("coursehub")
    content = make_content_repo(state / "content")
    extra = {
        "hub": {"config": {"CourseSpawner": {"today": registry.today.isoformat()}}},
        "custom": {"courses": courses_for_tests(registry, content)},
    }
    with (
        (state / "hub.log").open("w") as log,
        LocalHub(state / "hub", port=free_port(), extra_values=extra, log_file=log) as hub,
    ):
        hub.merged = load("local", extra_layers=[Layer("test", extra)]).values
        hub.registry = registry
        yield hub


def link(profile: str | None = None, next_path: str | None = None, **extra) -> str:
    query = {**({"profile": profile} if profile else {}), **extra}
    if next_path is not None:
        query["next"] = next_path
    return "/hub/spawn?" + urlencode(query)


def server(hub, user: str) -> dict | None:
    return hub.api("GET", f"/users/{user}").json()["servers"].get("")


def server_url(hub, user: str) -> str:
    """Where `user`'s server answers, as the hub says: on its own host (subdomain_host)."""
    return urljoin(hub.url, server(hub, user)["url"])


# --- the rules, without a hub -----------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("next_path", "problem"),
    [
        (PREFIX + "course/intro.ipynb", None),
        (PREFIX + quote("course/week 1.ipynb"), None),
        (PREFIX + "../../etc/passwd", "inside your home folder"),
        (PREFIX + "course/../../x.ipynb", "inside your home folder"),
        (PREFIX + "/etc/passwd", "absolute"),
        (PREFIX + "%2e%2e/%2e%2e/etc/passwd", "inside your home folder"),
        (PREFIX + "%252e%252e/etc/passwd", "encoded more than once"),
        (PREFIX + "%2Fetc%2Fpasswd", "absolute"),
        (PREFIX + "x.ipynb?reset", "only name a file"),
        (PREFIX, "inside your home folder"),
        ("/user/ian/lab/tree/x.ipynb", "must open a notebook under"),
        ("https://example.org" + PREFIX + "x.ipynb", "must open a notebook under"),
    ],
)
def test_notebook_paths(next_path, problem):
    found = launch.notebook_problem(next_path, PREFIX)
    assert (found is None) if problem is None else (problem in found)


@pytest.mark.unit
def test_a_launch_link_of_every_course_is_accepted_on_its_first_day(registry):
    for course in load_courses(registry.courses):
        url = launch.launch_link("/hub/", course, "intro.ipynb")
        query = dict(part.split("=", 1) for part in url.split("?", 1)[1].split("&"))
        chosen = launch.choose_course(
            [course],
            sorted(course.student_groups or course.instructor_groups),
            course.start,
            {"profile": [course.slug]},
            requests.utils.unquote(query["next"]),
            "/hub/",
        )
        assert chosen == course


# --- on the local hub -------------------------------------------------------------------------


@pytest.mark.hub
def test_launch_link_starts_the_course_and_opens_the_notebook(course_hub):
    hub = course_hub
    base, notebook = hub.registry.base, hub.registry.notebook
    url = link(base["slug"], PREFIX + quote(notebook))
    login = login_with_standin(hub.url, "sky", next_url=url)
    wait_until(lambda: (server(hub, "sky") or {}).get("ready"), 120, "sky's server ready")
    # The spawn-pending page sends the browser on to `next` once the server is up.
    landed = login.session.get(login.response.url, timeout=60)
    assert landed.status_code == 200
    assert page_of(landed.url) == f"{server_url(hub, 'sky')}lab/tree/{notebook}"
    contents = login.session.get(f"{server_url(hub, 'sky')}api/contents/{notebook}", timeout=30)
    assert contents.status_code == 200 and contents.json()["type"] == "notebook"
    state = server(hub, "sky")
    assert state["user_options"] == {"profile": base["slug"]}
    assert state["state"]["course_image"] == base["image"], "the registry's image, recorded"
    assert "pulling" in (hub.state_dir / "hook-logs/sky/as-user.log").read_text()


def open_courses_for(hub, groups) -> list:
    return open_to(load_courses(hub.merged["custom"]["courses"]), groups, hub.registry.today)


REFUSED = [
    (
        "unknown",
        lambda base: link("no-such-course", PREFIX + "x.ipynb"),
        404,
        "There is no course 'no-such-course'",
    ),
    ("future", lambda base: link("future-course"), 403, "opens on "),
    ("closed", lambda base: link("closed-course"), 403, "closed on "),
    ("not-enrolled", lambda base: link("staff-only"), 403, "You are not enrolled in"),
    ("image-tag", lambda base: link(base, tag="latest"), 400, "'tag'"),
    ("image-name", lambda base: link(base, image="evil/miner:1"), 400, "'image'"),
    ("two-courses", lambda base: f"{link(base)}&profile=staff-only", 400, "exactly one course"),
    ("dotdot", lambda base: link(base, PREFIX + "../../etc/passwd"), 400, "inside your home"),
    ("absolute", lambda base: link(base, PREFIX + "/etc/passwd"), 400, "absolute"),
    (
        "double-encoded",
        lambda base: link(base, PREFIX + "%2e%2e/%2e%2e/etc"),
        400,
        "inside your home",
    ),
    ("triple-encoded", lambda base: link(base, PREFIX + "%252e%252e/etc"), 400, "more than once"),
    (
        "elsewhere",
        lambda base: link(base, "/user/ian/lab/tree/x.ipynb"),
        400,
        "must open a notebook",
    ),
]


@pytest.mark.hub
@pytest.mark.parametrize(
    ("make_url", "status", "message"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_a_bad_link_is_refused_with_a_page_listing_what_may_be_started(
    course_hub, make_url, status, message
):
    hub = course_hub
    url = make_url(hub.registry.base["slug"])
    # Logging in lands on the home page, not on /hub/spawn, which would start a server.
    login = login_with_standin(hub.url, "sam", next_url="/hub/home")
    log = hub.state_dir.parent / "hub.log"
    logged = log.stat().st_size
    page = login.session.get(f"{hub.url}{url}", timeout=60)
    assert page.status_code == status
    assert message in html.unescape(page.text)
    # An expected refusal: one warning line with its reason, no error, no traceback.
    written = log.read_bytes()[logged:].decode(errors="replace")
    assert "Traceback" not in written and "\n[E " not in f"\n{written}"
    (line,) = [line for line in written.splitlines() if "with query arguments" in line]
    assert line.startswith("[W ") and f"{status} " in line and message in line
    open_courses = open_courses_for(hub, hub.registry.students)
    assert open_courses, "the student may start something"
    for course in load_courses(hub.merged["custom"]["courses"]):
        listed = f'value="{course.slug}"' in page.text
        assert listed is (course in open_courses), course.slug
    assert server(hub, "sam") is None, "nothing was started"


@pytest.mark.unit
@pytest.mark.parametrize(("status", "level"), [(403, logging.WARNING), (500, logging.ERROR)])
def test_a_refused_request_is_a_warning_and_a_failed_start_stays_an_error(status, level):
    try:
        raise Refused(status, "what the person reads", why="the reason")
    except Refused:
        record = logging.LogRecord("JupyterHub", logging.ERROR, __file__, 1, "Failed %s", ("x",),
                                   sys.exc_info())  # fmt: skip
    assert RefusalsAsWarnings().filter(record)
    assert record.levelno == level
    assert (record.exc_info is None) is (level == logging.WARNING)
    if level == logging.WARNING:
        assert record.getMessage() == f"Failed x: {status} the reason"


@pytest.mark.hub
def test_one_open_course_means_no_form_several_mean_a_choice(course_hub):
    hub = course_hub
    instructor = login_with_standin(hub.url, "ian", next_url="/hub/home")
    form = instructor.session.get(f"{hub.url}/hub/spawn", timeout=60)
    choices = open_courses_for(hub, hub.registry.instructors)
    assert len(choices) > 1
    for course in choices:
        assert f'value="{course.slug}"' in form.text
    assert server(hub, "ian") is None, "the form waits for a choice"

    assert len(open_courses_for(hub, hub.registry.students)) == 1
    student = login_with_standin(hub.url, "sam", next_url="/hub/home")
    started = student.session.get(f"{hub.url}/hub/spawn", timeout=60)
    assert 'name="profile"' not in started.text
    wait_until(lambda: (server(hub, "sam") or {}).get("ready"), 120, "sam's server ready")
    assert server(hub, "sam")["state"]["course_image"] == hub.registry.base["image"]


@pytest.mark.hub
def test_a_failing_hook_stops_the_start_and_says_which_step(course_hub):
    hub = course_hub
    login = login_with_standin(hub.url, "tara", next_url=link("broken-hooks"))
    said = "Start-up step 'as-user' failed"
    # Where the user lands: the hub's error page, or the pending page once it has failed.
    first = html.unescape(login.response.text)

    def failed_page():
        # 200 while pending (the chart sends users there at once: slow_spawn_timeout 0),
        # the start's own status once it has failed.
        page = login.session.get(f"{hub.url}/hub/spawn-pending/tara", timeout=30)
        return html.unescape(page.text) if page.status_code >= 400 else None

    assert said in first or said in wait_until(failed_page, 120, "the failed start")
    assert said in wait_until(failed_page, 120, "the failed start")
    assert server(hub, "tara") is None, "no server runs"
    log = (hub.state_dir / "hook-logs/tara/as-user.log").read_text()
    assert "nonexistent/course-content" in log, "the admin log has the hook's output"
    assert "tara as-user:" in (hub.state_dir.parent / "hub.log").read_text()


@pytest.mark.hub
@pytest.mark.browser
def test_browser_follows_a_course_link_to_the_notebook(course_hub, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    from coursehub_tools.browser import sign_in_with_standin

    hub = course_hub
    notebook = hub.registry.notebook
    browser.get(hub.url + link(hub.registry.base["slug"], PREFIX + quote(notebook)))
    sign_in_with_standin(browser, "ian")
    WebDriverWait(browser, 180).until(ready.url_contains(f"/user/ian/lab/tree/{notebook}"))
    # The notebook from the course's content repository, open and rendered.
    WebDriverWait(browser, 120).until(
        ready.text_to_be_present_in_element(
            (By.CSS_SELECTOR, ".jp-NotebookPanel .jp-RenderedMarkdown"), TITLE
        )
    )


RUNNING_REFUSED = [r for r in REFUSED if r[0] in ("elsewhere", "dotdot", "future", "image-name")]


@pytest.fixture(scope="module")
def running_student(course_hub):
    """sky, logged in, with the base course's server running."""
    hub = course_hub
    login = login_with_standin(hub.url, "sky", next_url=link(hub.registry.base["slug"]))
    wait_until(lambda: (server(hub, "sky") or {}).get("ready"), 120, "sky's server ready")
    return login.session


@pytest.mark.hub
@pytest.mark.parametrize(
    ("make_url", "status", "message"),
    [r[1:] for r in RUNNING_REFUSED],
    ids=[r[0] for r in RUNNING_REFUSED],
)
def test_a_bad_link_is_refused_while_the_server_runs_too(
    course_hub, running_student, make_url, status, message
):
    hub = course_hub
    before = server(hub, "sky")
    page = running_student.get(f"{hub.url}{make_url(hub.registry.base['slug'])}", timeout=60)
    assert page.status_code == status
    assert message in html.unescape(page.text)
    assert server(hub, "sky")["user_options"] == before["user_options"], "nothing changed"


@pytest.mark.hub
def test_a_good_link_opens_its_notebook_in_the_running_server(course_hub, running_student):
    hub, notebook = course_hub, course_hub.registry.notebook
    url = link(hub.registry.base["slug"], PREFIX + quote(notebook))
    landed = running_student.get(f"{hub.url}{url}", timeout=60)
    assert landed.status_code == 200
    assert page_of(landed.url) == f"{server_url(hub, 'sky')}lab/tree/{notebook}"
    plain = running_student.get(f"{hub.url}/hub/spawn", timeout=60)
    assert plain.url.startswith(server_url(hub, "sky")), "no link: JupyterHub's own redirect"


@pytest.mark.hub
def test_a_link_for_another_course_says_which_runs_and_how_to_switch(course_hub):
    hub = course_hub
    courses = {c.slug: c for c in open_courses_for(hub, hub.registry.instructors)}
    running, other = hub.registry.base["slug"], "staff-only"
    assert {running, other} <= set(courses), "the instructor may start both"
    login = login_with_standin(hub.url, "tara", next_url=link(running))
    wait_until(lambda: (server(hub, "tara") or {}).get("ready"), 120, "tara's server ready")
    page = login.session.get(f"{hub.url}{link(other)}", timeout=60)
    assert page.status_code == 409
    text = html.unescape(page.text)
    assert f"running {courses[running].title}" in text
    assert f"This link is for {courses[other].title}" in text
    assert 'href="/hub/home"' in page.text
    assert server(hub, "tara")["user_options"] == {"profile": running}, "still the first course"


@pytest.mark.hub
def test_a_plain_start_after_the_last_course_closed_offers_todays(
    tmp_path, local_hub_pieces, registry
):
    """JupyterHub starts a server with the options of the last start. When that course
    has closed, a plain start must not be refused: it starts what is open today."""
    from coursehub_tools.local_hub import LocalHub, free_port

    old, new, day = "old-course", "new-course", timedelta(days=1)
    # Around the end of the registry's courses, so that only these two matter.
    end = max(date.fromisoformat(str(c["end"])) for c in registry.courses.values())
    courses = {
        old: registry.derived(old, start=(end - 100 * day).isoformat(),
                              end=(end + 2 * day).isoformat()),
        new: registry.derived(new, start=(end + 3 * day).isoformat(),
                              end=(end + 60 * day).isoformat()),
    }  # fmt: skip

    def hub_on(today: date) -> LocalHub:
        extra = {
            "hub": {"config": {"CourseSpawner": {"today": today.isoformat()}}},
            "custom": {"courses": courses},
        }
        log = (tmp_path / f"hub-{today}.log").open("w")
        return LocalHub(tmp_path / "hub", port=free_port(), extra_values=extra, log_file=log)

    with hub_on(end) as first:
        login_with_standin(first.url, "sam", next_url=link(old))
        wait_until(lambda: (server(first, "sam") or {}).get("ready"), 120, "sam's first server")
        assert server(first, "sam")["user_options"] == {"profile": old}
        first.api("DELETE", "/users/sam/server")
        wait_until(lambda: server(first, "sam") is None, 120, "sam's server stopped")
    later_day = end + 10 * day
    with hub_on(later_day) as later:
        login = login_with_standin(later.url, "sam", next_url="/hub/spawn")
        assert login.response.status_code == 200, html.unescape(login.response.text)[:300]
        wait_until(lambda: (server(later, "sam") or {}).get("ready"), 120, "sam's server today")
        # Started with no course named: the hub records the one it chose, which the
        # dispatcher reads when the course ends (dispatcher.runs).
        assert server(later, "sam")["user_options"] == {"profile": new}
    log = (tmp_path / f"hub-{later_day}.log").read_text()
    assert f"sam's last course {old} has closed" in log
