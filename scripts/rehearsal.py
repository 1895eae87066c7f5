"""From a fork to the first deploy, rehearsed here up to the cloud's edge.

Walks the README's "From a fork to the first deploy" in order on a fresh clone
of this checkout, printing a transcript: every tool is the real one (git, age,
sops, hubploy, repo2docker, helm, the project's own commands), and the commands
are read from the workflow files; only what this machine cannot have answers
through a stand-in that says it is one: the Kubernetes API (scripts/hubploy_dryrun.py),
the Docker engine and registry (scripts/docker_standin.py), gcloud and its
credential helpers, and the cluster's side of helm and kubectl (helm's upgrade is
rendered by the real helm with `helm template`; `kubectl apply` is recorded).

    coursehub-rehearse            # every step; exits 1 naming the step that failed
    coursehub-rehearse --transcript book/rehearsal-transcript.txt   # and keep the transcript

Each step is a function of a `Rehearsal`; `STEPS` is their order.
"""

from __future__ import annotations

import argparse
import ast
import base64
import inspect
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from coursehub_tools import (
    certificates,
    cluster,
    docker_standin,
    gcloud_standin,
    gke,
    gke_iam,
    hubploy_dryrun,
    registry_check,
    smoke_test_calls,
    sops_files,
    workflow_check,
)
from coursehub_tools.chart import pinned as pinned_chart
from coursehub_tools.deployconfig import load
from coursehub_tools.helm import binary as helm_binary
from coursehub_tools.yamlfiles import ROOT

WORKFLOWS = Path(".github") / "workflows"
# A real run's transcript, kept for the book's excerpts (`coursehub-rehearse --transcript`).
TRANSCRIPT = Path("book") / "rehearsal-transcript.txt"
SECRETS = Path("deploy") / "deployments" / "coursehub" / "secrets"
# The example deployment's key in .sops.yaml, which a fork replaces with its own.
FORK_REPOSITORY = "fork/coursehub"
SOPS_RULE = "deploy/deployments/coursehub/secrets/.*"
# What the fork writes into its own secrets layers (sops edit, by hand in real life).
FORK_SECRETS = {
    "hub": {
        "config": {"GitHubOAuthenticator": {"client_id": "fork", "client_secret": "fork"}},
        "db": {"password": "fork-database-password"},
    }
}


