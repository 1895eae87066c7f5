"""A course from request to teardown: allowed moves only, history kept, the dispatcher's
steps safe to run again. The clock is injected; the registry is a copy of the project's."""

from __future__ import annotations

import tarfile
from datetime import UTC, date, datetime, timedelta

import pytest

from coursehub_tools import course_lifecycle as lifecycle
from coursehub_tools import dispatcher
from coursehub_tools.deployconfig import load
from coursehub_tools.hub_client import follow_progress, login_with_standin
from coursehub_tools.local_hub import free_port
from coursehub_tools.yamlfiles import ConfigError

APPROVER = "ada"
REQUESTER = "ian"
START, END = date(2027, 3, 1), date(2027, 5, 28)


def at(day: date):
    return lambda: datetime(day.year, day.month, day.day, 9, tzinfo=UTC)


def request(root, **changes) -> int:
    args = {"slug": "ml-201", "title": "ML 201", "image": "ghcr.io/coursehub/ml-201:2027.2.1",
            "start": START.isoformat(), "end": END.isoformat(), "by": REQUESTER,
            "why": "Spring term", **changes}  # fmt: skip
    argv = ["--root", str(root), "request"]
    for key, value in args.items():
        argv += [f"--{key}", value]
    argv += ["--instructors", "coursehub-school:instructors",
             "--students", "coursehub-school:students"]  # fmt: skip
    return lifecycle.main(argv, clock=at(date(2027, 1, 10)))


def state(root, slug="ml-201") -> tuple[str, list]:
    course = lifecycle.read_course(lifecycle.course_file(slug, root))
    return course["lifecycle"]["state"], [h["state"] for h in course["lifecycle"]["history"]]


@pytest.mark.unit
def test_request_approve_deploy_degrade_keeps_the_history(project_copy):
    root = project_copy.root
    assert request(root) == 0
    assert state(root) == ("REQUESTED", ["REQUESTED"])
    assert load("local", root=root).values["custom"]["courses"]["ml-201"], "a checked registry file"
    assert lifecycle.main(["--root", str(root), "approve", "ml-201", "--by", APPROVER,
                           "--why", "agreed"], clock=at(date(2027, 1, 12))) == 0  # fmt: skip
    courses = dispatcher.registry(root)
    assert [
        s for s in dispatcher.plan(courses, START - timedelta(days=1)) if s.slug == "ml-201"
    ] == []
    (deploy,) = [s for s in dispatcher.plan(courses, START) if s.slug == "ml-201"]
    dispatcher.run([deploy], None, root, root / "archive", at(START), root)
    after_end = [s for s in dispatcher.plan(dispatcher.registry(root), END + timedelta(days=1))
                 if s.slug == "ml-201"]  # fmt: skip
    assert [s.action for s in after_end] == ["degrade"]
    assert state(root) == ("DEPLOYED", ["REQUESTED", "ACCEPTED", "DEPLOYED"])
    history = lifecycle.read_course(lifecycle.course_file("ml-201", root))["lifecycle"]["history"]
    assert [h["by"] for h in history] == [REQUESTER, APPROVER, lifecycle.DISPATCHER]
    assert history[-1]["at"] == "2027-03-01T09:00:00Z", "stamped by the injected clock"


BAD = {
    "self-approval": (["approve", "ml-201", "--by", REQUESTER, "--why", "mine"],
                      "requested this course and cannot approve it too"),
    "not-an-approver": (["approve", "ml-201", "--by", "sam", "--why", "please"],
                        "'sam' is not an approver"),
    "unknown-course": (["approve", "astrology", "--by", APPROVER, "--why", "?"],
                       "no such course 'astrology'"),
}  # fmt: skip


