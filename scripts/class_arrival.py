"""A class arriving at the local hub: N students log in through GitHub's stand-in and start.

    coursehub-class-arrival --students 20 --over 30 --output arrival.json
    coursehub-class-arrival --students 1000 --over 60 --server lightweight --stop-seconds 0.2

Each student walks the path a browser does (scripts/hub_client.py): the login
page, GitHub's consent, the spawn, the spawn-pending page's progress stream,
then a request to their server through the proxy. Students start evenly
spread over `--over` seconds. Then the class goes idle and one pass of the
real idle culler runs with its clock moved past `cull.timeout`, while a few
students (`--active-share`) have just been active and must be kept.

The run records, per student, the time to log in and to a ready server, or
why not; for the hub, whether it exited, its peak memory and its CPU time;
and for the cull, how long the pass took and whom it stopped. `--stock` runs
the same class with the chart's defaults for the settings our values choose
(stock_settings). `--server lightweight` replaces JupyterLab with
scripts/localhub/lightweight_server.py (same hub API, a few MB) for classes
larger than this machine can run JupyterLab for. The run stops early, saying
why, when the hub exits or refuses every login, and every process it started
is stopped when it ends, whatever happened.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import requests
import yaml

from coursehub_tools import chart
from coursehub_tools.culling import (
    CULL_PASS_USER,
    cull_pass_at,
    cull_pass_role,
    culler_token,
    report_activity,
)
from coursehub_tools.deployconfig import ConfigError, load
from coursehub_tools.hub_client import follow_progress, login_with_standin
from coursehub_tools.hub_profile import ARRIVAL_STEPS, CULL_STEPS, sampled
from coursehub_tools.local_hub import FIXTURE, LocalHub, LocalHubError, free_port
from coursehub_tools.local_postgres import Database, PostgresUnavailable, throwaway_postgres
from coursehub_tools.localhub import kube_backend
from coursehub_tools.localhub.facts import LOCAL_SPAWNERS
from coursehub_tools.localhub.supervisor import processes_marked
from coursehub_tools.waiting import WaitTimeout
from coursehub_tools.yamlfiles import read_yaml

# With no login through after this many tries, the hub is refusing the class.
REFUSALS_BEFORE_STOPPING = 5
# How long culled servers may take to be gone after the culler's pass.
STOPS_TIMEOUT = 300
SERVERS = {
    "jupyterlab": "JupyterLab (jupyterhub-singleuser)",
    "lightweight": "lightweight (scripts/localhub/lightweight_server.py)",
}


def stock_settings() -> dict:
    """A layer that puts back the chart's (and JupyterHub's) defaults for the spawn settings
    deploy/deployments/coursehub/config/common.yaml chooses: what a hub deployed with z2jh
    as it comes would run."""
    chart_hub = chart.defaults()["hub"]
    return {
        "hub": {
            "concurrentSpawnLimit": chart_hub["concurrentSpawnLimit"],
            "consecutiveFailureLimit": chart_hub["consecutiveFailureLimit"],
            "config": {
                # null removes our setting: the chart's or JupyterHub's own applies.
                "Spawner": {"http_timeout": None},
                "JupyterHub": {"tornado_settings": None},
                # JupyterHub's refresh_pre_spawn as it comes: GitHub at every start.
                "GitHubOAuthenticator": {"membership_fresh_for": 0},
            },
        }
    }


def held_start(gate: Path) -> dict:
    """A values layer whose servers (JupyterLab) start only once the file `gate` exists:
    a start stays pending for as long as a test or a chapter needs, with
    concurrentSpawnLimit reached behind it. JupyterHub appends the server's
    arguments to singleuser.cmd; "$@" passes them on."""
    wait = f"while [ ! -e {shlex.quote(str(gate))} ]; do sleep 0.2; done"
    command = ["sh", "-c", f'{wait}; exec jupyterhub-singleuser "$@"', "held-jupyterhub-singleuser"]
    return {"singleuser": {"cmd": command}}


@dataclass
class Arrival:
    student: str
    login_seconds: float | None = None
    ready_seconds: float | None = None
    failure: str | None = None
    # Pages a student had to act on: "Too many users... try again" (429), waited
    # out and reloaded; and "Server not running", answered with its Launch button.
    throttled: int = 0
    relaunched: int = 0


def class_fixture(
    students: int, team: str, base: Path = FIXTURE, also: tuple[str, ...] = ()
) -> dict:
    """The stand-in's world plus `students` new members of `team` (org:team), s001 onwards,
    and the members named in `also`."""
    world = yaml.safe_load(base.read_text())
    org, _, slug = team.partition(":")
    first_id = 100_000
    for login in [*student_logins(students), *also]:
        world["users"][login] = {
            "id": first_id + len(world["users"]),
            "name": f"Student {login}",
            "email": f"{login}@example.org",
        }
        world["organizations"][org]["members"].append(login)
        world["organizations"][org]["teams"][slug]["members"].append(login)
    return world


def student_logins(students: int) -> list[str]:
    width = max(3, len(str(students)))
    return [f"s{index:0{width}d}" for index in range(1, students + 1)]


def arrive(hub: LocalHub, student: str, timeout: float) -> Arrival:
    arrival = Arrival(student)
    start = time.monotonic()
    deadline = start + timeout
    try:
        login = login_with_standin(hub.url, student)
        page = login.response
        if page.status_code != 429:
            page.raise_for_status()  # refused, or the hub failed: no login
        arrival.login_seconds = time.monotonic() - start
        while time.monotonic() < deadline:
            if page.status_code == 429:
                # The page says "try again in N seconds"; a student does, once.
                arrival.throttled += 1
                time.sleep(
                    min(float(page.headers.get("Retry-After", 30)), deadline - time.monotonic())
                )
                page = login.session.get(f"{hub.url}/hub/spawn/{student}", timeout=60)
                continue
            page.raise_for_status()
            try:
                server = follow_progress(
                    login.session, hub.url, student, timeout=deadline - time.monotonic()
                )
            except requests.HTTPError as err:
                if err.response.status_code != 400:
                    raise
                # "not starting": the spawn page shows "Server not running".
                arrival.relaunched += 1
                page = login.session.get(f"{hub.url}/hub/spawn/{student}", timeout=60)
                continue
            server.raise_for_status()
            arrival.ready_seconds = time.monotonic() - start
            return arrival
        arrival.failure = f"not ready within {timeout:.0f} s"
    except TimeoutError:
        arrival.failure = f"not ready within {timeout:.0f} s"
    except RuntimeError as err:
        arrival.failure = f"start failed: {err}"
    except requests.HTTPError as err:
        where = urlsplit(err.response.url).path.replace(f"/{student}/", "/<student>/")
        arrival.failure = f"HTTP {err.response.status_code} from {where}"
    except (requests.RequestException, ValueError) as err:
        arrival.failure = type(err).__name__
    return arrival


def process_cpu_seconds(pid: int) -> float | None:
    """A process's own CPU time (user and system), from Linux /proc; None once it has gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # utime and stime: fields 14 and 15, counted after the command's closing ")".
    user, system = stat.rpartition(")")[2].split()[11:13]
    return (int(user) + int(system)) / os.sysconf("SC_CLK_TCK")