RBAC_KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount")
STANDIN_GKE_TOKEN = "stand-in-gke-token"
# gke-gcloud-auth-plugin asks Google for the job's token; this one says it is a stand-in.
GKE_AUTH_PLUGIN = f"""#!/bin/sh
echo "gke-gcloud-auth-plugin stand-in: no Google here; a fixed token" >&2
echo '{{"kind": "ExecCredential", "apiVersion": "client.authentication.k8s.io/v1beta1",
 "status": {{"token": "{STANDIN_GKE_TOKEN}", "expirationTimestamp": "2099-01-01T00:00:00Z"}}}}'
"""
# docker-credential-gcloud answers docker-py with the job's access token for Artifact Registry.
DOCKER_CREDENTIAL_GCLOUD = """#!/bin/sh
echo "docker-credential-gcloud stand-in: no Google here; a fixed token" >&2
read -r server
echo '{"ServerURL": "'"$server"'", "Username": "oauth2accesstoken", "Secret": "stand-in"}'
"""
# gcloud itself talks to Google, and the real one would change this user's files: a step
# that runs it fails here by name until a stand-in is given for its command.
GCLOUD = """#!/bin/sh
case "$*" in
  "auth print-access-token") echo "gcloud stand-in: no Google here; a fixed token" >&2
                             echo stand-in-access-token ;;
  *) echo "gcloud stand-in: the rehearsal has no answer for: gcloud $*" >&2; exit 1 ;;
esac
"""
# The cluster's answers to `coursehub-cluster up`'s kubectl: the cluster services' objects
# are recorded, and a Service's clusterIP (for the shared-data volume) is a fixed address.
KUBECTL = """#!/bin/sh
echo "kubectl stand-in: no cluster here: kubectl $1 recorded" >&2
case "$1" in
  apply) cat >> "$COURSEHUB_KUBECTL_RECORD" ;;
  get) printf 10.96.0.42 ;;
  *) echo "kubectl stand-in: no answer for: kubectl $*" >&2; exit 1 ;;
esac
"""
# helm, as `coursehub-cluster up` and hubploy call it: the chart repository's answer to
# `pull` is the vendored chart (what it serves, kept whole with its sha256 manifest), and
# `upgrade` is rendered by the real helm with the same chart, files and flags (`helm
# template`: no cluster to apply to), recorded with its files and what helm rendered.
HELM = """
import json, os, shutil, subprocess, sys
args = sys.argv[1:]
real = os.environ["COURSEHUB_REAL_HELM"]
def flag(name):
    return args[args.index(name) + 1] if name in args else None
if args[:1] in (["dep"], ["dependency"]):
    sys.exit(subprocess.run([real, *args]).returncode)
if args[:1] == ["pull"]:
    pinned = json.loads(os.environ["COURSEHUB_PINNED_CHART"])
    asked = {"name": args[1], "repository": flag("--repo"), "version": flag("--version")}
    if asked != {key: pinned[key] for key in asked}:
        sys.exit(f"helm stand-in: the chart repository has only {pinned}, not {asked}")
    shutil.copytree(pinned["folder"], os.path.join(flag("--untardir"), args[1]))
    sys.stderr.write("helm stand-in: pulled from the vendored chart (no chart repository)\\n")
    sys.exit(0)
if args[:1] != ["upgrade"]:
    sys.exit(f"helm stand-in: no answer for: helm {' '.join(args)}")
if "--repo" in args:
    # A chart from another repository (cert-manager's), not kept here: recorded only.
    with open(os.environ["COURSEHUB_HELM_RECORD"], "a") as out:
        out.write(json.dumps({"argv": args, "files": [], "rendered": ""}) + "\\n")
    sys.stderr.write(f"helm stand-in: {flag('--repo')} is not here: recorded, not rendered\\n")
    sys.exit(0)
kept, skip = [], False
for arg in args[1:]:
    if skip:
        skip = False
    elif arg == "--timeout":
        skip = True
    elif arg not in ("--wait", "--install", "--cleanup-on-fail", "--atomic", "--create-namespace"):
        kept.append(arg)
rendered = subprocess.run([real, "template", *kept], capture_output=True, text=True)
files = [args[i + 1] for i, arg in enumerate(args) if arg == "-f"]
record = {"argv": args, "files": [open(path).read() for path in files], "template": kept,
          "rendered": rendered.stdout, "returncode": rendered.returncode}
with open(os.environ["COURSEHUB_HELM_RECORD"], "a") as out:
    out.write(json.dumps(record) + "\\n")
sys.stderr.write(rendered.stderr)
sys.stderr.write("helm stand-in: rendered by the real helm (helm template); no cluster\\n")
sys.exit(rendered.returncode)
"""
# GitHub's API, for the one question deploy.yml asks it: main's newest commit.
GH = """#!/bin/sh
echo "gh stand-in: GitHub's answer is this fork's main" >&2
case "$*" in
  "api repos/$GH_REPO/commits/main --jq .sha") git rev-parse main ;;
  *) echo "gh stand-in: no answer for: gh $*" >&2; exit 1 ;;
esac
"""
CLOUD_STANDINS = {
    "gh": GH,
    "gcloud": GCLOUD,
    "kubectl": KUBECTL,
    "helm": f"#!{sys.executable}\n{HELM}",
    "gke-gcloud-auth-plugin": GKE_AUTH_PLUGIN,
    "docker-credential-gcloud": DOCKER_CREDENTIAL_GCLOUD,
}


class StepFailed(Exception):
    """A step of the rehearsal did not do what the workflows and the book promise."""


@dataclass
class Rehearsal:
    """The fork being rehearsed and what the steps leave for the next ones."""

    fork: Path
    work: Path
    stack: ExitStack
    env: dict[str, str] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    def say(self, text: str) -> None:
        print(text, flush=True)

    def job_path(self) -> str:
        """PATH as a deploy job has it: the cloud's credential helpers (stand-ins here) first."""
        return f"{self.work / 'cloud-standins'}{os.pathsep}{self.env['PATH']}"

    def run(
        self,
        command: list[str] | str,
        *,
        cwd: Path | None = None,
        shown: str | None = None,
        env: dict[str, str] | None = None,
        check: bool = True,
        quiet: bool = False,
    ) -> subprocess.CompletedProcess:
        """Run a command in the fork as the workflows would, echoing it like `set -x`."""
        self.say("+ " + (shown or (command if isinstance(command, str) else shlex.join(command))))
        shell = isinstance(command, str)
        result = subprocess.run(
            command, cwd=cwd or self.fork, env={**self.env, **(env or {})}, shell=shell,
            executable="/bin/bash" if shell else None, capture_output=True, text=True, check=False,
        )  # fmt: skip
        output = ANSI.sub("", result.stderr if quiet else result.stdout + result.stderr).strip()
        output = "\n".join(line for line in output.splitlines() if not line.startswith(NOISE))
        if output:
            self.say("\n".join("  " + line for line in output.splitlines()[-15:]))
        if check and result.returncode != 0:
            raise StepFailed(f"`{shown or command}` exited {result.returncode}")
        return result


def workflow(fork: Path, name: str) -> dict[str, Any]:
    return yaml.safe_load((fork / WORKFLOWS / f"{name}.yml").read_text())


