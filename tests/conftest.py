"""Shared fixtures: the scripts on sys.path, and a real local hub for `hub` tests."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from local_hub import LocalHub, find_chp, free_port  # noqa: E402


def require_local_hub() -> None:
    """Skip, saying why, when the pieces a local hub needs are not installed."""
    if shutil.which("jupyterhub-singleuser") is None:
        pytest.skip("jupyterhub-singleuser is not on PATH: run through `nox -s pytest`")
    try:
        find_chp()
    except Exception as err:  # LocalHubError: message says how to install it
        pytest.skip(str(err))


@pytest.fixture(scope="session")
def local_hub(tmp_path_factory):
    """One real hub (JupyterHub, proxy, GitHub stand-in, culler) for the whole session."""
    require_local_hub()
    state = tmp_path_factory.mktemp("localhub")
    with (
        (state / "hub.log").open("w") as log,
        LocalHub(state, port=free_port(), log_file=log) as hub,
    ):
        yield hub
    print(f"local hub log: {state / 'hub.log'}")


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