class HubWatch:
    """Watches the hub process (Linux /proc): has it exited, its peak memory, its CPU time."""

    def __init__(self, hub: LocalHub):
        self.process = hub.hub_process
        self.peak_rss_mb = 0.0
        self.exited_with: int | None = None
        self._cpu_seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def cpu_seconds(self) -> float:
        """The hub's CPU time (user and system) read now; once it has exited, the last read."""
        seconds = process_cpu_seconds(self.process.pid)
        if seconds is not None:
            self._cpu_seconds = seconds
        return self._cpu_seconds

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
            self.cpu_seconds()  # kept fresh for a read after the hub has exited

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


def spread(values: list[float]) -> dict:
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": round(max(values), 2) if values else None,
    }


def let_class_arrive(
    hub: LocalHub, watch: HubWatch, logins: list[str], over: float, timeout: float
) -> tuple[list[Arrival], str | None]:
    """Start each student's arrival on schedule; stop sending more when the hub is gone."""
    futures, stopped_because = [], None
    with ThreadPoolExecutor(max_workers=len(logins)) as pool:
        for student in logins:
            stopped_because = stopped_because or why_stop(watch, futures)
            if stopped_because:
                break
            futures.append(pool.submit(arrive, hub, student, timeout))
            time.sleep(over / len(logins))
        arrivals = [future.result() for future in futures]
    for student in logins[len(arrivals) :]:
        arrivals.append(Arrival(student, failure="not sent: the run stopped early"))
    return arrivals, stopped_because or why_stop(watch, [])


