"""The course request service: instructors who do not use git ask for a course on a page.

JupyterHub starts it in the hub pod (hub-config/jupyterhub_config.d/31-course-requests.py)
and people log in to it with the hub (HubOAuth); the hub lets in only the groups
custom.courseRequests.requesters names, and the page checks again. A request becomes
the same registry file `coursehub-course request` writes (coursehub/course_requests.py),
checked against the registry's schema as the base branch has it, and is proposed as a
pull request on the registry's repository, from the branch course-request/<slug>: an
approver approves it as any request (`coursehub-course approve` on that branch) and
merges it; the dispatcher does the rest. The page reads the state back from the
repository, so it shows what the registry says: the file on the request's branch
while the pull request is open, on the base branch once merged.

The GitHub token (a bot account's, or a GitHub App's, with contents and
pull-requests write on that repository only) is custom.courseRequests.githubToken,
set only in a deployment's encrypted secrets layer.
"""

from __future__ import annotations

import contextlib
import html
import logging
import os
import secrets
from datetime import UTC, datetime
from urllib.parse import urlparse

import yaml
from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import ioloop, web

from coursehub.course_requests import new_course, problems, state_in_words
from coursehub.github_repository import GitHubError, GitHubRepository
from coursehub.values import get_config

SERVICE_NAME = "course-requests"
BRANCH_PREFIX = "course-request/"
COURSES_DIR = "deploy/courses"
COURSE_SCHEMA = "deploy/schema/course.schema.yaml"
# The form's fields, and where each lands in the registry record (its errors show beside it).
FIELDS = {
    "title": ("Title", "title"),
    "slug": ("Short name (its address and folder: lowercase, digits, dashes)", "slug"),
    "start": ("First day (YYYY-MM-DD)", "start"),
    "end": ("Last day (YYYY-MM-DD)", "end"),
    "image": ("Image (registry/name:version)", "image"),
    "instructors": ("Instructor teams (organization:team, space-separated)", "groups.instructors"),
    "students": ("Student teams (organization:team, space-separated)", "groups.students"),
    "expected": ("Expected students", "lifecycle.expectedStudents"),
    "why": ("Why (for the approver)", "lifecycle.history"),
}
log = logging.getLogger(SERVICE_NAME)


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CourseRequests:
    """Requests as pull requests on the registry's repository, and their state read back."""

    def __init__(self, settings: dict):
        self.requesters = set(settings["requesters"])
        self.base = settings["baseBranch"]
        self.token = settings.get("githubToken") or ""
        self.repository = GitHubRepository(
            settings["githubApi"], settings["repository"], self.token
        )

    def may_request(self, user: dict) -> bool:
        return bool(self.requesters & set(user.get("groups", [])))

    async def submit(self, user: dict, form: dict[str, str]) -> tuple[dict | None, dict[str, str]]:
        """The pull request opened for `form`, or None and what is wrong, field by field."""
        course, wrong = self._record(user, form)
        if not wrong:
            schema = yaml.safe_load((await self.repository.read(COURSE_SCHEMA, self.base))[0])
            wrong = {
                self._field(path): message for path, message in problems(course, schema).items()
            }
        if not wrong and await self.repository.read(self._path(course["slug"]), self.base):
            wrong = {
                "slug": f"a course {course['slug']!r} is in the registry already; choose another"
            }
        if wrong:
            log.warning("course request by %s refused: %s", user["name"], "; ".join(
                f"{field}: {message}" for field, message in wrong.items()))  # fmt: skip
            return None, wrong
        branch = BRANCH_PREFIX + course["slug"]
        text = yaml.safe_dump(course, sort_keys=False, allow_unicode=True)
        try:
            await self.repository.branch_from(self.base, branch)
        except GitHubError as err:
            if err.status != 422:
                raise
            log.warning("course request by %s refused: branch %s exists", user["name"], branch)
            return None, {
                "slug": f"a request for {course['slug']!r} is open already (branch {branch})"
            }
        await self.repository.write(
            branch,
            self._path(course["slug"]),
            text,
            f"Request the course {course['slug']} ({user['name']}, on the request page)",
        )
        body = (
            f"{user['name']} asks for **{course['title']}** ({course['start']} to {course['end']}) "
            f"on the course request page.\n\n> {course['lifecycle']['history'][0]['why']}\n\n"
            f"An approver checks out this branch, runs `coursehub-course approve {course['slug']} "
            "--by NAME --why TEXT`, pushes, and merges; or closes it to decline."
        )
        pull = await self.repository.open_pull(
            branch, self.base, f"Course request: {course['title']}", body
        )
        log.info(
            "course request %s by %s: pull request %s",
            course["slug"],
            user["name"],
            pull["html_url"],
        )
        return pull, {}

    def _record(self, user: dict, form: dict[str, str]) -> tuple[dict, dict[str, str]]:
        wrong = {}
        expected = form.get("expected", "").strip()
        if expected and not expected.isdigit():
            wrong["expected"] = f"{expected!r} is not a whole number"
        text = {name: form.get(name, "").strip() for name in FIELDS}
        teams = {name: text[name].replace(",", " ").split() for name in ("instructors", "students")}
        course = new_course(
            slug=text["slug"], title=text["title"], image=text["image"], start=text["start"],
            end=text["end"], instructors=teams["instructors"], students=teams["students"],
            by=user["name"], why=text["why"], at=stamp(),
            expected_students=int(expected) if expected.isdigit() else None,
        )  # fmt: skip
        return course, wrong

    @staticmethod
    def _field(path: str) -> str:
        """The form field a problem at the record's `path` belongs to ("" for none)."""
        for name, (_label, where) in FIELDS.items():
            if path == where or path.startswith(where + "."):
                return name
        return ""

    @staticmethod
    def _path(slug: str) -> str:
        return f"{COURSES_DIR}/{slug}.yaml"

    async def of(self, user: dict) -> list[dict]:
        """`user`'s requests, newest first: course, state in words, the decision, the link."""
        found = []
        for pull in await self.repository.pulls():
            branch = pull["head"]["ref"]
            if not branch.startswith(BRANCH_PREFIX):
                continue
            slug = branch.removeprefix(BRANCH_PREFIX)
            ref = self.base if pull["merged"] else branch
            read = await self.repository.read(self._path(slug), ref)
            course = yaml.safe_load(read[0]) if read else {}
            lifecycle = course.get("lifecycle") or {}
            if lifecycle.get("requestedBy") != user["name"]:
                continue
            if pull["state"] == "closed" and not pull["merged"]:
                state = "declined: its pull request was closed without merging"
            else:
                state = state_in_words(lifecycle["state"])
            found.append({"slug": slug, "title": course.get("title", slug), "state": state,
                          "decision": decision(lifecycle), "pull": pull["html_url"]})  # fmt: skip
        return found


