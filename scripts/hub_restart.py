"""The hub restarted in the middle of a course: how soon it answers, and that nothing is lost.

    coursehub-hub-restart --users 10000 --running 1000 --output restart.json

A class of `--running` students logs in and starts lightweight servers (the
load test's path, scripts/class_arrival.py); the hub then learns of the rest
of the course's users (`--users` in all) through its REST API. The hub
process alone is then killed (SIGKILL: what an out-of-memory kill or a lost
node does to the hub pod) while the servers and the proxy run on, and started
again with the same database. Measured: seconds until the REST API answers (an
authenticated call succeeds), until the hub's start has finished (its services
routed), and until every running server is routed again. Checked: every user, group
membership and running server is still there, and students who were working
reach their servers with the cookies they had, without logging in again.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import requests
import yaml

from coursehub_tools.class_arrival import HubWatch, class_fixture, let_class_arrive, student_logins
from coursehub_tools.deployconfig import ConfigError, load
from coursehub_tools.hub_api import HubAPIError
from coursehub_tools.hub_client import login_with_standin
from coursehub_tools.local_hub import LocalHub, LocalHubError, free_port

BATCH = 500  # users created per REST call
# JupyterHub's log lines (its default format) and the one it writes after checking servers.
HUB_LOG_LINE = re.compile(r"\[\w (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) JupyterHub [^\]]*\] (.*)")
SPAWNERS_CHECKED = re.compile(r"Initialized (\d+) spawners in ([\d.]+) seconds")
# Students who check, after the restart, that their server still answers them.
RETURNING_STUDENTS = 20


def add_users(hub: LocalHub, names: list[str]) -> None:
    for start in range(0, len(names), BATCH):
        hub.client.call("POST", "/users", json={"usernames": names[start : start + BATCH]})


def snapshot(hub: LocalHub) -> dict:
    """What must survive: users, their groups, who has a running server, the proxy's routes."""
    users = hub.client.every("/users")
    return {
        "users": sorted(user["name"] for user in users),
        "groups": {user["name"]: sorted(user["groups"]) for user in users if user["groups"]},
        "running": sorted(
            user["name"] for user in users if user["servers"].get("", {}).get("ready")
        ),
        # Users' servers' routes: /user/<name>/, after its host with subdomain_host.
        "routes": sorted(route for route in proxy_routes(hub) if "/user/" in route),
    }


def proxy_routes(hub: LocalHub) -> list[str]:
    """The proxy's routing table through the hub, page by page."""
    routes: list[str] = []
    while page := hub.client.get("/proxy", offset=len(routes)):
        routes.extend(page)
    return routes


def seconds_until(check, give_up, since: float | None = None, every: float = 0.1) -> float | None:
    """Seconds from `since` (monotonic; default now) until `check()` is true; None
    once `give_up()` is true first. A request that fails counts as not yet."""
    since = time.monotonic() if since is None else since
    while not give_up():
        try:
            if check():
                return round(time.monotonic() - since, 2)
        except (requests.RequestException, HubAPIError):
            pass
        time.sleep(every)
    return None


def timed_out_after(seconds: float):
    """A give_up for seconds_until: true once `seconds` have passed from now."""
    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() > deadline


def api_answers(hub: LocalHub) -> bool:
    """An authenticated REST call succeeds: the hub listens and has read its database.
    Asked once, not again after a refusal: this is a poll, timed."""
    once = replace(hub.client, attempts=1, timeout=1)
    return once.request("GET", "/users", params={"limit": 1}).status_code == 200


def start_phases(log: str, since: float) -> dict:
    """Where the restarted hub's time went, from JupyterHub's own log lines: seconds from
    `since` (its process started) to its first line (Python, its imports and the config
    files read), to its API listening, and the seconds it reports checking the servers
    that were running (spawners instantiated, then polled)."""
    phases: dict = {}
    for line in log.splitlines():
        logged = HUB_LOG_LINE.match(line)
        if not logged:
            continue
        stamp, message = logged.groups()
        at = round(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp() - since, 2)
        if message.startswith("Running JupyterHub version"):
            phases.setdefault("first_log_line_seconds", at)
        elif message.startswith("Hub API listening on"):
            phases.setdefault("api_listening_seconds", at)
        elif checked := SPAWNERS_CHECKED.match(message):
            phases["servers_checked"] = int(checked[1])
            phases["servers_check_seconds"] = float(checked[2])
    return phases


