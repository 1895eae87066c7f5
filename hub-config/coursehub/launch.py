"""Launch links: /hub/spawn?profile=<slug>&next=<notebook URL>, checked before anything starts.

Stock JupyterHub reads the query of /hub/spawn as the server's options
(Spawner.options_from_query) and, once the server is up, sends the browser to
`next`. coursehub accepts exactly two arguments: `profile`, a course of the
registry the user may start today, and optionally `next`, a notebook under
the user's home reached through /hub/user-redirect/lab/tree/. Anything else is
refused with a page saying why and listing what the user may start, so no link
can name an image (the hole MIT closed) or a path outside the home.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import date
from urllib.parse import quote, unquote, urlencode

from coursehub.courses import Course
from coursehub.refusal import Refused

PROFILE = "profile"
NEXT = "next"


def notebook_prefix(hub_base_url: str) -> str:
    """Where a launch link's `next` must point: JupyterLab's file browser, any user."""
    return hub_base_url.rstrip("/") + "/user-redirect/lab/tree/"


def launch_link(hub_base_url: str, course: Course, notebook: str | None = None) -> str:
    """The link an instructor hands out: start `course`, then open `notebook`."""
    query = {PROFILE: course.slug}
    notebook = notebook or course.default_notebook
    if notebook:
        query[NEXT] = notebook_prefix(hub_base_url) + quote(notebook)
    return hub_base_url.rstrip("/") + "/spawn?" + urlencode(query)


def notebook_problem(next_url: str, prefix: str) -> str | None:
    """Why `next` (already decoded once from the query) is not a notebook in the home."""
    if not next_url.startswith(prefix):
        return f"it must open a notebook under {prefix}"
    raw = next_url[len(prefix) :]
    if any(char in raw for char in "?#\\") or any(ord(char) < 32 for char in raw):
        return "it may only name a file: no '?', '#', '\\' or control characters"
    path = unquote(raw)
    if "%" in path:
        # Decoded twice already (query, then path): a third level only hides something.
        return "its path is encoded more than once"
    if path.startswith("/"):
        return "its path is absolute; it must be relative to your home folder"
    if not path or any(part in ("", ".", "..") for part in path.split("/")):
        return "its path must stay inside your home folder (no '..', '.' or empty parts)"
    return None


def choose_course(
    courses: Sequence[Course],
    groups: Sequence[str],
    today: date,
    query: Mapping[str, Sequence[str]],
    next_url: str | None,
    hub_base_url: str,
) -> Course:
    """The course a launch link asks for, or Refused saying why not."""
    unexpected = sorted(set(query) - {PROFILE})
    if unexpected:
        raise Refused(
            400,
            f"This link asks for {', '.join(map(repr, unexpected))}: a launch link names "
            "a course with 'profile' and a notebook with 'next', nothing else.",
        )
    slugs = query.get(PROFILE, [])
    if len(slugs) != 1:
        raise Refused(400, "This link must name exactly one course (profile=<course>).")
    slug = slugs[0]
    course = next((c for c in courses if c.slug == slug), None)
    if course is None:
        raise Refused(404, f"There is no course {slug!r} on this hub.")
    role = course.role(groups)
    if role is None:
        raise Refused(403, f"You are not enrolled in {course.title} ({course.slug}).")
    reason = course.closed_reason(role, today)
    if reason:
        raise Refused(403, reason)
    if next_url is not None:
        problem = notebook_problem(next_url, notebook_prefix(hub_base_url))
        if problem:
            raise Refused(400, f"This link's notebook cannot be opened: {problem}.")
    return course


def course_form(courses: Sequence[Course], hub_base_url: str) -> str:
    """The options form: one choice per course the user may start, each with its link."""
    if not courses:
        return "<p>No course is open to you today, so there is nothing to start.</p>"
    items = []
    for index, course in enumerate(courses):
        checked = " checked" if index == 0 else ""
        link = html.escape(launch_link(hub_base_url, course))
        items.append(
            f'<div class="radio"><label><input type="radio" name="{PROFILE}"'
            f' value="{html.escape(course.slug)}"{checked}> {html.escape(course.title)}'
            f" ({course.start.isoformat()} to {course.end.isoformat()})</label>"
            f' <a href="{link}">launch link</a></div>'
        )
    return "<p>Courses you may start:</p>\n" + "\n".join(items)
