"""The course-aware spawner: the registry decides what a user may start, here and on a cluster.

`CourseSpawner` is a mixin for a JupyterHub spawner class. It computes a
user's profiles from custom.courses (their groups, today's date), reads launch
links (coursehub.launch), and shows a choice only when there is one to make.
`CourseKubeSpawner` is the cluster's spawner (set in hub.config); the local hub
mixes the same class into a local-process spawner (scripts/local/hub/spawner.py).
"""

from __future__ import annotations

from datetime import date

from kubespawner import KubeSpawner
from traitlets import Dict, List, TraitError, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from coursehub import hooks, launch, storage
from coursehub.courses import INSTRUCTOR, Course, course_day, load_courses, open_to
from coursehub.enrollment import waiting_for_approval
from coursehub.refusal import Refused


class CourseSpawner(LoggingConfigurable):
    """Mixin for a Spawner: profiles, the choice form and launch links from the registry.

    Listed before the spawner class it extends, so its defaults for
    options_form, options_from_form and apply_user_options take precedence.
    """

    courses = Dict(
        config=True,
        help="The course registry, custom.courses (slug -> entry of deploy/courses/<slug>.yaml).",
    )
    today = Unicode(
        "",
        config=True,
        help="""Pretend today is this date (YYYY-MM-DD) when deciding which courses are open.

        Empty means the real date (UTC). Set by tests and by instructors rehearsing
        a course's first day; it never widens what the registry allows on that date.
        """,
    )
    implicit_groups = List(
        Unicode(),
        config=True,
        help="""Groups every user counts as a member of when courses are matched.

        For hubs whose users have no groups of their own, such as the SSO
        overlay's temporary users; empty on the GitHub hub, where teams decide.
        """,
    )
    hooks_path = Unicode(
        config=True, help="Folder of the hook scripts in the course image (custom.startupHooks)."
    )
    shared_data = Dict(
        config=True, help="custom.sharedData: the shared-data volume and where it is mounted."
    )
    home_path = Unicode(
        "/home/jovyan", config=True, help="Where the home folder is mounted in the server."
    )

    @validate("today")
    def _readable_today(self, proposal):
        # A date the hub cannot read would fail every spawn; refuse it where it is set.
        try:
            course_day(proposal["value"])
        except ValueError as err:
            raise TraitError(str(err)) from None
        return proposal["value"]

    def course_date(self) -> date:
        return course_day(self.today)

    def user_groups(self) -> list[str]:
        return [group.name for group in self.user.groups] + list(self.implicit_groups)

    def open_courses(self) -> list[Course]:
        return open_to(load_courses(self.courses), self.user_groups(), self.course_date())

    def course_profiles(self) -> list[dict]:
        """KubeSpawner profiles, one a course this user may start today, first the default."""
        groups = self.user_groups()
        return [self.course_profile(course, course.role(groups)) for course in self.open_courses()]

    def course_profile(self, course: Course, role: str) -> dict:
        """The profile of `course` for someone with `role`: what any backend applies."""
        override = {
            "image": course.image,
            "mem_guarantee": course.memory["guarantee"],
            "mem_limit": course.memory["limit"],
            "cpu_guarantee": course.cpu["guarantee"],
            "cpu_limit": course.cpu["limit"],
            "environment": hooks.hook_environment(
                course,
                role,
                self.home_path,
                self.shared_data["mountPath"],
                self.shared_data["admin"]["mountPath"],
            ),
        }
        if course.default_notebook:
            override["default_url"] = f"/lab/tree/{course.default_notebook}"
        return {
            "slug": course.slug,
            "display_name": course.title,
            "description": f"{course.start.isoformat()} to {course.end.isoformat()}",
            "kubespawner_override": override,
        }

    def chosen_profile(self) -> dict:
        """The profile user_options names (else the first); refused if not open to the user."""
        profiles = self.course_profiles()
        if not profiles:
            if waiting := waiting_for_approval(self.user.db, self.user.name):
                raise Refused(
                    403,
                    f"Your application to {', '.join(waiting)} waits for an instructor's "
                    "approval: you can start the course once it is approved.",
                )
            raise Refused(403, "No course is open to you today: there is nothing to start.")
        slug = (self.user_options or {}).get(launch.PROFILE)
        if slug is None:
            return profiles[0]
        for profile in profiles:
            if profile["slug"] == slug:
                return profile
        raise Refused(403, f"Course {slug!r} is not open to you today.")

    def options_from_query(self, query_data):
        # ref: jupyterhub/handlers/pages.py SpawnHandler: GET /hub/spawn?<query>
        # calls this (with `next` removed) and shows the options form on error.
        handler = getattr(self, "handler", None)
        next_url = handler.get_argument(launch.NEXT, None) if handler else None
        course = launch.choose_course(
            load_courses(self.courses),
            self.user_groups(),
            self.course_date(),
            query_data,
            next_url,
            self.hub.base_url,
        )
        return {launch.PROFILE: course.slug}

    @default("options_form")
    def _course_options_form(self):
        return self._render_course_form

    def _render_course_form(self, spawner) -> str:
        """A choice only if there is one; always after a refused launch link: what is open."""
        courses = self.open_courses()
        handler = getattr(self, "handler", None)
        refused_link = handler is not None and set(handler.request.query_arguments) - {launch.NEXT}
        if len(courses) > 1 or refused_link:
            return launch.course_form(courses, self.hub.base_url)
        return ""

    @default("apply_user_options")
    def _course_apply_user_options(self):
        return self._check_course_options

    @staticmethod
    def _check_course_options(spawner, user_options):
        # ref: JupyterHub 5.3+ Spawner.apply_user_options, run before start():
        # refuse a course the user may not start (a REST API call can name
        # any), with the reason on the hub's page; start() applies the profile.
        slug = spawner.chosen_profile()["slug"]
        # The course is recorded with the server (JupyterHub keeps user_options in its
        # database and shows them in the server's REST model), so whoever asks later,
        # such as the dispatcher stopping a course's servers, reads the hub's choice
        # rather than working it out again from a date the hub may not judge by.
        if user_options.get(launch.PROFILE) != slug:
            spawner.user_options = {**user_options, launch.PROFILE: slug}
            spawner.orm_spawner.user_options = spawner.user_options

    @default("options_from_form")
    def _course_options_from_form(self):
        return self._course_from_form

    @staticmethod
    def _course_from_form(form_data):
        slug = form_data.get(launch.PROFILE, [None])[0]
        return {launch.PROFILE: slug} if slug else {}


