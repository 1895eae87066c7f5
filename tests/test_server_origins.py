"""A page a student's server serves cannot read or act on the hub session of an instructor
who opens it: each user's server is on its own origin (JupyterHub.subdomain_host).

The student controls their server: here sam's own ~/.jupyter config serves a page
that tries what hostile JavaScript would with the visitor's session: read the
hub's cookies (the XSRF token among them), read the hub's API as the visitor and
make an API token of theirs. ian, an instructor of sam's course, opens it in
Chromium. The same page on a hub without subdomain_host does all three, which
shows the probe can succeed and that the origin is the wall.
"""

from __future__ import annotations

import json
from urllib.parse import urljoin, urlparse

import pytest

from coursehub.courses import INSTRUCTOR, STUDENT, load_courses
from coursehub.github import team_names
from coursehub_tools.browser import sign_in_with_standin
from coursehub_tools.deployconfig import load
from coursehub_tools.github_standin import World
from coursehub_tools.hub_client import login_with_standin
from coursehub_tools.local_hub import FIXTURE
from coursehub_tools.waiting import wait_until

pytestmark = [pytest.mark.hub, pytest.mark.browser]

WORLD = World.from_file(FIXTURE, "id", "secret")
PROBE_PAGE = "coursehub-probe.html"
PROBE = """<!doctype html><meta charset="utf-8"><title>probe</title><body><script>
const hub = HUB, visitor = VISITOR;
async function probe() {
  const seen = {origin: window.origin};
  // The hub's pages refuse frames (frame-ancestors 'none'), its static files do not: a
  // document at /hub/ whose cookies, the _xsrf one among them, the hub's origin can read.
  const frame = document.createElement("iframe");
  frame.src = hub + "/hub/static/favicon.ico";
  document.body.appendChild(frame);
  await new Promise(done => { frame.onload = done; setTimeout(done, 15000); });
  const doc = frame.contentDocument;  // null when the frame is another origin's
  const xsrf = doc && doc.cookie.match(/(?:^|; )_xsrf=([^;]*)/);
  if (xsrf) seen.xsrf = xsrf[1]; else seen.frame = doc ? "no _xsrf cookie" : "another origin";
  const headers = {"Content-Type": "application/json"};
  if (seen.xsrf) headers["X-XSRFToken"] = seen.xsrf;
  try {
    const user = await fetch(hub + "/hub/api/user", {credentials: "include", headers});
    seen.user = {status: user.status, body: await user.text()};
  } catch (e) { seen.userError = String(e); }
  try {
    const made = await fetch(hub + "/hub/api/users/" + visitor + "/tokens", {
      method: "POST", credentials: "include", headers,
      body: JSON.stringify({note: "kept by sam"})});
    seen.token = {status: made.status, body: await made.text()};
  } catch (e) { seen.tokenError = String(e); }
  window.probeResult = seen;
}
probe();
</script></body>
"""


def serve_probe(hub, student: str, visitor: str) -> None:
    """What a student can do to their own server: a config in their home adding a page."""
    home = hub.state_dir / "homes" / student
    (home / "probe").mkdir(parents=True, exist_ok=True)
    page = PROBE.replace("HUB", json.dumps(hub.url)).replace("VISITOR", json.dumps(visitor))
    (home / "probe" / PROBE_PAGE).write_text(page)
    (home / ".jupyter").mkdir(exist_ok=True)
    (home / ".jupyter" / "jupyter_server_config.py").write_text(
        f"c.ServerApp.extra_static_paths = [{str(home / 'probe')!r}]\n"
    )


def start_server(hub, user: str, course: str) -> str:
    """Start `user`'s server for `course`; its URL as the hub gives it (on its own host)."""
    assert hub.api("POST", f"/users/{user}/server", json={"profile": course}).status_code in (
        201, 202)  # fmt: skip

    def ready() -> dict | None:
        server = hub.api("GET", f"/users/{user}").json()["servers"].get("", {})
        return server if server.get("ready") else None

    return wait_until(ready, 120, f"{user}'s server started", every=0.5)["url"]


def visit_the_students_page(hub, browser, student: str, visitor: str) -> tuple[dict, int, str]:
    """What the page saw, how many tokens it kept for the visitor, and the page's URL."""
    from selenium.webdriver.support.ui import WebDriverWait

    login_with_standin(hub.url, student).response.raise_for_status()
    groups = hub.api("GET", f"/users/{student}").json()["groups"]
    courses = load_courses(load("local").values["custom"]["courses"])
    (course,) = [c for c in courses if c.role(groups) == STUDENT and c.role(
        team_names({"teams": WORLD.teams_of(visitor)})) == INSTRUCTOR]  # fmt: skip
    serve_probe(hub, student, visitor)
    server = start_server(hub, student, course.slug)
    browser.get(f"{hub.url}/hub/login")
    sign_in_with_standin(browser, visitor)
    back = f"{hub.url}/hub/"
    WebDriverWait(browser, 60).until(
        lambda b: b.current_url.startswith(back) and "oauth_callback" not in b.current_url
    )
    browser.get(f"{hub.url}/hub/home")
    assert urlparse(browser.current_url).path == "/hub/home", f"{visitor} is logged in"
    page = urljoin(hub.url, f"{server}static/{PROBE_PAGE}")  # a path without subdomain_host
    browser.get(page)
    seen = WebDriverWait(browser, 60).until(lambda b: b.execute_script("return window.probeResult"))
    tokens = hub.api("GET", f"/users/{visitor}/tokens").json()["api_tokens"]
    return seen, len([t for t in tokens if t.get("note") == "kept by sam"]), page


def test_a_students_page_cannot_use_the_session_of_an_instructor_who_opens_it(hub_factory, browser):
    hub = hub_factory()
    seen, kept, page = visit_the_students_page(hub, browser, "sam", "ian")
    hub_origin = urlparse(hub.url)
    assert urlparse(page).hostname == f"sam.{hub_origin.hostname}", "sam's own host"
    assert seen["origin"] != f"{hub_origin.scheme}://{hub_origin.netloc}"
    assert "xsrf" not in seen and seen["frame"] == "another origin", seen
    assert "user" not in seen and "TypeError" in seen["userError"], seen
    assert "token" not in seen and kept == 0, seen


def test_without_its_own_origin_the_same_page_acts_as_the_instructor(hub_factory, browser):
    """The control: subdomain_host removed, the probe reads ian's identity and keeps a token."""
    shared = hub_factory(extra_values={"hub": {"config": {"JupyterHub": {"subdomain_host": None}}}})
    seen, kept, _ = visit_the_students_page(shared, browser, "sam", "ian")
    assert seen["user"]["status"] == 200, seen
    assert json.loads(seen["user"]["body"])["name"] == "ian"
    assert seen["token"]["status"] == 201 and kept == 1, seen
