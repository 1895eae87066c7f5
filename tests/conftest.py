"""Shared fixtures: the scripts on sys.path, and a real local hub for `hub` tests."""

from __future__ import annotations

import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
# hub-config/ is what the hub pod has on sys.path (its coursehub package).
sys.path.insert(0, str(ROOT / "hub-config"))

from deployconfig import read_yaml  # noqa: E402
from local_hub import LocalHub, find_chp, free_port  # noqa: E402


def require_local_hub() -> None:
    """Skip, saying why, when the pieces a local hub needs are not installed."""
    if shutil.which("jupyterhub-singleuser") is None:
        pytest.skip("jupyterhub-singleuser is not on PATH: run through `nox -s pytest`")
    try:
        find_chp()
    except Exception as err:  # LocalHubError: message says how to install it
        pytest.skip(str(err))


def copy_project(tmp_path: Path) -> Path:
    """A copy of deploy/ and hub-config/ to break on purpose."""
    for folder in ("deploy", "hub-config"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


def edit_yaml(path: Path, change) -> None:
    """Apply `change` to a YAML file's data (dates stay text, as Helm passes them)."""
    data = read_yaml(path)
    change(data)
    path.write_text(yaml.safe_dump(data))


@contextmanager
def running_hub(state: Path, **kwargs):
    """A real local hub on a free port, logging to <state>/hub.log, stopped on exit."""
    require_local_hub()
    with (
        (state / "hub.log").open("w") as log,
        LocalHub(state, port=free_port(), log_file=log, **kwargs) as hub,
    ):
        yield hub


@pytest.fixture(scope="session")
def local_hub(tmp_path_factory):
    """One real hub (JupyterHub, proxy, GitHub stand-in, culler) for the whole session."""
    with running_hub(tmp_path_factory.mktemp("localhub")) as hub:
        yield hub


@pytest.fixture
def hub_factory(tmp_path):
    """Start extra hubs (other values, other ports) that stop at the end of the test."""
    hubs = []

    def start(**kwargs) -> LocalHub:
        require_local_hub()
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
    """Headless Debian Chromium driven by selenium; skips, saying why, if it is not installed."""
    chromium = next(
        filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None
    )
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip(
            "Debian's chromium and chromium-driver are not installed (nox -s pytest installs them)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    # Without the background-networking flags Chromium tries Google's hosts,
    # which this closed network refuses; root needs --no-sandbox.
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    session = webdriver.Chrome(service=Service(driver), options=options)
    session.set_page_load_timeout(120)
    yield session
    session.quit()
