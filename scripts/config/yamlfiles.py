"""Reading the project's YAML files, with errors that name the file and say what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from coursehub_tools.config.project import ROOT


class ConfigError(Exception):
    """A deployment's configuration is wrong; the message says where and how."""


class _TextDates(yaml.SafeLoader):
    """YAML without implicit timestamps: 2026-11-02 stays the text Helm passes on."""


# Helm reads YAML through JSON, where a date is a string; reading it the same
# way keeps course dates identical here, in Helm and in the hub's values.yaml.
_TextDates.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def read_yaml(path: Path, root: Path = ROOT) -> Any:
    rel = relative(path, root)
    if not path.is_file():
        raise ConfigError(f"{rel}: file not found")
    try:
        return yaml.load(path.read_text(), Loader=_TextDates) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{rel}:{where} is not valid YAML") from err


def relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
