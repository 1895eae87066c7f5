"""A course from request to teardown: allowed moves only, history kept, the dispatcher's
steps safe to run again. The clock is injected; the registry is a copy of the project's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from datetime import UTC, date, datetime, timedelta
from urllib.parse import quote

import nbformat
import pytest

from coursehub.enrollment import enrollment_group
from coursehub_tools import content_check, dispatcher, lifecycle_mail
from coursehub_tools import course_lifecycle as lifecycle
from coursehub_tools.deployconfig import load
from coursehub_tools.hub_client import follow_progress, login_with_standin
from coursehub_tools.local_hub import free_port
from coursehub_tools.yamlfiles import ConfigError, read_yaml

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
    # nora was admitted by invite: her home is archived too, then she leaves the course.
    enrolled = quote(enrollment_group(slug), safe="")
    assert hub.api("POST", "/users/nora").ok
    assert hub.api("POST", f"/groups/{enrolled}/users", json={"users": ["nora"]}).ok
    (hub.state_dir / "homes" / "nora").mkdir(parents=True)
    (hub.state_dir / "homes" / "nora" / "essay.ipynb").write_text("{}")
    client = dispatcher.Hub(hub.url, hub.operator_token)
    after = date.fromisoformat(course["end"]) + timedelta(days=1)
    (step,) = [s for s in dispatcher.plan(dispatcher.registry(root), after) if s.slug == slug]
    archive = root / "archive"
    # A first run that dies before writing the state: servers stopped, homes archived.
    entries = dispatcher.registry(root)
    done = dispatcher.degrade(step, entries, client, hub.state_dir / "homes", archive)
    assert "stopped sam's server" in done
    assert f"took nora out of {enrollment_group(slug)}" in done
    assert hub.api("GET", f"/groups/{enrolled}").json()["users"] == []
    assert (archive / slug / "nora.tar.gz").exists(), "archived before she left"
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


def local_mail(project_copy, mailbox) -> None:
    """The failure e-mails go to the local SMTP server, not the registry's."""
    port = mailbox[0].port
    project_copy.edit("deploy/lifecycle.yaml", lambda settings: settings["mail"].update(
        host="127.0.0.1", port=port, starttls=False))  # fmt: skip


@pytest.mark.unit
def test_a_failed_step_marks_the_course_failed_and_mails_its_people(project_copy, mailbox):
    root, slug = project_copy.root, "data-science-101"
    _, received = mailbox
    local_mail(project_copy, mailbox)
    course = dispatcher.registry(root)[slug]
    after = date.fromisoformat(course["end"]) + timedelta(days=1)
    steps = [s for s in dispatcher.plan(dispatcher.registry(root), after) if s.slug == slug]
    waited: list[float] = []
    unreachable = dispatcher.Hub("http://127.0.0.1:9", "no-token", sleep=waited.append)
    report = dispatcher.run(steps, unreachable, root, root / "archive", at(after), root)
    assert len(waited) == unreachable.attempts - 1, "asked again before giving up"
    assert report[0].startswith(f"{slug}: FAILED (degrade: ")
    assert state(root, slug)[0] == "FAILED"
    (message,) = received
    contacts = course["lifecycle"]["contacts"]
    assert all(address in message["To"] for address in contacts)
    assert message["Subject"] == f"coursehub: {slug} is FAILED (degrade)"
    assert "coursehub-course approve data-science-101" in message.get_payload()
    assert report[1] == f"{slug}: e-mailed {message['To']}"


def accept_a_course_starting_alone(root) -> str:
    """ml-201, accepted, starting on a day no other course starts or ends; that day."""
    start = "2027-02-01"
    assert request(root, start=start) == 0
    assert lifecycle.main(["--root", str(root), "approve", "ml-201", "--by", APPROVER,
                           "--why", "agreed"], clock=at(date(2027, 1, 12))) == 0  # fmt: skip
    assert [s.slug for s in dispatcher.plan(dispatcher.registry(root), date.fromisoformat(start))
            ] == ["ml-201"], "its deploy is the only step due"  # fmt: skip
    return start


