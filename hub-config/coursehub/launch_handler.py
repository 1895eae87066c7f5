"""Launch links while the student's server already runs.

JupyterHub's spawn page sends a user with a running server straight to `next`
without asking the spawner (ref: jupyterhub 5.5 handlers/pages.py
SpawnHandler._get, "Server ... is already running"), so the rules of
coursehub/launch.py would apply only to stopped servers. This handler checks a
launch link the same way whatever the server's state:
- a link that breaks the rules gets the same refusal as with a stopped server;
- a link for the course that runs goes on to its notebook;
- a link for another course says which course runs and how to switch, rather
  than opening the running course's image without a word.
It is served in place of JupyterHub's own /hub/spawn through the
authenticator's handlers, which the hub registers before its own (ref:
jupyterhub 5.5 app.py init_handlers).
"""

from __future__ import annotations

import html

from jupyterhub.handlers.pages import SpawnHandler
from tornado import web
from tornado.httputil import url_concat

from coursehub import launch
from coursehub.courses import load_courses
from coursehub.refusal import Refused


class CourseSpawnHandler(SpawnHandler):
    """/hub/spawn: launch links checked for running servers too; anything else as JupyterHub."""

    @web.authenticated
    async def get(self, user_name=None, server_name=""):
        user = self.current_user
        own = user_name in (None, user.name) and not server_name
        arguments = set(self.request.query_arguments)
        if own and arguments and user.spawner.active:
            self.redirect(self._checked_link_target(user))
            return
        if own and not arguments and not user.spawner.active:
            self._forget_a_closed_course(user)
        await super().get(user_name, server_name)

    def _forget_a_closed_course(self, user) -> None:
        """A plain start reuses the options of the user's last start, which JupyterHub
        saves (ref: jupyterhub 5.5 user.py spawn, "load from db"). Once that course has
        closed, the start would be refused although another course may be open; so
        the saved choice is forgotten and the start offers what is open today."""
        spawner = user.spawner
        saved = (spawner.orm_spawner.user_options or {}).get(launch.PROFILE)
        if saved and saved not in {course.slug for course in spawner.open_courses()}:
            self.log.info("%s's last course %s has closed; offering today's", user.name, saved)
            spawner.orm_spawner.user_options = {}
            self.db.commit()

    def _checked_link_target(self, user) -> str:
        """Where a launch link takes a user whose server runs, or Refused saying why not."""
        spawner = user.spawner
        query = {
            key: [value.decode("utf8") for value in values]
            for key, values in self.request.query_arguments.items()
            if key != launch.NEXT
        }
        next_url = self.get_argument(launch.NEXT, None)
        courses = load_courses(spawner.courses)
        wanted = launch.choose_course(
            courses,
            spawner.user_groups(),
            spawner.course_date(),
            query,
            next_url,
            self.hub.base_url,
        )
        running_slug = (spawner.user_options or {}).get(launch.PROFILE)
        if running_slug not in (None, wanted.slug):
            running = next((c for c in courses if c.slug == running_slug), None)
            raise course_switch(running.title if running else running_slug, wanted.title, self)
        if not spawner.ready:
            pending = self.hub.base_url + f"spawn-pending/{user.escaped_name}"
            return url_concat(pending, {launch.NEXT: next_url}) if next_url else pending
        return next_url or user.server_url("")


def course_switch(running: str, wanted: str, handler: web.RequestHandler) -> Refused:
    """409: the link is for another course than the one running, and how to switch."""
    message = (
        f"Your server is running {running}. This link is for {wanted}. To switch, stop your "
        "server on the Home page (your files are kept), then open the link again."
    )
    refused = Refused(409, message, why=f"link for {wanted!r} while {running!r} runs")
    home = html.escape(handler.hub.base_url + "home")
    refused.jupyterhub_html_message = (
        f'{html.escape(message)} <a href="{home}">Go to the Home page</a>.'
    )
    return refused


class CourseLinksMixin:
    """For authenticators: serve /hub/spawn with CourseSpawnHandler."""

    def get_handlers(self, app):
        return [(r"/spawn", CourseSpawnHandler), *super().get_handlers(app)]
