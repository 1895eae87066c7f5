"""hubploy's conventions, and the check that deploy/deployments.yaml follows them.

hubploy (PyPI 0.4) runs in `hubploy.root` (deploy/) and, for
`hubploy deploy <deployment> <chart> <environment>`:
- hands helm `-f` for config/common.yaml, config/<environment>.yaml and a
  decrypted secrets/<environment>.yaml, each only if it exists, in that order;
- sets every image of hubploy.yaml with `--set-string <path>.tag=<tag>` and
  `<path>.name=<name>`, the tag being the last commit that changed the image's
  folder;
- names the release and the namespace <deployment>-<environment>.
Where our list and hubploy's rule disagree, hubploy's rule is what runs, so
loading the deployments refuses the difference. tests/deploy/test_hubploy.py runs the
real hubploy to prove this module describes it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from coursehub_tools.config.project import DEPLOYMENTS_FILE
from coursehub_tools.config.yamlfiles import ROOT, ConfigError, read_yaml, relative


def deployment_dir(spec: dict[str, Any], root: Path = ROOT) -> Path:
    hubploy = spec["hubploy"]
    return root / hubploy["root"] / "deployments" / hubploy["deployment"]


def values_files(spec: dict[str, Any], environment: str, root: Path = ROOT) -> list[str]:
    """The files hubploy hands helm for `environment`, in order, relative to `root`."""
    folder = deployment_dir(spec, root)
    candidates = [
        folder / "config" / "common.yaml",
        folder / "config" / f"{environment}.yaml",
        folder / "secrets" / f"{environment}.yaml",
    ]
    return [relative(path, root) for path in candidates if path.is_file()]


def check(spec: dict[str, Any], root: Path = ROOT) -> None:
    """Each `hubploy:` deployment lists hubploy's files and uses its release name."""
    project = spec["hubploy"]["deployment"]
    for name, entry in spec["deployments"].items():
        environment = entry.get("hubploy")
        if environment is None:
            continue
        where = f"{DEPLOYMENTS_FILE}: deployments.{name}"
        listed = [item if isinstance(item, str) else item["path"] for item in entry["values"]]
        expected = values_files(spec, environment, root)
        if listed != expected:
            raise ConfigError(
                f"{where}.values: hubploy deploys {environment} with {', '.join(expected)} "
                f"(in this order); the list has {', '.join(listed)}"
            )
        release = f"{project}-{environment}"
        for field in ("release", "namespace"):
            if entry.get(field) != release:
                raise ConfigError(
                    f"{where}.{field}: hubploy names it {release!r}, not {entry.get(field)!r}"
                )


def in_git_checkout(root: Path) -> bool:
    result = subprocess.run(
        ["git", "rev-parse", "--is-inside-work-tree"],
        cwd=root, capture_output=True, text=True, check=False,
    )  # fmt: skip
    return result.stdout.strip() == "true"


def image_values(spec: dict[str, Any], root: Path = ROOT) -> dict[str, Any]:
    """What hubploy's --set-string flags set: every image's name and tag."""
    config_file = deployment_dir(spec, root) / "hubploy.yaml"
    config = read_yaml(config_file, root)
    values: dict[str, Any] = {}
    for image in config.get("images", {}).get("images", []):
        node = values
        for part in image["helm_substitution_path"].split("."):
            node = node.setdefault(part, {})
        node["name"] = image["name"]
        node["tag"] = image_tag(deployment_dir(spec, root) / image["path"], root)
    return values


def image_tag(folder: Path, root: Path = ROOT) -> str:
    """The last commit that changed `folder`, shortened as hubploy does.

    Seven hex digits, or more until one is a letter: helm reads an all-digit tag
    as a number (ref: hubploy utils.substring_with_alpha).
    """
    result = subprocess.run(
        ["git", "log", "-n", "1", "--pretty=format:%H", "--", str(folder)],
        cwd=root, capture_output=True, text=True, check=False,
    )  # fmt: skip
    commit = result.stdout.strip()
    if result.returncode != 0 or not commit:
        raise ConfigError(
            f"{relative(folder, root)}: no commit has changed it, so hubploy has no image tag "
            "(commit the image folder first; hubploy needs a git checkout)"
        )
    first_letter = next((i for i, char in enumerate(commit) if char.isalpha()), len(commit))
    return commit[: max(7, first_letter + 1)]
