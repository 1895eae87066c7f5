"""The deploy order the workflows promise, checked before they run.

actionlint checks that the workflows are valid GitHub Actions; this checks what
only this project knows, for every deployment hubploy deploys
(deploy/deployments.yaml):
- a job that deploys prod needs, directly or through other jobs, a job that
  deploys staging and then runs the cluster tests against it;
- a deploy job runs only for a commit whose CI passed: its workflow is started
  by the ci workflow's completion and the job (or one it needs) requires that
  run's success;
- deploys never overlap: the job or its workflow has a `concurrency` group.

And for a job that writes the course registry (runs `nox -s dispatch`, not as
--dry-run), where a state change must be a commit CI checks:
- two such runs never write the registry at once: a `concurrency` group;
- the change is pushed, and with a token whose pushes start workflows: not
  GITHUB_TOKEN (a push or pull request made with it starts no workflow), named
  in the pushing step's env, and no checkout left GITHUB_TOKEN in .git/config
  (`persist-credentials: false`), where git would send it instead.

And a job that runs course notebooks (`nox -s dispatch` with --check-content, or
not deploying on a --content-report) references no secret: a notebook is a
course's code and can read its job's environment and files. A job that does
reference a secret downloads artifacts (another job's files, which that job's
code could have written) only outside the workspace (under runner.temp): in it,
an artifact could replace noxfile.py or anything else the job then runs.

And a job that references a secret declares an `environment`: its secrets are then
kept in that environment, which admits only the branches its protection rules name,
instead of in the repository, where a workflow pushed to any branch could read them.

And every action from outside GitHub's own (`actions/`, `github/`) is pinned
by a full commit SHA: a tag can be moved to other code by whoever holds that
repository, and the job would run it beside its secrets and cloud identity.

    coursehub workflows check      # every file in .github/workflows/
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from coursehub_tools.config.deployconfig import load_deployments
from coursehub_tools.config.yamlfiles import ROOT, ConfigError, read_yaml, relative

WORKFLOWS = ".github/workflows"
CI_WORKFLOW = "ci"
CI_PASSED = re.compile(r"github\.event\.workflow_run\.conclusion\s*==\s*'success'")
WRITES_REGISTRY = re.compile(r"nox -s dispatch\b")
PUBLISHES = re.compile(r"\bgit push\b|\bgh pr (create|edit)\b")
SECRET = re.compile(r"\bsecrets\.")
# A secret someone stored, as opposed to the token GitHub makes for each run.
STORED_SECRET = re.compile(r"\bsecrets\.(?!GITHUB_TOKEN\b)\w")
WORKFLOW_TOKEN = re.compile(r"secrets\.GITHUB_TOKEN|github\.token", re.IGNORECASE)
DOWNLOADS_ARTIFACT = re.compile(r"^actions/download-artifact@")
# Where a download cannot overwrite the checkout: the runner's temporary folder.
OUTSIDE_WORKSPACE = re.compile(r"^\$\{\{\s*runner\.temp\s*\}\}/")
# The variables git (through `gh auth setup-git`) and gh take a token from.
TOKEN_VARIABLES = ("GH_TOKEN", "GITHUB_TOKEN")
# GitHub's own actions; every other owner's must be pinned by a full commit SHA.
FIRST_PARTY = ("actions", "github")
FULL_SHA = re.compile(r"[0-9a-f]{40}")
SETUP_HELM = "azure/setup-helm@"
SETUP_NODE = "actions/setup-node@"
OLDEST_NODE = 24
NODE20_INSIDE = "actions/upload-pages-artifact@"
HELM_VERSION = re.compile(r"v3\.\d+\.\d+")
SETUP_GCLOUD = "google-github-actions/setup-gcloud@"
GET_GKE_CREDENTIALS = "google-github-actions/get-gke-credentials@"
AUTH_PLUGIN = "gke-gcloud-auth-plugin"
REGISTRY_AUTH = re.compile(r"\bCOURSEHUB_REGISTRY_AUTH_\w+")
DEPLOYS = re.compile(r"nox -s deploy -- ")
REGISTRY_BUILD = re.compile(r"nox -s image\b.*--(push|check-registry)\b")
NEWEST = re.compile(r"needs\.[\w-]+\.outputs\.newest\s*==\s*'true'")
# The GKE cluster staging and prod share; the workflows name its parts again.
CLUSTER_FILE = "deploy/cluster/gke.yaml"


def deploys(job: dict[str, Any], deployment: str) -> bool:
    return any(
        re.search(rf"nox -s deploy -- {re.escape(deployment)}\b", step.get("run", ""))
        for step in job.get("steps", [])
    )


def smoke_tests_after_deploy(job: dict[str, Any], deployment: str) -> bool:
    """The job deploys `deployment`, then runs the cluster tests against it."""
    runs = [step.get("run", "") for step in job.get("steps", [])]
    deployed = [i for i, run in enumerate(runs) if deploys({"steps": [{"run": run}]}, deployment)]
    return bool(deployed) and any(
        f"COURSEHUB_CLUSTER={deployment}" in run and "-m cluster" in run
        for run in runs[deployed[0] + 1 :]
    )


def dispatcher_runs(job: dict[str, Any]) -> list[str]:
    """The `run`s of the job's steps that run the dispatcher."""
    runs = (step.get("run", "") for step in job.get("steps", []))
    return [run for run in runs if WRITES_REGISTRY.search(run)]


