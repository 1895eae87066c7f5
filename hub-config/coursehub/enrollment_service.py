"""The enrollment service: applying to a course by its invite link, and instructors' decisions.

JupyterHub starts it in the hub pod (hub-config/jupyterhub_config.d/30-enrollment.py),
the proxy routes /services/enrollment/ to it, and people log in to it with the
hub (HubOAuth). Applications are kept in the hub's own database, as the
`applications` property of each course's enrollment group, so the hub's
PostgreSQL keeps them and the service needs no volume. An approved applicant
is a member of that group, which the course admits as a student
(coursehub/courses.py); the GitHub login keeps the group (coursehub/github.py).

Pages:
  invite/<slug>?invite=...   apply to the course; the link lets its holder log in
  (the service's root)       your applications; for a course's instructors, its
                             invite link and the applications to decide
REST, with a user's API token (scope access:services!service=enrollment):
  GET  api/courses/<slug>/applications          instructors: every application
  POST api/courses/<slug>/applications          {"invite": "..."}: apply
  POST api/courses/<slug>/applications/<user>   {"decision": "approve" or "reject"}
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import os
import secrets
from datetime import UTC, date, datetime, timedelta
from urllib.parse import quote, urlencode, urlparse

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import ioloop, web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from coursehub.courses import INSTRUCTOR, Course, course_day, load_courses
from coursehub.enrollment import (
    APPROVED,
    INVITE_ARGUMENT,
    PENDING,
    REJECTED,
    applications_in,
    check_invite,
    enrollment_group,
    invite_path,
    make_invite,
)
from coursehub.refusal import Refused
from coursehub.values import get_config

DECISIONS = {"approve": APPROVED, "reject": REJECTED}
# The property of an enrollment group naming the run (course start) its applications are for.
RUN_KEY = "run"
# Back from the hub's login: go on to the service's own login, not round again.
FROM_HUB_LOGIN = "signed_in"


class Enrollment:
    """Applications and decisions, kept through the hub's REST API."""

    def __init__(self, api_url: str, token: str, courses: dict, invite_days: int, today: str):
        self.api_url, self.token = api_url, token
        self.courses = {course.slug: course for course in load_courses(courses)}
        self.invite_days = invite_days
        self.pretend_today = today
        # One read-modify-write of a group's applications at a time.
        self._writing = asyncio.Lock()

    def today(self) -> date:
        return course_day(self.pretend_today)

    def course(self, slug: str) -> Course:
        if slug not in self.courses:
            raise Refused(404, f"There is no course {slug!r} on this hub.")
        return self.courses[slug]

    def invite(self, slug: str) -> str:
        """Today's invite for `slug`: it works for invite_days, never past the course's end."""
        course = self.course(slug)
        last_day = min(self.today() + timedelta(days=self.invite_days), course.end)
        return make_invite(self.token, slug, last_day)

    # Its own few lines, not coursehub_tools.hub_api: this runs in the hub pod, where
    # only hub-config/ and the hub image's packages exist (coursehub_tools is not
    # installed there), and inside the service's tornado loop, where a blocking
    # client would stall every applicant's request while it waits.
    async def _hub(self, method: str, path: str, body: dict | None = None) -> dict | None:
        request = HTTPRequest(
            url_path_join(self.api_url, path),
            method=method,
            headers={"Authorization": f"token {self.token}"},
            body=None if body is None else json.dumps(body),
            allow_nonstandard_methods=True,
        )
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as err:
            if err.code == 404 and method == "GET":
                return None
            raise
        return json.loads(response.body) if response.body else {}

    async def create_groups(self) -> None:
        """Each course's enrollment group, before anyone applies, holding this run's
        applications only.

        A course is in this hub's config once the dispatcher deployed it, and the
        hub (and so this service) restarts with it: its group is there from then
        on, on the admin page and for the hub's API, not only after a first
        application. The GitHub teams' groups are the login's to write.

        A slug may be used again by a later run of the course (new dates). The
        dispatcher empties the group when a run ends, but its applications stay
        in the group's properties: an applicant approved, rejected or removed
        then would read "approved" (or "declined") now and never apply. So the
        group notes the run (the course's start) its applications are for, and
        a new run's start moves the earlier ones under `earlier`, kept, unused.
        """
        async with self._writing:
            for slug, course in self.courses.items():
                name = quote(enrollment_group(slug))
                group = await self._hub("GET", f"groups/{name}")
                if group is None:
                    group = await self._hub("POST", f"groups/{name}", {})
                properties = dict(group.get("properties") or {})
                run = course.start.isoformat()
                if properties.get(RUN_KEY) == run:
                    continue
                # A group from before runs were noted holds this run's applications.
                if properties.get(RUN_KEY) is not None:
                    earlier = dict(properties.get("earlier") or {})
                    earlier[properties[RUN_KEY]] = applications_in(properties)
                    properties.update(earlier=earlier, applications={})
                properties[RUN_KEY] = run
                await self._hub("PUT", f"groups/{name}/properties", properties)

    async def applications(self, slug: str) -> dict[str, dict]:
        group = await self._hub("GET", f"groups/{quote(enrollment_group(slug))}")
        return applications_in((group or {}).get("properties"))

    async def _record(self, slug: str, applicant: str, application: dict) -> None:
        name = quote(enrollment_group(slug))
        group = await self._hub("GET", f"groups/{name}")
        if group is None:
            group = await self._hub("POST", f"groups/{name}", {})
        properties = dict(group.get("properties") or {})
        properties["applications"] = {**applications_in(properties), applicant: application}
        await self._hub("PUT", f"groups/{name}/properties", properties)

    def _stamp(self) -> str:
        return datetime.now(UTC).isoformat(timespec="seconds")

    async def apply(self, slug: str, user: dict, token: str) -> dict:
        """Record `user`'s application with a good invite; an application already made stands."""
        course = self.course(slug)
        check_invite(self.token, slug, token, self.today(), course)
        if course.role(user["groups"]):
            raise Refused(409, f"You are in {course.title} already: there is nothing to apply for.")
        async with self._writing:
            existing = (await self.applications(slug)).get(user["name"])
            if existing and existing["state"] == REJECTED:
                raise Refused(
                    409,
                    f"Your application to {course.title} was declined on "
                    f"{existing['decided'][:10]}. Ask its instructors if that was a mistake.",
                )
            if existing:
                return existing
            application = {"state": PENDING, "applied": self._stamp()}
            await self._record(slug, user["name"], application)
            return application

    def check_instructor(self, slug: str, user: dict) -> Course:
        course = self.course(slug)
        if course.role(user["groups"]) != INSTRUCTOR:
            raise Refused(
                403, f"Only the instructors of {course.title} see and decide its applications."
            )
        return course

    async def decide(self, slug: str, applicant: str, decision: str, by: dict) -> dict:
        """An instructor approves (the applicant joins the enrollment group) or rejects."""
        course = self.check_instructor(slug, by)
        if decision not in DECISIONS:
            raise Refused(400, f"Decide with one of {', '.join(DECISIONS)}, not {decision!r}.")
        if applicant == by["name"]:
            raise Refused(403, "Nobody decides their own application.")
        async with self._writing:
            application = (await self.applications(slug)).get(applicant)
            if application is None:
                raise Refused(404, f"{applicant} has not applied to {course.title}.")
            if application["state"] != PENDING:
                raise Refused(409, f"{applicant}'s application was {application['state']} already.")
            if decision == "approve":
                # The group first: a crash before the record below leaves a
                # member whose application still reads pending, and approving
                # again only repeats an addition the hub ignores.
                await self._hub(
                    "POST", f"groups/{quote(enrollment_group(slug))}/users", {"users": [applicant]}
                )
            decided = {**application, "state": DECISIONS[decision], "by": by["name"],
                       "decided": self._stamp()}  # fmt: skip
            await self._record(slug, applicant, decided)
            return decided