def why_stop(watch: HubWatch, futures: list) -> str | None:
    if watch.exited_with is not None:
        return f"the hub exited with status {watch.exited_with}"
    done = [future.result() for future in futures if future.done()]
    if len(done) >= REFUSALS_BEFORE_STOPPING and all(a.login_seconds is None for a in done):
        causes = Counter(a.failure for a in done).most_common(1)[0][0]
        return f"the hub refused every login so far ({len(done)}): {causes}"
    return None


def cull_class(
    hub: LocalHub,
    watch: HubWatch,
    values: dict,
    ready: list[str],
    active_share: float,
    profile: bool = False,
) -> dict:
    """Everyone idle but a few who were just active; one culling pass an idle timeout later.

    Measured: the pass, until every stop is done, and the hub's CPU time meanwhile.

    With `profile`, py-spy samples the hub from the pass's start until every stop is
    done, and the result says where the hub's time went (hub_profile.summary).
    """
    cull = values["cull"]
    token = culler_token(hub)
    now = datetime.now(UTC)
    moment = now + timedelta(seconds=cull["timeout"] + 60)
    # The hub takes no activity from over an hour ahead: at most 50 minutes on.
    active_at = now + timedelta(seconds=min(cull["timeout"], 3000))
    active = ready[:: round(1 / active_share)] if active_share and ready else []
    for student in active:
        report_activity(hub, student, active_at)
    idle = set(ready) - set(active)
    with sampled(hub.hub_process.pid, CULL_STEPS, enabled=profile) as sampling:
        start, cpu_at_start = time.monotonic(), watch.cpu_seconds()
        asyncio.run(cull_pass_at(f"{hub.url}/hub/api", token, cull, moment))
        pass_seconds = time.monotonic() - start
        with contextlib.suppress(WaitTimeout):
            hub.client.wait_stopped(idle, STOPS_TIMEOUT)
        all_stopped_seconds = time.monotonic() - start
        cpu_seconds = watch.cpu_seconds() - cpu_at_start
    idle_left = hub.client.with_servers(idle)
    running = {user["name"] for user in hub.client.every("/users", state="active")}
    profiled = {"hub_profile": sampling.summary} if profile else {}
    return {
        "idle": len(idle),
        "active": len(active),
        "pass_seconds": round(pass_seconds, 2),
        "all_stopped_seconds": round(all_stopped_seconds, 2),
        "hub_cpu_seconds": round(cpu_seconds, 1),
        "idle_left_running": len(idle_left),
        "active_stopped": len(set(active) - running),
        **profiled,
    }