def writes_registry(job: dict[str, Any]) -> bool:
    return any(
        "--dry-run" not in run and "--check-content" not in run for run in dispatcher_runs(job)
    )


def runs_notebooks(job: dict[str, Any]) -> bool:
    """Whether the dispatcher runs the deploying courses' notebooks in this job."""
    return any(
        "--check-content" in run or ("--dry-run" not in run and "--content-report" not in run)
        for run in dispatcher_runs(job)
    )


def registry_write_problems(
    where: str, job: dict[str, Any], workflow: dict[str, Any]
) -> Iterator[str]:
    """Why the registry change of a job running the dispatcher might overlap another or
    never reach CI."""
    if "concurrency" not in job and "concurrency" not in workflow:
        yield (
            f"{where}: writes the registry without a concurrency group, so two runs could "
            "write it at once"
        )
    steps = job.get("steps", [])
    publishing = [step for step in steps if PUBLISHES.search(step.get("run", ""))]
    if not publishing:
        yield f"{where}: writes the registry but never pushes the change for CI to check"
    for step in publishing:
        tokens = [(step.get("env") or {}).get(name, "") for name in TOKEN_VARIABLES]
        if not any(tokens) or any(WORKFLOW_TOKEN.search(str(token)) for token in tokens):
            yield (
                f"{where}: pushes the registry change without a token of its own in "
                f"{' or '.join(TOKEN_VARIABLES)}; with GITHUB_TOKEN, CI would not run on it"
            )
    for step in steps:
        if str(step.get("uses", "")).startswith("actions/checkout@") and (
            (step.get("with") or {}).get("persist-credentials") is not False
        ):
            yield (
                f"{where}: its checkout keeps GITHUB_TOKEN in .git/config, which git sends "
                "instead of the pushing step's token: set persist-credentials: false"
            )


def downloads_into_workspace(where: str, job: dict[str, Any]) -> Iterator[str]:
    """The artifact downloads of a job holding secrets that land in its workspace."""
    for step in job.get("steps", []):
        if not DOWNLOADS_ARTIFACT.search(str(step.get("uses", ""))):
            continue
        path = str((step.get("with") or {}).get("path", ""))
        if not OUTSIDE_WORKSPACE.search(path):
            yield (
                f"{where}: downloads an artifact into its workspace ({path or 'no path'}) where "
                "a secret is: another job's files could replace noxfile.py or anything it then "
                "runs; download to a path under ${{ runner.temp }} and read it from there"
            )


def needed(jobs: dict[str, Any], name: str) -> set[str]:
    """Every job `name` needs, directly or through others."""
    found: set[str] = set()
    todo = [name]
    while todo:
        needs = jobs.get(todo.pop(), {}).get("needs", [])
        for need in [needs] if isinstance(needs, str) else needs:
            if need not in found:
                found.add(need)
                todo.append(need)
    return found


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the key `on` as True.
    on = workflow.get("on", workflow.get(True, {}))
    return {on: None} if isinstance(on, str) else dict.fromkeys(on) if isinstance(on, list) else on


