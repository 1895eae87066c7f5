"""Deployments merge and validate; bad values files get a one-line error naming file and key."""

from __future__ import annotations

import subprocess
import sys

import pytest

from coursehub_tools.config.deployconfig import ROOT, ConfigError, load, load_deployments, merge

pytestmark = pytest.mark.unit
CONFIG = "deploy/deployments/coursehub/config"


def test_every_deployment_merges_and_validates(deployment):
    merged = load(deployment)
    sources = [layer.source for layer in merged.layers]
    listed = load_deployments()["deployments"][deployment]["values"]
    first = listed[0] if isinstance(listed[0], str) else listed[0]["path"]
    assert sources[1:3] == ["deploy/courses/", "hub-config/"], "generated, after the chart's"
    assert sources[3] == first, "then the deployment's own files"
    assert merged.values["hub"]["extraFiles"], "hub-config/ must be mounted"


def test_merge_follows_helm():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert merge(base, {"a": {"c": [3]}, "d": None}) == {"a": {"b": 1, "c": [3]}}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}, "inputs are not modified"


def test_encrypted_layers_are_listed_not_read():
    staging = load("staging")
    listed = load_deployments()["deployments"]["staging"]["values"]
    assert staging.skipped == [item["path"] for item in listed if isinstance(item, dict)]
    assert staging.skipped, "staging has a secrets layer"


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
            f"{CONFIG}/common.yaml: cull.timout: unknown key; allowed here: ",
        ),
        (
            lambda v: v["cull"].update(timeout="an hour"),
            f"{CONFIG}/common.yaml: cull.timeout: 'an hour' is not of type 'integer'",
        ),
        (
            lambda v: v.update(singelser={}),
            f"{CONFIG}/common.yaml: singelser: unknown key; allowed here: ",
        ),
        (
            lambda v: v["hub"].update(extraConfig={"x": "c.JupyterHub.foo = 1"}),
            f"{CONFIG}/common.yaml: hub.extraConfig: must stay empty: hub-side Python",
        ),
        (
            lambda v: v["custom"]["github"].update(studentTeams=["students"]),
            f"{CONFIG}/common.yaml: custom.github.studentTeams.0: 'students' does not match",
        ),
    ],
)
def test_bad_values_name_file_and_key(project_copy, change, expected):
    root = project_copy.root
    project_copy.edit("deploy/deployments/coursehub/config/common.yaml", change)
    with pytest.raises(ConfigError) as err:
        load("staging", root=root)
    assert str(err.value).startswith(expected)
    assert "\n" not in str(err.value)


def test_error_names_the_overlay_that_set_the_key(project_copy):
    root = project_copy.root
    project_copy.edit(
        "deploy/deployments/coursehub/config/prod.yaml",
        lambda v: v["hub"].update(concurrentSpawnLimit="many"),
    )
    with pytest.raises(
        ConfigError,
        match=r"^deploy/deployments/coursehub/config/prod.yaml: hub.concurrentSpawnLimit: ",
    ):
        load("prod", root=root)


def test_missing_values_file_is_named(project_copy):
    root = project_copy.root
    (root / "deploy/deployments/coursehub/config/local.yaml").unlink()
    with pytest.raises(
        ConfigError, match=r"^deploy/deployments/coursehub/config/local.yaml: file not found$"
    ):
        load("local", root=root)


def test_a_list_hubploy_would_not_deploy_is_refused(project_copy):
    """hubploy reads common, <environment>, secrets/<environment>: a list that differs is not
    what would run, whether a file is missing, extra or out of order."""
    root = project_copy.root
    (root / "deploy/deployments/coursehub/config/staging.yaml").unlink()
    with pytest.raises(
        ConfigError, match=r"^deploy/deployments.yaml: deployments.staging.values: "
    ):
        load("local", root=root)


def test_an_unencrypted_secrets_layer_is_refused(project_copy):
    root = project_copy.root
    secrets = root / "deploy/deployments/coursehub/secrets/prod.yaml"
    secrets.write_text("hub:\n  db:\n    password: in-the-clear\n")
    with pytest.raises(ConfigError, match=r"secrets/prod.yaml: not a sops-encrypted file; "):
        load("prod", root=root)


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
    project_copy.edit(
        "deploy/deployments/coursehub/config/common.yaml", lambda v: v["cull"].update(every=-1)
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "coursehub_tools.config.deployconfig",
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
        f"error: {CONFIG}/common.yaml: cull.every: -1 is less than the minimum of 0 (found int)"
    ]
    assert "Traceback" not in result.stderr


def test_the_charts_own_schema_is_checked_offline(project_copy):
    # A key the chart does not know, in a place our schema leaves to the chart.
    project_copy.edit(
        "deploy/deployments/coursehub/config/prod.yaml",
        lambda v: v.setdefault("proxy", {}).update(chpp={"x": 1}),
    )
    with pytest.raises(
        ConfigError,
        match=r"^deploy/deployments/coursehub/config/prod.yaml: proxy.chpp: unknown key",
    ):
        load("prod", root=project_copy.root)


@pytest.mark.parametrize(
    ("key_path", "null_layer"),
    [(("singleuser", "uid"), f"{CONFIG}/staging.yaml"),
     (("singleuser", "storage", "homeMountPath"), f"{CONFIG}/staging.yaml"),
     (("singleuser", "extraLabels", "hub.jupyter.org/network-access-hub"),
      f"{CONFIG}/common.yaml")],
)  # fmt: skip
def test_removing_a_chart_default_hub_config_relies_on_is_refused(
    project_copy, key_path, null_layer
):
    def set_null(values):
        node = values
        for part in key_path[:-1]:
            node = node.setdefault(part, {})
        node[key_path[-1]] = None

    project_copy.edit(null_layer, set_null)
    with pytest.raises(ConfigError) as err:
        load("staging", root=project_copy.root)
    assert str(err.value) == (
        f"{null_layer}: {'.'.join(key_path)}: set to null, which removes a chart default "
        "hub-config relies on; give it a value instead"
    )


def test_a_pin_without_its_defaults_is_refused(project_copy):
    project_copy.edit("deploy/deployments.yaml", lambda d: d["chart"].update(version="9.9.9"))
    with pytest.raises(ConfigError) as err:
        load("local", root=project_copy.root)
    assert str(err.value) == (
        "deploy/deployments.yaml: chart.version: 9.9.9 has no "
        "deploy/chart/jupyterhub-9.9.9/Chart.yaml; run `coursehub chart refresh` "
        "where the chart repository can be reached"
    )


def test_stale_chart_defaults_are_refused(project_copy):
    project_copy.edit(
        "deploy/chart/jupyterhub-4.4.0/Chart.yaml", lambda c: c.update(version="4.3.0")
    )
    with pytest.raises(ConfigError, match=r"Chart.yaml: version: '4.3.0' is stale, the pin is"):
        load("local", root=project_copy.root)