@pytest.mark.unit
def test_a_failed_step_makes_the_run_exit_1_after_printing_the_plan(
    project_copy, mailbox, capsys, monkeypatch
):
    """What a scheduled run needs: the plan and what was done in its log, and red on FAILED."""
    root, slug = project_copy.root, "data-science-101"
    local_mail(project_copy, mailbox)
    monkeypatch.delenv(dispatcher.TOKEN_ENV, raising=False)
    after = date.fromisoformat(str(dispatcher.registry(root)[slug]["end"])) + timedelta(days=1)
    (step,) = [s for s in dispatcher.plan(dispatcher.registry(root), after) if s.slug == slug]
    # No --hub: degrading cannot stop the servers, so the step fails.
    assert dispatcher.main(["--root", str(root), "--today", after.isoformat()]) == 1
    out, err = capsys.readouterr()
    planned, reported = f"degrade {slug}: {step.why}", f"{slug}: FAILED (degrade: "
    assert planned in out and reported in out
    assert out.index(planned) < out.index(reported), "the plan is printed before the steps"
    assert f"FAILED: {slug}" in err
    assert state(root, slug)[0] == "FAILED"


@pytest.mark.unit
def test_a_run_whose_steps_all_succeed_exits_0(project_copy, monkeypatch, capsys):
    root = project_copy.root
    monkeypatch.delenv(dispatcher.TOKEN_ENV, raising=False)
    # ml-201 has no content repository, so deploying it runs no notebook.
    day = accept_a_course_starting_alone(root)
    assert dispatcher.main(["--root", str(root), "--today", day]) == 0
    assert "ml-201: DEPLOYED" in capsys.readouterr().out
    assert state(root)[0] == "DEPLOYED"


def with_content(project_copy, slug="ml-201"):
    """The course's notebooks in a repository nobody can clone: a test that reaches
    them ran them."""
    content = {"repo": "https://example.invalid/ml-201-content", "branch": "main"}
    project_copy.edit(f"deploy/courses/{slug}.yaml", lambda course: course.update(content=content))


@pytest.fixture
def notebooks_run(monkeypatch):
    """The content repositories the dispatcher set out to run, instead of running them."""
    ran = []

    def check_repository(repo, branch, memory_limit=None):
        ran.append(repo)
        return [], []

    monkeypatch.setattr(content_check, "check_repository", check_repository)
    for name in dispatcher.SECRETS_ENV:
        monkeypatch.delenv(name, raising=False)
    return ran


@pytest.mark.unit
@pytest.mark.parametrize("secret", dispatcher.SECRETS_ENV)
def test_holding_a_secret_the_dispatcher_runs_no_course_notebook(
    project_copy, notebooks_run, monkeypatch, capsys, secret
):
    """A notebook is the course's code, and code can read the environment of every
    process of its user (/proc/<pid>/environ), where taking a variable out of
    os.environ does not reach: with the hub's token or the SMTP password set, a due
    course's notebooks are refused before any step, and nothing changes."""
    root = project_copy.root
    day = accept_a_course_starting_alone(root)
    with_content(project_copy)
    monkeypatch.setenv(secret, "a-secret")
    hub = ["--hub", "http://127.0.0.1:9"] if secret == dispatcher.TOKEN_ENV else []
    assert dispatcher.main(["--root", str(root), "--today", day, *hub]) == 1
    err = capsys.readouterr().err
    assert f"notebooks of ml-201 would run beside ${secret}" in err and "--check-content" in err
    assert notebooks_run == [] and state(root)[0] == "ACCEPTED"


@pytest.mark.unit
def test_the_notebook_run_refuses_to_start_beside_a_secret(
    project_copy, notebooks_run, monkeypatch, capsys, tmp_path
):
    root = project_copy.root
    day = accept_a_course_starting_alone(root)
    with_content(project_copy)
    monkeypatch.setenv(dispatcher.TOKEN_ENV, "a-secret")
    report = tmp_path / "content.json"
    argv = ["--root", str(root), "--today", day, "--check-content", str(report)]
    assert dispatcher.main(argv) == 1
    assert f"${dispatcher.TOKEN_ENV} is set here" in capsys.readouterr().err
    assert notebooks_run == [] and not report.exists()