def problems(
    path: Path, workflow: dict[str, Any], canary: str, last: str, cluster: dict[str, Any]
) -> Iterator[str]:
    jobs = workflow.get("jobs", {})
    started_by_ci = CI_WORKFLOW in (triggers(workflow).get("workflow_run") or {}).get(
        "workflows", []
    )
    for name, job in jobs.items():
        where = f"{path}: jobs.{name}"
        yield from unpinned_actions(where, job)
        yield from pinned_helm(where, job)
        yield from node20_actions(where, job)
        yield from cloud_problems(where, job, cluster)
        yield from image_push_problems(where, job)
        if writes_registry(job):
            yield from registry_write_problems(where, job, workflow)
        if runs_notebooks(job) and SECRET.search(str([workflow.get("env"), job])):
            yield (
                f"{where}: runs course notebooks where a secret is, and a notebook can read "
                "its job's environment and files: run them in a job without secrets "
                "(--check-content REPORT) and deploy on --content-report REPORT"
            )
        if SECRET.search(str([workflow.get("env"), job])):
            yield from downloads_into_workspace(where, job)
        if STORED_SECRET.search(str([workflow.get("env"), job])) and "environment" not in job:
            yield (
                f"{where}: references a secret but declares no environment, so the secret "
                "must be a repository secret, which a workflow on any branch can read: give "
                "the job the environment whose secret it is (deployment branches: main)"
            )
        deployed = [d for d in (canary, last) if deploys(job, d)]
        if not deployed:
            continue
        gates = [job, *(jobs.get(n, {}) for n in needed(jobs, name))]
        if not (started_by_ci and any(CI_PASSED.search(str(g.get("if", ""))) for g in gates)):
            yield (
                f"{where}: deploys {', '.join(deployed)} without waiting for CI: start the "
                f"workflow on workflow_run of {CI_WORKFLOW!r} and require "
                "github.event.workflow_run.conclusion == 'success'"
            )
        if "concurrency" not in job and "concurrency" not in workflow:
            yield f"{where}: deploys without a concurrency group, so two deploys could overlap"
        yield from deploy_job_problems(where, name, jobs, workflow)
        if last in deployed and not any(
            smoke_tests_after_deploy(jobs[n], canary) for n in needed(jobs, name) if n in jobs
        ):
            yield (
                f"{where}.needs: deploys {last} without a job it needs that deploys {canary} "
                f"and then runs the cluster tests (COURSEHUB_CLUSTER={canary} ... -m cluster)"
            )


def unpinned_actions(where: str, job: dict[str, Any]) -> Iterator[str]:
    for number, step in enumerate(job.get("steps", [])):
        action = step.get("uses", "")
        if not action or action.startswith("./"):
            continue
        name, _, ref = action.partition("@")
        if name.split("/")[0] not in FIRST_PARTY and not FULL_SHA.fullmatch(ref):
            yield (
                f"{where}.steps[{number}]: {action} is not pinned by a commit SHA, so whoever "
                "moves that tag decides what runs here: write @<40-hex sha>  # <release>"
            )


def node20_actions(where: str, job: dict[str, Any]) -> Iterator[str]:
    """What actionlint cannot see: a composite action running a Node 20 one, and the Node
    setup-node installs for the job's own steps (GitHub retired Node 20 in September 2026)."""
    for number, step in enumerate(job.get("steps", [])):
        action = str(step.get("uses", ""))
        if action.startswith(NODE20_INSIDE):
            yield (
                f"{where}.steps[{number}]: {action} runs actions/upload-artifact@v4 (Node 20) "
                "inside: archive the site and upload it with a current upload-artifact"
            )
        if action.startswith(SETUP_NODE):
            version = str((step.get("with") or {}).get("node-version", ""))
            if not version.isdigit() or int(version) < OLDEST_NODE:
                yield (
                    f"{where}.steps[{number}]: node-version {version or 'unset'}: set a "
                    f"maintained major version ({OLDEST_NODE} or later)"
                )


def pinned_helm(where: str, job: dict[str, Any]) -> Iterator[str]:
    """setup-helm installs the newest helm (Helm 4) unless told an exact Helm 3 release."""
    for number, step in enumerate(job.get("steps", [])):
        if str(step.get("uses", "")).startswith(SETUP_HELM):
            version = str((step.get("with") or {}).get("version", ""))
            if not HELM_VERSION.fullmatch(version):
                yield (
                    f"{where}.steps[{number}]: {SETUP_HELM} without an exact Helm 3 version "
                    f"({version or 'none'}) installs the newest helm: set with.version to the "
                    "helm scripts/config/helm.py runs (vX.Y.Z)"
                )


def cloud_problems(where: str, job: dict[str, Any], cluster: dict[str, Any]) -> Iterator[str]:
    """The cluster and registry a job names are the ones deploy/cluster/gke.yaml describes."""
    location = cluster["region"] if cluster.get("regional") else cluster["zone"]
    host = f"{cluster['region']}-docker.pkg.dev"
    for number, step in enumerate(job.get("steps", [])):
        if str(step.get("uses", "")).startswith(GET_GKE_CREDENTIALS):
            given = step.get("with") or {}
            for key, wanted in (("cluster_name", cluster["name"]), ("location", location)):
                if given.get(key) != wanted:
                    yield (
                        f"{where}.steps[{number}]: {key} {given.get(key)!r}, but "
                        f"{CLUSTER_FILE} says {wanted!r}"
                    )
        for variable in REGISTRY_AUTH.findall(step.get("run", "")):
            if variable != registry_auth_variable(host):
                yield (
                    f"{where}.steps[{number}]: {variable} is not the registry of "
                    f"{CLUSTER_FILE} ({host}: {registry_auth_variable(host)})"
                )


