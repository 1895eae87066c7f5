"""The dispatcher: what each course's state and dates call for now, done step by step.

    coursehub-dispatch --dry-run                     # the plan, nothing done
    coursehub-dispatch --hub URL --homes DIR         # do it (token in $COURSEHUB_HUB_TOKEN)
    coursehub-dispatch --hub URL --cluster-homes prod    # homes archived by Jobs on the cluster
    coursehub-dispatch --hub URL                     # homes out of reach: stopped, not archived
    coursehub-dispatch --check-content REPORT        # run the due courses' notebooks, no secrets
    coursehub-dispatch --hub URL --content-report REPORT   # deploy on those results

- An ACCEPTED course whose start has come is marked DEPLOYED. That is a commit to
  the registry; deployed by CI, it offers the course and pre-pulls its image.
- A DEPLOYED course whose end has passed is degraded: its running servers are
  stopped, each member's home is archived, the students admitted by invite
  leave its enrollment group, then it is marked DEGRADED, which hides it.
Every step can run again after a crash between two steps: stopping a stopped
server does nothing, an archive already written is kept, and the state is
written last. A step that fails marks the course FAILED with the reason, and
the command then exits 1, so a scheduled run (.github/workflows/dispatch.yml)
shows red. Run on a schedule (see the chapter "Running a course").

A course's notebooks are the course's code, and they run before it deploys. Code
can read every process's environment of its user (/proc/<pid>/environ) and the
files of its job, so they never run where the hub's token or the SMTP password
is: the dispatch workflow runs them in a job of their own without secrets
(--check-content) and hands the results to the job that has them
(--content-report). The dispatcher holding a secret refuses to run notebooks
itself.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import smtplib
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import requests

from coursehub.courses import Course, load_courses, open_to
from coursehub.enrollment import enrollment_group
from coursehub_tools import content_check, lifecycle_mail
from coursehub_tools import course_lifecycle as lifecycle
from coursehub_tools.deployconfig import COURSES_DIR
from coursehub_tools.home_archive import ClusterHomes
from coursehub_tools.hub_api import HubAPI, HubAPIError, name
from coursehub_tools.yamlfiles import ROOT, ConfigError, read_yaml

TOKEN_ENV = "COURSEHUB_HUB_TOKEN"
SECRETS_ENV = (TOKEN_ENV, lifecycle_mail.PASSWORD_ENV)
# In the checkout the dispatcher writes (ignored by git): held for a whole run.
LOCK_FILE = ".coursehub-dispatch.lock"
STOP_TIMEOUT = 300  # s; a server's stop the dispatcher waits for before archiving its home


# The notebooks' failures of a course (slug, registry entry); none: it may deploy.
ContentCheck = Callable[[str, dict], list[str]]


@dataclass(frozen=True)
class Step:
    slug: str
    action: str  # "deploy" or "degrade"
    why: str


def registry(root: Path = ROOT) -> dict[str, Any]:
    return {
        path.stem: read_yaml(path, root) for path in sorted((root / COURSES_DIR).glob("*.yaml"))
    }


def plan(courses: dict[str, Any], today: date) -> list[Step]:
    steps = []
    for slug, course in courses.items():
        state = (course.get("lifecycle") or {}).get("state", lifecycle.DEPLOYED)
        start, end = (date.fromisoformat(str(course[key])) for key in ("start", "end"))
        if state == lifecycle.ACCEPTED and start <= today <= end:
            steps.append(Step(slug, "deploy", f"its start, {start}, has come"))
        elif state == lifecycle.DEPLOYED and "lifecycle" in course and today > end:
            steps.append(Step(slug, "degrade", f"it ended on {end}"))
    return steps


class Hub(HubAPI):
    """The hub's REST API, as a service whose role can list users, stop servers, read
    groups and take members out of the courses' enrollment groups."""

    def members(self, groups: list[str]) -> list[str]:
        found = set()
        for group in groups:
            # None: nobody of that team has logged in yet.
            model = self.call("GET", f"/groups/{name(group)}", missing_ok=True)
            found.update(model["users"] if model else [])
        return sorted(found)

    def empty(self, group: str) -> list[str]:
        """Take every member out of `group`; the names taken out (none: no such group)."""
        members = self.members([group])
        if members:
            self.call("DELETE", f"/groups/{name(group)}/users", json={"users": members})
        return members

    def running(self, slug: str, courses: list[Course]) -> list[str]:
        users = self.every("/users", state="active")
        return [user["name"] for user in users if runs(user, slug, courses)]


