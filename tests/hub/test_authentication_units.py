"""Offline checks of the GitHub login's building blocks: roles, Unix ids, refusal pages."""

from __future__ import annotations

import json

import pytest

from coursehub.courses import INSTRUCTOR, load_courses
from coursehub.enrollment import enrollment_group
from coursehub.github import CoursehubGitHubOAuthenticator, authenticator_config, team_names
from coursehub.roles import SCOPES_OVER_STUDENTS, instructor_roles
from coursehub.unix_ids import FIRST_USER_ID, unix_ids
from coursehub_tools.config.deployconfig import ROOT, ConfigError, Layer, load
from coursehub_tools.local.github_standin import World
from coursehub_tools.local.local_hub import FIXTURE

pytestmark = pytest.mark.unit

WORLD = World.from_file(FIXTURE, "id", "secret")


def auth_state(login: str) -> dict:
    """What GitHubOAuthenticator stores for `login`, from the stand-in's answers."""
    return {
        "github_user": WORLD.user_model(login),
        "teams": WORLD.teams_of(login),
        "organizations": WORLD.orgs_of(login),
    }


@pytest.mark.parametrize("deployment", ["local", "staging", "prod"])
def test_each_courses_instructors_get_a_role_over_exactly_that_courses_students(deployment):
    entries = load(deployment).values["custom"]["courses"]
    courses = load_courses(entries)
    roles = {role["name"]: role for role in instructor_roles(entries)}
    assert len(roles) == len(courses), "one role a course"
    for course in courses:
        role = roles[f"instructor-{course.slug}"]
        assert role["groups"] == sorted(course.instructor_groups)
        filtered = [scope for scope in role["scopes"] if "!" in scope]
        students = {*course.student_groups, enrollment_group(course.slug)}
        assert {scope.split("!group=")[1] for scope in filtered} == students
        assert {scope.split("!")[0] for scope in filtered} == set(SCOPES_OVER_STUDENTS)
        assert not any(scope.startswith(("admin:", "groups", "users")) for scope in role["scopes"])


def test_the_fixture_school_has_two_courses_with_different_teams():
    """What the hub tests of the walls between courses need of the registry: courses whose
    teams differ, and someone who teaches more than one (their expectations are derived)."""
    courses = load_courses(load("local").values["custom"]["courses"])
    assert len({course.instructor_groups for course in courses}) > 1
    assert len({course.student_groups - {enrollment_group(course.slug)} for course in courses}) > 1
    groups = {login: team_names(auth_state(login)) for login in WORLD.users}
    teaching = [[c for c in courses if c.role(groups[login]) == INSTRUCTOR] for login in groups]
    assert any(len(taught) > 1 for taught in teaching), "an instructor of two courses"
    assert any(len(taught) == 1 for taught in teaching), "a TA of one course only"


def test_unix_ids_are_github_ids():
    uid, gids = unix_ids(auth_state("sam"))
    assert uid == WORLD.users["sam"]["id"]
    groups = WORLD.teams_of("sam") + WORLD.orgs_of("sam")
    assert len(WORLD.orgs_of("sam")) > 1, "the fixture puts sam in two organizations"
    assert gids == sorted(group["id"] for group in groups)


def test_unix_ids_refuse_system_uids():
    state = auth_state("sam")
    state["github_user"]["id"] = FIRST_USER_ID - 1
    with pytest.raises(ValueError, match="system uid"):
        unix_ids(state)


@pytest.mark.parametrize("enabled", [True, False])
async def test_kubespawner_pod_runs_as_github_ids_only_when_enabled(enabled, tmp_path, monkeypatch):
    from kubespawner import KubeSpawner

    # KubeSpawner loads a kube config when created; building a pod manifest
    # contacts no cluster, so an unreachable one will do.
    kubeconfig = {
        "apiVersion": "v1",
        "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:9"}}],
        "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
        "current-context": "none",
        "users": [{"name": "none", "user": {}}],
    }
    (tmp_path / "kubeconfig").write_text(json.dumps(kubeconfig))
    monkeypatch.setattr(
        "kubernetes_asyncio.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION",
        str(tmp_path / "kubeconfig"),
    )
    spawner = KubeSpawner(_mock=True)

    async def get_auth_state():
        return auth_state("tara")

    spawner.user.get_auth_state = get_auth_state
    authenticator = CoursehubGitHubOAuthenticator(unix_ids_from_github=enabled)
    await authenticator.pre_spawn_start(spawner.user, spawner)
    pod = (await spawner.get_pod_manifest()).spec
    if enabled:
        assert pod.containers[0].security_context["runAsUser"] == WORLD.users["tara"]["id"]
        groups = WORLD.orgs_of("tara") + WORLD.teams_of("tara")
        assert pod.security_context["supplementalGroups"] == sorted(g["id"] for g in groups)
    else:
        assert "supplementalGroups" not in (pod.security_context or {})
        assert "runAsUser" not in pod.containers[0].security_context


def test_unix_ids_are_off_unless_a_deployment_turns_them_on():
    for deployment in ("local", "kind", "staging", "prod"):
        github = load(deployment).values["custom"]["github"]
        assert authenticator_config(github)["unix_ids_from_github"] is False


@pytest.mark.parametrize("key", ["enabled", "users"])
def test_sso_overlay_refuses_to_run_without_user_culling(key):
    assert load("local-sso").values["cull"][key] is True
    with pytest.raises(ConfigError, match=rf"^test layer: cull\.{key}: must be True"):
        load("local-sso", extra_layers=[Layer("test layer", {"cull": {key: False}})])


AUTH_FILES = [
    "deploy/deployments/coursehub/config/sso.yaml",
    "hub-config/coursehub/github.py",
    "hub-config/coursehub/login_errors.py",
    "hub-config/coursehub/roles.py",
    "hub-config/coursehub/sso.py",
    "hub-config/coursehub/unix_ids.py",
    "hub-config/jupyterhub_config.d/10-github.py",
    "hub-config/jupyterhub_config.d/11-roles.py",
]


@pytest.mark.parametrize("path", AUTH_FILES)
def test_authentication_chapter_shows_the_file(path):
    assert (ROOT / path).is_file()
    chapter = (ROOT / "book" / "authentication.md").read_text()
    assert f"```{{literalinclude}} ../{path}\n" in chapter


class FakeUser:
    """Just enough of a JupyterHub user for refresh_user: a name and no stored auth state."""

    name = "sam"

    async def get_auth_state(self):
        return None


@pytest.mark.parametrize("fresh_for", [0, 60])
async def test_a_confirmed_membership_stands_for_membership_fresh_for(fresh_for):
    now = [1000.0]
    authenticator = CoursehubGitHubOAuthenticator(
        **authenticator_config(load("local").values["custom"]["github"]),
        enable_auth_state=True,
        membership_fresh_for=fresh_for,
        clock=lambda: now[0],
    )
    model = {"name": "sam", "auth_state": auth_state("sam")}
    assert await authenticator.check_allowed("sam", model) is True

    now[0] += fresh_for / 2
    # Within the window the last check stands; past it (or with 0) the refresh
    # asks again, which here, with no stored auth state, means "log in again".
    within = await authenticator.refresh_user(FakeUser())
    assert within is bool(fresh_for)
    now[0] += fresh_for
    assert await authenticator.refresh_user(FakeUser()) is False
