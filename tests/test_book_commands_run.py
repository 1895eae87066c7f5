"""Every project command the book and the README show runs as shown, where it can run here.

tests/test_book_commands.py checks that each one parses. This runs each that needs
no cluster, cloud or GitHub, as a reader would type it, with the project's
installed console script, in a copy of the project (some write files: a backup, a
course), and requires exit 0. A command that needs one of those is listed in
ELSEWHERE with the reason, and its subcommand's --help must work. The reader's
own values (`<slug>`, `NAME`) are given the example school's.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_book_commands import COMMANDS, EXAMPLE_VALUES, parses

from coursehub_tools.deployconfig import ROOT

# The first words of a shown command that cannot run on this machine, and why.
ELSEWHERE = {
    "coursehub status": "reads a running deployment: a cluster through kubectl, or the local "
    "hub on port 8000 (the bootcamp chapter runs it against a local hub of its own)",
    "coursehub restore": "puts a database back under a stopped hub (tests/test_backup.py does, "
    "on a local hub of its own)",
    "coursehub-gke apply": "creates the Google Cloud project's resources",
    "coursehub-gke verify": "asks Google Cloud what the project has",
    "coursehub-gke scale-down": "resizes a GKE cluster's node pool",
    "coursehub-cluster up": "deploys to a cluster (kind's needs Docker)",
    "coursehub-cluster services": "decrypts the database's password, which needs the age key",
    "coursehub-cluster create": "creates a kind cluster, which needs Docker",
    "coursehub-cluster down": "deletes a kind cluster, which needs Docker",
    "coursehub-chart refresh": "downloads the chart from hub.jupyter.org",
    "coursehub-content check --repo": "clones the course's content repository from GitHub",
}
# What must be there before a shown command can do its work: the course to approve.
REQUEST_ML_201 = (
    "coursehub-course request --slug ml-201 --title 'Machine Learning 201' "
    "--image ghcr.io/coursehub/ml-201:2027.2.1 --start 2027-03-01 --end 2027-05-28 "
    "--instructors coursehub-school:instructors --students coursehub-school:students "
    "--by ian --why 'spring term'"
)
BEFORE = {"coursehub-course approve": REQUEST_ML_201}
# Commands that save the local hub's database need one: a local hub runs first.
NEEDS_LOCAL_HUB = ("coursehub backup",)
# Not the project: what a checkout has beside it (installed tools, caches, builds).
NOT_COPIED = {".git", ".nox", "node_modules", "_build", ".localhub", ".pkgs", ".scratch",
              ".pytest_cache", ".ruff_cache"}  # fmt: skip


def listed_in(table, command: str) -> str | None:
    return next((key for key in table if command == key or command.startswith(key + " ")), None)


# Each command runs once, however many pages show it.
RUN = sorted({command for _, command in COMMANDS if not listed_in(ELSEWHERE, command)})
NOT_RUN = [(page, command) for page, command in COMMANDS if listed_in(ELSEWHERE, command)]


def pages_showing(command: str) -> str:
    return ", ".join(page for page, shown in COMMANDS if shown == command)


def as_typed(command: str) -> list[str]:
    """The command's words, each placeholder given its example value."""
    words = [EXAMPLE_VALUES.get(word, word) for word in shlex.split(command)]
    unfilled = [word for word in words if word.startswith("<") or word.isupper()]
    assert not unfilled, f"`{command}`: give {unfilled} a value in EXAMPLE_VALUES"
    return words


def not_project_files(folder: str, names: list[str]) -> set[str]:
    return NOT_COPIED & set(names) if Path(folder) == ROOT else set()


@pytest.fixture
def project(tmp_path) -> tuple[Path, dict[str, str]]:
    """A copy of the project, and an environment whose coursehub_tools is the copy's."""
    copy = tmp_path / "project"
    shutil.copytree(ROOT, copy, symlinks=True, ignore=not_project_files)
    if (ROOT / "node_modules").exists():  # helm and the proxy, installed, not project files
        (copy / "node_modules").symlink_to((ROOT / "node_modules").resolve())
    packages = tmp_path / "packages"
    packages.mkdir()
    (packages / "coursehub_tools").symlink_to(copy / "scripts")
    (packages / "coursehub").symlink_to(copy / "hub-config" / "coursehub")
    return copy, {**os.environ, "PYTHONPATH": str(packages)}


def run(words: list[str], where: tuple[Path, dict[str, str]]) -> subprocess.CompletedProcess:
    copy, env = where
    script = Path(sys.executable).parent / words[0]
    assert script.exists(), (
        f"{words[0]} is not installed beside {sys.executable}: install the project"
    )
    return subprocess.run([str(script), *words[1:]], cwd=copy, env=env, capture_output=True,
                          text=True, timeout=900)  # fmt: skip


def test_the_commands_run_against_the_copy(project):
    copy, env = project
    shown = subprocess.run(
        [sys.executable, "-c", "from coursehub_tools.yamlfiles import ROOT; print(ROOT)"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert Path(shown.stdout.strip()) == copy.resolve()


@pytest.mark.unit
def test_every_listed_command_is_shown():
    shown = {listed_in(ELSEWHERE, command) for _, command in NOT_RUN}
    assert set(ELSEWHERE) - shown == set(), "a command no page shows any more"


@pytest.mark.parametrize(
    "command",
    [pytest.param(c, marks=pytest.mark.hub) if listed_in(NEEDS_LOCAL_HUB, c) else c for c in RUN],
)
def test_a_shown_command_runs(command, project, request):
    words = as_typed(command)
    if before := listed_in(BEFORE, command):
        prepared = run(shlex.split(BEFORE[before]), project)
        assert prepared.returncode == 0, prepared.stderr
    if listed_in(NEEDS_LOCAL_HUB, command):
        state = project[0] / ".localhub"
        state.mkdir()
        with request.getfixturevalue("start_hub")(state):
            result = run(words, project)
    else:
        result = run(words, project)
    assert result.returncode == 0, (
        f"{pages_showing(command)} show `{command}`: {result.stderr.strip()[-2000:]}"
    )


@pytest.mark.unit
@pytest.mark.parametrize(("page", "command"), NOT_RUN)
def test_a_command_that_needs_a_cluster_has_the_subcommand_it_names(
    page, command, monkeypatch, capsys
):
    listed = listed_in(ELSEWHERE, command)
    subcommand = " ".join(word for word in listed.split() if not word.startswith("-"))
    problem = parses(f"{subcommand} --help", monkeypatch, capsys)
    assert problem is None, f"{page} shows `{command}` ({ELSEWHERE[listed]}): {problem}"