def step_of(fork: Path, workflow_name: str, job: str, pattern: str) -> dict[str, Any]:
    """The one step of `job` whose `run` or `uses` matches `pattern`."""
    steps = workflow(fork, workflow_name)["jobs"][job]["steps"]
    found = [s for s in steps if re.search(pattern, s.get("run", "") or s.get("uses", ""))]
    if len(found) != 1:
        raise StepFailed(
            f"{WORKFLOWS}/{workflow_name}.yml: jobs.{job}: expected one step matching "
            f"{pattern!r}, found {len(found)}"
        )
    return found[0]


# --- the steps -----------------------------------------------------------------------------


def clone(r: Rehearsal) -> None:
    """A fresh clone of this checkout (with its uncommitted changes), as a fork starts."""
    r.run(["git", "clone", "--quiet", str(ROOT), str(r.fork)], cwd=r.work,
          shown=f"git clone --quiet <this checkout> {r.fork.name}")  # fmt: skip
    changes = subprocess.run(
        ["git", "diff", "HEAD", "--binary"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    if changes:
        subprocess.run(["git", "apply", "--index", "-"], cwd=r.fork, input=changes, check=True)
        r.say("  (this checkout's uncommitted changes applied)")
    for identity in (["user.name", "fork maintainer"], ["user.email", "fork@localhost"]):
        subprocess.run(["git", "config", *identity], cwd=r.fork, check=True)
    # The fork's main is the state rehearsed, whichever branch this checkout is on.
    subprocess.run(["git", "switch", "--quiet", "-C", "main"], cwd=r.fork, check=True)


def workflows_check(r: Rehearsal) -> None:
    """README step 1's lint of the workflows (`coursehub-workflows check`) on the fork."""
    r.say("+ coursehub-workflows check")
    found = workflow_check.check(r.fork / WORKFLOWS, r.fork)
    if found:
        raise StepFailed("; ".join(found))
    r.say("  no problem found")


def new_age_key(r: Rehearsal) -> None:
    """README step 4: `age-keygen`, its public key into .sops.yaml's staging/prod rule."""
    key_file = r.work / "fork.agekey"
    r.run(["age-keygen", "-o", str(key_file)], shown="age-keygen -o fork.agekey")
    public = next(
        line.removeprefix("# public key: ")
        for line in key_file.read_text().splitlines()
        if line.startswith("# public key: ")
    )
    rules = r.fork / ".sops.yaml"
    config = yaml.safe_load(rules.read_text())
    (rule,) = [rule for rule in config["creation_rules"] if rule["path_regex"] == SOPS_RULE]
    old = rule["age"]
    rules.write_text(rules.read_text().replace(old, public))
    r.say(f"  .sops.yaml: {SOPS_RULE}: {old} -> {public}")
    # What the deploy job has as the environments' secret SOPS_AGE_KEY.
    r.facts["age_key"] = key_file.read_text()


def encrypt_secrets(r: Rehearsal) -> None:
    """README step 4: every file of secrets/ written anew and encrypted with sops.

    The fork cannot decrypt the example's files, so it writes its own: the OAuth
    app and database password, the kubeconfig `gcloud container clusters
    get-credentials` writes (here pointing at the stand-in Kubernetes API), and
    the docker config that sends Artifact Registry to gcloud's credential helper.
    Every file sops encrypts by .sops.yaml's rules, and must end up to the new key.
    """
    secrets = r.fork / SECRETS
    registry_host = r.facts["registry_host"]
    plain = {
        "staging.yaml": yaml.safe_dump(FORK_SECRETS),
        "prod.yaml": yaml.safe_dump(FORK_SECRETS),
        "kubeconfig.yaml": get_credentials_kubeconfig(r.facts["kubernetes_api"]),
        "docker-config.json": json.dumps({"credHelpers": {registry_host: "gcloud"}}, indent=2),
    }
    committed = sorted(path.name for path in secrets.iterdir())
    for name in committed:
        if name not in plain:
            continue
        (secrets / name).write_text(plain[name])
        shown = f"sops encrypt --in-place {SECRETS / name}"
        r.run(["sops", "encrypt", "--in-place", str(SECRETS / name)], shown=shown)
    public = yaml.safe_load((r.fork / ".sops.yaml").read_text())
    fork_key = next(
        rule["age"] for rule in public["creation_rules"] if rule["path_regex"] == SOPS_RULE
    )
    for name in committed:
        if name == "kind.yaml":
            continue  # the kind layer stays encrypted to the committed test-only key
        recipients = sops_files.recipients(secrets / name)
        if recipients != [fork_key]:
            raise StepFailed(
                f"{SECRETS / name}: encrypted to {recipients or 'nothing new'}, not to the fork's "
                "key: the fork checklist and the rotation must cover every file of secrets/"
            )
    r.run(["git", "commit", "--quiet", "-am", "Our own key and secrets"])


def get_credentials_kubeconfig(server: str) -> str:
    """What `gcloud container clusters get-credentials` writes: a token from
    gke-gcloud-auth-plugin (ref: GKE's "kubectl authentication" docs)."""
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "gke_fork",
        "clusters": [{"name": "gke_fork", "cluster": {"server": server}}],
        "contexts": [{"name": "gke_fork", "context": {"cluster": "gke_fork", "user": "gke_fork"}}],
        "users": [{"name": "gke_fork", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "gke-gcloud-auth-plugin",
            "installHint": "Install gke-gcloud-auth-plugin for use with kubectl",
            "provideClusterInfo": True,
        }}}],
    })  # fmt: skip