def page(title: str, body: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:46em;margin:2em auto;line-height:1.4}"
        "table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd}"
        ".refused{color:#a00}code{word-break:break-all}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>"
    )


class EnrollmentHandler(HubOAuthenticated, web.RequestHandler):
    @property
    def enrollment(self) -> Enrollment:
        return self.settings["enrollment"]

    @property
    def prefix(self) -> str:
        return self.settings["service_prefix"]

    def error_message(self, exc_info=(None, None, None), **kwargs) -> str:
        """What the person is told: a refusal's message; for a check that tornado or
        HubAuth make themselves (the XSRF check), its own words; else the status's name."""
        error = exc_info[1]
        if message := getattr(error, "jupyterhub_message", None):
            return message
        if isinstance(error, web.HTTPError) and error.log_message and not error.args:
            return error.log_message
        return self._reason

    def write_error(self, status_code: int, **kwargs) -> None:
        message = html.escape(self.error_message(**kwargs))
        self.finish(page("Enrollment", f"<p class='refused'>{message}</p>"))


class InvitePage(EnrollmentHandler):
    """invite/<slug>: the link is checked before anyone logs in, so a bad one changes nothing."""

    def _checked(self, slug: str) -> tuple[Course, str]:
        token = self.get_argument(INVITE_ARGUMENT, "")
        course = self.enrollment.course(slug)
        check_invite(self.enrollment.token, slug, token, self.enrollment.today(), course)
        return course, token

    def _form(self, course: Course, token: str) -> str:
        action = html.escape(
            f"{invite_path(self.prefix, course.slug)}?{urlencode({INVITE_ARGUMENT: token})}"
        )
        return (
            f"<p>You are invited to apply to <b>{html.escape(course.title)}</b> "
            f"({course.start} to {course.end}). Its instructors decide on each application.</p>"
            f"<form method='post' action='{action}'>{self.xsrf_form_html()}"
            "<button type='submit' id='apply'>Apply</button></form>"
        )

    async def get(self, slug: str) -> None:
        course, token = self._checked(slug)
        user = self.current_user
        if user is None:
            here = self.request.uri
            if self.get_argument(FROM_HUB_LOGIN, None) is None:
                # The hub's login, with this link as where to go next: the
                # GitHub login lets someone outside the course's teams in only
                # for a link it can check (coursehub/github.py).
                back = here + ("&" if "?" in here else "?") + f"{FROM_HUB_LOGIN}=1"
                login = url_path_join(self.hub_auth.hub_prefix, "login")
                self.redirect(f"{login}?{urlencode({'next': back})}")
            else:
                self.redirect(self.get_login_url())
            return
        existing = (await self.enrollment.applications(slug)).get(user["name"])
        if course.role(user["groups"]):
            body = f"<p>You are in {html.escape(course.title)} already.</p>"
        elif existing:
            body = f"<p>Your application to {html.escape(course.title)} is {existing['state']}.</p>"
        else:
            body = self._form(course, token)
        self.finish(page(f"Apply to {course.title}", body + self._home_link()))

    @web.authenticated
    async def post(self, slug: str) -> None:
        course, token = self._checked(slug)
        application = await self.enrollment.apply(slug, self.current_user, token)
        body = (
            f"<p id='state'>Your application to {html.escape(course.title)} is "
            f"{application['state']}. Its instructors decide; once approved, start the course "
            f"from <a href='{html.escape(self.hub_auth.hub_prefix)}spawn'>the hub</a>.</p>"
        )
        self.finish(page(f"Apply to {course.title}", body + self._home_link()))

    def _home_link(self) -> str:
        return f"<p><a href='{html.escape(self.prefix)}'>Your applications</a></p>"


