"""A course's admin folder on a real local hub: hooks instructors edit, their logs, shared data.

One hub, one course switched to `hooks: admin` (deploy/courses/<slug>.yaml),
used as its staff and students would: an instructor writes the hooks and
uploads data through their JupyterLab's contents API, students start and read.
Who teaches and who studies comes from the course's groups in the merged
values and the GitHub stand-in's teams.
"""

from __future__ import annotations

import functools
import stat
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import yaml

from coursehub_tools.deployconfig import ROOT, load
from coursehub_tools.hub_client import (
    contents,
    login_with_standin,
    own_token,
    run_in_terminal,
    wait_for_server,
)
from coursehub_tools.waiting import wait_until

pytestmark = pytest.mark.hub

COURSE = "data-science-101"


def members(groups: list[str]) -> list[str]:
    """The stand-in's users in any of these `org:team` groups, in file order."""
    world = yaml.safe_load((ROOT / "scripts/localhub/github-users.yaml").read_text())
    found = []
    for group in groups:
        org, team = group.split(":")
        found += [
            u for u in world["organizations"][org]["teams"][team]["members"] if u not in found
        ]
    return found


VALUES = load("local").values
ENTRY = VALUES["custom"]["courses"][COURSE]
INSTRUCTOR = members(ENTRY["groups"]["instructors"])[0]
STUDENT, OTHER_STUDENT = members(ENTRY["groups"]["students"])[:2]


class Person:
    """A logged-in user with their own server's contents API."""

    def __init__(self, hub, name: str):
        self.hub, self.name = hub, name
        self.login = login_with_standin(hub.url, name, next_url=f"/hub/spawn?profile={COURSE}")
        self.token = own_token(self.login.session, hub.url, name)

    def contents(self, method: str, path: str, **kwargs) -> requests.Response:
        return contents(self.hub.url, self.name, self.token, method, path, **kwargs)

    def put_text(self, path: str, text: str) -> requests.Response:
        return self.contents("PUT", path, json={"type": "file", "format": "text", "content": text})

    def read_text(self, path: str) -> str:
        # As a file: jupytext, in the image, would open a .sh as a notebook.
        response = self.contents("GET", path, params={"type": "file", "format": "text"})
        response.raise_for_status()
        return response.json()["content"]

    def start(self) -> dict:
        """(Re)start the course's server; the hub's server model once it settled."""
        self.hub.client.stop_servers({self.name}, timeout=60)
        self.hub.api("POST", f"/users/{self.name}/server", json={"profile": COURSE})

        def settled() -> list:
            server = self.hub.api("GET", f"/users/{self.name}").json()["servers"].get("")
            return [server] if not server or server["ready"] else []

        # One item, so that "no server" (a failed start) is an answer too.
        (server,) = wait_until(settled, 120, f"{self.name}'s server settled", every=0.5)
        return server


@pytest.fixture(scope="module")
def hub(tmp_path_factory, start_hub):
    extra = {"custom": {"courses": {COURSE: {"hooks": "admin"}}}}
    with start_hub(tmp_path_factory.mktemp("admin-folder"), extra_values=extra) as hub:
        yield hub


@pytest.fixture(scope="module")
def instructor(hub):
    person = Person(hub, INSTRUCTOR)
    wait_for_server(person.login.session, hub.url, INSTRUCTOR)
    return person


def admin_folder(hub):
    return hub.state_dir / "shared" / VALUES["custom"]["sharedData"]["admin"]["subPath"] / COURSE


def test_a_students_next_start_runs_the_hooks_an_instructor_edited(hub, instructor):
    for step in ("as-root", "as-user"):
        written = instructor.put_text(f"admin/{step}.sh", f'echo "{step} v1 for $COURSEHUB_USER"\n')
        assert written.status_code == 201, written.text
    student = Person(hub, STUDENT)
    assert student.start()["ready"]
    for step in ("as-root", "as-user"):
        log = instructor.read_text(f"admin/logs/{STUDENT}-{step}.log")
        assert f"{step} v1 for {STUDENT}" in log
        mode = (admin_folder(hub) / "logs" / f"{STUDENT}-{step}.log").stat().st_mode
        assert stat.S_IMODE(mode) == 0o600

    instructor.put_text("admin/as-root.sh", 'echo "as-root v2 for $COURSEHUB_USER"\n')
    assert student.start()["ready"]
    assert f"as-root v2 for {STUDENT}" in instructor.read_text(f"admin/logs/{STUDENT}-as-root.log")