def repo2docker_calls_missing() -> list[str]:
    """What hubploy's LocalImage calls on its Repo2Docker that the pinned repo2docker lacks.

    hubploy 0.4 builds with `r2d.build()` and pushes with `r2d.push_image()`; repo2docker
    2025.8.0 and later push inside build() and have no push_image (ref: repo2docker's app.py).
    """
    import hubploy.config
    from repo2docker.app import Repo2Docker

    tree = ast.parse(inspect.getsource(hubploy.config.LocalImage))
    called = {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and ast.unparse(node.func.value) == "self.r2d"
    }
    return sorted(name for name in called if not hasattr(Repo2Docker, name))


def image_tools_agree(r: Rehearsal) -> None:
    """hubploy and repo2docker as pinned: every repo2docker method hubploy calls exists."""
    missing = repo2docker_calls_missing()
    if missing:
        raise StepFailed(
            f"hubploy calls Repo2Docker.{', '.join(missing)}, which the pinned "
            "jupyter-repo2docker does not have: the image would be built, then never pushed"
        )
    r.say("  hubploy's LocalImage calls only what the pinned Repo2Docker has")


def ci_image_first_push(r: Rehearsal) -> None:
    """ci.yml's image job on the first push of a new branch (hubploy builds, nothing pushed)."""
    r.run(["git", "switch", "--quiet", "-c", "first-branch"])
    # The branch changes the image, as a pull request adding a package would.
    requirements = r.fork / "deploy/deployments/coursehub/image/requirements.txt"
    requirements.write_text(requirements.read_text() + "# the branch's change to the image\n")
    r.run(["git", "commit", "--quiet", "-am", "A change to the image"])
    event = {"ref": "refs/heads/first-branch", "before": "0" * 40, "created": True,
             "repository": {"default_branch": "main"}}  # fmt: skip
    before = len(r.facts["docker"].builds)
    run_job(r, "ci", "image", event)
    if len(r.facts["docker"].builds) != before + 1:
        raise StepFailed("ci.yml: jobs.image: hubploy built no image on a new branch's first push")
    r.run(["git", "switch", "--quiet", "main"])


def deploy_image(r: Rehearsal) -> None:
    """deploy.yml's image job: hubploy builds and pushes the tag the registry lacks."""
    event = {"workflow_run": {"conclusion": "success", "event": "push",
                              "head_sha": git_head(r.fork)}}  # fmt: skip
    outputs = run_job(r, "deploy", "image", event)
    newest = [job["outputs"].get("newest") for job in outputs.values()]
    if newest != ["true"]:
        raise StepFailed(
            f"deploy.yml: jobs.image: main's newest commit was not found newest: {newest}"
        )
    engine = r.facts["docker"]
    pushed = [push["reference"] for push in engine.pushes]
    r.say(f"  stand-in registry now has: {', '.join(sorted(engine.registry)) or 'nothing'}")
    if not pushed:
        raise StepFailed("deploy.yml: jobs.image: the image was built but never pushed")
    r.facts["pushed"] = pushed


def run_job(
    r: Rehearsal, workflow_name: str, job: str, event: dict[str, Any]
) -> dict[str, dict[str, dict[str, str]]]:
    """The `run` steps of a workflow's job, in order, as the runner runs them."""
    event_file = r.work / f"{workflow_name}-{job}-event.json"
    event_file.write_text(json.dumps(event))
    outputs: dict[str, dict[str, str]] = {}
    for number, step in enumerate(workflow(r.fork, workflow_name)["jobs"][job]["steps"]):
        if "run" not in step:
            r.say(f"  (uses: {step['uses']})")
            continue
        output_file = r.work / f"{workflow_name}-{job}-{number}.out"
        run_step(r, step, event, event_file, output_file, outputs)
        if "id" in step:
            lines = output_file.read_text().splitlines()
            outputs[step["id"]] = {
                "outputs": dict(line.split("=", 1) for line in lines if "=" in line)
            }
    return outputs


