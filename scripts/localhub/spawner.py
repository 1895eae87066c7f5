"""The local hub's spawner: the cluster's course rules, with a process instead of a pod.

It mixes hub-config's CourseSpawner (the same registry, groups, dates, launch
links and choice form as CourseKubeSpawner) into JupyterHub's
SimpleLocalProcessSpawner. What a pod would get from the profile it gets here
where it means something on this machine: environment, default URL, resource
limits (as JupyterHub's MEM_LIMIT/CPU_LIMIT variables). The image cannot be
pulled here, so it is recorded in the server's state (`course_image`) and
environment. The start-up hooks are the same scripts the image carries, run
in order before the server starts, with their output kept for admins; for a
course with hooks: admin, through the image's run-admin-hook.sh with the
course's admin folder (<shared root>/<admin subPath>/<slug>, made here as
the volume's subPath would be). What a read-only mount does for a student's
shared folder, read_only_mounts.py stands in for.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Bool, Float, Unicode, default

from coursehub import hooks
from coursehub.courses import INSTRUCTOR, load_courses
from coursehub.refusal import Refused
from coursehub.spawner import CourseSpawner
from coursehub_tools.deployconfig import ROOT
from coursehub_tools.localhub import lightweight_server, read_only_mounts
from coursehub_tools.localhub.supervisor import MARKER_VARIABLE

# The course image's files as this checkout has them: its start-up hooks (the
# image carries them at custom.startupHooks.path) and the Jupyter settings it
# puts in /etc/jupyter.
IMAGE_SOURCE = ROOT / "deploy/deployments/coursehub/image"
HOOKS_SOURCE = IMAGE_SOURCE / "hooks"
JUPYTER_SETTINGS = IMAGE_SOURCE / "jupyter"

# A clock moved with libfaketime (tests/test_other_days.py, or `faketime` around
# `nox -s hub`): on one machine every process shares one calendar, so what the
# hub starts (users' servers, its managed services) keeps it. A server or a
# service a day behind its hub takes the hub's fresh tokens and cookies for old
# and loops on OAuth redirects.
MOVED_CLOCK = ("LD_PRELOAD", "FAKETIME")


def services_share_the_clock(services: list[dict], environ=os.environ) -> None:
    """Give every service the hub starts the hub's moved clock, if it has one."""
    clock = {key: environ[key] for key in MOVED_CLOCK if key in environ}
    for service in services:
        if clock and service.get("command"):
            service["environment"] = {**service.get("environment", {}), **clock}


