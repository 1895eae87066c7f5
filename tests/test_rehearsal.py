"""The rehearsal from a fork to the first deploy (scripts/rehearsal.py) passes, step by step.

`nox -s rehearse` runs the same steps; running them here puts them in `nox -s tests`.
"""

from __future__ import annotations

import pytest

from coursehub_tools import rehearsal

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def rehearsed():
    return rehearsal.run()


def test_every_step_passes(rehearsed):
    assert rehearsed.facts["staging"].upgrade["argv"][0] == "upgrade"


def test_the_rendered_chart_has_the_rbac_the_deployer_must_create(rehearsed):
    assert {"Role", "RoleBinding", "ClusterRole"} <= set(rehearsed.facts["rendered_rbac"])


def test_hubploy_calls_only_what_the_pinned_repo2docker_has():
    assert rehearsal.repo2docker_calls_missing() == []
