"""The project as GitHub's hosted runners run it: a user that is not root, with passwordless sudo.

GitHub runs a job as `runner`; this machine and .ci/run run as root, where
anything that works only for root would pass unnoticed. As root, these tests run
their checks as `coursehub-runner` (created, with a sudoers line, on first use),
from a copy of the project and a Python 3.11 virtualenv that user owns, first
on its PATH as actions/setup-python puts it. As any other user (GitHub's
runner), they run them as that user, who must have passwordless sudo.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from runner_checks import MISSING, PRESENT, PrintingSession, load_noxfile

from coursehub_tools.config.deployconfig import ROOT

RUNNER = "coursehub-runner"
SUDOERS = Path("/etc/sudoers.d") / RUNNER
# A job step's PATH after actions/setup-python, without the tool cache's other tools.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What the checks import: the local hub, its server, pytest and nox (for noxfile.py).
GROUPS = ("hub", "singleuser", "test")


@dataclass(frozen=True)
class RunnerUser:
    name: str
    home: Path
    checkout: Path
    venv_bin: Path

    def run(self, *command: str, timeout: float = 900) -> subprocess.CompletedProcess:
        """`command` as this user in its checkout, with only the environment a job step has."""
        env = [f"HOME={self.home}", f"USER={self.name}", f"LOGNAME={self.name}",
               f"PATH={self.venv_bin}:{SYSTEM_PATH}", "LANG=C.UTF-8"]  # fmt: skip
        as_user = ["runuser", "-u", self.name, "--"] if os.geteuid() == 0 else []
        return subprocess.run(
            [*as_user, "env", "-i", *env, *command],
            cwd=self.checkout,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def succeeded(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"{result.args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def as_root(*command: str) -> list[str]:
    return list(command) if os.geteuid() == 0 else ["sudo", "-n", *command]


def apt_install(*packages: str) -> None:
    subprocess.run(as_root("apt-get", "update", "-qq"), check=True)
    subprocess.run(as_root("apt-get", "install", "-y", "-qq", "--no-install-recommends",
                           "-o", "DPkg::Lock::Timeout=300", *packages), check=True)  # fmt: skip


def copy_project(checkout: Path, owner: str) -> None:
    """This checkout's files as they are now (committed or not), and its node_modules."""
    shutil.rmtree(checkout, ignore_errors=True)
    ls_files = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    listed = subprocess.run(ls_files, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, checkout / name)
    # configurable-http-proxy, which `nox -s pytest` installed before this test.
    shutil.copytree(ROOT / "node_modules", checkout / "node_modules", symlinks=True)
    subprocess.run(["chown", "-R", f"{owner}:", str(checkout)], check=True)