def run_step(
    r: Rehearsal,
    step: dict[str, Any],
    event: dict[str, Any],
    event_file: Path,
    output_file: Path,
    outputs: dict[str, Any],
    extra_env: dict[str, str] | None = None,
) -> None:
    """One `run` step, as the runner runs it.

    Expressions are read from the step's `env` (github.event, secrets, steps' outputs);
    `python3 -m nox` runs the session in this environment, where its dependency groups
    are installed already (--no-venv --no-install), instead of a new virtualenv, with the
    fork's own code first on the import path, as the session's editable install has it.
    """
    secrets = {"SOPS_AGE_KEY": r.facts["age_key"]}
    github = {"event": event, "repository": FORK_REPOSITORY, "token": "stand-in"}
    context = {"github": github, "secrets": secrets, "steps": outputs}
    env = {name: expression(str(value), context) for name, value in (step.get("env") or {}).items()}
    output_file.write_text("")
    env.update(
        GITHUB_ACTIONS="true", GITHUB_EVENT_PATH=str(event_file),
        GITHUB_OUTPUT=str(output_file), DOCKER_HOST=r.facts["docker_host"], PATH=r.job_path(),
        PYTHONPATH=str(fork_packages(r)), **(extra_env or {}),
    )  # fmt: skip
    script = NOX.sub(r"python3 -m nox --no-venv --no-install ", step["run"])
    shown = step["run"].strip()
    if "\n" in shown:
        shown = f"{step.get('name', 'script')}: {len(shown.splitlines())} lines of bash"
    r.run(f"set -e\n{script}", env=env, shown=shown)


def fork_packages(r: Rehearsal) -> Path:
    """The fork's coursehub_tools and coursehub, as its nox sessions install them (editable)."""
    folder = r.work / "fork-packages"
    if not folder.exists():
        folder.mkdir()
        (folder / "coursehub_tools").symlink_to(r.fork / "scripts")
        (folder / "coursehub").symlink_to(r.fork / "hub-config" / "coursehub")
    return folder


# Lines of pip and nox that tell a reader nothing here.
NOISE = ("Requirement already satisfied", "nox > uv binary not found", "WARNING: Location")
# nox colours its lines when it thinks a terminal reads them (a notebook's kernel).
ANSI = re.compile(r"\x1b\[[0-9;]*m")
NOX = re.compile(r"python3 -m nox ")
EXPRESSION = re.compile(r"\$\{\{\s*([\w.-]+)\s*\}\}")


def expression(value: str, context: dict[str, Any]) -> str:
    """`${{ a.b.c }}` references replaced from `context`, missing ones by "" as GitHub does."""

    def lookup(match: re.Match) -> str:
        node: Any = context
        for part in match.group(1).split("."):
            node = node.get(part, "") if isinstance(node, dict) else ""
        return str(node)

    return EXPRESSION.sub(lookup, value)


def git_head(folder: Path) -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, check=True
    ).stdout.strip()


@dataclass
class Deployed:
    """What the deploy step handed helm and kubectl, as the stand-ins recorded it."""

    helm_calls: list[dict[str, Any]]
    applied: list[dict[str, Any]]

    @property
    def upgrade(self) -> dict[str, Any]:
        """The chart's upgrade: the one of a chart folder, not from a repository."""
        (call,) = [
            call
            for call in self.helm_calls
            if call["argv"][0] == "upgrade" and "--repo" not in call["argv"]
        ]
        return call

    def installs(self) -> list[list[str]]:
        """The upgrades of charts from a repository (cert-manager's)."""
        return [call["argv"] for call in self.helm_calls if "--repo" in call["argv"]]

    def set_strings(self) -> dict[str, str]:
        argv = self.upgrade["argv"]
        pairs = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--set-string"]
        return dict(pair.split("=", 1) for pair in pairs)

    def rendered(self) -> list[dict[str, Any]]:
        return [o for o in yaml.safe_load_all(self.upgrade["rendered"]) if o]


def _deploy(r: Rehearsal, deployment: str) -> Deployed:
    """deploy.yml's deploy step of `deployment`, its bash as written: `nox -s deploy`, so
    `coursehub-cluster up`, then hubploy; helm, kubectl and the registries answer as stand-ins."""
    step = step_of(r.fork, "deploy", deployment, rf"nox -s deploy -- {deployment}")
    if "SOPS_AGE_KEY" not in (step.get("env") or {}):
        raise StepFailed(f"deploy.yml: jobs.{deployment}: the deploy step has no SOPS_AGE_KEY")
    into = r.work / f"{deployment}-deploy"
    into.mkdir()
    chart = pinned_chart(r.fork)
    references = registry_check.image_references(load(deployment, root=r.fork).values)
    engine = r.facts["docker"]
    for reference in references:
        if reference.startswith(r.facts["registry_host"]):
            continue  # the user image: only what the image job pushed
        # The course images are published by their courses' own CI, not by this workflow.
        engine.registry.add(reference)
    mirrors = {
        "COURSEHUB_REGISTRY_MIRROR_" + re.sub(r"[^A-Z0-9]", "_", host.upper()):
            f"{r.facts['docker_url']}/registries/{host}"
        for host in {registry_check.split(reference)[0] for reference in references}
    }  # fmt: skip
    env = {
        "COURSEHUB_REAL_HELM": str(helm_binary(ROOT)),
        "COURSEHUB_PINNED_CHART": json.dumps({**chart.__dict__, "folder": str(chart.folder)}),
        "COURSEHUB_HELM_RECORD": str(into / "helm.jsonl"),
        "COURSEHUB_KUBECTL_RECORD": str(into / "kubectl-apply.yaml"),
        **mirrors,
    }
    event = {"workflow_run": {"head_sha": git_head(r.fork)}}
    event_file = into / "event.json"
    event_file.write_text(json.dumps(event))
    run_step(r, step, event, event_file, into / "output", {}, env)
    records = (
        (into / "helm.jsonl").read_text().splitlines() if (into / "helm.jsonl").exists() else []
    )
    applied_file = into / "kubectl-apply.yaml"
    applied = (
        [o for o in yaml.safe_load_all(applied_file.read_text()) if o]
        if applied_file.exists()
        else []
    )
    return Deployed([json.loads(line) for line in records], applied)