def run_class(
    students: int,
    over: float,
    *,
    stock: bool,
    state: Path,
    server: str = "jupyterlab",
    stop_seconds: float = 0,
    active_share: float = 0.1,
    timeout: float = 180,
    extra_values: list[dict] = (),
    team: str | None = None,
    profile: bool = False,
    deployment: str = "local",
) -> dict:
    """Start a hub, let the class arrive, cull it, stop everything; the summary as data.

    `profile`: py-spy samples the hub while the class arrives and during the cull.
    `deployment` "local-kube": the chart's KubeSpawner and the Kubernetes stand-in."""
    merged = load(deployment)
    values = merged.values
    through_kube = merged.backend == kube_backend.BACKEND
    if through_kube and stop_seconds:
        raise LocalHubError("stop_seconds is the local spawner's; a pod's stop is the kubelet's")
    team = team or values["custom"]["github"]["studentTeams"][0]
    fixture = state / "class-fixture.yaml"
    fixture.write_text(yaml.safe_dump(class_fixture(students, team, also=(CULL_PASS_USER,))))
    extra = [cull_pass_role(merged)] + ([stock_settings()] if stock else [])
    if through_kube and server == "lightweight":
        extra.append(kube_backend.lightweight_values())
    extra += extra_values
    if stop_seconds:
        spawner = LOCAL_SPAWNERS[server]
        extra.append({"hub": {"config": {spawner: {"stop_seconds": stop_seconds}}}})
    logins = student_logins(students)
    with (
        (state / "hub.log").open("w") as log,
        LocalHub(
            state / "hub",
            port=free_port(),
            extra_values=extra,
            log_file=log,
            fixture=fixture,
            server=server,
            deployment=deployment,
        ) as hub,
        HubWatch(hub) as watch,
    ):
        marker = hub.marker
        start, cpu_at_start = time.monotonic(), watch.cpu_seconds()
        with sampled(hub.hub_process.pid, ARRIVAL_STEPS, enabled=profile) as sampling:
            arrivals, stopped_because = let_class_arrive(hub, watch, logins, over, timeout)
        arrival_seconds = time.monotonic() - start
        cpu_during_arrival = watch.cpu_seconds() - cpu_at_start
        ready = [a.student for a in arrivals if a.ready_seconds is not None]
        cull = (
            None
            if stopped_because
            else cull_class(hub, watch, values, ready, active_share, profile=profile)
        )
        standin_cpu = process_cpu_seconds(hub.kube_process.pid) if through_kube else None
    ready_seconds = [a.ready_seconds for a in arrivals if a.ready_seconds is not None]
    return {
        "settings": "z2jh chart defaults" if stock else "coursehub values",
        "deployment": deployment,
        "spawner": "KubeSpawner on the Kubernetes stand-in" if through_kube else "local processes",
        # The stand-in's own CPU (API server and kubelet, not the servers), whole run.
        **({"standin_cpu_seconds": round(standin_cpu, 2)} if through_kube else {}),
        "server": SERVERS[server],
        "students": students,
        "over_seconds": over,
        "stopped_early_because": stopped_because,
        "ready": len(ready_seconds),
        "failures": dict(Counter(a.failure for a in arrivals if a.failure)),
        "hub_exited_with": watch.exited_with,
        "hub_peak_rss_mb": round(watch.peak_rss_mb, 1),
        "hub_cpu_seconds_during_arrival": round(cpu_during_arrival, 1),
        "arrival_seconds": round(arrival_seconds, 1),
        "login_seconds": spread([a.login_seconds for a in arrivals if a.login_seconds is not None]),
        "students_throttled": sum(1 for a in arrivals if a.throttled),
        "students_relaunched": sum(1 for a in arrivals if a.relaunched),
        "ready_seconds": spread(ready_seconds),
        "stop_seconds": stop_seconds,
        "cull": cull,
        **({"hub_profile_during_arrival": sampling.summary} if profile else {}),
        # Processes of this hub still there after it stopped: always none.
        "processes_left": len(processes_marked(marker)),
        "arrivals": [asdict(a) for a in arrivals],
    }


def prod_database_layer(database: Database) -> dict:
    """A values layer pointing the hub at `database` the way prod's hub.db is set."""
    return {"hub": {"db": database.hub_db(load("prod").values)}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--over", type=float, default=30, help="seconds the arrivals spread over")
    parser.add_argument("--stock", action="store_true", help="the chart's default settings")
    parser.add_argument("--server", choices=sorted(SERVERS), default="jupyterlab")
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="the local hub's SQLite file, or a throwaway PostgreSQL with prod's hub.db",
    )
    parser.add_argument(
        "--stop-seconds", type=float, default=0, help="extra time each server's stop takes"
    )
    parser.add_argument(
        "--values",
        type=Path,
        action="append",
        default=[],
        help="a values file layered after the deployment's (and --stock), to measure a setting",
    )
    parser.add_argument("--output", type=Path, help="write the summary here as JSON")
    args = parser.parse_args(argv)
    if args.students < 1 or args.over < 0 or args.stop_seconds < 0:
        parser.error("--students must be at least 1, --over and --stop-seconds not negative")
    try:
        with contextlib.ExitStack() as stack:
            extra = [read_yaml(path) for path in args.values]
            if args.database == "postgres":
                extra.insert(0, prod_database_layer(stack.enter_context(throwaway_postgres())))
            result = run_class(
                args.students,
                args.over,
                stock=args.stock,
                state=Path(stack.enter_context(tempfile.TemporaryDirectory())),
                server=args.server,
                stop_seconds=args.stop_seconds,
                extra_values=extra,
            )
            result["database"] = args.database
    except (ConfigError, LocalHubError, PostgresUnavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "arrivals"}, indent=2))
    if result["stopped_early_because"]:
        print(f"stopped early: {result['stopped_early_because']}", file=sys.stderr)
    return 0 if result["hub_exited_with"] is None and not result["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