class LocalCourseSpawner(CourseSpawner, SimpleLocalProcessSpawner):
    """Courses from the registry as local JupyterLab processes, hooks first."""

    hooks_dir = Unicode(
        str(HOOKS_SOURCE),
        config=True,
        help="This machine's copy of the hook scripts: the course image's hooks/ folder "
        "(deploy/deployments/coursehub/image/hooks/), which the image carries at "
        "custom.startupHooks.path.",
    )
    shared_root = Unicode(
        config=True,
        help="Folder with one folder a course: the cluster's shared-data volume. Not "
        "read-only for students here (one Unix user runs every server).",
    )
    hook_log_dir = Unicode(
        config=True, help="Each start's hook output, for admins: <dir>/<user>/<step>.log."
    )
    course_image = Unicode("", help="The image the cluster would run for this server.")
    read_only_dir = Unicode(
        "", help="This start's folder a pod would mount read-only: a student's shared folder."
    )
    run_startup_hooks = Bool(
        True,
        config=True,
        help="Run the image's start-up hooks before the server, as the pod does.",
    )

    @default("env_keep")
    def _env_keep_without_pythonpath(self):
        # The local hub finds hub-config through PYTHONPATH (its config dir);
        # users' servers have no business with it, as on the cluster.
        kept = [key for key in super()._env_keep_default() if key != "PYTHONPATH"]
        # Every process of a local hub carries its marker, so the runner can prove
        # none is left behind (supervisor.py).
        return [*kept, *MOVED_CLOCK, MARKER_VARIABLE]

    def get_env(self):
        # The image's /etc/jupyter settings, from this checkout.
        return {**super().get_env(), "JUPYTER_CONFIG_PATH": str(JUPYTER_SETTINGS)}

    def get_state(self):
        state = super().get_state()
        if self.course_image:
            state["course_image"] = self.course_image
        return state

    def load_state(self, state):
        super().load_state(state)
        self.course_image = state.get("course_image", "")

    def clear_state(self):
        super().clear_state()
        self.course_image = ""

    def apply_profile(self, profile: dict) -> None:
        """KubeSpawner's override rule (dicts merge, the rest is replaced) for this backend."""
        for key, value in profile["kubespawner_override"].items():
            if key == "image":
                self.course_image = value
            elif isinstance(value, dict) and isinstance(getattr(self, key), dict):
                setattr(self, key, {**getattr(self, key), **value})
            else:
                setattr(self, key, value)

    def admin_dir(self, slug: str) -> Path:
        """The course's admin folder on this machine (custom.sharedData.admin)."""
        return Path(self.shared_root) / self.shared_data["admin"]["subPath"] / slug

    def get_args(self):
        args = super().get_args()
        if self.read_only_dir:
            manager = read_only_mounts.ReadOnlyMountsManager
            args += [
                f"--ServerApp.contents_manager_class={manager.__module__}.{manager.__name__}",
                f"--ReadOnlyMountsManager.read_only_dir={self.read_only_dir}",
            ]
        return args

    async def start(self):
        profile = self.chosen_profile()
        self.apply_profile(profile)
        course = {course.slug: course for course in load_courses(self.courses)}[profile["slug"]]
        home = Path(self.home_dir)
        shared = Path(self.shared_root) / course.slug
        admin = self.admin_dir(course.slug)
        for folder in (home, shared):
            folder.mkdir(parents=True, exist_ok=True)
        # Only its owner may enter it, as run-admin-hook.sh requires.
        admin.mkdir(mode=0o700, parents=True, exist_ok=True)
        # The course's paths on this machine instead of the pod's.
        self.environment = {
            **self.environment,
            "COURSEHUB_HOME": str(home),
            "COURSEHUB_SHARED_DIR": str(shared),
        }
        instructor = self.environment["COURSEHUB_ROLE"] == INSTRUCTOR
        # Merged over earlier starts' (apply_profile): a student's must not keep it.
        self.environment.pop("COURSEHUB_ADMIN_DIR", None)
        if instructor:
            self.environment["COURSEHUB_ADMIN_DIR"] = str(admin)
        self.read_only_dir = "" if instructor else str(shared)
        if self.run_startup_hooks:
            from_admin = course.hooks == hooks.ADMIN
            for step in hooks.STEPS:
                await self.run_hook(step, admin if from_admin else None)
        return await super().start()

    async def run_hook(self, step: str, admin: Path | None = None) -> None:
        """Run one step: the image's script, or with `admin` run-admin-hook.sh for it."""
        if admin is None:
            command = ["sh", str(Path(self.hooks_dir) / f"{step}.sh")]
            admin_env = {}
        else:
            command = ["sh", str(Path(self.hooks_dir) / hooks.ADMIN_RUNNER), step]
            admin_env = hooks.admin_hook_environment(self.user.name, str(admin))
        log_file = Path(self.hook_log_dir) / self.user.name / f"{step}.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **{key: value for key, value in self.environment.items() if isinstance(value, str)},
            **admin_env,
            # The runner's marker, as for every process of this hub.
            **{key: os.environ[key] for key in (MARKER_VARIABLE,) if key in os.environ},
            # The hub's Python environment has nbgitpuller's `gitpuller`, as the image does.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": self.home_dir,
            "COURSEHUB_UID": str(os.getuid()),
            "COURSEHUB_GID": str(os.getgid()),
        }
        process = await asyncio.create_subprocess_exec(
            *command,
            env=env,
            cwd=self.home_dir,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        text = output.decode(errors="replace")
        log_file.write_text(text)
        for line in text.splitlines():
            # run-admin-hook.sh's refusals are warnings in the hub's log too.
            log = self.log.warning if line.startswith("warning:") else self.log.info
            log("%s %s: %s", self.user.name, step, line)
        if process.returncode != 0:
            raise Refused(
                500,
                f"Start-up step {step!r} failed (exit status {process.returncode}), so your "
                f"server was not started. {'Your instructors' if admin else 'A hub admin'} "
                "can read its log.",
            )


class LightweightCourseSpawner(LocalCourseSpawner):
    """The same course rules and hub API, with scripts/localhub/lightweight_server.py as the server.

    For load tests with more students than JupyterLab processes fit on this
    machine. The start-up hooks are left out too: on a cluster they run in the
    user's pod, not in the hub, so leaving them out takes nothing from the hub's load.
    """

    stop_seconds = Float(
        0,
        config=True,
        help="Seconds each stop waits before stopping the process: what deleting a pod "
        "takes on a cluster, so culling is measured against realistic stops.",
    )

    @default("run_startup_hooks")
    def _no_hooks(self):
        return False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # Set after the config is loaded: the values' singleuser.cmd (jupyterhub-singleuser)
        # is what this class replaces. (A trait declared with config=False instead would
        # make traitlets warn about Spawner.cmd at every spawner the hub creates.)
        # -I -S: the standard library only, nothing to scan.
        self.cmd = [sys.executable, "-I", "-S", lightweight_server.__file__]

    async def stop(self, now=False):
        await asyncio.sleep(self.stop_seconds)
        await super().stop(now=now)
