"""Deployments merge and validate; bad values files get a one-line error naming file and key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from coursehub_tools.deployconfig import ROOT, ConfigError, load, load_deployments, merge

pytestmark = pytest.mark.unit
DEPLOYMENTS = list(load_deployments()["deployments"])


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_every_deployment_merges_and_validates(name):
    deployment = load(name)
    assert deployment.layers[0].source == "deploy/values/common.yaml"
    assert deployment.values["hub"]["extraFiles"], "hub-config/ must be mounted"


def test_merge_follows_helm():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert merge(base, {"a": {"c": [3]}, "d": None}) == {"a": {"b": 1, "c": [3]}}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}, "inputs are not modified"


def test_encrypted_layers_are_listed_not_read():
    staging = load("staging")
    assert staging.skipped == ["deploy/secrets/staging.yaml.age"]
    text = (ROOT / staging.skipped[0]).read_text()
    assert text.startswith("-----BEGIN AGE ENCRYPTED FILE-----"), (
        "secrets are committed encrypted only"
    )


def test_hub_config_is_mounted_file_by_file():
    spec = load_deployments()
    source = ROOT / spec["hubConfig"]["source"]
    files = load("prod").values["hub"]["extraFiles"]
    mounted = {entry["mountPath"]: entry["stringData"] for entry in files.values()}
    for path in source.rglob("*.py"):
        mount = f"{spec['hubConfig']['mountRoot']}/{path.relative_to(source).as_posix()}"
        assert mounted[mount] == path.read_text()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda v: v["cull"].update(timout=10),
            "deploy/values/common.yaml: cull.timout: unknown key; allowed here: ",
        ),
        (
            lambda v: v["cull"].update(timeout="an hour"),
            "deploy/values/common.yaml: cull.timeout: 'an hour' is not of type 'integer'",
        ),
        (
            lambda v: v.update(singelser={}),
            "deploy/values/common.yaml: singelser: unknown key; allowed here: ",
        ),
        (
            lambda v: v["hub"].update(extraConfig={"x": "c.JupyterHub.foo = 1"}),
            "deploy/values/common.yaml: hub.extraConfig: unknown key",
        ),
        (
            lambda v: v["custom"]["github"].update(studentTeams=["students"]),
            "deploy/values/common.yaml: custom.github.studentTeams.0: 'students' does not match",
        ),
    ],
)
def test_bad_values_name_file_and_key(project_copy, change, expected):
    root = project_copy.root
    project_copy.edit("deploy/values/common.yaml", change)
    with pytest.raises(ConfigError) as err:
        load("staging", root=root)
    assert str(err.value).startswith(expected)
    assert "\n" not in str(err.value)


def test_error_names_the_overlay_that_set_the_key(project_copy):
    root = project_copy.root
    project_copy.edit(
        "deploy/values/prod.yaml", lambda v: v["hub"].update(concurrentSpawnLimit="many")
    )
    with pytest.raises(ConfigError, match=r"^deploy/values/prod.yaml: hub.concurrentSpawnLimit: "):
        load("prod", root=root)


def test_missing_values_file_is_named(project_copy):
    root = project_copy.root
    (root / "deploy/values/staging.yaml").unlink()
    with pytest.raises(ConfigError, match=r"^deploy/values/staging.yaml: file not found$"):
        load("staging", root=root)


def test_unknown_deployment_lists_the_known_ones():
    with pytest.raises(ConfigError, match="no deployment 'production'; defined: local, kind"):
        load("production")


def test_deployments_file_is_checked(project_copy):
    root = project_copy.root
    project_copy.edit(
        "deploy/deployments.yaml", lambda d: d["deployments"]["prod"].pop("namespace")
    )
    with pytest.raises(
        ConfigError, match=r"^deploy/deployments.yaml: deployments.prod: 'namespace' is required"
    ):
        load("prod", root=root)


def test_cli_prints_one_line_and_fails(project_copy):
    root = project_copy.root
    project_copy.edit("deploy/values/common.yaml", lambda v: v["cull"].update(every=-1))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "coursehub_tools.deployconfig",
            "--root",
            str(root),
            "show",
            "local",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: deploy/values/common.yaml: cull.every: -1 is less than the minimum of 0 (found int)"
    ]
    assert "Traceback" not in result.stderr


def pinned_chart(cache: Path) -> Path:
    """The pinned chart's folder, downloaded once from its repository; skips when unreachable."""
    import io
    import tarfile
    import urllib.error
    import urllib.request

    chart = load_deployments()["chart"]
    folder = cache / f"{chart['name']}-{chart['version']}"
    if not (folder / chart["name"] / "values.schema.json").exists():
        url = f"{chart['repository'].rstrip('/')}/{chart['name']}-{chart['version']}.tgz"
        try:
            with urllib.request.urlopen(url, timeout=20) as response:
                archive = response.read()
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            pytest.skip(
                f"the chart repository is not reachable ({url}: {err}); the chart's own "
                "schema is checked where it is (GitHub Actions)"
            )
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(folder, filter="data")
    return folder / chart["name"]


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_values_pass_the_charts_own_schema(name):
    import json

    import jsonschema

    chart = pinned_chart(Path.home() / ".cache" / "coursehub")
    schema = json.loads((chart / "values.schema.json").read_text())
    defaults = yaml.safe_load((chart / "values.yaml").read_text())
    jsonschema.validate(merge(defaults, load(name).values), schema)
