"""The pinned chart is kept whole and as published: its manifest finds any edit, and a
refresh writes the folder and manifest from the packaged chart."""

from __future__ import annotations

import io
import re
import tarfile

import pytest

from coursehub_tools.config import chart
from coursehub_tools.config.yamlfiles import ConfigError

pytestmark = pytest.mark.unit


def packaged(folder, top: str) -> bytes:
    """A .tgz of `folder` under `top`/, laid out as `helm package` lays a chart out."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=f"{top}/{path.relative_to(folder).as_posix()}")
    return buffer.getvalue()


def test_the_kept_chart_is_what_its_manifest_records():
    chart.check()
    pin = chart.pinned()
    # The whole chart: what helm renders and what the hub pod runs, not only its values.
    assert {"Chart.yaml", "values.yaml", "files/hub/jupyterhub_config.py"} <= set(
        chart.read_manifest(pin)
    )
    assert any(path.startswith("templates/") for path in chart.read_manifest(pin))


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda f: f.joinpath("files/hub/z2jh.py").write_text("# ours\n"), "was edited"),
        (lambda f: f.joinpath("templates/extra.yaml").write_text("kind: List\n"), "was added"),
        (lambda f: f.joinpath("templates/hub/netpol.yaml").unlink(), "is missing"),
    ],
)
def test_a_changed_chart_is_refused_in_one_line(project_copy, change, said, capsys, monkeypatch):
    folder = chart.pinned(project_copy.root).folder
    change(folder)
    with pytest.raises(ConfigError) as err:
        chart.check(project_copy.root)
    message = str(err.value)
    assert "\n" not in message
    assert said in message and "coursehub chart refresh" in message
    # The command says the same, as its one line of error.
    monkeypatch.setattr(chart, "ROOT", project_copy.root)
    assert chart.main(["check"]) == 1
    assert capsys.readouterr().err == f"error: {message}\n"


def test_refresh_writes_the_packaged_chart_and_its_manifest(project_copy, tmp_path, capsys):
    pin = chart.pinned(project_copy.root)
    archive = tmp_path / "jupyterhub.tgz"
    archive.write_bytes(packaged(pin.folder, pin.name))
    kept = chart.digests(pin.folder)
    pin.folder.joinpath("values.yaml").write_text("# stale\n")
    pin.folder.joinpath("left-over.yaml").write_text("{}\n")
    pin.manifest.unlink()
    chart.refresh(pin, chart.archive_files(pin, archive.read_bytes()))
    assert chart.digests(pin.folder) == kept == chart.read_manifest(pin)
    chart.check(project_copy.root)


def test_refresh_refuses_another_version_or_a_path_outside_the_chart(project_copy, tmp_path):
    pin = chart.pinned(project_copy.root)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "Chart.yaml").write_text("name: jupyterhub\nversion: 4.3.0\n")
    with pytest.raises(chart.ChartUnavailable, match=re.escape(f"4.3.0, the pin is {pin.version}")):
        chart.refresh(pin, chart.archive_files(pin, packaged(tmp_path / "other", pin.name)))
    with pytest.raises(chart.ChartUnavailable, match="outside the chart folder"):
        chart.archive_files(pin, packaged(tmp_path / "other", "another-chart"))
    chart.check(project_copy.root)  # nothing was written