class HomePage(EnrollmentHandler):
    """The service's root: one's own applications, and each taught course's to decide."""

    @web.authenticated
    async def get(self) -> None:
        user, enrollment = self.current_user, self.enrollment
        own, taught = [], []
        for slug, course in sorted(enrollment.courses.items()):
            applications = await enrollment.applications(slug)
            if user["name"] in applications:
                own.append(
                    f"<li>{html.escape(course.title)}: {applications[user['name']]['state']}</li>"
                )
            if course.role(user["groups"]) == INSTRUCTOR:
                taught.append(self._course_section(course, applications))
        body = "<h2>Your applications</h2>" + (
            f"<ul>{''.join(own)}</ul>" if own else "<p>None.</p>"
        )
        self.finish(page("Enrollment", body + "".join(taught)))

    def _course_section(self, course: Course, applications: dict) -> str:
        base = f"{self.request.protocol}://{self.request.host}"
        link = f"{base}{invite_path(self.prefix, course.slug)}?" + urlencode(
            {INVITE_ARGUMENT: self.enrollment.invite(course.slug)}
        )
        rows = []
        for name, application in sorted(applications.items()):
            decide = ""
            if application["state"] == PENDING:
                action = html.escape(url_path_join(self.prefix, "decide", course.slug, quote(name)))
                decide = (
                    f"<form method='post' action='{action}'>{self.xsrf_form_html()}"
                    "<button name='decision' value='approve'>Approve</button> "
                    "<button name='decision' value='reject'>Reject</button></form>"
                )
            rows.append(
                f"<tr><td>{html.escape(name)}</td><td>{application['state']}</td>"
                f"<td>{application['applied'][:10]}</td><td>{decide}</td></tr>"
            )
        table = (
            "<table><tr><th>applicant</th><th>state</th><th>applied</th><th></th></tr>"
            + "".join(rows) + "</table>" if rows else "<p>No applications yet.</p>"
        )  # fmt: skip
        return (
            f"<h2>{html.escape(course.title)}</h2><p>Invite link (send it to your class):<br>"
            f"<code class='invite-link'>{html.escape(link)}</code></p>{table}"
        )


