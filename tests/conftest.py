"""Shared fixtures: a copy of the project to break, and real local hubs for `hub` tests."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from helpers import has_database, has_encrypted_layer

from coursehub_tools.browser import BrowserUnavailable, headless_chromium
from coursehub_tools.deployconfig import DEPLOYMENTS_FILE, ROOT, load, read_yaml
from coursehub_tools.local_hub import LocalHub, find_chp, free_port
from coursehub_tools.local_postgres import PostgresUnavailable, throwaway_postgres

DEPLOYMENT_PARAMETERS = {
    "deployment": None,
    "cluster_deployment": "kubernetes",
    "local_deployment": "local",
}


def pytest_generate_tests(metafunc):
    """Run a test once per deployment it asks for by parameter name (see DEPLOYMENT_PARAMETERS).

    deploy/deployments.yaml is read here without checks, so a broken file
    fails the tests that load it (with load()'s one-line error), not collection.
    """
    parametrized = {
        name.strip()
        for marker in metafunc.definition.iter_markers("parametrize")
        for name in (
            marker.args[0].split(",") if isinstance(marker.args[0], str) else marker.args[0]
        )
    }
    for parameter, backend in DEPLOYMENT_PARAMETERS.items():
        if parameter in metafunc.fixturenames and parameter not in parametrized:
            try:
                deployments = yaml.safe_load((ROOT / DEPLOYMENTS_FILE).read_text())["deployments"]
                names = [
                    name
                    for name, spec in deployments.items()
                    if backend is None or spec.get("backend") == backend
                ]
            except Exception as err:  # any breakage: one failing case that says what
                names = [f"unreadable {DEPLOYMENTS_FILE}: {err}"]
            metafunc.parametrize(parameter, names)
    for parameter, wanted in SELECTED_DEPLOYMENTS.items():
        if parameter in metafunc.fixturenames and parameter not in parametrized:
            metafunc.parametrize(parameter, selected_deployments(wanted))


# Kubernetes deployments a test runs for only if their merged values have something,
# so that no case is generated that could only skip.
SELECTED_DEPLOYMENTS = {
    "database_deployment": has_database,
    "encrypted_deployment": has_encrypted_layer,
}


def selected_deployments(wanted) -> list[str]:
    """The Kubernetes deployments whose merged values `wanted` accepts (not decrypted).

    A deployment that does not load is one failing case saying why, as above.
    None selected is one failing case too: the test would otherwise silently not run.
    """
    try:
        deployments = yaml.safe_load((ROOT / DEPLOYMENTS_FILE).read_text())["deployments"]
        kubernetes = [n for n, spec in deployments.items() if spec.get("backend") == "kubernetes"]
    except Exception as err:
        return [f"unreadable {DEPLOYMENTS_FILE}: {err}"]
    names = []
    for name in kubernetes:
        try:
            if wanted(load(name)):
                names.append(name)
        except Exception as err:
            names.append(f"{name} does not load: {err}")
    return names or [f"no Kubernetes deployment in {DEPLOYMENTS_FILE} {wanted.__name__}"]


@dataclass
class ProjectCopy:
    """A copy of deploy/ and hub-config/ to break on purpose."""

    root: Path

    def edit(self, relative_path: str, change) -> None:
        """Apply `change` to a YAML file's data (dates stay text, as Helm passes them)."""
        path = self.root / relative_path
        data = read_yaml(path, self.root)
        change(data)
        path.write_text(yaml.safe_dump(data))


@pytest.fixture
def project_copy(tmp_path) -> ProjectCopy:
    for folder in ("deploy", "hub-config"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return ProjectCopy(tmp_path)


@pytest.fixture(scope="session")
def local_hub_pieces() -> None:
    """Skip, saying why, when the pieces a local hub needs are not installed."""
    if shutil.which("jupyterhub-singleuser") is None:
        pytest.skip("jupyterhub-singleuser is not on PATH: run through `nox -s pytest`")
    try:
        find_chp()
    except Exception as err:  # LocalHubError: message says how to install it
        pytest.skip(str(err))


@pytest.fixture(scope="session")
def start_hub(local_hub_pieces):
    """A context manager: a real local hub on a free port, logging to <state>/hub.log."""

    @contextmanager
    def running_hub(state: Path, **kwargs):
        with (
            (state / "hub.log").open("w") as log,
            LocalHub(state, port=free_port(), log_file=log, **kwargs) as hub,
        ):
            yield hub

    return running_hub


@pytest.fixture(scope="session")
def local_hub(tmp_path_factory, start_hub):
    """One real hub (JupyterHub, proxy, GitHub stand-in, culler) for the whole session.

    Like every `local` hub it judges courses by the demo school's date
    (config/demo-date.yaml), not today's: tests/test_other_days.py moves the clock.
    """
    with start_hub(tmp_path_factory.mktemp("localhub")) as hub:
        yield hub


@pytest.fixture
def hub_factory(tmp_path, local_hub_pieces):
    """Start extra hubs (other values, other ports) that stop at the end of the test."""
    hubs = []

    def start(**kwargs) -> LocalHub:
        log = (tmp_path / f"hub{len(hubs)}.log").open("w")
        hub = LocalHub(
            tmp_path / f"state{len(hubs)}",
            port=kwargs.pop("port", free_port()),
            log_file=log,
            **kwargs,
        )
        hubs.append(hub)
        hub.start()
        return hub

    yield start
    for hub in hubs:
        hub.stop()


@pytest.fixture
def browser():
    """Headless Chromium or Chrome driven by selenium; skips, saying why, if none is installed."""
    try:
        session = headless_chromium()
    except BrowserUnavailable as err:
        pytest.skip(str(err))
    yield session
    session.quit()


@pytest.fixture
def postgres():
    """A throwaway PostgreSQL server (scripts/local_postgres.py); skips, saying why, without one."""
    try:
        with throwaway_postgres() as database:
            yield database
    except PostgresUnavailable as err:
        pytest.skip(str(err))
