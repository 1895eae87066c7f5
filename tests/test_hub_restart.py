"""The hub killed mid-course and started again: nothing is lost and students carry on.

scripts/hub_restart.py at a small size; `nox -s loadtest` runs it with
10,000 users and 1,000 running servers.
"""

from __future__ import annotations

import pytest

from coursehub_tools.hub_restart import RETURNING_STUDENTS, restart_with
from coursehub_tools.localhub.supervisor import command_line, processes_marked

pytestmark = pytest.mark.hub


def test_a_killed_hub_comes_back_with_every_user_and_server(local_hub_pieces, tmp_path):
    result = restart_with(60, RETURNING_STUDENTS + 5, state=tmp_path, over=3)
    assert (result["users"], result["running"]) == (60, RETURNING_STUDENTS + 5)
    assert result["lost"] == {"users": 0, "running": 0}
    assert result["groups_unchanged"]
    assert result["all_routes_back_seconds"] is not None, "every server routed again"
    assert 0 < result["api_answering_seconds"] <= result["hub_ready_seconds"], (
        "the API answers once the new hub listens, before its start has finished"
    )
    phases = result["start_phases"]
    assert phases["servers_checked"] == result["running"], "read from the new hub's own log"
    assert 0 < phases["first_log_line_seconds"] <= phases["api_listening_seconds"]
    assert phases["api_listening_seconds"] <= result["api_answering_seconds"] + 0.5
    assert result["returning_students_reached_their_server"] == RETURNING_STUDENTS


def test_nothing_a_killed_hub_started_outlives_the_local_hub(hub_factory):
    hub = hub_factory()
    marker = hub.marker
    services = {
        name: [pid for pid in processes_marked(marker) if module in command_line(pid)]
        for name, module in [("culler", "jupyterhub_idle_culler"),
                             ("enrollment", "coursehub.enrollment_service"),
                             ("course requests", "coursehub.course_request_service")]
    }  # fmt: skip
    for name, pids in services.items():
        assert len(pids) == 1, f"the {name} service carries the local hub's marker"
    hub.kill_hub()
    hub.start_hub()
    orphans = sorted(pid for pids in services.values() for pid in pids)
    assert sorted(hub.stop()) == orphans, "the orphaned services were found and stopped"
    assert processes_marked(marker) == []