def test_a_student_can_neither_write_the_hooks_nor_read_the_logs(hub, instructor):
    other = Person(hub, OTHER_STUDENT)
    assert other.start()["ready"]
    student = Person(hub, STUDENT)
    assert student.start()["ready"]
    hook = instructor.read_text("admin/as-root.sh")
    hidden = f"shared/../{VALUES['custom']['sharedData']['admin']['subPath']}/{COURSE}"
    for path in (
        f"admin/logs/{OTHER_STUDENT}-as-root.log",
        f"{hidden}/logs/{OTHER_STUDENT}-as-root.log",
    ):
        assert student.contents("GET", path).status_code in (400, 404), path
    for path in ("admin/as-root.sh", f"{hidden}/as-root.sh", f"shared/../../{hidden}/as-root.sh"):
        assert not student.put_text(path, "echo owned\n").ok, path
    assert instructor.read_text("admin/as-root.sh") == hook
    assert "admin" not in [item["name"] for item in student.contents("GET", "").json()["content"]]


def test_a_hook_others_can_write_is_refused_with_a_warning(hub, instructor):
    hook = admin_folder(hub) / "as-root.sh"
    # What a share exported too widely gives: the hook writable by everyone.
    hook.chmod(0o666)
    student = Person(hub, STUDENT)
    try:
        server = student.start()
    finally:
        hook.chmod(0o644)
    assert server is None
    page = student.login.session.get(f"{hub.url}/hub/spawn-pending/{STUDENT}", timeout=30).text
    assert "Your instructors can read its log." in page
    log = instructor.read_text(f"admin/logs/{STUDENT}-as-root.log")
    assert "warning: as-root: refused to run" in log
    assert "can be written by others than its owner" in log
    assert "as-root v2" not in log
    hub_log = (hub.state_dir / "hub.log").read_text()
    assert any(line.startswith("[W") and "refused to run" in line for line in hub_log.splitlines())


def test_data_an_instructor_uploads_is_read_only_for_students(hub, instructor):
    data = "station,temperature\nzurich,4.5\n"
    uploaded = instructor.put_text("shared/stations.csv", data)
    assert uploaded.status_code == 201, uploaded.text
    student = Person(hub, STUDENT)
    assert student.start()["ready"]
    assert student.read_text("shared/stations.csv") == data
    overwrite = student.put_text("shared/stations.csv", "changed\n")
    assert overwrite.status_code == 500 and "Read-only file system" in overwrite.text
    assert not student.contents("DELETE", "shared/stations.csv").ok
    assert not student.put_text("shared/new.csv", "x\n").ok
    assert (hub.state_dir / "shared" / COURSE / "stations.csv").read_text() == data
    # Their own home stays theirs to write.
    assert student.put_text("mine.csv", "x\n").status_code == 201


@pytest.fixture
def data_server(tmp_path):
    """A stand-in for the web server a data set is published on: a folder over HTTP."""
    (tmp_path / "published").mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=tmp_path / "published")
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tmp_path / "published", f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


async def test_data_an_instructor_fetches_by_url_in_a_terminal_students_only_read(
    hub, instructor, data_server
):
    folder, url = data_server
    (folder / "rainfall.csv").write_text("month,mm\njan,81\n")
    status, screen = await run_in_terminal(
        hub.url, INSTRUCTOR, instructor.token, f"curl -sSfo shared/rainfall.csv {url}/rainfall.csv"
    )
    assert status == 0, screen
    student = Person(hub, STUDENT)
    assert student.start()["ready"]
    assert student.read_text("shared/rainfall.csv") == "month,mm\njan,81\n"
    assert not student.put_text("shared/rainfall.csv", "month,mm\n").ok
