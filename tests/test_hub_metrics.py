"""The hub's metrics, read as Prometheus reads them, agree with what the hub says it runs."""

from __future__ import annotations

import secrets
import time

import pytest
import requests

from coursehub_tools.hub_client import follow_progress, login_with_standin, own_token
from coursehub_tools.hub_metrics import pending_starts, scrape, snapshot

pytestmark = pytest.mark.hub

STUDENTS = ("sam", "sky")


@pytest.fixture(scope="module")
def metrics_hub(tmp_path_factory, start_hub):
    token = secrets.token_hex(32)
    values = {
        "hub": {
            "services": {"prometheus": {"apiToken": token}},
            # Active users are counted every 10 minutes by default; every second here.
            "config": {"PeriodicMetricsCollector": {"active_users_update_interval": 1}},
        }
    }
    with start_hub(
        tmp_path_factory.mktemp("metrics"), server="lightweight", extra_values=values
    ) as hub:
        sessions = {}
        for student in STUDENTS:
            sessions[student] = login_with_standin(hub.url, student, next_url="/hub/spawn").session
            follow_progress(sessions[student], hub.url, student)
        hub.prometheus_token = token
        hub.sessions = sessions
        yield hub


def test_the_snapshot_matches_the_rest_api(metrics_hub):
    hub = metrics_hub
    seen = snapshot(
        scrape(hub.url, hub.prometheus_token), pending_starts(hub.url, hub.operator_token)
    )
    users = hub.api("GET", "/users").json()
    running = sum(bool(user["servers"]) for user in users)
    assert seen.running_servers == running == len(STUDENTS)
    assert seen.total_users == len(users)
    assert seen.spawns.get("success") == len(STUDENTS)
    assert seen.pending == 0
    assert max(seen.spawns_within.values()) == len(STUDENTS), "the +Inf bucket holds every start"
    deadline = time.monotonic() + 15
    while seen.active_users.get("24h", 0) < len(STUDENTS) and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = snapshot(scrape(hub.url, hub.prometheus_token), 0)
    assert seen.active_users["24h"] == len(STUDENTS)


def test_only_a_token_with_read_metrics_reads_them(metrics_hub):
    hub = metrics_hub
    student_token = own_token(hub.sessions["sam"], hub.url, "sam")
    with pytest.raises(requests.HTTPError) as refused:
        scrape(hub.url, student_token)
    assert refused.value.response.status_code == 403
    anonymous = requests.get(f"{hub.url}/hub/metrics", timeout=30, allow_redirects=False)
    assert anonymous.status_code in (302, 403), "not public through the proxy"
