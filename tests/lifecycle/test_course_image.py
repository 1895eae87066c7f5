"""A course repository's image pipeline, and the weekly rebuild of every course image.

The workflows' own steps run in order, as the runner runs them, against
stand-ins that say they are ones: the Docker engine and registry
(scripts/deploy/docker_standin.py: repo2docker and the docker CLI talk to it, nothing
is built) and GitHub's REST API (scripts/local/github_standin_repos.py, with
coursehub's registry as a repository). The course repository is what a course
makes from the template: deploy/deployments/coursehub/image/ with the workflow,
and examples/data-science-101's notebooks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from coursehub_tools.config.deployconfig import ROOT
from coursehub_tools.deploy import docker_standin
from coursehub_tools.deploy.rehearsal import expression
from coursehub_tools.local.hub.supervisor import free_port, wait_for_port

pytestmark = pytest.mark.unit

TEMPLATE = ROOT / "deploy/deployments/coursehub/image"
WEEKLY = ROOT / ".github/workflows/rebuild-images.yml"
REGISTRY_REPO = "coursehub/coursehub"
COURSE = "data-science-101"
COURSE_REPO = "coursehub-school/data-science-101"
BOT = "coursehub-bot"
# A commit's date is data: the tag is made from it.
COMMITTED = "2026-11-20T10:00:00+00:00"
# The step that installs the tools: this environment has them (as the rehearsal's
# `nox --no-install`), and a test must not install into it.
INSTALLS = re.compile(r"^python3 -m pip install ")


@pytest.fixture
def docker():
    with docker_standin.docker_engine() as (host, engine):
        yield host, engine


@pytest.fixture
def github(tmp_path):
    """The GitHub stand-in with coursehub's registry as a repository, and a token for it."""
    port = free_port()
    command = [
        sys.executable, "-m", "coursehub_tools.local.github_standin", "--port", str(port),
        "--fixture", str(ROOT / "scripts/local/hub/github-users.yaml"),
        "--client-id", "test", "--client-secret", "test",
    ]  # fmt: skip
    log = (tmp_path / "github.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process, "the GitHub stand-in", 20)
        url = f"http://127.0.0.1:{port}"
        yield url
    finally:
        process.terminate()
        process.wait(10)


def token(github: str, login: str, permissions: dict[str, str] | None = None) -> str:
    """A personal access token of `login`'s: fine-grained if `permissions` are given."""
    body = {"permissions": permissions} if permissions is not None else {}
    answer = requests.post(f"{github}/_standin/tokens/{login}", json=body, timeout=10)
    answer.raise_for_status()
    return answer.json()["token"]


def seed(github: str, files: dict[str, str]) -> str:
    """The registry repository of `files`, its bot a writer; the bot's fine-grained token."""
    repository = {"files": files, "writers": [BOT]}
    answer = requests.put(f"{github}/_standin/repos/{REGISTRY_REPO}", json=repository, timeout=10)
    answer.raise_for_status()
    return token(github, BOT, {"contents": "write", "pull_requests": "write"})


def registry_files() -> dict[str, str]:
    return {
        f"deploy/courses/{p.name}": p.read_text() for p in (ROOT / "deploy/courses").glob("*.yaml")
    }


def api(github: str, path: str, **params):
    answer = requests.get(
        f"{github}/api/v3/repos/{REGISTRY_REPO}/{path}",
        params=params,
        headers={"Authorization": f"token {token(github, 'sam')}"},
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()


def proposed_file(github: str, branch: str, slug: str) -> dict:
    import base64

    content = api(github, f"contents/deploy/courses/{slug}.yaml", ref=branch)["content"]
    return yaml.safe_load(base64.b64decode(content))


def git(folder: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_DATE": COMMITTED, "GIT_COMMITTER_DATE": COMMITTED,
           "GIT_AUTHOR_NAME": "Ian", "GIT_AUTHOR_EMAIL": "ian@example.org",
           "GIT_COMMITTER_NAME": "Ian", "GIT_COMMITTER_EMAIL": "ian@example.org"}  # fmt: skip
    done = subprocess.run(["git", *args], cwd=folder, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def course_repository(folder: Path, change=None) -> Path:
    """A course's repository as the template makes it: the image folder, the workflow, notebooks."""
    shutil.copytree(TEMPLATE, folder, ignore=shutil.ignore_patterns("build-image.yaml"))
    shutil.copytree(ROOT / "examples" / COURSE, folder, dirs_exist_ok=True)
    workflows = folder / ".github/workflows"
    workflows.mkdir(parents=True)
    shutil.copy(TEMPLATE / "build-image.yaml", workflows / "build-image.yaml")
    if change:
        change(folder)
    git(folder, "init", "--quiet", "--initial-branch=main")
    git(folder, "add", "-A")
    git(folder, "commit", "--quiet", "-m", "The course, from coursehub's template")
    return folder


def run_workflow(
    workflow: dict,
    job: str,
    workspace: Path,
    *,
    event: str,
    env: dict[str, str],
    secrets: dict[str, str],
    repository: str,
    output_dir: Path,
    extra_args: dict[str, str] | None = None,
) -> list[tuple[str, subprocess.CompletedProcess]]:
    """The job's `run` steps in order, as the runner runs them, until one fails.

    Expressions come from the workflow's and the steps' env, github, secrets and
    the steps' outputs; `if: github.event_name == '<event>'` is honoured.
    `extra_args` appends arguments to the step whose command starts with a key. Each step's
    $GITHUB_OUTPUT is a file in `output_dir`, not the workspace (the weekly job's is the project's).
    """
    github = {"event_name": event, "repository": repository, "actor": "ian"}
    outputs: dict[str, dict] = {}
    base_env = {**os.environ, **env}
    context = {"github": github, "secrets": secrets, "steps": outputs, "env": base_env}
    workflow_env = {k: expression(str(v), context) for k, v in (workflow.get("env") or {}).items()}
    context["env"] = base_env = {**base_env, **workflow_env, **env}
    ran = []
    for number, step in enumerate(workflow["jobs"][job]["steps"]):
        condition = step.get("if")
        if "run" not in step or INSTALLS.match(step["run"]):
            continue
        if condition and condition != f"github.event_name == '{event}'":
            continue
        step_env = {k: expression(str(v), context) for k, v in (step.get("env") or {}).items()}
        output = output_dir / f"output-{number}"
        output.write_text("")
        script = step["run"]
        for start, added in (extra_args or {}).items():
            if script.startswith(start):
                script = f"{script.rstrip()} {added}"
        done = subprocess.run(
            ["bash", "-e", "-c", script], cwd=workspace / step.get("working-directory", "."),
            env={**base_env, **step_env, "GITHUB_OUTPUT": str(output)},
            capture_output=True, text=True,
        )  # fmt: skip
        ran.append((step.get("name", script), done))
        if "id" in step:
            lines = output.read_text().splitlines()
            outputs[step["id"]] = {"outputs": dict(line.split("=", 1) for line in lines)}
        if done.returncode != 0:
            break
    return ran


def job_environment(tmp_path: Path, docker_host: str, github: str) -> dict[str, str]:
    return {
        "DOCKER_HOST": docker_host,
        "DOCKER_CONFIG": str(tmp_path / "docker-config"),
        "GITHUB_API_URL": f"{github}/api/v3",
        # The registry is the stand-in's: its address is the images' host.
        "REGISTRY": docker_host.removeprefix("tcp://"),
    }


def pipeline(tmp_path, docker, github, *, event="push", change=None):
    host, _engine = docker
    bot_token = seed(github, registry_files())
    workspace = tmp_path / "workspace"
    course_repository(workspace / "course", change)
    workflow = yaml.safe_load((TEMPLATE / "build-image.yaml").read_text())
    ran = run_workflow(
        workflow, "build", workspace, event=event,
        env=job_environment(tmp_path, host, github) | {"COURSEHUB_REGISTRY_REPO": REGISTRY_REPO},
        secrets={"GITHUB_TOKEN": "the-course-repository-token", "COURSEHUB_PR_TOKEN": bot_token},
        repository=COURSE_REPO, output_dir=tmp_path,
    )  # fmt: skip
    commit = git(workspace / "course", "rev-parse", "--short=7", "HEAD")
    image = f"{host.removeprefix('tcp://')}/{COURSE_REPO}:2026.11.20-{commit}"
    return ran, image


def names(ran) -> list[str]:
    return [name for name, _ in ran]


def test_the_template_builds_checks_pushes_and_proposes_the_tag(tmp_path, docker, github):
    ran, image = pipeline(tmp_path, docker, github)
    failed = [(name, done.stderr) for name, done in ran if done.returncode != 0]
    assert failed == []
    assert names(ran) == [
        "The hooks check", "Tag", "Build", "The content check", "Log in to the registry",
        "Push", "The registry check", "Propose the tag to coursehub's registry",
    ]  # fmt: skip
    _host, engine = docker
    assert [build["tag"] for build in engine.builds] == [image]
    assert [push["reference"] for push in engine.pushes] == [image]
    # The pull request names the new tag and changes nothing else of the course.
    (pull,) = api(github, "pulls")
    assert pull["state"] == "open" and pull["user"]["login"] == "coursehub-bot"
    proposed = proposed_file(github, pull["head"]["ref"], COURSE)
    current = yaml.safe_load((ROOT / f"deploy/courses/{COURSE}.yaml").read_text())
    assert proposed == {**current, "image": image}
    assert image in ran[-1][1].stdout and pull["html_url"] in ran[-1][1].stdout


def test_a_pull_request_builds_and_checks_but_pushes_and_proposes_nothing(tmp_path, docker, github):
    ran, _image = pipeline(tmp_path, docker, github, event="pull_request")
    assert names(ran) == ["The hooks check", "Tag", "Build", "The content check"]
    assert all(done.returncode == 0 for _, done in ran)
    _host, engine = docker
    assert len(engine.builds) == 1 and engine.pushes == []
    assert api(github, "pulls") == []


def greedy_notebook(folder: Path) -> None:
    """A notebook that needs more memory than the course's limit (2G) gives."""
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
            "source": "big = bytearray(3 * 1024**3)  # 3 GiB\nprint(len(big))"}  # fmt: skip
    notebook = {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (folder / "Greedy.ipynb").write_text(json.dumps(notebook))


def test_a_notebook_over_the_courses_memory_limit_stops_the_pipeline_before_the_push(
    tmp_path, docker, github
):
    ran, _image = pipeline(tmp_path, docker, github, change=greedy_notebook)
    name, done = ran[-1]
    assert name == "The content check" and done.returncode == 1
    assert "Greedy.ipynb, cell 1: MemoryError" in done.stderr
    _host, engine = docker
    assert engine.pushes == [] and api(github, "pulls") == []


def hooks_left_writable(folder: Path) -> None:
    dockerfile = folder / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("chown -R root:root", "chown -R 1000:100"))


def test_hooks_a_student_could_change_stop_the_pipeline_before_the_build(tmp_path, docker, github):
    ran, _image = pipeline(tmp_path, docker, github, change=hooks_left_writable)
    ((name, done),) = ran
    assert name == "The hooks check" and done.returncode == 1
    assert "is not made root's (chown -R root:root)" in done.stderr
    assert docker[1].builds == []


def propose(github: str, token: str | None, image: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "GITHUB_API_URL": f"{github}/api/v3",
        "COURSEHUB_REGISTRY_REPO": REGISTRY_REPO,
    }
    env.pop("GH_TOKEN", None)
    if token is not None:
        env["GH_TOKEN"] = token
    command = [sys.executable, "-m", "coursehub_tools.lifecycle.course_image", "propose",
               "--course", COURSE, "--image", image]  # fmt: skip
    return subprocess.run(command, env=env, capture_output=True, text=True)


def test_a_proposal_fails_as_github_refuses_it(github):
    bot_token = seed(github, registry_files())
    image = "ghcr.io/coursehub-school/data-science-101:2026.11.20-abcdef1"
    missing = propose(github, None, image)
    assert missing.returncode == 1 and "GH_TOKEN not set" in missing.stderr
    wrong = propose(github, "not-a-token", image)
    assert wrong.returncode == 1
    assert "GitHub refused to read branch main: 401 Bad credentials" in wrong.stderr
    # The bot may write to the registry, but this token of its may not write contents.
    read_only = token(github, BOT, {"contents": "read", "pull_requests": "write"})
    forbidden = propose(github, read_only, image)
    assert forbidden.returncode == 1
    assert (
        "create branch images/data-science-101-2026.11.20-abcdef1: 403 "
        "Resource not accessible by personal access token" in forbidden.stderr
    )
    first = propose(github, bot_token, image)
    assert first.returncode == 0, first.stderr
    again = propose(github, bot_token, image)
    assert again.returncode == 1
    assert (
        "create branch images/data-science-101-2026.11.20-abcdef1: 422 Reference already exists"
        in again.stderr
    )
    assert "Traceback" not in missing.stderr + wrong.stderr + forbidden.stderr + again.stderr
    assert len(api(github, "pulls")) == 1


# The weekly rebuild: two courses, one whose repository no longer builds.


def weekly_courses(tmp_path: Path, host: str) -> tuple[Path, Path]:
    """Two course repositories under a git base, and registry files naming their images."""
    base, courses = tmp_path / "git", tmp_path / "courses"
    courses.mkdir()
    current = yaml.safe_load((ROOT / f"deploy/courses/{COURSE}.yaml").read_text())

    def broken(folder: Path) -> None:
        dockerfile = folder / "Dockerfile"
        dockerfile.write_text(dockerfile.read_text() + "COPY data/ /srv/data/\n")

    for slug, change in (("ecology", None), ("optics", broken)):
        course_repository(base / "coursehub-school" / slug, change)
        text = (ROOT / f"deploy/courses/{COURSE}.yaml").read_text()
        text = text.replace(f"slug: {COURSE}", f"slug: {slug}")
        text = text.replace(current["image"], f"{host}/coursehub-school/{slug}:2026.11.1")
        (courses / f"{slug}.yaml").write_text(text)
    return base, courses


def test_the_weekly_rebuild_proposes_every_course_that_built_and_says_which_failed(
    tmp_path, docker, github
):
    host, engine = docker
    registry = host.removeprefix("tcp://")
    base, courses = weekly_courses(tmp_path, registry)
    bot_token = seed(
        github, {f"deploy/courses/{p.name}": p.read_text() for p in courses.glob("*.yaml")}
    )
    workflow = yaml.safe_load(WEEKLY.read_text())
    # The registry's own folder and github.com, here the test's; the day pinned.
    here = f"--courses {courses} --git-base {base.as_uri()} --date 2026-11-23"
    ran = run_workflow(
        workflow, "rebuild", ROOT, event="schedule", env=job_environment(tmp_path, host, github),
        secrets={"IMAGES_PUSH_TOKEN": "push-token", "IMAGES_PR_TOKEN": bot_token},
        repository=REGISTRY_REPO, output_dir=tmp_path,
        extra_args={"python3 -m coursehub_tools.lifecycle.course_image rebuild": here},
    )  # fmt: skip
    (login, rebuild) = [done for _, done in ran]
    assert login.returncode == 0, login.stderr
    assert rebuild.returncode == 1, rebuild.stderr
    commit = git(base / "coursehub-school/ecology", "rev-parse", "--short=7", "HEAD")
    rebuilt = f"{registry}/coursehub-school/ecology:2026.11.23-{commit}"
    assert [push["reference"] for push in engine.pushes] == [rebuilt], rebuild.stderr
    assert "warning: optics: not rebuilt: repo2docker failed" in rebuild.stderr
    (pull,) = api(github, "pulls")
    assert pull["title"] == "Course images: the weekly rebuild of 2026-11-23"
    assert proposed_file(github, pull["head"]["ref"], "ecology")["image"] == rebuilt
    assert proposed_file(github, pull["head"]["ref"], "optics")["image"].endswith(":2026.11.1")
    assert f"- ecology: `{rebuilt}`" in pull["body"]
    assert "- optics: repo2docker failed" in pull["body"] and "COPY failed" in pull["body"]
