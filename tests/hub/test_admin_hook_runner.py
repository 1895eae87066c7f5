"""The image's run-admin-hook.sh on its own: what it runs, and what it refuses to run.

The runner is the project's, copied beside a stand-in for the image's own
step (which just says it ran); the admin folder is a temporary one owned by
whoever runs the tests. Handing a file to another uid needs root: as a user
with passwordless sudo (GitHub's runner) it goes through sudo.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from coursehub.hooks import ADMIN_RUNNER
from coursehub_tools.config.deployconfig import ROOT

RUNNER = ROOT / "deploy/deployments/coursehub/image/hooks" / ADMIN_RUNNER
USER = "sam"


def as_root(*command: str) -> list[str]:
    return list(command) if os.geteuid() == 0 else ["sudo", "-n", *command]


@pytest.fixture
def image_and_admin(tmp_path):
    image = tmp_path / "image-hooks"
    image.mkdir()
    shutil.copy(RUNNER, image / ADMIN_RUNNER)
    (image / "as-root.sh").write_text('echo "image step ran"\n')
    admin = tmp_path / "admin"
    admin.mkdir(mode=0o700)
    admin.chmod(0o700)
    return image, admin


def run(image: Path, admin: Path, step: str = "as-root") -> tuple[int, str]:
    env = {
        "PATH": os.environ["PATH"],
        "COURSEHUB_ADMIN_HOOKS": str(admin),
        "COURSEHUB_USER": USER,
        "COURSEHUB_UID": str(os.getuid()),
        "COURSEHUB_GID": str(os.getgid()),
    }
    done = subprocess.run(["sh", str(image / ADMIN_RUNNER), step], env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    log = (admin / "logs" / f"{USER}-{step}.log").read_text()
    assert done.stdout == log, "the log is what the step printed"
    return done.returncode, log


def write_hook(admin: Path, text: str = 'echo "admin hook ran"\n') -> Path:
    hook = admin / "as-root.sh"
    hook.write_text(text)
    hook.chmod(0o644)
    return hook


def test_without_an_admin_hook_only_the_images_step_runs(image_and_admin):
    status, log = run(*image_and_admin)
    assert (status, log) == (0, "image step ran\n")
    assert oct((image_and_admin[1] / "logs" / f"{USER}-as-root.log").stat().st_mode)[-3:] == "600"


def test_the_admin_hook_runs_after_the_images_step(image_and_admin):
    image, admin = image_and_admin
    write_hook(admin)
    status, log = run(image, admin)
    assert status == 0
    assert log.splitlines() == [
        "image step ran",
        f"as-root: running {admin}/as-root.sh",
        "admin hook ran",
    ]


def test_a_failing_image_step_runs_no_admin_hook(image_and_admin):
    image, admin = image_and_admin
    (image / "as-root.sh").write_text("echo broken; exit 3\n")
    write_hook(admin)
    status, log = run(image, admin)
    assert (status, log) == (3, "broken\n")


@pytest.mark.parametrize(
    ("make_unsafe", "reason"),
    [
        (lambda admin, hook: hook.chmod(0o646), "can be written by others than its owner"),
        (lambda admin, hook: hook.chmod(0o664), "can be written by others than its owner"),
        (lambda admin, hook: admin.chmod(0o777), "can be written by others than its owner"),
        (
            lambda admin, hook: (
                hook.rename(admin / "real.sh"),
                hook.symlink_to(admin / "real.sh"),
            ),
            "is a symbolic link",
        ),
        (
            lambda admin, hook: subprocess.run(as_root("chown", "54321", str(hook)), check=True),
            "belongs to uid 54321, not to the admin folder's owner",
        ),
    ],
    ids=["others-write", "group-writes", "folder-open", "link", "other-owner"],
)
def test_a_hook_someone_else_could_write_is_refused_with_a_warning(
    image_and_admin, make_unsafe, reason
):
    image, admin = image_and_admin
    make_unsafe(admin, write_hook(admin))
    status, log = run(image, admin)
    assert status == 1
    assert "admin hook ran" not in log
    (warning,) = [line for line in log.splitlines() if line.startswith("warning:")]
    assert warning.startswith(f"warning: as-root: refused to run {admin}/as-root.sh: ")
    assert reason in warning and warning.endswith("the server was not started")