def runs(user: dict, slug: str, courses: list[Course]) -> bool:
    """Whether the user's server runs course `slug`, as the spawner chose it."""
    server = user["servers"].get("") or {}
    if not server:
        return False
    # The hub records the course it started (CourseSpawner._check_course_options).
    chosen = (server.get("user_options") or {}).get("profile")
    if chosen:
        return chosen == slug
    # A server started before the hub recorded it (running through an upgrade): the
    # spawner took the first course open to the user on the day the server started.
    started = date.fromisoformat(server["started"][:10])
    first = open_to(courses, user["groups"], started)[:1]
    return [course.slug for course in first] == [slug]


def archive_home(home: Path, into: Path) -> Path | None:
    """home as into/<user>.tar.gz, written whole or not at all; kept if there already."""
    target = into / f"{home.name}.tar.gz"
    if target.exists() or not home.is_dir():
        return None
    into.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with tarfile.open(partial, "w:gz") as tar:
        tar.add(home, arcname=home.name)
    partial.replace(target)
    return target


def degrade(
    step: Step, registry_entries: dict, hub: Hub, homes: Path | ClusterHomes | None,
    archive: Path,
) -> list[str]:  # fmt: skip
    """Stop the course's servers, archive its members' homes, then end its enrollments;
    each safe to repeat.

    `homes` is the folder holding them (the local hub's), or the cluster whose Jobs
    archive them (scripts/home_archive.py). With neither nothing is archived, and the
    report says so rather than looking for homes where there are none. The students
    its instructors admitted by invite leave its enrollment group last, once their
    homes are archived: a member of it could still log in after the course ended,
    and would be a student again of a later course with the same slug.
    """
    course = registry_entries[step.slug]
    courses = load_courses({slug: entry for slug, entry in registry_entries.items()})
    running = hub.running(step.slug, courses)  # a server already stopping is waited for too
    if running:
        hub.stop_servers(running, timeout=STOP_TIMEOUT)
    done = [f"stopped {user}'s server" for user in running]
    enrolled = enrollment_group(step.slug)
    if homes is None:
        done.append(f"{step.slug}: no homes archived (no --homes or --cluster-homes)")
    else:
        groups = [*course["groups"]["students"], enrolled, *course["groups"]["instructors"]]
        done += archive_homes(step.slug, course, hub.members(groups), homes, archive)
    return [*done, *(f"took {user} out of {enrolled}" for user in hub.empty(enrolled))]


def archive_homes(
    slug: str, course: dict, members: list[str], homes: Path | ClusterHomes, archive: Path
) -> list[str]:
    """Archive each member's home, in the folder `homes` or by Jobs on a cluster."""
    if isinstance(homes, ClusterHomes):
        return homes.archive(slug, members, course["image"])
    done = []
    for user in members:
        if archived := archive_home(homes / user, archive / slug):
            done.append(f"archived {user}'s home to {archived}")
    return done