@pytest.mark.unit
def test_deploying_on_a_report_runs_no_notebook_and_trusts_it_for_listed_courses_only(
    project_copy, notebooks_run, mailbox, monkeypatch, tmp_path
):
    """The dispatch job holds the secrets and deploys on the content job's report; a
    course with content that the report does not list was not checked: FAILED."""
    root = project_copy.root
    local_mail(project_copy, mailbox)
    day = accept_a_course_starting_alone(root)
    with_content(project_copy)
    report = tmp_path / "content.json"
    argv = ["--root", str(root), "--today", day]
    assert dispatcher.main([*argv, "--check-content", str(report)]) == 0
    assert notebooks_run == ["https://example.invalid/ml-201-content"]
    assert json.loads(report.read_text()) == {"ml-201": []}
    assert state(root)[0] == "ACCEPTED", "the notebook run changes nothing"

    monkeypatch.setenv(dispatcher.TOKEN_ENV, "a-secret")
    monkeypatch.setenv(lifecycle_mail.PASSWORD_ENV, "another")
    secrets_argv = [*argv, "--hub", "http://127.0.0.1:9", "--content-report", str(report)]
    report.write_text("{}")
    assert dispatcher.main(secrets_argv) == 1
    course_state, _ = state(root)
    why = lifecycle.read_course(lifecycle.course_file("ml-201", root))["lifecycle"]["history"][-1][
        "why"
    ]
    assert course_state == "FAILED" and "its notebooks were not checked" in why, why
    assert notebooks_run == ["https://example.invalid/ml-201-content"], "none ran beside them"


@pytest.mark.unit
@pytest.mark.parametrize("text", ["not json", '{"ml-201": "ok"}', "[]"])
def test_a_report_that_is_not_a_notebook_run_is_refused_before_any_step(
    project_copy, notebooks_run, capsys, tmp_path, text
):
    root = project_copy.root
    day = accept_a_course_starting_alone(root)
    with_content(project_copy)
    report = tmp_path / "content.json"
    report.write_text(text)
    assert (
        dispatcher.main(["--root", str(root), "--today", day, "--content-report", str(report)]) == 1
    )
    assert f"--content-report {report}" in capsys.readouterr().err
    assert state(root)[0] == "ACCEPTED"