@pytest.mark.unit
@pytest.mark.parametrize("case", sorted(BAD))
def test_a_refused_move_says_why_and_changes_nothing(project_copy, capsys, case):
    root = project_copy.root
    assert request(root) == 0
    before = lifecycle.course_file("ml-201", root).read_text()
    argv, message = BAD[case]
    assert lifecycle.main(["--root", str(root), *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert lifecycle.course_file("ml-201", root).read_text() == before


@pytest.mark.unit
def test_moves_out_of_order_are_refused(project_copy):
    root = project_copy.root
    assert request(root) == 0
    with pytest.raises(ConfigError, match="REQUESTED cannot become DEPLOYED; from REQUESTED"):
        lifecycle.transition("ml-201", "DEPLOYED", by="x", why="y", role="dispatcher", root=root)
    with pytest.raises(ConfigError, match="REQUESTED cannot become DEGRADED"):
        lifecycle.transition("ml-201", "DEGRADED", by="x", why="y", role="dispatcher", root=root)
    with pytest.raises(ConfigError, match="is the approver's to make"):
        lifecycle.transition("ml-201", "ACCEPTED", by=APPROVER, why="y", role="dispatcher",
                             root=root)  # fmt: skip


@pytest.mark.unit
def test_a_request_ending_before_it_starts_writes_nothing(project_copy, capsys):
    root = project_copy.root
    assert request(root, end="2027-02-01") == 1
    assert "is before start" in capsys.readouterr().err
    assert not lifecycle.course_file("ml-201", root).exists()


@pytest.mark.unit
def test_dry_run_changes_nothing(project_copy, capsys):
    root = project_copy.root
    before = {p.name: p.read_text() for p in (root / "deploy/courses").glob("*.yaml")}
    assert dispatcher.main(["--root", str(root), "--dry-run", "--today", "2030-01-01"]) == 0
    assert "would degrade" in capsys.readouterr().out
    assert {p.name: p.read_text() for p in (root / "deploy/courses").glob("*.yaml")} == before


@pytest.mark.hub
def test_degrading_stops_servers_archives_homes_and_survives_a_crash(project_copy, hub_factory):
    """data-science-101 ends: sam's server stops, sam's home is archived, the course is
    DEGRADED; a dispatcher that died after archiving leaves nothing to do twice."""
    root, slug = project_copy.root, "data-science-101"
    course = dispatcher.registry(root)[slug]
    today = {"hub": {"config": {"CourseSpawner": {"today": course["start"]}}}}
    hub = hub_factory(server="lightweight", extra_values=today)
    sam = login_with_standin(hub.url, "sam", next_url="/hub/spawn").session
    follow_progress(sam, hub.url, "sam")
    (hub.state_dir / "homes" / "sam" / "work.ipynb").write_text("{}")
    client = dispatcher.Hub(hub.url, hub.operator_token)
    after = date.fromisoformat(course["end"]) + timedelta(days=1)
    (step,) = [s for s in dispatcher.plan(dispatcher.registry(root), after) if s.slug == slug]
    archive = root / "archive"
    # A first run that dies before writing the state: servers stopped, homes archived.
    entries = dispatcher.registry(root)
    done = dispatcher.degrade(step, entries, client, hub.state_dir / "homes", archive)
    assert "stopped sam's server" in done
    kept = archive / slug / "sam.tar.gz"
    first = kept.stat().st_mtime_ns
    assert state(root, slug)[0] == "DEPLOYED"
    # The next run completes it without doing anything twice.
    report = dispatcher.run([step], client, hub.state_dir / "homes", archive, at(after), root)
    assert report == [f"{slug}: DEGRADED ({step.why})"]
    assert kept.stat().st_mtime_ns == first, "the archive was not written again"
    with tarfile.open(kept) as tar:
        assert "sam/work.ipynb" in tar.getnames()
    assert hub.api("GET", "/users/sam").json()["servers"] == {}
    assert dispatcher.plan(dispatcher.registry(root), after) == [], "nothing left to do"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("state", "student_may", "instructor_may"),
    [("REQUESTED", False, False), ("ACCEPTED", False, True), ("DEPLOYED", True, True),
     ("DEGRADED", False, False), ("FAILED", False, False)],
)  # fmt: skip
def test_the_hub_offers_a_course_by_its_state(state, student_may, instructor_may):
    from coursehub.courses import INSTRUCTOR, STUDENT, Course

    entry = dict(load("local").values["custom"]["courses"]["data-science-101"])
    entry["lifecycle"] = {**entry["lifecycle"], "state": state}
    course = Course.from_values(entry)
    day = course.start
    assert (course.closed_reason(STUDENT, day) is None) is student_may
    assert (course.closed_reason(INSTRUCTOR, day) is None) is instructor_may
    if not student_may:
        assert f"({state.lower()})" in course.closed_reason(STUDENT, day)


@pytest.fixture
def mailbox():
    """A local SMTP server; the messages it received."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    received = []

    class Keep(Message):
        def handle_message(self, message):
            received.append(message)

    controller = Controller(Keep(), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, received
    finally:
        controller.stop()


@pytest.mark.unit
def test_a_failed_step_marks_the_course_failed_and_mails_its_people(project_copy, mailbox):
    root, slug = project_copy.root, "data-science-101"
    controller, received = mailbox
    port = controller.port
    project_copy.edit("deploy/lifecycle.yaml", lambda settings: settings["mail"].update(
        host="127.0.0.1", port=port, starttls=False))  # fmt: skip
    course = dispatcher.registry(root)[slug]
    after = date.fromisoformat(course["end"]) + timedelta(days=1)
    steps = [s for s in dispatcher.plan(dispatcher.registry(root), after) if s.slug == slug]
    unreachable = dispatcher.Hub("http://127.0.0.1:9", "no-token")
    report = dispatcher.run(steps, unreachable, root, root / "archive", at(after), root)
    assert report[0].startswith(f"{slug}: FAILED (degrade: ")
    assert state(root, slug)[0] == "FAILED"
    (message,) = received
    contacts = course["lifecycle"]["contacts"]
    assert all(address in message["To"] for address in contacts)
    assert message["Subject"] == f"coursehub: {slug} is FAILED (degrade)"
    assert "coursehub-course approve data-science-101" in message.get_payload()
    assert report[1] == f"{slug}: e-mailed {message['To']}"