def back_up_homes(
    courses: dict[str, Any], today: date, hub: Hub, homes: Path | ClusterHomes, archive: Path
) -> list[str]:
    """Today's copy of the homes of every course running today, in backups/<day>/<slug>/.

    The same archive as at a course's end (a Job a member on a cluster), into a folder of
    the day. A member whose server runs is left out and said so: on a cluster their home's
    disk is attached to their server's node, and a copy of files being written is not one.
    Run once a day, after the culler has stopped the night's idle servers.
    """
    day, report = today.isoformat(), []
    for slug, course in courses.items():
        start, end = (date.fromisoformat(str(course[key])) for key in ("start", "end"))
        if lifecycle.state_of(course) != lifecycle.DEPLOYED or not start <= today <= end:
            continue
        groups = [*course["groups"]["students"], enrollment_group(slug),
                  *course["groups"]["instructors"]]  # fmt: skip
        members = hub.members(groups)
        busy = set(hub.with_servers(members))
        report += [f"{slug}: {user}'s server runs; home not copied today" for user in sorted(busy)]
        idle = [user for user in members if user not in busy]
        if isinstance(homes, ClusterHomes):
            report += homes.archive(slug, idle, course["image"], copy=day)
            continue
        for user in idle:
            if copied := archive_home(homes / user, archive / "backups" / day / slug):
                report.append(f"copied {user}'s home to {copied}")
    return report


def run(
    steps: list[Step], hub: Hub | None, homes: Path | ClusterHomes | None, archive: Path,
    clock: lifecycle.Clock, root: Path = ROOT, smtp_password: str | None = None,
    content: ContentCheck | None = None,
) -> list[str]:  # fmt: skip
    """Do each step; a failing one marks its course FAILED and the others go on.

    `content` gives each deploying course's notebook failures (default: run them here).
    """
    content = content or run_notebooks
    report = []
    courses = registry(root)
    for step in steps:
        try:
            if step.action == "degrade":
                if hub is None:
                    raise ConfigError("degrading needs the hub (--hub and $COURSEHUB_HUB_TOKEN)")
                report += degrade(step, courses, hub, homes, archive)
                to = lifecycle.DEGRADED
            else:
                if failures := content(step.slug, courses[step.slug]):
                    raise ConfigError(f"its notebooks fail: {'; '.join(failures)}")
                to = lifecycle.DEPLOYED
            lifecycle.transition(step.slug, to, by=lifecycle.DISPATCHER, why=step.why,
                                 role="dispatcher", clock=clock, root=root)  # fmt: skip
            report.append(f"{step.slug}: {to} ({step.why})")
        except (ConfigError, requests.RequestException, HubAPIError, OSError) as err:
            lifecycle.transition(step.slug, lifecycle.FAILED, by=lifecycle.DISPATCHER,
                                 why=f"{step.action} failed: {err}", role="dispatcher",
                                 clock=clock, root=root)  # fmt: skip
            report.append(f"{step.slug}: FAILED ({step.action}: {err})")
            report.append(tell(courses[step.slug], step.action, str(err), root, smtp_password))
    return report


def run_notebooks(slug: str, course: dict) -> list[str]:
    """Run the course's notebooks here; the failures, by notebook and cell."""
    content = course.get("content")
    if not content:
        return []
    # Under the course's own memory limit, as its students' kernels will be.
    limit = content_check.memory_bytes(course["resources"]["memory"]["limit"], f"{slug}: limit")
    _, failures = content_check.check_repository(
        content["repo"], content.get("branch", "main"), int(limit)
    )
    return [str(failure) for failure in failures]


def check_due_content(steps: list[Step], courses: dict[str, Any], report: Path) -> list[str]:
    """--check-content: run the notebooks of the courses due to deploy and write their
    failures, by course, to `report` (courses without content are not listed)."""
    results = {
        step.slug: run_notebooks(step.slug, courses[step.slug])
        for step in steps
        if step.action == "deploy" and courses[step.slug].get("content")
    }
    report.write_text(json.dumps(results, indent=2) + "\n")
    return [
        f"{slug}: {'; '.join(failures) if failures else 'every notebook ran'}"
        for slug, failures in results.items()
    ]


