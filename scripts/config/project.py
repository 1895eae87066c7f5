"""Where the project's files are: the one place that knows the project folder.

The tools read deploy/deployments.yaml, the course registry, the workflows and the
image sources from a checkout of the project, wherever the package itself is
installed. `COURSEHUB_ROOT` names that checkout; without it, the folder above the
package that holds deploy/deployments.yaml (an editable install, or running from
the tree). Nothing else finds files through the package's own place in the tree.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DEPLOYMENTS_FILE = "deploy/deployments.yaml"
ROOT_VARIABLE = "COURSEHUB_ROOT"


class ProjectNotFound(RuntimeError):
    """No checkout of the project could be found; the message says where it looked."""


def find_root(environ: Mapping[str, str] = os.environ) -> Path:
    configured = environ.get(ROOT_VARIABLE)
    if configured:
        root = Path(configured).resolve()
        if not (root / DEPLOYMENTS_FILE).is_file():
            raise ProjectNotFound(
                f"{ROOT_VARIABLE}={configured}: no {DEPLOYMENTS_FILE} there; "
                "set it to a checkout of the project"
            )
        return root
    here = Path(__file__).resolve()
    for folder in here.parents:
        if (folder / DEPLOYMENTS_FILE).is_file():
            return folder
    raise ProjectNotFound(
        f"no {DEPLOYMENTS_FILE} above {here.parent}: "
        f"set {ROOT_VARIABLE} to a checkout of the project"
    )


ROOT = find_root()
