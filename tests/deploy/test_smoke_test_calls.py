"""The smoke test's hub API calls are read from tests/deploy/test_cluster.py, and each is checked
against the scopes JupyterHub's own handler wants (scripts/deploy/smoke_test_calls.py)."""

from __future__ import annotations

import pytest

from coursehub_tools.config.deployconfig import load
from coursehub_tools.deploy import cluster, smoke_test_calls

pytestmark = pytest.mark.unit


def staging_role_scopes() -> list[str]:
    return load("staging").values["hub"]["loadRoles"][cluster.TEST_SERVICE]["scopes"]


def test_the_calls_are_the_ones_the_smoke_test_makes():
    found = {(call.method, call.path) for call in smoke_test_calls.calls()}
    # Among them, the ones a hard-kept list once left out: starting a server, reading a user.
    assert {("POST", "/users/<user>/server"), ("GET", "/users/<user>"),
            ("POST", "/groups/<group>/users"), ("DELETE", "/users/<user>")} <= found  # fmt: skip


def test_a_call_added_to_the_smoke_test_is_found(tmp_path):
    smoke_test = tmp_path / smoke_test_calls.SMOKE_TEST
    smoke_test.parent.mkdir(parents=True)
    text = (smoke_test_calls.ROOT / smoke_test_calls.SMOKE_TEST).read_text()
    added = '\n\ndef test_more():\n    requests.patch(f"{hub}/groups/{g}/properties", headers=h)\n'
    smoke_test.write_text(text + added)
    found = smoke_test_calls.calls(tmp_path)
    assert ("PATCH", "/groups/<g>/properties") in {(call.method, call.path) for call in found}


def test_each_call_needs_the_scope_jupyterhubs_handler_declares():
    call = smoke_test_calls.Call("DELETE", "/users/<user>/server", 1)
    assert smoke_test_calls.required_scopes(call) == ("delete:servers",)


def test_stagings_cluster_tests_role_allows_every_call():
    assert smoke_test_calls.missing(smoke_test_calls.calls(), staging_role_scopes()) == []


def test_a_role_without_a_calls_scope_is_named_with_the_call():
    scopes = [scope for scope in staging_role_scopes() if scope != "admin:groups"]
    refused = smoke_test_calls.missing(smoke_test_calls.calls(), scopes)
    assert refused and all("/groups/" in line for line in refused)
    assert any("needs one of admin:groups" in line for line in refused)
