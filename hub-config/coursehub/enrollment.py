"""Enrollment by invite link: the group it adds to, the link, and its check.

An instructor hands out /services/enrollment/invite/<slug>?invite=<token>. The
token names the last day it works and is signed (HMAC-SHA256) with the
enrollment service's API token, which the hub and the service both hold, so a
link cannot be made for another course or a later day without that key. The
hub checks it when someone outside the course's teams logs in through the link
(coursehub/github.py), and the service checks it again before taking an
application (coursehub/enrollment_service.py).

An approved applicant joins the course's enrollment group, one of the groups
the course admits as students (coursehub/courses.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
from datetime import date
from urllib.parse import parse_qs, urlparse

from jupyterhub import orm

from coursehub.refusal import Refused

SERVICE_NAME = "enrollment"
# An application's states, kept in its enrollment group's properties.
PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
INVITE_ARGUMENT = "invite"
# No colon: a GitHub team's group is always "organization:team", so no team
# can ever share a name with an enrollment group (and a team member with it).
GROUP_PREFIX = "enrolled-"
# An invite is its last day, a dot and the first SIGNATURE_DIGITS hex digits of its HMAC.
SIGNATURE_DIGITS = 32
INVITE_FORM = re.compile(rf"(\d{{4}}-\d{{2}}-\d{{2}})\.([0-9a-f]{{{SIGNATURE_DIGITS}}})")


def enrollment_group(slug: str) -> str:
    """The JupyterHub group whose members were admitted to course `slug` by invite."""
    return GROUP_PREFIX + slug


def is_enrollment_group(name: str) -> bool:
    return name.startswith(GROUP_PREFIX) and ":" not in name


def applications_in(properties: dict | None) -> dict[str, dict]:
    """The applications an enrollment group's properties keep, by applicant."""
    return dict((properties or {}).get("applications", {}))


def waiting_for_approval(db, username: str) -> list[str]:
    """The courses where `username` applied and no instructor has decided yet, read from
    the enrollment groups' properties in the hub's database (`db`: its SQLAlchemy session;
    None where there is no hub, as for manifests rendered offline: nobody applied there)."""
    if db is None:
        return []
    groups = db.query(orm.Group).filter(orm.Group.name.startswith(GROUP_PREFIX))
    return sorted(
        group.name[len(GROUP_PREFIX) :]
        for group in groups
        if is_enrollment_group(group.name)
        and applications_in(group.properties).get(username, {}).get("state") == PENDING
    )


def invite_path(service_prefix: str, slug: str) -> str:
    """/services/enrollment/invite/<slug>, under the hub's base URL."""
    return f"{service_prefix.rstrip('/')}/invite/{slug}"


def _signature(key: str, slug: str, last_day: date) -> str:
    message = f"{slug}\0{last_day.isoformat()}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()[:SIGNATURE_DIGITS]


def make_invite(key: str, slug: str, last_day: date) -> str:
    """The `invite` argument of a link to course `slug` that works until `last_day`."""
    return f"{last_day.isoformat()}.{_signature(key, slug, last_day)}"


def check_invite(key: str, slug: str, token: str, today: date, course) -> date:
    """The last day of a good invite to `course` (a coursehub.courses.Course, None if
    the registry has no such course), or Refused saying what is wrong with it."""
    last_day, signature = _parts(slug, token)
    # Both sides are ASCII here (INVITE_FORM), which compare_digest requires of str.
    if not key or not hmac.compare_digest(signature, _signature(key, slug, last_day)):
        raise Refused(
            403,
            f"This invite link is not valid for {slug}: it was changed or made without "
            "this hub's key. Ask your instructor for the link again.",
            why="forged invite",
        )
    if today > last_day:
        raise Refused(
            410,
            f"This invite link to {slug} expired on {last_day.isoformat()}. "
            "Ask your instructor for a new one.",
            why="expired invite",
        )
    closed = "it is not on this hub" if course is None else course.closed_to_applicants(today)
    if closed:
        raise Refused(
            410,
            f"The course {slug} takes no applications now: {closed}",
            why="invite to a closed course",
        )
    return last_day


def _parts(slug: str, token: str) -> tuple[date, str]:
    """An invite's last day and signature, or Refused (400) saying what an invite looks like."""
    form = INVITE_FORM.fullmatch(token or "")
    with contextlib.suppress(ValueError):  # a day that does not exist, such as 2027-02-30
        if form:
            return date.fromisoformat(form.group(1)), form.group(2)
    raise Refused(
        400,
        f"This invite link to {slug} is damaged, perhaps copied incompletely: its "
        f"invite argument must be a day (YYYY-MM-DD), a dot and {SIGNATURE_DIGITS} "
        "hexadecimal digits (0-9, a-f). Copy the whole link again, or ask your "
        "instructor for it.",
        why="malformed invite",
    )


def invited_course(next_url: str | None, service_prefix: str) -> tuple[str, str] | None:
    """(slug, token) when `next_url` is an invite link of this hub's service, else None."""
    if not next_url:
        return None
    url = urlparse(next_url)
    prefix = invite_path(service_prefix, "")
    if url.netloc or not url.path.startswith(prefix):
        return None
    slug = url.path[len(prefix) :].strip("/")
    token = parse_qs(url.query).get(INVITE_ARGUMENT, [""])[0]
    return (slug, token) if slug and "/" not in slug else None


def service_role(courses: dict) -> dict:
    """The enrollment service's role: its courses' enrollment groups, and nothing else."""
    groups = [enrollment_group(slug) for slug in sorted(courses or {})]
    return {
        "name": SERVICE_NAME,
        "description": "Create the courses' enrollment groups, keep applications, add members.",
        # admin:groups creates a group and sets its properties; groups adds members.
        "scopes": [
            f"{scope}!group={group}" for group in groups for scope in ("admin:groups", "groups")
        ],
        "services": [SERVICE_NAME],
    }


def user_role() -> dict:
    """JupyterHub's default `user` role, plus logging in to the enrollment service.

    Since JupyterHub 5 a user may use only the services a role names, and an
    applicant has no role but this one: everyone who logs in gets it.
    ref: https://jupyterhub.readthedocs.io/en/stable/rbac/roles.html#default-roles
    """
    return {
        "name": "user",
        "description": "Standard user privileges, and applying to courses by invite link.",
        "scopes": ["self", f"access:services!service={SERVICE_NAME}"],
    }
