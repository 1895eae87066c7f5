"""The hub's metrics, read as Prometheus reads them, agree with what the hub says it runs."""

from __future__ import annotations

import math
import secrets
import time

import psutil
import pytest
import requests
import yaml
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from coursehub_tools.class_arrival import class_fixture, student_logins
from coursehub_tools.deployconfig import load
from coursehub_tools.hub_client import follow_progress, login_with_standin, own_token
from coursehub_tools.hub_metrics import (
    SPAWN_HISTOGRAM,
    MetricsRefused,
    Snapshot,
    count_pending,
    pending_starts,
    scrape,
    snapshot,
)
from coursehub_tools.waiting import wait_until

STUDENTS = 3


def parsed(registry: CollectorRegistry) -> dict[str, list]:
    text = generate_latest(registry).decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


@pytest.mark.unit
def test_spawn_quantiles_are_the_bucket_bounds_that_hold_them():
    registry = CollectorRegistry()
    buckets = (1, 5, 30, 120)
    spawns = Histogram(
        SPAWN_HISTOGRAM.removeprefix("jupyterhub_"),
        "starts",
        ["status"],
        namespace="jupyterhub",
        buckets=buckets,
        registry=registry,
    )
    durations = [0.4, 0.8, 3, 4, 20, 200]
    for seconds in durations:
        spawns.labels(status="success").observe(seconds)
    spawns.labels(status="failure").observe(2)

    seen = snapshot(parsed(registry), pending=0)

    assert seen.spawns == {"success": len(durations), "failure": 1}
    assert seen.spawn_seconds_sum == pytest.approx(sum(durations))
    for quantile in (0.3, 0.5, 0.9, 1.0):
        needed = math.ceil(quantile * len(durations))
        slowest_needed = sorted(durations)[needed - 1]
        expected = min((b for b in buckets if b >= slowest_needed), default=math.inf)
        assert seen.spawn_quantile_bound(quantile) == expected


@pytest.mark.unit
def test_no_start_yet_has_no_quantile():
    assert snapshot({}, pending=0).spawn_quantile_bound(0.5) is None


@pytest.mark.unit
def test_only_servers_being_started_are_pending():
    users = [
        {"name": "a", "servers": {"": {"pending": "spawn"}, "extra": {"pending": None}}},
        {"name": "b", "servers": {"": {"pending": "stop"}}},
        {"name": "c", "servers": {}},
        {"name": "d", "servers": {"": {"pending": "spawn"}}},
    ]
    assert count_pending(users) == 2


@pytest.fixture(scope="module")
def metrics_hub(tmp_path_factory, start_hub):
    """A hub after a small class arrived: STUDENTS log in and start their servers."""
    state = tmp_path_factory.mktemp("metrics")
    team = load("local").values["custom"]["github"]["studentTeams"][0]
    fixture = state / "class.yaml"
    fixture.write_text(yaml.safe_dump(class_fixture(STUDENTS, team)))
    # The values' own `prometheus` service and role; only its token is this run's.
    token = secrets.token_hex(32)
    values = {
        "hub": {
            "services": {"prometheus": {"apiToken": token}},
            # Active users are counted every 10 minutes by default; every second here.
            "config": {"PeriodicMetricsCollector": {"active_users_update_interval": 1}},
        }
    }
    with start_hub(state, server="lightweight", extra_values=values, fixture=fixture) as hub:
        sessions, waited = {}, 0.0
        for student in student_logins(STUDENTS):
            # The start begins at the login's redirect to /hub/spawn.
            started = time.monotonic()
            session = login_with_standin(hub.url, student, next_url="/hub/spawn").session
            follow_progress(session, hub.url, student)
            waited += time.monotonic() - started
            sessions[student] = session
        hub.prometheus_token, hub.sessions, hub.waited = token, sessions, waited
        yield hub


def scrape_snapshot(hub):
    return snapshot(
        scrape(hub.url, hub.prometheus_token), pending_starts(hub.url, hub.operator_token)
    )


@pytest.mark.hub
def test_the_snapshot_matches_the_rest_api(metrics_hub):
    hub = metrics_hub
    seen = scrape_snapshot(hub)
    users = hub.api("GET", "/users").json()
    servers = [server for user in users for server in user["servers"].values()]

    assert seen.total_users == len(users)
    assert seen.running_servers == sum(bool(server["ready"]) for server in servers) == STUDENTS
    assert seen.pending == count_pending(users) == 0
    assert seen.spawns == {"success": STUDENTS}, "one start each, none failed"
    assert seen.spawns_within[math.inf] == STUDENTS
    assert 0 < seen.spawn_seconds_sum <= hub.waited, "the hub timed no more than we waited"
    assert seen.spawn_quantile_bound(0.5) <= seen.spawn_quantile_bound(0.9)


@pytest.mark.hub
def test_active_users_and_the_hub_process_are_reported(metrics_hub):
    hub = metrics_hub

    def counted_all() -> Snapshot | None:
        seen = scrape_snapshot(hub)
        return seen if seen.active_users.get("24h", 0) >= STUDENTS else None

    seen = wait_until(counted_all, 15, "every student counted active", every=0.5)
    assert seen.active_users["24h"] == STUDENTS
    cpu = psutil.Process(hub.hub_process.pid).cpu_times()
    assert 0 < seen.hub_cpu_seconds <= cpu.user + cpu.system
    assert seen.hub_memory_bytes > 0


@pytest.mark.hub
def test_the_scrapers_token_holds_read_metrics_alone(metrics_hub):
    hub = metrics_hub
    who = requests.get(
        f"{hub.url}/hub/api/user",
        headers={"Authorization": f"Bearer {hub.prometheus_token}"},
        timeout=30,
    ).json()
    assert (who["kind"], who["name"]) == ("service", "prometheus")
    assert who["scopes"] == ["read:metrics"]


@pytest.mark.hub
def test_a_token_without_read_metrics_is_refused(metrics_hub):
    hub = metrics_hub
    student = student_logins(STUDENTS)[0]
    student_token = own_token(hub.sessions[student], hub.url, student)
    with pytest.raises(MetricsRefused, match="read:metrics"):
        scrape(hub.url, student_token)
    anonymous = requests.get(f"{hub.url}/hub/metrics", timeout=30, allow_redirects=False)
    assert anonymous.status_code == 403, "not public through the proxy"