def decision(lifecycle: dict) -> str:
    """The approver's words: who accepted the course, when and why ("" while none has)."""
    accepted = [entry for entry in lifecycle.get("history", []) if entry["state"] == "ACCEPTED"]
    if not accepted:
        return ""
    last = accepted[-1]
    return f"approved by {last['by']} on {str(last['at'])[:10]}: {last['why']}"


def page(title: str, body: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:50em;margin:2em auto;line-height:1.4}"
        "table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;"
        "text-align:left;vertical-align:top}label{display:block;margin-top:.6em}"
        "input,textarea{width:100%;box-sizing:border-box}.refused,.wrong{color:#a00}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


class RequestPage(HubOAuthenticated, web.RequestHandler):
    """The service's root: the form, and the requester's requests with their state."""

    @property
    def requests(self) -> CourseRequests:
        return self.settings["requests"]

    def write_error(self, status_code: int, **kwargs) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(error, "log_message", None) or self._reason
        self.finish(page("Ask for a course", f"<p class='refused'>{html.escape(message)}</p>"))

    def _allowed(self) -> dict:
        user = self.current_user
        if not self.requests.may_request(user):
            groups = ", ".join(sorted(self.requests.requesters))
            raise web.HTTPError(
                403, f"Only instructors ask for courses here (members of {groups})."
            )
        if not self.requests.token:
            log.warning("course requests: no GitHub token (custom.courseRequests.githubToken)")
            raise web.HTTPError(
                503,
                "Course requests are not set up on this hub yet: it has no GitHub token "
                "(custom.courseRequests.githubToken in its encrypted secrets layer). "
                "Ask the hub's admins.",
            )
        return user

    @web.authenticated
    async def get(self) -> None:
        await self._show(self._allowed(), {}, {}, "")

    @web.authenticated
    async def post(self) -> None:
        user = self._allowed()
        form = {name: self.get_body_argument(name, "") for name in FIELDS}
        try:
            pull, wrong = await self.requests.submit(user, form)
        except GitHubError as err:
            log.warning("course request by %s: %s", user["name"], err)
            refused = f"GitHub refused the request ({err}); nothing was proposed. Tell the admins."
            pull, wrong = None, {"": refused}
        if pull is None:
            self.set_status(400)
            await self._show(user, form, wrong, "")
            return
        done = (
            f"<p id='proposed'>Asked: <a href='{html.escape(pull['html_url'])}'>pull request "
            f"#{pull['number']}</a> waits for an approver.</p>"
        )
        await self._show(user, {}, {}, done)

    async def _show(self, user: dict, form: dict, wrong: dict, done: str) -> None:
        fields = []
        for name, (label, _where) in FIELDS.items():
            value = html.escape(form.get(name, ""))
            error = (
                f"<span class='wrong' id='wrong-{name}'>{html.escape(wrong[name])}</span>"
                if name in wrong
                else ""
            )
            fields.append(f"<label for='{name}'>{html.escape(label)} {error}</label>"
                          f"<input id='{name}' name='{name}' value='{value}'>")  # fmt: skip
        general = f"<p class='wrong'>{html.escape(wrong[''])}</p>" if "" in wrong else ""
        form_html = (
            f"<h2>Ask for a course</h2>{general}<form method='post'>{self.xsrf_form_html()}"
            + "".join(fields) + "<p><button type='submit' id='ask'>Ask</button></p></form>"
        )  # fmt: skip
        rows = "".join(
            f"<tr><td>{html.escape(r['title'])} ({html.escape(r['slug'])})</td>"
            f"<td class='state'>{html.escape(r['state'])}</td><td>{html.escape(r['decision'])}</td>"
            f"<td><a href='{html.escape(r['pull'])}'>pull request</a></td></tr>"
            for r in await self.requests.of(user)
        )
        mine = (
            "<table id='requests'><tr><th>course</th><th>state</th><th>decision</th><th></th></tr>"
            f"{rows}</table>" if rows else "<p>None yet.</p>"
        )  # fmt: skip
        self.finish(page("Ask for a course", done + form_html + "<h2>Your requests</h2>" + mine))


def make_app(requests: CourseRequests, prefix: str) -> web.Application:
    return web.Application(
        [(prefix, RequestPage), (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler)],
        requests=requests,
        cookie_secret=secrets.token_bytes(32),  # a restart only asks for a new login
        xsrf_cookies=True,
    )


def main() -> None:
    """Run as JupyterHub starts it: `python -m coursehub.course_request_service`."""
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s %(name)s] %(message)s")
    url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
    requests = CourseRequests(get_config("custom.courseRequests"))
    if not requests.token:
        log.warning(
            "no GitHub token (custom.courseRequests.githubToken): the page refuses requests"
        )
    # In the hub pod the URL names the hub's Service, not an address of the pod: listen on all.
    address = url.hostname if url.hostname in ("127.0.0.1", "localhost") else ""
    make_app(requests, os.environ["JUPYTERHUB_SERVICE_PREFIX"]).listen(
        url.port, address, xheaders=True
    )
    with contextlib.suppress(KeyboardInterrupt):  # the hub stops its services with SIGINT
        ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
