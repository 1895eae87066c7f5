"""The pinned z2jh chart's own files, kept as data: its defaults, its schema, its metadata.

A deployment's merged values start from the chart's defaults, as Helm's do, so
the local hub, the offline pods and the book see every default the cluster gets
(singleuser.cloudMetadata, scheduling, hub.config, ...). The files live in
deploy/chart/<name>-<version>/ exactly as the packaged chart has them; the
folder's name carries the pin, so a new pin without a refresh is an error.

    coursehub-chart refresh     # download the pinned chart, rewrite its folder
    coursehub-chart check       # is the folder what the chart repository serves?
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from coursehub_tools.yamlfiles import ROOT, ConfigError, read_yaml

DEPLOYMENTS_FILE = "deploy/deployments.yaml"

CHART_FILES = ("Chart.yaml", "values.yaml", "values.schema.json")
PROVENANCE = """\
# The z2jh chart's own defaults, {name} {version}: the values.yaml packaged in
# the chart (BSD 3-Clause, Project Jupyter Contributors; see deploy/chart/LICENSE). Data, not
# ours to edit: `coursehub-chart refresh` rewrites this folder from the chart repository when
# deploy/deployments.yaml's chart.version changes; `nox -s pytest -- -m chart` fails if stale.

"""


class ChartUnavailable(Exception):
    """The chart repository cannot be reached from here."""


@dataclass(frozen=True)
class PinnedChart:
    name: str
    version: str
    repository: str
    folder: Path

    @property
    def url(self) -> str:
        return f"{self.repository.rstrip('/')}/{self.name}-{self.version}.tgz"


def pinned(root: Path = ROOT) -> PinnedChart:
    """The chart deploy/deployments.yaml pins (its schema is checked by deployconfig)."""
    chart = read_yaml(root / DEPLOYMENTS_FILE, root)["chart"]
    folder = root / "deploy" / "chart" / f"{chart['name']}-{chart['version']}"
    return PinnedChart(chart["name"], chart["version"], chart["repository"], folder)


def _chart_file(chart: PinnedChart, file: str, root: Path) -> Path:
    path = chart.folder / file
    if not path.is_file():
        rel = path.relative_to(root).as_posix()
        raise ConfigError(
            f"{DEPLOYMENTS_FILE}: chart.version: {chart.version} has no {rel}; "
            "run `coursehub-chart refresh` where the chart repository can be reached"
        )
    return path


def metadata(root: Path = ROOT) -> dict[str, str]:
    """Chart.yaml's name, version and appVersion, which the hub sees as `Chart.*`."""
    chart = pinned(root)
    data = read_yaml(_chart_file(chart, "Chart.yaml", root), root)
    if data.get("version") != chart.version:
        rel = chart.folder.relative_to(root).as_posix()
        raise ConfigError(
            f"{rel}/Chart.yaml: version: {data.get('version')!r} is stale, the pin is "
            f"{chart.version}; run `coursehub-chart refresh`"
        )
    return {"Name": data["name"], "Version": data["version"], "AppVersion": data["appVersion"]}


def defaults(root: Path = ROOT) -> dict[str, Any]:
    """The pinned chart's values.yaml: the first layer of every deployment."""
    metadata(root)  # refuses a stale folder before its defaults are used
    chart = pinned(root)
    # Plain safe_load, as the chart's defaults reach Helm: no course dates live here.
    return yaml.safe_load(_chart_file(chart, "values.yaml", root).read_text()) or {}


def values_schema(root: Path = ROOT) -> dict[str, Any]:
    chart = pinned(root)
    return json.loads(_chart_file(chart, "values.schema.json", root).read_text())


def download(chart: PinnedChart, timeout: float = 30) -> dict[str, bytes]:
    """The packaged chart's files by path inside the archive (e.g. jupyterhub/values.yaml)."""
    try:
        with urllib.request.urlopen(chart.url, timeout=timeout) as response:
            archive = response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise ChartUnavailable(f"cannot download {chart.url}: {err}") from err
    files = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                files[member.name] = tar.extractfile(member).read()
    return files


def unpack(files: dict[str, bytes], target: Path) -> Path:
    """Write the downloaded chart to `target`/<name>/ (for helm template); returns that folder."""
    for name, content in files.items():
        path = target / name
        if target.resolve() not in path.resolve().parents:
            raise ChartUnavailable(f"the chart archive has a path outside itself: {name}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return target / next(iter(files)).split("/")[0]


def stale_files(chart: PinnedChart, files: dict[str, bytes]) -> list[str]:
    """The kept files whose data differs from the packaged chart's (comments aside)."""
    stale = []
    for name in CHART_FILES:
        packaged = files.get(f"{chart.name}/{name}")
        kept = chart.folder / name
        if (
            packaged is None
            or not kept.is_file()
            or yaml.safe_load(packaged) != yaml.safe_load(kept.read_bytes())
        ):
            stale.append(name)
    return stale


def refresh(chart: PinnedChart, files: dict[str, bytes]) -> None:
    chart.folder.mkdir(parents=True, exist_ok=True)
    for name in CHART_FILES:
        content = files[f"{chart.name}/{name}"]
        if name == "values.yaml":
            header = PROVENANCE.format(name=chart.name, version=chart.version)
            content = header.encode() + content
        (chart.folder / name).write_bytes(content)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["refresh", "check"])
    args = parser.parse_args(argv)
    try:
        chart = pinned()
        files = download(chart)
        if args.action == "refresh":
            refresh(chart, files)
            print(f"wrote {chart.folder.relative_to(ROOT)} from {chart.url}")
            return 0
        stale = stale_files(chart, files)
        if stale:
            print(
                f"error: stale: {', '.join(stale)}; run `coursehub-chart refresh`", file=sys.stderr
            )
            return 1
        print(f"{chart.folder.relative_to(ROOT)} matches {chart.url}")
        return 0
    except (ConfigError, ChartUnavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