def deploy_staging(r: Rehearsal) -> None:
    """deploy.yml's staging deploy step, as written: nox -s deploy -- staging."""
    deployed = _deploy(r, "staging")
    reads = r.facts["kubernetes_api_reads"]
    token = r.facts["cluster_tests_token"] = cluster.test_token_file(r.fork).read_text().strip()
    for call in deployed.helm_calls:
        r.say("  recorded: " + temporary_paths(shlex.join(["helm", *call["argv"]]), token))
    kinds = ", ".join(f"{o['kind']} {o['metadata']['name']}" for o in deployed.applied)
    r.say(f"  kubectl apply (the cluster services, before the chart): {kinds or 'nothing'}")
    if reads.authorizations[-1:] != [f"Bearer {STANDIN_GKE_TOKEN}"]:
        raise StepFailed(
            "hubploy's Kubernetes client did not authenticate with gke-gcloud-auth-plugin's "
            f"token (sent {reads.authorizations[-1:] or 'nothing'})"
        )
    wildcard_certificate(r, "staging", deployed)
    flags = deployed.set_strings()
    image = f"{flags['singleuser.image.name']}:{flags['singleuser.image.tag']}"
    if image not in r.facts["docker"].registry:
        raise StepFailed(f"staging would pull {image}, which the image job never pushed")
    r.say(f"  {image}: in the registry (pushed by the image job)")
    r.facts["staging"] = deployed


def temporary_paths(command: str, token: str) -> str:
    """A helm command line as shown: the deploy's temporary chart folder and hubploy's
    decrypted secrets file by what they are, the cluster tests' token hidden."""
    command = re.sub(r"/\S+/tmp\w+/jupyterhub\b", "<chart folder>", command)
    return re.sub(r"/\S+/tmp\w+", "<decrypted>", command).replace(token, "<token>")


def wildcard_certificate(r: Rehearsal, deployment: str, deployed: Deployed) -> None:
    """cert-manager installed as pinned, and a Certificate into the Secret the proxy serves."""
    loaded = load(deployment, root=r.fork)
    spec = certificates.cluster_spec(loaded, r.fork)
    expected = certificates.install_command(spec)[1:]
    if deployed.installs() != [expected]:
        raise StepFailed(
            f"cert-manager was not installed as {gke.cluster_file(deployment, r.fork)} pins it: "
            f"{deployed.installs() or 'no install'}"
        )
    secret = loaded.values["proxy"]["https"]["secret"]["name"]
    made = [
        o for o in deployed.applied
        if o["kind"] == "Certificate" and o["spec"]["secretName"] == secret
    ]  # fmt: skip
    if not made:
        raise StepFailed(f"nothing makes the Secret {secret} the proxy serves its TLS from")
    names = ", ".join(made[0]["spec"]["dnsNames"])
    r.say(f"  cert-manager {expected[expected.index('--version') + 1]}; Certificate into "
          f"{secret}: {names}")  # fmt: skip


def render_staging(r: Rehearsal) -> None:
    """What helm would apply: the deploy's own `helm upgrade`, rendered by the real helm."""
    deployed: Deployed = r.facts["staging"]
    template = shlex.join(["helm", "template", *deployed.upgrade["template"]])
    r.say("+ " + temporary_paths(template, r.facts["cluster_tests_token"]))
    objects = deployed.rendered()
    token = r.facts["cluster_tests_token"]
    kinds = sorted({o["kind"] for o in objects if o["kind"] in RBAC_KINDS})
    r.say(f"  {len(objects)} objects; RBAC: {', '.join(kinds)}")
    r.facts["rendered_rbac"] = kinds
    r.facts["rendered_objects"] = objects + deployed.applied
    secret = next(o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == "hub")
    # z2jh keeps the values the hub reads (get_config) in this Secret's values.yaml.
    r.facts["rendered_hub_values"] = yaml.safe_load(
        base64.b64decode(secret["data"]["values.yaml"]).decode()
    )
    key = f"hub.services.{cluster.TEST_SERVICE}.apiToken"
    rendered = base64.b64decode(secret.get("data", {}).get(key, "")).decode()
    kept = cluster.test_token_file(r.fork).relative_to(r.fork)
    if rendered != token:
        raise StepFailed(
            f"the hub Secret's {key} is not the token the smoke test sends ({kept}): "
            "its calls would get 403"
        )
    r.say(f"  hub Secret {key} == the token in {kept}")