def returning_students_reach_their_servers(hub: LocalHub, sessions: dict) -> int:
    """How many of the sample still reach /user/<name>/lab with the cookies they had."""
    reached = 0
    for student, session in sessions.items():
        page = session.get(f"{hub.url}/user/{student}/lab", timeout=60)
        # On the student's own host, where the hub may add its redirect count (?redirects=1).
        reached += page.status_code == 200 and urlsplit(page.url).path.endswith(
            f"/user/{student}/lab"
        )
    return reached


def restart_with(
    users: int, running: int, *, state: Path, over: float, extra_values: list[dict] = ()
) -> dict:
    values = load("local").values
    team = values["custom"]["github"]["studentTeams"][0]
    fixture = state / "class-fixture.yaml"
    fixture.write_text(yaml.safe_dump(class_fixture(running, team)))
    with (
        (state / "hub.log").open("w") as log,
        LocalHub(
            state / "hub",
            port=free_port(),
            extra_values=list(extra_values),
            log_file=log,
            fixture=fixture,
            server="lightweight",
        ) as hub,
    ):
        with HubWatch(hub) as watch:
            arrivals, stopped = let_class_arrive(
                hub, watch, student_logins(running), over, timeout=300
            )
        failures = Counter(a.failure for a in arrivals if a.failure)
        if stopped or failures:
            raise LocalHubError(
                f"the class did not start: {stopped or dict(failures)}; "
                "arrive over a longer time (--over)"
            )
        add_users(hub, [f"u{index:05d}" for index in range(1, users - running + 1)])
        sessions = {
            student: login_with_standin(hub.url, student, next_url="/hub/home").session
            for student in student_logins(running)[:RETURNING_STUDENTS]
        }
        before = snapshot(hub)

        hub.kill_hub()
        log.flush()
        new_lines_from = (state / "hub.log").stat().st_size
        start, started_at = time.monotonic(), time.time()
        started = threading.Event()
        with ThreadPoolExecutor(max_workers=1) as pool:
            # Polled while start_hub waits for the end of the hub's start.
            api_answering = pool.submit(
                seconds_until, lambda: api_answers(hub), started.is_set, since=start, every=0.05
            )
            try:
                hub.start_hub()
            finally:
                started.set()
            ready_seconds = round(time.monotonic() - start, 2)
            api_seconds = api_answering.result()
        with (state / "hub.log").open() as new_log:
            new_log.seek(new_lines_from)
            phases = start_phases(new_log.read(), started_at)
        routed = seconds_until(
            lambda: snapshot(hub)["routes"] == before["routes"], give_up=timed_out_after(300)
        )
        with HubWatch(hub) as watch:
            after = snapshot(hub)
            reached = returning_students_reach_their_servers(hub, sessions)
            peak = watch.peak_rss_mb
    lost = {key: sorted(set(before[key]) - set(after[key])) for key in ("users", "running")}
    return {
        "users": len(before["users"]),
        "running": len(before["running"]),
        "server": "lightweight (scripts/localhub/lightweight_server.py)",
        "api_answering_seconds": api_seconds,
        "hub_ready_seconds": ready_seconds,
        "start_phases": phases,
        "all_routes_back_seconds": routed,
        "lost": {key: len(names) for key, names in lost.items()},
        "groups_unchanged": before["groups"] == after["groups"],
        "returning_students": RETURNING_STUDENTS,
        "returning_students_reached_their_server": reached,
        "hub_rss_mb_after_restart": round(peak, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--running", type=int, default=1000)
    parser.add_argument("--over", type=float, default=300, help="seconds the class arrives over")
    parser.add_argument("--output", type=Path, help="write the result here as JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.running <= args.users:
        parser.error("need 1 <= --running <= --users")
    try:
        with tempfile.TemporaryDirectory() as state:
            result = restart_with(args.users, args.running, state=Path(state), over=args.over)
    except (ConfigError, LocalHubError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    text = json.dumps(result, indent=2)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    print(text)
    intact = not any(result["lost"].values()) and result["groups_unchanged"]
    return 0 if intact and result["all_routes_back_seconds"] is not None else 1


if __name__ == "__main__":
    sys.exit(main())
