"""The course registry as the hub sees it: who may start which course, and when.

deploy/courses/<slug>.yaml becomes custom.courses.<slug> in the values
(scripts/config/deployconfig.py checks it against deploy/schema/course.schema.yaml), so
the cluster and the local hub read the same entries with get_config.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime

from coursehub.enrollment import enrollment_group

INSTRUCTOR = "instructor"
STUDENT = "student"
# Lifecycle states (deploy/schema/course.schema.yaml): students may start a
# DEPLOYED course, instructors also an ACCEPTED one to prepare it.
DEPLOYED, ACCEPTED = "DEPLOYED", "ACCEPTED"


@dataclass(frozen=True)
class Course:
    slug: str
    title: str
    image: str
    start: date
    end: date
    instructor_groups: frozenset[str]
    student_groups: frozenset[str]
    memory: Mapping[str, str]
    cpu: Mapping[str, float]
    content_repo: str | None = None
    content_branch: str | None = None
    default_notebook: str | None = None
    state: str = DEPLOYED
    hooks: str = "image"  # or "admin": also the admin folder's (coursehub/hooks.py)

    @classmethod
    def from_values(cls, entry: Mapping) -> Course:
        content = entry.get("content") or {}
        return cls(
            slug=entry["slug"],
            title=entry["title"],
            image=entry["image"],
            # Text in values.yaml ("2026-11-02"); str() also takes a YAML date.
            start=date.fromisoformat(str(entry["start"])),
            end=date.fromisoformat(str(entry["end"])),
            instructor_groups=frozenset(entry["groups"]["instructors"]),
            # Students are the course's teams and whoever its instructors
            # admitted by invite link (coursehub/enrollment.py).
            student_groups=frozenset(
                [*entry["groups"]["students"], enrollment_group(entry["slug"])]
            ),
            memory=entry["resources"]["memory"],
            cpu=entry["resources"]["cpu"],
            content_repo=content.get("repo"),
            content_branch=content.get("branch"),
            default_notebook=entry.get("defaultNotebook"),
            state=(entry.get("lifecycle") or {}).get("state", DEPLOYED),
            hooks=entry.get("hooks", "image"),
        )

    def role(self, groups: Iterable[str]) -> str | None:
        """INSTRUCTOR or STUDENT by group membership (instructor wins), None if neither."""
        groups = set(groups)
        if groups & self.instructor_groups:
            return INSTRUCTOR
        if groups & self.student_groups:
            return STUDENT
        return None

    def closed_reason(self, role: str, today: date) -> str | None:
        """Why someone with `role` cannot start the course `today`, or None if they can.

        Instructors may start a course before its start date to prepare and test
        it, once it is accepted; nobody may after its end date.
        """
        if self.state not in (DEPLOYED, ACCEPTED) or (role == STUDENT and self.state != DEPLOYED):
            return f"{self.title} ({self.slug}) is not open on this hub ({self.state.lower()})."
        if today > self.end:
            return f"{self.title} ({self.slug}) closed on {self.end.isoformat()}."
        if role == STUDENT and today < self.start:
            return f"{self.title} ({self.slug}) opens on {self.start.isoformat()}."
        return None

    def closed_to_applicants(self, today: date) -> str | None:
        """Why the course takes no applications by invite link today, or None if it does.

        From its acceptance to its end, as for instructors: a class can enrol
        before the first day.
        """
        return self.closed_reason(INSTRUCTOR, today)


PRETEND_KEY = "CourseSpawner.today"


def course_day(pretend: str) -> date:
    """The date courses are judged by: `pretend` (YYYY-MM-DD) if set, else UTC today."""
    if not pretend:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(pretend)
    except ValueError:
        raise ValueError(
            f"{PRETEND_KEY} {pretend!r} is not a date: write YYYY-MM-DD, "
            "or leave it unset for the real date"
        ) from None


def pretend_notice(pretend: str) -> str:
    """What every page of a hub that pretends a date says (JupyterHub's announcement)."""
    day = course_day(pretend).isoformat()
    return (
        f"This hub pretends today is {day} ({PRETEND_KEY}): courses open and close "
        "as they would on that day, whatever the calendar says."
    )


def load_courses(entries: Mapping[str, Mapping] | None) -> list[Course]:
    """Courses from custom.courses, in slug order (the order of the choice form)."""
    return [Course.from_values(entries[slug]) for slug in sorted(entries or {})]


def open_to(courses: Iterable[Course], groups: Iterable[str], today: date) -> list[Course]:
    """The courses a member of `groups` may start `today`."""
    groups = set(groups)
    return [
        course
        for course in courses
        if (role := course.role(groups)) and course.closed_reason(role, today) is None
    ]
