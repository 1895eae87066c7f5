"""A fork's checklist names every tool and file it must change; the key covers them all."""

from __future__ import annotations

import pytest
import yaml

from coursehub_tools.config import sops_files
from coursehub_tools.config.deployconfig import ROOT
from coursehub_tools.deploy import fork_checklist

pytestmark = pytest.mark.unit


def encrypted_to_the_maintainers() -> list[str]:
    """From the files' own sops metadata: every secrets file not encrypted to the test-only key."""
    test_key = sops_files.test_only_recipient()
    return sorted(
        path.relative_to(ROOT).as_posix()
        for path in ROOT.glob(sops_files.SECRETS_GLOB)
        if sops_files.metadata(path) and test_key not in sops_files.recipients(path)
    )


def test_every_file_encrypted_to_the_maintainers_key_is_rotated_and_listed():
    files = encrypted_to_the_maintainers()
    assert any(name.endswith("kubeconfig.yaml") for name in files), files
    assert any(name.endswith("docker-config.json") for name in files), files
    assert sops_files.maintainer_files() == files
    rotation = sops_files.rotation_commands(["staging", "prod"])
    for path in files:
        assert f"SOPS_AGE_KEY_FILE=old.agekey sops updatekeys --yes {path}" in rotation
    assert {line.split("--env ")[1].split()[0] for line in rotation if "--env" in line} == {
        "staging",
        "prod",
    }
    checklist = {change.file for change in fork_checklist.changes()}
    assert set(files) <= checklist


def test_the_readme_fork_section_names_every_secrets_file():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## From a fork to the first deploy") :]
    for path in encrypted_to_the_maintainers():
        assert path.rsplit("/", 1)[1] in section, path


def test_every_file_and_key_the_checklist_names_exists():
    for change in fork_checklist.changes():
        assert (ROOT / change.file).exists(), change.file
        assert fork_checklist.current(change)


def test_the_checklist_names_each_tool_with_a_version():
    tools = {tool: version for tool, version, _ in fork_checklist.prerequisites()}
    assert set(tools) == {"gcloud", "kubectl", "helm", "sops", "age", "gh"}
    assert tools["helm"].startswith("v3.")
    assert all(version for version in tools.values())


def test_the_checklist_is_the_first_deploying_chapter():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    (deploying,) = [part for part in toc["parts"] if part["caption"] == "Deploying"]
    assert deploying["chapters"][0]["file"] == "book/fork"
