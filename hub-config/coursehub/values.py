"""get_config("a.b"): read the deployment's merged values, the way z2jh does.

The chart mounts the merged values at <config dir>/secret/values.yaml
(ref: z2jh templates/hub/secret.yaml, files/hub/z2jh.py); the local hub lays out
the same folder. This package lives at <config dir>/coursehub/, so the file is
found relative to it, with no setting that could differ between the two.
"""

from functools import cache
from pathlib import Path

import yaml

CONFIG_DIR = Path(__file__).resolve().parent.parent
MOUNTED_VALUES = CONFIG_DIR / "secret" / "values.yaml"
_source = {"file": MOUNTED_VALUES}


def read_values_from(path: Path) -> None:
    """Read another values file from now on: for tools that build a hub's config
    outside the hub pod (scripts/pod_manifests.py), where nothing is mounted."""
    _source["file"] = Path(path)
    _values.cache_clear()


@cache
def _values() -> dict:
    with _source["file"].open() as f:
        return yaml.safe_load(f) or {}


def get_config(key: str, default=None):
    """The value at dotted `key` ("custom.github.organization"), or `default` if unset."""
    value = _values()
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return default
        value = value[part]
    return value
