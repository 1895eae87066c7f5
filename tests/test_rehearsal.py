"""The rehearsal from a fork to the first deploy (scripts/rehearsal.py) passes, step by step,
as a user that is not root, as GitHub's runner runs it.

`nox -s rehearse` runs the same steps. As root, the rehearsal runs as `coursehub-runner`
(tests/test_runner_user.py makes that user) from a copy of this checkout committed to a git
repository of its own, with a virtualenv that user owns; as any other user, as that user.
"""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from test_runner_user import (
    RUNNER,
    RunnerUser,
    copy_project,
    make_venv,
    root_makes_runner_user,
    succeeded,
)

from coursehub_tools import rehearsal
from coursehub_tools.deployconfig import ROOT

# What the rehearsal imports and runs beyond the runner user's groups.
GROUPS = ("hub", "deploy")


def runner_user_with_the_deploy_tools() -> RunnerUser:
    """coursehub-runner, with a committed copy of this checkout and the deploy group."""
    if subprocess.run(["id", "-u", RUNNER], capture_output=True, check=False).returncode:
        root_makes_runner_user()
    home = Path(pwd.getpwnam(RUNNER).pw_dir)
    # Its own checkout and virtualenv: tests/test_runner_user.py replaces its own.
    user = RunnerUser(RUNNER, home, home / "coursehub-rehearsal", home / "venv-rehearsal" / "bin")
    copy_project(user.checkout, RUNNER)
    identity = ["-c", "user.name=runner", "-c", "user.email=runner@localhost"]
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "copy"]):
        succeeded(user.run("git", *identity, *command))
    make_venv(user)
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]
    requirements = [req for group in GROUPS for req in groups[group]]
    stamp = user.venv_bin.parent / "coursehub-rehearsal-requirements.txt"
    if not stamp.exists() or stamp.read_text() != "\n".join(requirements):
        succeeded(user.run("python", "-m", "pip", "install", "--quiet",
                           "--disable-pip-version-check", *requirements))  # fmt: skip
        stamp.write_text("\n".join(requirements))
    return user


@pytest.fixture(scope="module")
def transcript() -> str:
    """The rehearsal's transcript, run as a user that is not root."""
    if os.geteuid() == 0:
        user = runner_user_with_the_deploy_tools()
    else:
        me = pwd.getpwuid(os.geteuid())
        user = RunnerUser(me.pw_name, Path(me.pw_dir), ROOT, Path(sys.executable).parent)
    result = user.run("python", "-m", "coursehub_tools.rehearsal", timeout=900)
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr}"
    return result.stdout


def test_every_step_passes_in_order(transcript):
    titles = [line.split(": ")[0] for line in transcript.splitlines() if line.startswith("## ")]
    steps = [step.__name__ for step in rehearsal.STEPS]
    assert titles == [f"## {number}. {name}" for number, name in enumerate(steps, 1)]
    assert transcript.rstrip().endswith("rehearsal passed")


def test_the_rendered_chart_has_the_rbac_the_deployer_must_create(transcript):
    (line,) = [line for line in transcript.splitlines() if "; RBAC: " in line]
    assert {"Role", "RoleBinding", "ClusterRole"} <= set(line.split("; RBAC: ")[1].split(", "))


@pytest.mark.unit
def test_hubploy_calls_only_what_the_pinned_repo2docker_has():
    assert rehearsal.repo2docker_calls_missing() == []


def test_the_cluster_is_applied_twice_and_its_records_use_the_values_address(transcript):
    applies = [line.strip() for line in transcript.splitlines() if " gcloud calls so far; " in line]
    assert [line.split(":")[0] for line in applies] == ["staging", "prod", "staging", "prod"]
    kept = [int(line.split("; ")[1].split()[0]) for line in applies]
    assert kept[0] == 0 and all(count > 0 for count in kept[1:]), "the second apply keeps all"
    for deployment in ("staging", "prod"):
        assert f"{deployment}: every host's record points at its loadBalancerIP " in transcript


def test_the_deployer_may_write_every_object_helm_rendered(transcript):
    (line,) = [line for line in transcript.splitlines() if ": written by " in line]
    assert "roles/container.developer" in line and "/roles/coursehubRbacWriter" in line


def test_the_deploy_steps_run_the_jobs_own_command(transcript):
    """deploy.yml's deploy step as written (`nox -s deploy` -> `coursehub-cluster up`), with
    helm's upgrade rendered by the real helm and the cluster services recorded."""
    for deployment in ("staging", "prod"):
        assert f"nox > coursehub-cluster up {deployment}" in transcript
    (upgrade,) = [
        line
        for line in transcript.splitlines()
        if "recorded: helm upgrade" in line and "--repo" not in line  # not cert-manager's
    ]
    assert "--set-string hub.services.cluster-tests.apiToken=<token>" in upgrade
    assert "helm stand-in: rendered by the real helm (helm template)" in transcript
    (applied,) = [line for line in transcript.splitlines() if "kubectl apply (the cluster" in line]
    assert "Namespace coursehub-staging" in applied and "PersistentVolume " in applied


def test_the_smoke_tests_calls_are_read_from_it_and_allowed(transcript):
    host = "https://staging.hub.coursehub.example.org"
    assert f"POST {host}/hub/api/users/<user>/server" in transcript
    assert "each call's scope (JupyterHub's handlers) is among them" in transcript


@pytest.mark.unit
def test_the_kept_transcript_is_a_passing_run_of_todays_steps():
    """The book's excerpts come from book/rehearsal-transcript.txt: a run with its command,
    date and commit, of every step in today's order (`coursehub-rehearse --transcript`)."""
    command, sections = rehearsal.kept_sections()
    assert re.fullmatch(
        r"\$ nox -s rehearse    # \d{4}-\d\d-\d\d \d\d:\d\d UTC, commit [0-9a-f]{12}", command
    )
    assert list(sections) == [step.__name__ for step in rehearsal.STEPS]
    assert sections[rehearsal.STEPS[-1].__name__][-1] == "rehearsal passed"
    text = (ROOT / rehearsal.TRANSCRIPT).read_text()
    assert "coursehub-rehearsal-" not in text and "/tmp/tmp" not in text, "folders by name"


@pytest.mark.unit
def test_the_chapters_show_excerpts_of_steps_the_transcript_has():
    _, sections = rehearsal.kept_sections()
    for chapter in ("fork", "gke", "hubploy"):
        text = (ROOT / "book" / f"{chapter}.md").read_text()
        shown = re.findall(r"rehearsal\.excerpt\(\[([^\]]*)\]", text)
        assert shown, f"book/{chapter}.md shows no excerpt of the rehearsal"
        for names in shown:
            for name in re.findall(r'"(\w+)"', names):
                assert name in sections, f"book/{chapter}.md: {name}"