def registry_auth_variable(host: str) -> str:
    """scripts/config/registry_check.py's variable for a registry's credentials."""
    return "COURSEHUB_REGISTRY_AUTH_" + re.sub(r"[^A-Z0-9]", "_", host.upper())


def deploy_job_problems(
    where: str, name: str, jobs: dict[str, Any], workflow: dict[str, Any]
) -> Iterator[str]:
    """A deploy can authenticate to the cluster, never cancels another, and is main's newest."""
    job = jobs[name]
    steps = job.get("steps", [])
    deploying = next(i for i, step in enumerate(steps) if DEPLOYS.search(step.get("run", "")))
    plugin = any(
        str(step.get("uses", "")).startswith(SETUP_GCLOUD)
        and AUTH_PLUGIN in str((step.get("with") or {}).get("install_components", ""))
        for step in steps[:deploying]
    )
    if not plugin:
        yield (
            f"{where}: deploys with hubploy, whose kubeconfig (secrets/kubeconfig.yaml) runs "
            f"{AUTH_PLUGIN}, but no {SETUP_GCLOUD} step before it installs it "
            f"(with: {{install_components: {AUTH_PLUGIN}}})"
        )
    for owner in (job, workflow):
        concurrency = owner.get("concurrency")
        if isinstance(concurrency, dict) and concurrency.get("cancel-in-progress") is not False:
            yield (
                f"{where}: its concurrency group may cancel a deploy in progress: set "
                "cancel-in-progress: false"
            )
    gates = [job, *(jobs.get(n, {}) for n in needed(jobs, name))]
    if not any(NEWEST.search(str(gate.get("if", ""))) for gate in gates):
        yield (
            f"{where}: deploys whichever commit's CI finished last: require a job that checks "
            "the commit is still main's newest (if: needs.<job>.outputs.newest == 'true')"
        )


def image_push_problems(where: str, job: dict[str, Any]) -> Iterator[str]:
    """hubploy decrypts secrets/docker-config.json when it pushes or asks the registry."""
    for number, step in enumerate(job.get("steps", [])):
        if REGISTRY_BUILD.search(step.get("run", "")) and "SOPS_AGE_KEY" not in (
            step.get("env") or {}
        ):
            yield (
                f"{where}.steps[{number}]: hubploy decrypts secrets/docker-config.json to push "
                "or ask the registry, but the step has no SOPS_AGE_KEY in its env"
            )


def cluster_of(root: Path, deployment: str) -> dict[str, Any]:
    return read_yaml(root / load_deployments(root)["deployments"][deployment]["cluster"], root)


def canary_and_last(root: Path = ROOT) -> tuple[str, str]:
    """The deployments hubploy deploys as staging and as prod, from deploy/deployments.yaml."""
    by_environment = {
        entry["hubploy"]: name
        for name, entry in load_deployments(root)["deployments"].items()
        if "hubploy" in entry
    }
    return by_environment["staging"], by_environment["prod"]


def check(folder: Path, root: Path = ROOT) -> list[str]:
    canary, last = canary_and_last(root)
    cluster = cluster_of(root, canary)
    found = []
    for path in sorted(folder.glob("*.y*ml")):
        workflow = yaml.safe_load(path.read_text()) or {}
        found.extend(problems(relative(path, root), workflow, canary, last, cluster))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["check"])
    parser.add_argument("--folder", type=Path, default=ROOT / WORKFLOWS)
    args = parser.parse_args(argv)
    try:
        found = check(args.folder)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for problem in found:
        print(f"error: {problem}", file=sys.stderr)
    if not found:
        print(
            f"{relative(args.folder, ROOT)}: deploys wait for CI, prod waits for staging's "
            "tests, registry changes go one at a time to CI, course notebooks run where no "
            "secret is, artifacts reach a job with secrets outside its workspace, "
            "jobs with secrets take them from an environment, third-party actions are "
            "pinned by commit, no action runs on Node 20, helm is pinned, the cluster and "
            "registry are gke.yaml's, deploys authenticate with the auth plugin, and only "
            "main's newest commit deploys"
        )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
