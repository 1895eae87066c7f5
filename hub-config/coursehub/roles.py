"""JupyterHub roles for instructors and teaching assistants, from their GitHub teams.

Instructor teams get, over the members of the student teams and of the courses'
enrollment groups (students admitted by invite link) and nothing else:
their servers (open, start, stop), their user records, and the admin page that
lists them. They are not admins: no other users, no groups, no hub settings.
ref: https://jupyterhub.readthedocs.io/en/stable/rbac/scopes.html
"""

from __future__ import annotations

from coursehub.enrollment import enrollment_group

# Per student group; "!group=" limits each scope to that group's members.
SCOPES_OVER_STUDENTS = (
    "access:servers",  # open a student's JupyterLab
    "servers",  # start and stop it
    "list:users",  # see them on the admin page
    "read:users",
)


def instructor_role(github: dict, courses: dict) -> dict:
    """The load_roles entry for values' custom.github.instructorTeams and custom.courses."""
    scopes = ["admin-ui"]
    for group in [*github["studentTeams"], *map(enrollment_group, sorted(courses or {}))]:
        scopes += [f"{scope}!group={group}" for scope in SCOPES_OVER_STUDENTS]
    return {
        "name": "coursehub-instructor",
        "description": "Open, start and stop student servers; see students on the admin page.",
        "scopes": scopes,
        "groups": list(github["instructorTeams"]),
    }
