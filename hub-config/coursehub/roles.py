"""JupyterHub roles for instructors and teaching assistants: one role a course.

A course's instructor groups (custom.courses.<slug>.groups.instructors) hold the
role `instructor-<slug>`, which gives, over that course's students and nothing
else (the members of its student teams' groups and of its enrollment group,
students admitted by invite link): their servers (open, start, stop), their
user records, and the admin page that lists them. A TA of one course does not
reach another course's students; an instructor of two courses is in both
courses' groups and holds both roles. They are not admins: no other users, no
groups, no hub settings.
ref: https://jupyterhub.readthedocs.io/en/stable/rbac/scopes.html
"""

from __future__ import annotations

from coursehub.courses import Course, load_courses

# Per student group; "!group=" limits each scope to that group's members.
SCOPES_OVER_STUDENTS = (
    "access:servers",  # open a student's JupyterLab
    "servers",  # start and stop it
    "list:users",  # see them on the admin page
    "read:users",
)
ROLE_PREFIX = "instructor-"


def instructor_role(course: Course) -> dict:
    """The load_roles entry of `course`'s instructors."""
    scopes = ["admin-ui"]
    for group in sorted(course.student_groups):
        scopes += [f"{scope}!group={group}" for scope in SCOPES_OVER_STUDENTS]
    return {
        "name": ROLE_PREFIX + course.slug,
        "description": (
            f"Open, start and stop the servers of the students of {course.title}; "
            "see them on the admin page."
        ),
        "scopes": scopes,
        "groups": sorted(course.instructor_groups),
    }


def instructor_roles(courses: dict) -> list[dict]:
    """One role a course of values' custom.courses."""
    return [instructor_role(course) for course in load_courses(courses)]