def content_report(path: Path) -> ContentCheck:
    """The results a --check-content run wrote to `path`. A course with content that the
    report does not list was not checked, and does not deploy."""
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"--content-report {path} cannot be read: {err}") from None
    if not isinstance(results, dict) or not all(
        isinstance(failures, list) and all(isinstance(f, str) for f in failures)
        for failures in results.values()
    ):
        raise ConfigError(
            f"--content-report {path} is not what --check-content writes: a JSON object "
            "naming each course's notebook failures as a list of strings"
        )

    def reported(slug: str, course: dict) -> list[str]:
        if not course.get("content"):
            return []
        if slug not in results:
            raise ConfigError(f"its notebooks were not checked: {path} does not list it")
        return results[slug]

    return reported


def held_secrets() -> list[str]:
    return [name for name in SECRETS_ENV if os.environ.get(name)]


def content_source(args: argparse.Namespace, steps: list[Step], courses: dict) -> ContentCheck:
    """Where the deploying courses' notebook results come from: the report, or a run here
    when this process holds no secret for a notebook to find (checked before popping)."""
    if args.content_report:
        return content_report(args.content_report)
    due = [s.slug for s in steps if s.action == "deploy" and courses[s.slug].get("content")]
    if due and (secrets := held_secrets()):
        raise ConfigError(
            f"the notebooks of {', '.join(due)} would run beside ${' and $'.join(secrets)}: "
            "run them first without secrets (--check-content REPORT) and pass "
            "--content-report REPORT"
        )
    return run_notebooks


def tell(course: dict, action: str, why: str, root: Path, smtp_password: str | None = None) -> str:
    """Mail the course's contacts and the admins; say so, or why it could not."""
    mail = read_yaml(root / lifecycle.LIFECYCLE_FILE, root)["mail"]
    message = lifecycle_mail.failure_message(mail, course, action, why)
    try:
        lifecycle_mail.send(mail, message, smtp_password)
    except (OSError, smtplib.SMTPException) as err:
        return f"{course['slug']}: could not e-mail {message['To']}: {err}"
    return f"{course['slug']}: e-mailed {message['To']}"


def failed(steps: list[Step], root: Path = ROOT) -> list[str]:
    """The courses of `steps` the registry now records as FAILED (read back, not parsed
    from the report)."""
    courses = registry(root)
    return [
        step.slug
        for step in steps
        if (courses[step.slug].get("lifecycle") or {}).get("state") == lifecycle.FAILED
    ]


def hub_from(url: str | None) -> Hub | None:
    """The hub named by --hub, its token taken out of the environment so that nothing
    this process starts (git, an e-mail's connection) inherits it. A --hub without a
    URL or a token is refused before any step, so a missing repository variable or
    secret fails the run instead of every course.
    """
    token = os.environ.pop(TOKEN_ENV, None)
    if url is None:
        return None
    if not url or not token:
        raise ConfigError(f"--hub needs a URL and the hub's token in ${TOKEN_ENV}")
    return Hub(url, token)


@contextlib.contextmanager
def one_run_at_a_time(root: Path):
    """Refuse to start while another run writes the same registry; held until the run ends.

    Two runs that overlap plan from the same registry: the second would find each
    course it deploys or degrades already moved by the first, the move it then makes
    refused, and would mark a course that the first run deployed FAILED and mail its
    instructors. The scheduled workflow's concurrency group keeps its own runs apart;
    this keeps apart any two runs of one checkout (a manual run beside a scheduled one,
    a CronJob's). The kernel releases the lock when the process ends, a crash too.
    """
    path = root / LOCK_FILE
    with path.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"{path}: another dispatcher run of this registry is in progress; run again "
                "when it has finished (it plans from the registry that run leaves)"
            ) from None
        yield


def day_clock(day: date) -> lifecycle.Clock:
    """Noon (UTC) of `day`: with --today, the plan and the history are as of that day."""
    return lambda: datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


