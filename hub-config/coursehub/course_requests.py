"""A course request as a registry record: built, checked, and its state told in words.

`coursehub-course request` (scripts/course_lifecycle.py) and the course request
service's page (coursehub/course_request_service.py) both make a new course's
registry file, deploy/courses/<slug>.yaml, with `new_course`, and both check it
against the registry's schema, deploy/schema/course.schema.yaml, and `end_problem`,
the one rule a schema cannot say. The service runs in the hub pod, which has
hub-config/ and not the repository's tools, so this module is here and the tools
import it (as they import coursehub.courses).
"""

from __future__ import annotations

from datetime import date

REQUESTED = "REQUESTED"
# The resources a request asks for unless it says otherwise.
MEMORY, MEMORY_LIMIT, CPU, CPU_LIMIT = "1G", "2G", 0.25, 1.0
# A course's state as its requester reads it on the service's page.
STATE_WORDS = {
    "REQUESTED": "requested: waiting for an approver",
    "ACCEPTED": "approved: it opens to its students on its start date",
    "DEPLOYED": "deployed: open on the hub",
    "DEGRADED": "ended: closed, its servers stopped and its homes archived",
    "FAILED": "failed: a step of the dispatcher failed (the registry says why); an approver "
    "may accept it again",
}


def new_course(
    *, slug: str, title: str, image: str, start: str, end: str,
    instructors: list[str], students: list[str], by: str, why: str, at: str,
    contacts: list[str] = (), expected_students: int | None = None,
    memory: str = MEMORY, memory_limit: str = MEMORY_LIMIT,
    cpu: float = CPU, cpu_limit: float = CPU_LIMIT,
) -> dict:  # fmt: skip
    """A new course's registry record in state REQUESTED, requested by `by` at `at`."""
    lifecycle = {"state": REQUESTED, "requestedBy": by, "contacts": list(contacts)}
    if expected_students is not None:
        lifecycle["expectedStudents"] = expected_students
    lifecycle["history"] = [{"state": REQUESTED, "at": at, "by": by, "why": why}]
    return {
        "slug": slug,
        "title": title,
        "image": image,
        "start": start,
        "end": end,
        "groups": {"instructors": list(instructors), "students": list(students)},
        "resources": {"memory": {"guarantee": memory, "limit": memory_limit},
                      "cpu": {"guarantee": cpu, "limit": cpu_limit}},
        "lifecycle": lifecycle,
    }  # fmt: skip


def end_problem(course: dict) -> str | None:
    """What the schema cannot say of a course's dates: it may not end before it starts."""
    try:
        start, end = (date.fromisoformat(str(course[key])) for key in ("start", "end"))
    except (KeyError, ValueError):
        return None  # the schema says what is wrong with the dates themselves
    return f"{end} is before start {start}" if end < start else None


def problems(course: dict, schema: dict) -> dict[str, str]:
    """Each wrong field of `course` (its dotted path) and what it must be, in the schema's
    words (`mustBe`), all at once: a page shows every one beside its field."""
    # Imported here, when a request is checked: importing jsonschema builds its format
    # checkers' grammars, seconds of a loaded machine, and the hub gives a service it
    # starts ten seconds to answer (ref: jupyterhub app.py start_service).
    import jsonschema

    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    found: dict[str, str] = {}
    for error in validator.iter_errors(course):
        path = ".".join(str(part) for part in error.absolute_path) or "(the record)"
        if "mustBe" in error.schema:
            message = f"{error.instance!r} is not {error.schema['mustBe']}"
        else:
            message = error.message
        found.setdefault(path, message)
    if "end" not in found and "start" not in found and (problem := end_problem(course)):
        found["end"] = problem
    return found


def state_in_words(state: str) -> str:
    return STATE_WORDS.get(state, state)
