"""A class arriving at the local hub: N students log in through GitHub's stand-in and start.

    coursehub-class-arrival --students 20 --over 30 --output _build/loadtest/arrival.json

Each student walks the path a person does (scripts/hub_client.py): the login
page, GitHub's consent, the spawn, then waits until their JupyterLab answers
through the proxy. Students start evenly spread over `--over` seconds. The
run records, per student, the time to log in and the time to a ready server,
or why not; and for the hub, whether it exited and its peak memory. `--stock`
runs the same arrival with the chart's defaults for the settings our values
choose (see stock_settings), so the two can be compared. Every process
the run started is stopped when it ends, whatever happened.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import requests
import yaml

from coursehub_tools import chart
from coursehub_tools.deployconfig import ConfigError, load
from coursehub_tools.hub_client import login_with_standin, wait_for_server
from coursehub_tools.local_hub import FIXTURE, LocalHub, LocalHubError, free_port


def stock_settings() -> dict:
    """A layer that puts back the chart's (and JupyterHub's) defaults for the spawn settings
    deploy/values/common.yaml chooses: what a hub deployed with z2jh as it comes would run."""
    chart_hub = chart.defaults()["hub"]
    return {
        "hub": {
            "concurrentSpawnLimit": chart_hub["concurrentSpawnLimit"],
            "consecutiveFailureLimit": chart_hub["consecutiveFailureLimit"],
            # null removes our setting: JupyterHub's own default applies.
            "config": {"Spawner": {"http_timeout": None}},
        }
    }


@dataclass
class Arrival:
    student: str
    login_seconds: float | None = None
    ready_seconds: float | None = None
    failure: str | None = None


def class_fixture(students: int, team: str, base: Path = FIXTURE) -> dict:
    """The stand-in's world plus `students` new members of `team` (org:team), s001 onwards."""
    world = yaml.safe_load(base.read_text())
    org, _, slug = team.partition(":")
    first_id = 100_000
    for index in range(students):
        login = f"s{index + 1:03d}"
        world["users"][login] = {
            "id": first_id + index,
            "name": f"Student {login}",
            "email": f"{login}@example.org",
        }
        world["organizations"][org]["members"].append(login)
        world["organizations"][org]["teams"][slug]["members"].append(login)
    return world


def arrive(hub: LocalHub, student: str, timeout: float) -> Arrival:
    arrival = Arrival(student)
    start = time.monotonic()
    try:
        login = login_with_standin(hub.url, student)
        if login.response.status_code != 200:
            arrival.failure = f"login answered HTTP {login.response.status_code}"
            return arrival
        arrival.login_seconds = time.monotonic() - start
        wait_for_server(login.session, hub.url, student, timeout=timeout)
        arrival.ready_seconds = time.monotonic() - start
    except TimeoutError:
        arrival.failure = f"not ready within {timeout:.0f} s"
    except requests.HTTPError as err:
        arrival.failure = f"HTTP {err.response.status_code}"
    except requests.RequestException as err:
        arrival.failure = type(err).__name__
    return arrival


class HubWatch:
    """Samples the hub process: has it exited, and its peak resident memory (Linux /proc)."""

    def __init__(self, hub: LocalHub):
        self.process = hub.hub_process
        self.peak_rss_mb = 0.0
        self.exited_with: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            if self.process.poll() is not None:
                self.exited_with = self.process.returncode
                return
            try:
                status = Path(f"/proc/{self.process.pid}/status").read_text()
            except OSError:
                continue
            rss_kb = next(int(line.split()[1]) for line in status.splitlines() if "VmRSS" in line)
            self.peak_rss_mb = max(self.peak_rss_mb, rss_kb / 1024)

    def __enter__(self) -> HubWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 2)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(share) - 1], 2)


def summary(arrivals: list[Arrival], watch: HubWatch, settings: str, over: float) -> dict:
    ready = [a.ready_seconds for a in arrivals if a.ready_seconds is not None]
    logins = [a.login_seconds for a in arrivals if a.login_seconds is not None]
    return {
        "settings": settings,
        "server": "JupyterLab (jupyterhub-singleuser)",
        "students": len(arrivals),
        "over_seconds": over,
        "ready": len(ready),
        "failures": dict(Counter(a.failure for a in arrivals if a.failure)),
        "hub_exited_with": watch.exited_with,
        "hub_peak_rss_mb": round(watch.peak_rss_mb, 1),
        "login_seconds": {"p50": percentile(logins, 50), "p95": percentile(logins, 95)},
        "ready_seconds": {
            "p50": percentile(ready, 50),
            "p95": percentile(ready, 95),
            "max": round(max(ready), 2) if ready else None,
        },
        "arrivals": [asdict(a) for a in arrivals],
    }


def run_class(
    students: int, over: float, *, stock: bool, state: Path, timeout: float = 180
) -> dict:
    """Start a hub, let the class arrive, stop everything; the summary as data."""
    team = load("local").values["custom"]["github"]["studentTeams"][0]
    fixture = state / "class-fixture.yaml"
    fixture.write_text(yaml.safe_dump(class_fixture(students, team)))
    extra = stock_settings() if stock else None
    with (
        (state / "hub.log").open("w") as log,
        LocalHub(
            state / "hub", port=free_port(), extra_values=extra, log_file=log, fixture=fixture
        ) as hub,
        HubWatch(hub) as watch,
        ThreadPoolExecutor(max_workers=students) as pool,
    ):
        futures = []
        for index in range(students):
            futures.append(pool.submit(arrive, hub, f"s{index + 1:03d}", timeout))
            time.sleep(over / students)
        arrivals = [future.result() for future in futures]
    return summary(arrivals, watch, "z2jh chart defaults" if stock else "coursehub values", over)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--over", type=float, default=30, help="seconds the arrivals spread over")
    parser.add_argument("--stock", action="store_true", help="JupyterHub's default settings")
    parser.add_argument("--output", type=Path, help="write the summary here as JSON")
    args = parser.parse_args(argv)
    if args.students < 1 or args.over < 0:
        parser.error("--students must be at least 1 and --over not negative")
    try:
        with tempfile.TemporaryDirectory() as state:
            result = run_class(args.students, args.over, stock=args.stock, state=Path(state))
    except (ConfigError, LocalHubError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    text = json.dumps(result, indent=2)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
    print(json.dumps({k: v for k, v in result.items() if k != "arrivals"}, indent=2))
    return 0 if result["hub_exited_with"] is None and not result["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