def main(argv: list[str] | None = None, clock: lifecycle.Clock = lifecycle.utc_now) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="print the plan, do nothing")
    parser.add_argument("--today", type=date.fromisoformat, help="plan as of this day")
    parser.add_argument("--hub", help="the hub's URL, for degrading")
    parser.add_argument(
        "--homes", type=Path, help="the folder holding users' homes (without it: not archived)"
    )
    parser.add_argument(
        "--cluster-homes", metavar="DEPLOYMENT",
        help="archive homes with Jobs in this deployment's namespace (kubeconfig: $KUBECONFIG)",
    )  # fmt: skip
    parser.add_argument(
        "--check-content", type=Path, metavar="REPORT",
        help="run the notebooks of the courses due to deploy, write their failures to "
        "REPORT, change nothing (where no secret is set)",
    )  # fmt: skip
    parser.add_argument(
        "--content-report", type=Path, metavar="REPORT",
        help="deploy on the notebook results of a --check-content run, not running them here",
    )  # fmt: skip
    parser.add_argument(
        "--back-up-homes", action="store_true",
        help="also copy the homes of the courses running today into backups/<day>/ "
        "(with --homes or --cluster-homes)",
    )  # fmt: skip
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.homes and args.cluster_homes:
        parser.error("homes are in a folder (--homes) or on a cluster (--cluster-homes), not both")
    if args.back_up_homes and not (args.homes or args.cluster_homes):
        parser.error("--back-up-homes copies homes from --homes or --cluster-homes: give one")
    if args.check_content and (args.hub or args.content_report or args.dry_run):
        parser.error("--check-content only runs notebooks: no --hub, --content-report or --dry-run")
    today = args.today or clock().date()
    try:
        # Only runs that write the registry take the lock; a dry run and the notebook
        # run write nothing to it.
        writes = not (args.dry_run or args.check_content)
        with one_run_at_a_time(args.root) if writes else contextlib.nullcontext():
            courses = registry(args.root)
            steps = plan(courses, today)
            if args.check_content:
                return check_content_only(steps, courses, args.check_content)
            # Checked on every real run, due steps or not: a missing secret shows the first day.
            content = None if args.dry_run else content_source(args, steps, courses)
            hub = None if args.dry_run else hub_from(args.hub)
            smtp_password = lifecycle_mail.password_from_environment()
            # The plan first, so a run's log says what was due even if a step then fails.
            for step in steps:
                print(f"{'would ' if args.dry_run else ''}{step.action} {step.slug}: {step.why}")
            # Flushed: a step can run for minutes, and a log read meanwhile should show the plan.
            print(f"{len(steps)} step(s) due on {today}", flush=True)
            if args.dry_run or not (steps or args.back_up_homes):
                return 0
            settings = read_yaml(args.root / lifecycle.LIFECYCLE_FILE, args.root)
            stamps = day_clock(args.today) if args.today else clock
            archive = Path(settings["archive"])
            homes = args.homes
            degrades = any(step.action == "degrade" for step in steps)
            if args.cluster_homes and (degrades or args.back_up_homes):
                homes = ClusterHomes(args.cluster_homes, settings["clusterArchive"]["claim"])
            report = run(steps, hub, homes, archive, stamps, args.root, smtp_password, content)
            if args.back_up_homes:
                if hub is None:
                    raise ConfigError(
                        "--back-up-homes needs the hub (--hub and $COURSEHUB_HUB_TOKEN)"
                    )
                report += back_up_homes(registry(args.root), today, hub, homes, archive)
            for line in report:
                print(line)
            if failures := failed(steps, args.root):
                print(
                    f"error: FAILED: {', '.join(failures)} (the registry says why)", file=sys.stderr
                )
                return 1
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def check_content_only(steps: list[Step], courses: dict[str, Any], report: Path) -> int:
    """--check-content, refused where a notebook could find a secret."""
    if secrets := held_secrets():
        raise ConfigError(
            f"--check-content runs the courses' notebooks, and ${' and $'.join(secrets)} "
            "is set here: run it where no secret is (the dispatch workflow's content job)"
        )
    for line in check_due_content(steps, courses, report):
        print(line)
    print(f"notebook results for the deploy steps due on this day written to {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