def course_profile_list(spawner: CourseSpawner) -> list[dict]:
    """KubeSpawner.profile_list as a callable: the user's profiles at each start."""
    return spawner.course_profiles()


class CourseKubeSpawner(CourseSpawner, KubeSpawner):
    """KubeSpawner with the course registry; profile_list is course_profile_list."""

    def course_profile(self, course: Course, role: str) -> dict:
        """Adds the pod's parts: the shared-data mount and the hooks' init containers."""
        profile = super().course_profile(course, role)
        override = profile["kubespawner_override"]
        volume_mounts = storage.keyed_by_name(self.volume_mounts)
        override["volume_mounts"] = {
            **volume_mounts,
            "shared-data": storage.shared_data_mount(self.shared_data, course, role),
        }
        admin = storage.admin_mount(self.shared_data, course)
        if role == INSTRUCTOR:
            override["volume_mounts"]["course-admin"] = admin
        home = storage.home_mount(volume_mounts, self.home_path)
        if home is None:
            # singleuser.storage.type none: the home lives and dies with the
            # server's own container, so there is nothing for hooks to prepare.
            return profile
        uid, gid = self.server_ids()
        if course.hooks == hooks.ADMIN:
            env = {
                **override["environment"],
                **hooks.admin_hook_environment(self.user.name, admin["mountPath"]),
            }
            steps = hooks.admin_init_containers(course, self.hooks_path, env, home, admin, uid, gid)
        else:
            steps = hooks.init_containers(
                course, self.hooks_path, override["environment"], home, uid, gid
            )
        if role == INSTRUCTOR:
            steps = [hooks.admin_folder_container(course, admin, uid, gid), *steps]
        # The chart's own init containers (the cloud-metadata block) stay, and run first.
        override["init_containers"] = storage.in_order(self.init_containers, steps)
        return profile

    def server_ids(self) -> tuple[int, int]:
        """The uid and gid the server runs as: what the hooks must hand the home to.

        KubeSpawner.uid is singleuser.uid, or the user's GitHub id once the
        authenticator's pre_spawn_start has set it (custom.github.unixIds); the
        primary group is KubeSpawner.gid if set, else the image's, which the
        chart's fsGid (100, docker-stacks' `users`) matches.
        """
        uid, gid, fs_gid = (
            value(self) if callable(value) else value for value in (self.uid, self.gid, self.fs_gid)
        )
        return uid, fs_gid if gid is None else gid

    async def load_user_options(self):
        # Refuse before KubeSpawner would fall back to singleuser.image for
        # someone with no open course (an empty profile list).
        self.chosen_profile()
        await super().load_user_options()