@pytest.mark.unit
def test_the_smtp_password_from_the_environment_logs_in(project_copy, monkeypatch, capsys):
    """The workflow hands the password over in $COURSEHUB_SMTP_PASSWORD; the failure
    e-mail logs in with it, and the dispatcher's environment no longer holds it."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    logins, received = [], []

    def check_login(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=True)

    class Keep:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope.rcpt_tos)
            return "250 OK"

    server = Controller(Keep(), hostname="127.0.0.1", port=free_port(),
                        authenticator=check_login, auth_require_tls=False)  # fmt: skip
    server.start()
    try:
        local_mail(project_copy, (server, received))
        root, slug = project_copy.root, "data-science-101"
        after = date.fromisoformat(str(dispatcher.registry(root)[slug]["end"])) + timedelta(days=1)
        monkeypatch.setenv(dispatcher.TOKEN_ENV, "no-token")
        monkeypatch.setenv(lifecycle_mail.PASSWORD_ENV, "secret-smtp-password")
        # The hub cannot be reached, so degrading fails and the people are told.
        argv = ["--root", str(root), "--today", after.isoformat(), "--hub", "http://127.0.0.1:9"]
        assert dispatcher.main(argv) == 1
    finally:
        server.stop()
    mail = read_yaml(root / lifecycle.LIFECYCLE_FILE)["mail"]
    assert logins == [(mail["user"], "secret-smtp-password")]
    assert len(received) == 1, capsys.readouterr().out
    assert lifecycle_mail.PASSWORD_ENV not in os.environ


@pytest.mark.unit
@pytest.mark.parametrize(
    ("hub_url", "token"),
    [("", "a-token"), ("http://127.0.0.1:9", None)],
    ids=["no-url", "no-token"],
)
def test_a_hub_without_its_url_or_token_is_refused_before_any_step(
    project_copy, monkeypatch, capsys, hub_url, token
):
    """A repository variable or secret missing in the workflow fails the run, not the courses."""
    root = project_copy.root
    if token is None:
        monkeypatch.delenv(dispatcher.TOKEN_ENV, raising=False)
    else:
        monkeypatch.setenv(dispatcher.TOKEN_ENV, token)
    before = {p.name: p.read_text() for p in (root / "deploy/courses").glob("*.yaml")}
    # A day on which data-science-101 is due to be degraded.
    assert dispatcher.main(["--root", str(root), "--today", "2030-01-01", "--hub", hub_url]) == 1
    assert f"--hub needs a URL and the hub's token in ${dispatcher.TOKEN_ENV}" in (
        capsys.readouterr().err
    )
    assert {p.name: p.read_text() for p in (root / "deploy/courses").glob("*.yaml")} == before


@pytest.mark.unit
def test_degrading_without_homes_stops_servers_and_says_nothing_was_archived(project_copy):
    root, slug = project_copy.root, "data-science-101"
    stopped, emptied = [], []

    class OneServerRunning:
        """A hub on which sam runs the course; asked for members, it fails the test."""

        def running(self, course_slug, courses):
            return ["sam"] if course_slug == slug else []

        def stop_servers(self, users, timeout):
            stopped.extend(users)

        def members(self, groups):
            raise AssertionError("with no homes to archive, members are not looked up")

        def empty(self, group):
            emptied.append(group)
            return ["nora"]

    after = date.fromisoformat(str(dispatcher.registry(root)[slug]["end"])) + timedelta(days=1)
    steps = [s for s in dispatcher.plan(dispatcher.registry(root), after) if s.slug == slug]
    archive = root / "archive"
    report = dispatcher.run(steps, OneServerRunning(), None, archive, at(after), root)
    assert stopped == ["sam"]
    assert f"{slug}: no homes archived (no --homes or --cluster-homes)" in report
    assert emptied == [enrollment_group(slug)], "nor do its enrollments outlive it"
    assert f"took nora out of {enrollment_group(slug)}" in report
    assert report[-1] == f"{slug}: DEGRADED ({steps[0].why})"
    assert not archive.exists()


@pytest.mark.unit
def test_a_run_that_overlaps_another_is_refused_and_moves_nothing(
    project_copy, monkeypatch, capsys
):
    """Without the lock, the second run plans from the registry the first has not yet
    written, finds the course already DEPLOYED when it moves it, and marks it FAILED."""
    root = project_copy.root
    monkeypatch.delenv(dispatcher.TOKEN_ENV, raising=False)
    day = accept_a_course_starting_alone(root)
    with dispatcher.one_run_at_a_time(root):
        # The first run holds the registry: it deploys ml-201 meanwhile.
        first_run = at(date.fromisoformat(day))
        lifecycle.transition("ml-201", "DEPLOYED", by=lifecycle.DISPATCHER, why="first run",
                             role="dispatcher", clock=first_run, root=root)  # fmt: skip
        assert dispatcher.main(["--root", str(root), "--today", day]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "another dispatcher run" in err
        assert err.count("\n") == 1, "one line"
    assert state(root) == ("DEPLOYED", ["REQUESTED", "ACCEPTED", "DEPLOYED"])
    # Once the first has finished, the next run plans from what it left: nothing due.
    assert dispatcher.main(["--root", str(root), "--today", day]) == 0
    assert "0 step(s) due" in capsys.readouterr().out
    assert state(root)[0] == "DEPLOYED"


def waiting_content(folder, release) -> str:
    """A content repository whose one notebook runs until `release` exists (two minutes at
    most): a dispatcher checking it is mid-run, holding the lock, for as long as a test
    needs. Its file:// URL."""
    folder.mkdir()
    wait = (f"import pathlib, time\nrelease = pathlib.Path({str(release)!r})\n"
            "for _ in range(1200):\n    if release.exists():\n        break\n"
            "    time.sleep(0.1)\n")  # fmt: skip
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(wait)])
    nbformat.write(notebook, folder / "wait.ipynb")
    git = ["git", "-C", str(folder), "-c", "user.name=i", "-c", "user.email=i@x"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(folder)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "content"], check=True)
    return f"file://{folder}"