class DecidePage(EnrollmentHandler):
    @web.authenticated
    async def post(self, slug: str, applicant: str) -> None:
        await self.enrollment.decide(
            slug, applicant, self.get_argument("decision", ""), self.current_user
        )
        self.redirect(self.prefix)


class ApplicationsAPI(EnrollmentHandler):
    """REST: a course's applications (its instructors), or applying to it."""

    def write_error(self, status_code: int, **kwargs) -> None:
        self.finish({"status": status_code, "message": self.error_message(**kwargs)})

    def check_xsrf_cookie(self) -> None:
        # Tornado checks before the handler knows whether a token or a cookie
        # logs the request in (ref: tornado web.py RequestHandler._execute). Only a
        # valid token in the request, which another site's page cannot have, makes
        # the request unforgeable; any other header (Authorization: x) beside a
        # cookie is still a browser's request that needs its _xsrf.
        token = self.hub_auth.get_token(self, in_cookie=False)
        session = self.hub_auth.get_session_id(self)  # the key HubAuth caches the answer by
        if not token or self.hub_auth.user_for_token(token, session_id=session) is None:
            super().check_xsrf_cookie()

    def body(self) -> dict:
        try:
            body = json.loads(self.request.body or b"{}")
        except json.JSONDecodeError as err:
            raise Refused(400, f"The request body is not JSON: {err}.") from err
        if not isinstance(body, dict):
            raise Refused(400, "The request body must be a JSON object.")
        return body

    @web.authenticated
    async def get(self, slug: str) -> None:
        self.enrollment.check_instructor(slug, self.current_user)
        self.finish({"applications": await self.enrollment.applications(slug)})

    @web.authenticated
    async def post(self, slug: str) -> None:
        invite = self.body().get("invite")
        if not isinstance(invite, str):
            raise Refused(400, 'Apply with {"invite": "<the invite argument of your link>"}.')
        self.finish(await self.enrollment.apply(slug, self.current_user, invite))


class DecisionAPI(ApplicationsAPI):
    @web.authenticated
    async def post(self, slug: str, applicant: str) -> None:
        decision = self.body().get("decision")
        self.finish(await self.enrollment.decide(slug, applicant, str(decision), self.current_user))


def make_app(enrollment: Enrollment, prefix: str) -> web.Application:
    course = r"([a-z][a-z0-9-]*)"
    return web.Application(
        [
            (prefix, HomePage),
            (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
            (url_path_join(prefix, f"invite/{course}"), InvitePage),
            (url_path_join(prefix, f"decide/{course}/([^/]+)"), DecidePage),
            (url_path_join(prefix, f"api/courses/{course}/applications"), ApplicationsAPI),
            (url_path_join(prefix, f"api/courses/{course}/applications/([^/]+)"), DecisionAPI),
        ],
        enrollment=enrollment,
        service_prefix=prefix,
        cookie_secret=secrets.token_bytes(32),  # a restart only asks for a new login
        xsrf_cookies=True,
    )


def main() -> None:
    """Run as JupyterHub starts it: `python -m coursehub.enrollment_service`."""
    url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
    prefix = os.environ["JUPYTERHUB_SERVICE_PREFIX"]
    enrollment = Enrollment(
        os.environ["JUPYTERHUB_API_URL"],
        os.environ["JUPYTERHUB_API_TOKEN"],
        get_config("custom.courses"),
        get_config("custom.enrollment.inviteDays"),
        os.environ.get("COURSEHUB_TODAY", ""),
    )
    # In the hub pod the URL names the hub's Service, which is not an address
    # of the pod, so listen on all of the pod's; on loopback, only there.
    address = url.hostname if url.hostname in ("127.0.0.1", "localhost") else ""
    # Before listening, so that whoever reaches the service finds the groups.
    ioloop.IOLoop.current().run_sync(enrollment.create_groups)
    make_app(enrollment, prefix).listen(url.port, address, xheaders=True)
    with contextlib.suppress(KeyboardInterrupt):  # the hub stops its services with SIGINT
        ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