def make_venv(user: RunnerUser) -> None:
    """A Python 3.11 virtualenv the user owns, with the checks' groups and the project.

    Kept in the user's home between runs, and reinstalled only when the pins change.
    """
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]
    requirements = [req for group in GROUPS for req in groups[group]]
    stamp = user.venv_bin.parent / "coursehub-requirements.txt"
    if stamp.exists() and stamp.read_text() == "\n".join(requirements):
        return
    # The session's own Python may sit in root's home (pyenv), out of the user's reach.
    candidates = [sys._base_executable, shutil.which("python3.11", path=SYSTEM_PATH)]
    makes_venvs = "import ensurepip, sys; assert sys.version_info[:2] == (3, 11)"
    usable = [
        python
        for python in filter(None, candidates)
        if user.run(python, "-c", makes_venvs).returncode == 0
    ]
    assert usable, f"no Python 3.11 that {user.name} can run: apt-get install python3.11-venv"
    succeeded(user.run(usable[0], "-m", "venv", "--clear", str(user.venv_bin.parent)))
    succeeded(user.run("python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                       *requirements, "--editable", str(user.checkout)))  # fmt: skip
    stamp.write_text("\n".join(requirements))


def root_makes_runner_user() -> RunnerUser:
    if not shutil.which("sudo"):
        apt_install("sudo")
    if subprocess.run(["id", "-u", RUNNER], capture_output=True, check=False).returncode != 0:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", RUNNER], check=True)
    SUDOERS.write_text(f"{RUNNER} ALL=(ALL) NOPASSWD:ALL\n")
    SUDOERS.chmod(0o440)
    home = Path(pwd.getpwnam(RUNNER).pw_dir)
    user = RunnerUser(RUNNER, home, home / "coursehub", home / "venv" / "bin")
    copy_project(user.checkout, RUNNER)
    make_venv(user)
    return user


@pytest.fixture(scope="module")
def runner_user() -> RunnerUser:
    """The user the checks run as: coursehub-runner when this is root, else this user."""
    if os.geteuid() == 0:
        return root_makes_runner_user()
    me = pwd.getpwuid(os.geteuid())
    sudo = subprocess.run(["sudo", "-n", "true"], capture_output=True, text=True, check=False)
    assert sudo.returncode == 0, f"{me.pw_name} has no passwordless sudo, as GitHub's runner has"
    return RunnerUser(me.pw_name, Path(me.pw_dir), ROOT, Path(sys.executable).parent)


def test_the_runner_user_is_not_root_and_sudo_needs_no_password(runner_user):
    assert succeeded(runner_user.run("id", "-u")).strip() != "0"
    assert succeeded(runner_user.run("sudo", "-n", "id", "-u")).strip() == "0"


def test_install_debian_installs_a_missing_command_through_sudo(runner_user):
    [(command, package)] = MISSING.items()
    [present] = PRESENT
    if shutil.which(command, path=SYSTEM_PATH):
        remove = ["apt-get", "remove", "-y", "-qq", "-o", "DPkg::Lock::Timeout=300", package]
        subprocess.run(as_root(*remove), check=True)

    shown = succeeded(runner_user.run("python", "tests/deploy/runner_checks.py", "install-debian"))

    before_missing, after_missing = shown.split("--- missing")
    assert "ran:" not in before_missing, f"{present} is installed: nothing to run\n{shown}"
    assert "ran: sudo -n apt-get update -qq" in after_missing, shown
    installs = [line for line in after_missing.splitlines() if "apt-get install" in line]
    assert installs and installs[0].startswith("ran: sudo -n apt-get install"), shown
    assert installs[0].endswith(f" {package}"), f"installs {package}, and only that\n{shown}"
    assert shutil.which(command, path=SYSTEM_PATH), f"{package} was not installed"


@pytest.mark.unit
def test_install_debian_without_root_or_sudo_says_in_one_line_what_to_install(monkeypatch):
    noxfile = load_noxfile(ROOT)
    monkeypatch.setattr(noxfile, "as_root", lambda: None)
    with pytest.raises(SystemExit) as failed:
        noxfile.install_debian(PrintingSession(), {"coursehub-no-such-tool": "no-such-package"})
    assert str(failed.value.code) == (
        "session error: coursehub-no-such-tool not found, and this session cannot install it "
        "(needs root or passwordless sudo, and apt-get): sudo apt-get install no-such-package"
    )


@pytest.mark.unit
@pytest.mark.parametrize(("os_release", "expected"), [
    pytest.param('NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\n', "ubuntu", id="ubuntu"),
    pytest.param('NAME="Debian GNU/Linux"\nID=debian\n', "debian", id="debian"),
    pytest.param('NAME="Fedora Linux"\nID="fedora"\n', "fedora", id="quoted"),
])  # fmt: skip
def test_the_os_is_read_from_os_release(tmp_path, os_release, expected):
    noxfile = load_noxfile(ROOT)
    (tmp_path / "os-release").write_text(os_release)
    assert noxfile.os_release_id(tmp_path / "os-release") == expected


def test_postgres_starts_and_stops_as_the_runner_user(runner_user):
    shown = succeeded(runner_user.run("python", "tests/deploy/runner_checks.py", "postgres"))
    uid = succeeded(runner_user.run("id", "-u")).strip()
    assert f"uid {uid} connected as jupyterhub" in shown


@pytest.mark.hub
def test_a_student_logs_in_on_the_local_hub_run_by_the_runner_user(runner_user):
    student_login = "tests/local/test_local_hub.py::test_student_logs_in_and_reaches_jupyterlab"
    shown = succeeded(runner_user.run("python", "-m", "pytest", "-p", "no:cacheprovider",
                                      "-q", student_login))  # fmt: skip
    assert "1 passed" in shown, shown