@pytest.mark.hub  # two dispatcher processes, and a notebook in a real kernel
def test_two_dispatchers_at_once_the_second_is_refused_and_the_course_deploys_once(
    project_copy, tmp_path
):
    """Two `coursehub-dispatch` runs of one checkout at once: the first holds the lock while
    it runs the deploying course's notebooks, the second is refused at once and moves
    nothing, and the first then deploys the course, once (not FAILED by the second)."""
    root, release = project_copy.root, tmp_path / "release"
    day = accept_a_course_starting_alone(root)
    content = {"repo": waiting_content(tmp_path / "content", release), "branch": "main"}
    project_copy.edit("deploy/courses/ml-201.yaml", lambda course: course.update(content=content))
    env = {k: v for k, v in os.environ.items() if k not in dispatcher.SECRETS_ENV}
    command = [sys.executable, "-m", "coursehub_tools.dispatcher", "--root", str(root),
               "--today", day]  # fmt: skip
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as first:
        # The plan is printed once the lock is held and before the notebooks run.
        assert first.stdout.readline().startswith("deploy ml-201:")
        assert first.stdout.readline().startswith("1 step(s) due")
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert second.returncode == 1 and second.stdout == ""
        assert "another dispatcher run of this registry is in progress" in second.stderr
        assert state(root)[0] == "ACCEPTED", "the second moved nothing"
        release.touch()
        assert first.wait(timeout=300) == 0
    assert state(root) == ("DEPLOYED", ["REQUESTED", "ACCEPTED", "DEPLOYED"])


@pytest.mark.hub
def test_a_daily_copy_of_the_homes_of_a_running_course_leaves_out_servers_in_use(
    project_copy, hub_factory, monkeypatch, capsys
):
    """`--back-up-homes`: the homes of the course running today, copied into a folder of
    the day, except the home of a student whose server runs (it is being written)."""
    root, slug = project_copy.root, "data-science-101"
    archive = root / "archive"
    project_copy.edit("deploy/lifecycle.yaml", lambda s: s.update(archive=str(archive)))
    course = dispatcher.registry(root)[slug]
    day = course["start"]
    today = {"hub": {"config": {"CourseSpawner": {"today": day}}}}
    hub = hub_factory(server="lightweight", extra_values=today)
    for student in ("sam", "sky"):
        session = login_with_standin(hub.url, student, next_url="/hub/spawn").session
        follow_progress(session, hub.url, student)
        (hub.state_dir / "homes" / student / "work.ipynb").write_text("{}")
    dispatcher.Hub(hub.url, hub.operator_token).stop_servers(["sky"], timeout=60)
    monkeypatch.setenv(dispatcher.TOKEN_ENV, hub.operator_token)
    argv = ["--root", str(root), "--today", str(day), "--hub", hub.url,
            "--homes", str(hub.state_dir / "homes"), "--back-up-homes"]  # fmt: skip
    assert dispatcher.main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    copies = archive / "backups" / str(day) / slug
    assert f"{slug}: sam's server runs; home not copied today" in out
    assert not (copies / "sam.tar.gz").exists()
    with tarfile.open(copies / "sky.tar.gz") as tar:
        assert "sky/work.ipynb" in tar.getnames()
    assert state(root, slug)[0] == lifecycle.state_of(course), "a copy moves no course"
