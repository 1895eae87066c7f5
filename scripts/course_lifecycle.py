"""A course's life in the registry: REQUESTED, ACCEPTED, DEPLOYED, then DEGRADED (or FAILED).

The state and its history (who, when, why) live in the course's registry file,
deploy/courses/<slug>.yaml, so a state change is a commit that CI checks, like
any other change to the registry. Comments in the file are kept.

    coursehub-course request --slug ml-201 --title "ML 201" --start 2027-03-01 \\
        --end 2027-05-28 --image ghcr.io/coursehub/ml-201:2027.2.1 \\
        --instructors coursehub-school:instructors --students coursehub-school:students \\
        --by ian --why "Spring term"
    coursehub-course approve ml-201 --by ada --why "room and budget agreed"
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from coursehub import course_requests
from coursehub_tools.deployconfig import COURSES_DIR, Layer, check_course
from coursehub_tools.yamlfiles import ROOT, ConfigError, read_yaml, relative

REQUESTED = course_requests.REQUESTED
ACCEPTED, DEPLOYED, DEGRADED, FAILED = "ACCEPTED", "DEPLOYED", "DEGRADED", "FAILED"
# Who may make each move: an approver accepts; the dispatcher does the rest.
ALLOWED = {
    (REQUESTED, ACCEPTED): "approver",
    (FAILED, ACCEPTED): "approver",
    (ACCEPTED, DEPLOYED): "dispatcher",
    (DEPLOYED, DEGRADED): "dispatcher",
    (ACCEPTED, FAILED): "dispatcher",
    (DEPLOYED, FAILED): "dispatcher",
}
LIFECYCLE_FILE = "deploy/lifecycle.yaml"
COURSE_SCHEMA = "deploy/schema/course.schema.yaml"
DISPATCHER = "dispatcher"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def stamp(clock: Clock) -> str:
    return clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _yaml() -> YAML:
    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 100
    return yaml


def course_file(slug: str, root: Path = ROOT) -> Path:
    return root / COURSES_DIR / f"{slug}.yaml"


def read_course(path: Path) -> Any:
    return _yaml().load(path.read_text())


def write_course(path: Path, course: Any, root: Path = ROOT) -> None:
    """Check, then replace the file in one step: a crash leaves the old or the new file."""
    # A plain copy for the schema (dates as the text they are in the file).
    plain = json.loads(json.dumps(course, default=str))
    schema = read_yaml(root / COURSE_SCHEMA, root)
    check_course(plain, schema, [Layer(relative(path, root), plain)])
    temporary = path.with_suffix(".yaml.tmp")
    with temporary.open("w") as out:
        _yaml().dump(course, out)
    temporary.replace(path)


def state_of(course: Any) -> str:
    return (course.get("lifecycle") or {}).get("state", DEPLOYED)


def transition(
    slug: str, to: str, *, by: str, why: str, role: str, clock: Clock = utc_now, root: Path = ROOT
) -> Any:
    """Move course `slug` to state `to`, as `role` ("approver" or "dispatcher"), or refuse."""
    path = course_file(slug, root)
    if not path.is_file():
        raise ConfigError(f"{relative(path, root)}: no such course {slug!r} in the registry")
    course = read_course(path)
    lifecycle = course.get("lifecycle")
    if lifecycle is None:
        raise ConfigError(
            f"{relative(path, root)}: lifecycle: missing; this course predates the lifecycle "
            "and is always DEPLOYED"
        )
    now = lifecycle["state"]
    needs = ALLOWED.get((now, to))
    if needs is None:
        allowed = sorted(t for (f, t) in ALLOWED if f == now) or ["none"]
        raise ConfigError(
            f"{relative(path, root)}: lifecycle.state: {now} cannot become {to}; "
            f"from {now} it may become {', '.join(allowed)}"
        )
    if needs != role:
        raise ConfigError(f"{relative(path, root)}: {now} -> {to} is the {needs}'s to make")
    if role == "approver":
        _check_approver(by, lifecycle, path, root)
    lifecycle["state"] = to
    lifecycle["history"].append({"state": to, "at": stamp(clock), "by": by, "why": why})
    write_course(path, course, root)
    return course


def _check_approver(by: str, lifecycle: Any, path: Path, root: Path) -> None:
    if by == lifecycle["requestedBy"]:
        raise ConfigError(
            f"{relative(path, root)}: {by!r} requested this course and cannot approve it too; "
            "another approver must"
        )
    approvers = read_yaml(root / LIFECYCLE_FILE, root)["approvers"]
    if by not in approvers:
        raise ConfigError(
            f"{relative(path, root)}: {by!r} is not an approver; approvers are listed in "
            f"{LIFECYCLE_FILE} ({', '.join(approvers)})"
        )


def request(args: argparse.Namespace, clock: Clock = utc_now, root: Path = ROOT) -> Path:
    """A new registry file in state REQUESTED, from the command line's answers."""
    path = course_file(args.slug, root)
    if path.exists():
        raise ConfigError(f"{relative(path, root)}: a course {args.slug!r} exists already")
    # The same record the course request service's page makes (hub-config/coursehub/).
    course = course_requests.new_course(
        slug=args.slug, title=args.title, image=args.image, start=args.start, end=args.end,
        instructors=args.instructors, students=args.students, by=args.by, why=args.why,
        at=stamp(clock), contacts=args.contact, expected_students=args.expected_students,
        memory=args.memory, memory_limit=args.memory_limit, cpu=args.cpu, cpu_limit=args.cpu_limit,
    )  # fmt: skip
    path.write_text("")
    try:
        write_course(path, course, root)
    except ConfigError:
        path.unlink()
        raise
    return path


def main(argv: list[str] | None = None, clock: Clock = utc_now) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="action", required=True)
    asked = sub.add_parser("request", help="write a new course's registry file (REQUESTED)")
    for name in ("slug", "title", "image", "start", "end", "by", "why"):
        asked.add_argument(f"--{name}", required=True)
    asked.add_argument("--instructors", nargs="+", required=True, help="organization:team")
    asked.add_argument("--students", nargs="+", required=True, help="organization:team")
    asked.add_argument("--contact", nargs="*", default=[], help="e-mail addresses")
    asked.add_argument("--expected-students", type=int, help="for the approver")
    asked.add_argument("--memory", default=course_requests.MEMORY)
    asked.add_argument("--memory-limit", default=course_requests.MEMORY_LIMIT)
    asked.add_argument("--cpu", type=float, default=course_requests.CPU)
    asked.add_argument("--cpu-limit", type=float, default=course_requests.CPU_LIMIT)
    approved = sub.add_parser("approve", help="REQUESTED (or FAILED) -> ACCEPTED, by an approver")
    approved.add_argument("slug")
    approved.add_argument("--by", required=True)
    approved.add_argument("--why", required=True)
    args = parser.parse_args(argv)
    try:
        if args.action == "request":
            path = request(args, clock, args.root)
            print(f"{relative(path, args.root)}: {REQUESTED}; an approver runs "
                  f"`coursehub-course approve {args.slug} --by NAME --why TEXT`")  # fmt: skip
        else:
            transition(args.slug, ACCEPTED, by=args.by, why=args.why, role="approver",
                       clock=clock, root=args.root)  # fmt: skip
            print(f"{args.slug}: {ACCEPTED}; the dispatcher deploys it on its start date")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
