"""The pinned z2jh chart, kept whole and unmodified as data, with a manifest of its files.

A deployment's merged values start from the chart's defaults, as Helm's do, so
the local hub, the offline pods and the book see every default the cluster gets
(singleuser.cloudMetadata, scheduling, hub.config, ...). `helm template` renders
the same folder offline, and its files/hub/jupyterhub_config.py is the hub pod's
own configuration. deploy/chart/<name>-<version>/ holds the packaged chart byte
for byte (the folder's name carries the pin, so a new pin without a refresh is
an error); deploy/chart/<name>-<version>.sha256 beside it records every file's
sha256, so an edit to the chart is found.

    coursehub chart refresh     # download the pinned chart, rewrite its folder and manifest
    coursehub chart refresh --archive jupyterhub-4.4.0.tgz   # the same from `helm pull`'s file
    coursehub chart check       # is the folder exactly what the manifest records? (offline)
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from coursehub_tools.config.project import DEPLOYMENTS_FILE
from coursehub_tools.config.yamlfiles import ROOT, ConfigError, read_yaml, relative


class ChartUnavailable(Exception):
    """The chart archive cannot be had (the repository is unreachable, or the file is not one)."""


@dataclass(frozen=True)
class PinnedChart:
    name: str
    version: str
    repository: str
    folder: Path

    @property
    def url(self) -> str:
        return f"{self.repository.rstrip('/')}/{self.name}-{self.version}.tgz"

    @property
    def manifest(self) -> Path:
        """Outside the folder, so the folder stays exactly the packaged chart."""
        return self.folder.with_name(f"{self.folder.name}.sha256")


def pinned(root: Path = ROOT) -> PinnedChart:
    """The chart deploy/deployments.yaml pins (its schema is checked by deployconfig)."""
    chart = read_yaml(root / DEPLOYMENTS_FILE, root)["chart"]
    folder = root / "deploy" / "chart" / f"{chart['name']}-{chart['version']}"
    return PinnedChart(chart["name"], chart["version"], chart["repository"], folder)


def _chart_file(chart: PinnedChart, file: str, root: Path) -> Path:
    path = chart.folder / file
    if not path.is_file():
        raise ConfigError(
            f"{DEPLOYMENTS_FILE}: chart.version: {chart.version} has no {relative(path, root)}; "
            "run `coursehub chart refresh` where the chart repository can be reached"
        )
    return path


def metadata(root: Path = ROOT) -> dict[str, str]:
    """Chart.yaml's name, version and appVersion, which the hub sees as `Chart.*`."""
    chart = pinned(root)
    data = read_yaml(_chart_file(chart, "Chart.yaml", root), root)
    if data.get("version") != chart.version:
        raise ConfigError(
            f"{relative(chart.folder, root)}/Chart.yaml: version: {data.get('version')!r} is "
            f"stale, the pin is {chart.version}; run `coursehub chart refresh`"
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


def download(chart: PinnedChart, timeout: float = 30) -> bytes:
    """The packaged chart (.tgz) as the chart repository serves it."""
    try:
        with urllib.request.urlopen(chart.url, timeout=timeout) as response:
            return response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise ChartUnavailable(f"cannot download {chart.url}: {err}") from err


def archive_files(chart: PinnedChart, archive: bytes) -> dict[str, bytes]:
    """The chart's files by path inside its folder (e.g. files/hub/z2jh.py).

    A packaged chart is one folder named after the chart; anything else in the
    archive, or a path leading out of that folder, means it is not the pinned chart.
    """
    files = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            for member in tar.getmembers():
                if not member.isfile():
                    continue
                top, _, inner = member.name.partition("/")
                if top != chart.name or not inner or ".." in inner.split("/"):
                    raise ChartUnavailable(
                        f"the archive holds {member.name}, outside the chart folder {chart.name}/"
                    )
                files[inner] = tar.extractfile(member).read()
    except tarfile.TarError as err:
        raise ChartUnavailable(f"not a packaged chart (.tgz): {err}") from err
    return files


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, by path relative to it."""
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def read_manifest(chart: PinnedChart, root: Path = ROOT) -> dict[str, str]:
    if not chart.manifest.is_file():
        raise ConfigError(
            f"{relative(chart.manifest, root)}: file not found; run `coursehub chart refresh`"
        )
    # `sha256sum` lines: `<digest>  <path>`, so `sha256sum --check` reads it too.
    return {
        path: digest
        for digest, path in (
            line.split("  ", 1) for line in chart.manifest.read_text().splitlines() if line
        )
    }


def check(root: Path = ROOT) -> None:
    """Refuse, in one line, a chart folder that is not exactly what its manifest records."""
    chart = pinned(root)
    metadata(root)
    recorded, found = read_manifest(chart, root), digests(chart.folder)
    problems = [
        *(f"{path} is missing" for path in sorted(set(recorded) - set(found))),
        *(f"{path} was added" for path in sorted(set(found) - set(recorded))),
        *(
            f"{path} was edited"
            for path in sorted(set(found) & set(recorded))
            if found[path] != recorded[path]
        ),
    ]
    if problems:
        raise ConfigError(
            f"{relative(chart.folder, root)}: {'; '.join(problems)} (the chart is kept as "
            f"published, see {relative(chart.manifest, root)}): restore it with "
            "`git checkout -- deploy/chart` or `coursehub chart refresh`"
        )


def refresh(chart: PinnedChart, files: dict[str, bytes]) -> None:
    """Replace the chart folder with `files` and record them in its manifest."""
    if "Chart.yaml" not in files:
        raise ChartUnavailable(f"the archive has no {chart.name}/Chart.yaml: not a chart")
    version = yaml.safe_load(files["Chart.yaml"]).get("version")
    if version != chart.version:
        raise ChartUnavailable(f"the archive is version {version}, the pin is {chart.version}")
    if chart.folder.exists():
        shutil.rmtree(chart.folder)
    for name, content in files.items():
        path = chart.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    chart.manifest.write_text(
        "".join(f"{digest}  {path}\n" for path, digest in digests(chart.folder).items())
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["refresh", "check"])
    parser.add_argument(
        "--archive",
        type=Path,
        help="refresh from this packaged chart (.tgz, as `helm pull` saves it) instead of "
        "downloading it",
    )
    args = parser.parse_args(argv)
    try:
        chart = pinned(ROOT)
        if args.action == "check":
            check(ROOT)
            print(f"{relative(chart.folder, ROOT)} matches {relative(chart.manifest, ROOT)}")
            return 0
        if args.archive is not None:
            if not args.archive.is_file():
                raise ChartUnavailable(f"{args.archive}: file not found")
            source, archive = str(args.archive), args.archive.read_bytes()
        else:
            source, archive = chart.url, download(chart)
        refresh(chart, archive_files(chart, archive))
        print(f"wrote {relative(chart.folder, ROOT)} and its manifest from {source}")
        return 0
    except (ConfigError, ChartUnavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