def smoke_test(r: Rehearsal) -> None:
    """deploy.yml's smoke test: its calls carry the token helm rendered, with the role they need."""
    job = workflow(r.fork, "deploy")["jobs"]["staging"]
    runs = [step.get("run", "") for step in job["steps"]]
    deploy = next(i for i, run in enumerate(runs) if "nox -s deploy -- staging" in run)
    smoke = next((i for i, run in enumerate(runs) if "-m cluster" in run), -1)
    if smoke < deploy or "COURSEHUB_CLUSTER=staging" not in runs[smoke]:
        raise StepFailed(
            "deploy.yml: jobs.staging: the cluster tests must run after the deploy, in the same "
            "job: the token they send is the one that deploy kept on its runner"
        )
    r.say(f"+ {runs[smoke].strip()}")
    values = r.facts["rendered_hub_values"]
    role = values["hub"]["loadRoles"].get(cluster.TEST_SERVICE, {})
    if cluster.TEST_SERVICE not in role.get("services", []):
        raise StepFailed(f"the rendered hub gives the {cluster.TEST_SERVICE} service no role")
    host = values["proxy"]["https"]["hosts"][0]
    kept = cluster.test_token_file(r.fork).relative_to(r.fork)
    calls = smoke_test_calls.calls(r.fork)
    for call in calls:
        r.say(f"  {call.method} https://{host}/hub/api{call.path}  Authorization: token <{kept}>")
    refused = smoke_test_calls.missing(calls, role["scopes"])
    if refused:
        raise StepFailed(
            f"the {cluster.TEST_SERVICE} role would get 403 for: " + "; ".join(refused)
        )
    r.say(f"  as {cluster.TEST_SERVICE}, whose role has: {', '.join(role['scopes'])}: "
          f"each call's scope (JupyterHub's handlers) is among them")  # fmt: skip


def deploy_prod(r: Rehearsal) -> None:
    """deploy.yml's prod deploy step, after staging's smoke test: no test token, same image."""
    deployed = _deploy(r, "prod")
    wildcard_certificate(r, "prod", deployed)
    flags = deployed.set_strings()
    image = f"{flags['singleuser.image.name']}:{flags['singleuser.image.tag']}"
    if image not in r.facts["docker"].registry:
        raise StepFailed(f"prod would pull {image}, which the image job never pushed")
    if any(cluster.TEST_SERVICE in key for key in flags):
        raise StepFailed(f"prod was handed the {cluster.TEST_SERVICE} service's token")
    r.say(f"  {image}: the image staging was tested with")


def cluster_plan(r: Rehearsal) -> None:
    """coursehub-gke plan prod: the fork's cluster spec checked, and every gcloud command."""
    result = r.run(["coursehub-gke", "--root", str(r.fork), "plan", "prod"], quiet=True)
    sections = [line[2:] for line in result.stdout.splitlines() if line.startswith("# ")]
    r.say(f"  {len(result.stdout.splitlines()) - len(sections)} commands: {'; '.join(sections)}")


def cluster_apply(r: Rehearsal) -> None:
    """coursehub-gke apply staging, then prod, each twice, against the gcloud stand-in."""
    spec = yaml.safe_load((r.fork / gke.cluster_file("prod", r.fork)).read_text())
    env = r.stack.enter_context(gcloud_standin.installed(r.work / "gcloud", spec, root=r.fork))
    standin = {name: env[name] for name in ("PATH", gcloud_standin.STATE_ENV)}
    for deployment in ("staging", "prod", "staging", "prod"):
        # The first run makes, the second finds it all there: apply can be run again.
        result = r.run(
            ["coursehub-gke", "--root", str(r.fork), "apply", deployment, "--yes"],
            env=standin, quiet=True,
        )  # fmt: skip
        kept = result.stdout.count("(already exists, kept)")
        r.say(f"  {deployment}: {len(gcloud_standin.calls(r.work / 'gcloud'))} gcloud calls so "
              f"far; {kept} already there, kept")  # fmt: skip
    made = gcloud_standin.resources(r.work / "gcloud")
    for deployment in ("staging", "prod"):
        values = load(deployment, root=r.fork).values
        address = values["proxy"]["service"]["loadBalancerIP"]
        for host in values["proxy"]["https"]["hosts"]:
            (record,) = [v for k, v in made.items() if k.startswith(f"dns record-sets {host}. ")]
            if record["flags"]["--rrdatas"] != address:
                raise StepFailed(f"{host} points at {record['flags']['--rrdatas']}, "
                                 f"not {deployment}'s loadBalancerIP {address}")  # fmt: skip
        r.say(f"  {deployment}: every host's record points at its loadBalancerIP {address}")
    if len([k for k in made if k.startswith("billing budgets ")]) != 1:
        raise StepFailed("apply made more than one budget")


def deployer_may_deploy(r: Rehearsal) -> None:
    """The deployer's IAM roles allow writing every object helm rendered for staging."""
    spec = yaml.safe_load((r.fork / gke.cluster_file("staging", r.fork)).read_text())
    lacking = gke_iam.missing(r.facts["rendered_objects"], spec, r.fork)
    if lacking:
        raise StepFailed(f"{gke.cluster_file('staging', r.fork)}: deployer: its roles lack "
                         + "; ".join(lacking))  # fmt: skip
    roles = [*spec["deployer"]["roles"], gke_iam.custom_role_name(spec)]
    r.say(f"  {', '.join(r.facts['rendered_rbac'])}: written by {', '.join(roles)}")


# The order of the README's "From a fork to the first deploy".
STEPS: list[Callable[[Rehearsal], None]] = [
    clone,
    workflows_check,
    cluster_plan,
    cluster_apply,
    new_age_key,
    encrypt_secrets,
    image_tools_agree,
    ci_image_first_push,
    deploy_image,
    deploy_staging,
    render_staging,
    deployer_may_deploy,
    smoke_test,
    deploy_prod,
]


@contextmanager
def rehearsal() -> Iterator[Rehearsal]:
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="coursehub-rehearsal-") as tmp:
        work = Path(tmp)
        r = Rehearsal(fork=work / "fork", work=work, stack=stack, env=dict(os.environ))
        for name in ("SOPS_AGE_KEY", "SOPS_AGE_KEY_FILE", "KUBECONFIG", "DOCKER_CONFIG"):
            r.env.pop(name, None)
        api, reads = stack.enter_context(hubploy_dryrun.namespace_api())
        r.facts.update(kubernetes_api=api, kubernetes_api_reads=reads)
        standins = work / "cloud-standins"
        standins.mkdir()
        for name, text in CLOUD_STANDINS.items():
            (standins / name).write_text(text)
            (standins / name).chmod(0o755)
        host, engine = stack.enter_context(docker_standin.docker_engine())
        r.facts.update(docker_host=host, docker=engine, docker_url=host.replace("tcp:", "http:"))
        r.facts["registry_host"] = "us-central1-docker.pkg.dev"
        yield r


def run(steps: list[Callable[[Rehearsal], None]] = STEPS) -> Rehearsal:
    """Every step in order; StepFailed names the first that failed."""
    with rehearsal() as r:
        for number, step in enumerate(steps, 1):
            r.say(f"\n## {number}. {step.__name__}: {step.__doc__.splitlines()[0]}")
            try:
                step(r)
            except StepFailed as err:
                raise StepFailed(f"step {step.__name__}: {err}") from None
        return r


class _Tee(io.StringIO):
    """Standard output, kept as well."""

    def write(self, text: str) -> int:
        sys.__stdout__.write(text)
        return super().write(text)


# The rehearsal's temporary folders, by what they are, in a kept transcript.
TEMPORARY = (
    (re.compile(r"/\S*/coursehub-rehearsal-\w+"), "<rehearsal>"),
    (re.compile(r"/tmp/tmp\w+"), "<tmp>"),
)


def kept_transcript(text: str, when: datetime, commit: str) -> str:
    """The transcript as the book shows it: its command, date and commit first."""
    for pattern, name in TEMPORARY:
        text = pattern.sub(name, text)
    header = f"$ nox -s rehearse    # {when:%Y-%m-%d %H:%M} UTC, commit {commit[:12]}\n"
    return header + text.lstrip("\n")


def kept_sections(root: Path = ROOT) -> tuple[str, dict[str, list[str]]]:
    """The kept transcript's command line, and each step's lines by the step's name."""
    command, _, body = (root / TRANSCRIPT).read_text().partition("\n")
    sections = {}
    for section in ("\n" + body).split("\n## ")[1:]:
        title, *lines = section.rstrip().splitlines()
        sections[title.split(": ")[0].split(". ", 1)[1]] = ["## " + title, *lines]
    return command, sections


def excerpt(steps: list[str], root: Path = ROOT, width: int = 160) -> str:
    """The kept transcript's command line and the named steps, each line cut at `width`."""
    command, sections = kept_sections(root)
    shown = [command]
    for step in steps:
        shown += [line[:width] for line in sections[step] if not line.startswith("  Step ")]
    return "\n".join(shown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--transcript", type=Path, metavar="FILE",
        help="also write the transcript to FILE, with its command, date and commit "
        f"(the book shows {TRANSCRIPT.as_posix()})",
    )  # fmt: skip
    args = parser.parse_args(argv)
    output = _Tee()
    try:
        with redirect_stdout(output):
            run()
            print("\nrehearsal passed", flush=True)
    except StepFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.transcript:
        when = datetime.now(UTC)
        args.transcript.write_text(kept_transcript(output.getvalue(), when, git_head(ROOT)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
