"""The measurements the book reports: a class arriving, a class culled, the hub restarted.

    coursehub-loadtest                  every measurement below (about an hour here)
    coursehub-loadtest burst culling    some of them, by name

Each writes book/measurements/<name>.json with the machine it ran on and the
command that reproduces it; the chapters "Culling" and "Pre-pulling and
capacity" read those files. Run it alone on the machine: anything else using
the CPU shows up in the figures (the load average at the start is recorded).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from coursehub_tools.class_arrival import prod_database_layer, run_class
from coursehub_tools.deployconfig import ROOT, ConfigError
from coursehub_tools.hub_restart import restart_with
from coursehub_tools.local_hub import LocalHubError
from coursehub_tools.local_postgres import PostgresUnavailable, throwaway_postgres

MEASUREMENTS_DIR = ROOT / "book" / "measurements"


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.startswith("model name")), platform.machine())  # fmt: skip
    meminfo = Path("/proc/meminfo").read_text().split()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 2**20, 1),
        "system": platform.platform(terse=True),
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg()[0],
    }


def class_runs(students: int, over: float, settings: list[bool], repeat: int = 1, **kw):
    """`repeat` runs of the class for each of our settings (False) and the chart's (True)."""

    def run(state: Path) -> list[dict]:
        results = []
        for stock in settings:
            for attempt in range(repeat):
                folder = state / f"{'stock' if stock else 'ours'}-{attempt}"
                folder.mkdir()
                results.append(run_class(students, over, stock=stock, state=folder, **kw))
        return results

    return run


def in_turn(*runs: Callable[[Path], list[dict]]) -> Callable[[Path], list[dict]]:
    """Several runs one after the other, each in its own folder, their results together."""

    def run(state: Path) -> list[dict]:
        results = []
        for index, each in enumerate(runs):
            folder = state / f"run-{index}"
            folder.mkdir()
            results += each(folder)
        return results

    return run


def restart(users: int, running: int, database: str = "sqlite"):
    """The hub restarted on the local hub's SQLite file, or on PostgreSQL as prod's is."""

    def run(state: Path) -> list[dict]:
        with contextlib.ExitStack() as stack:
            extra = []
            if database == "postgres":
                extra.append(prod_database_layer(stack.enter_context(throwaway_postgres())))
            result = restart_with(users, running, state=state, over=300, extra_values=extra)
        return [{**result, "database": database}]

    return run


# name: (what it shows, the run, the command line that repeats one run of it)
MEASUREMENTS: dict[str, tuple[str, Callable[[Path], list[dict]]]] = {
    "burst": (
        "20 students over 30 s with JupyterLab, ten runs in a row, our settings",
        class_runs(20, 30, [False], repeat=10),
    ),
    "jupyterlab-40": (
        "40 students over 60 s with JupyterLab, our settings and the chart's",
        class_runs(40, 60, [False, True]),
    ),
    "class-1000": (
        "1000 students over 60 s with lightweight servers whose stop takes 0.2 s, then "
        "one culling pass; our settings and the chart's",
        class_runs(1000, 60, [False, True], server="lightweight", stop_seconds=0.2),
    ),
    "class-1000-paced": (
        "1000 students over 4 minutes with lightweight servers whose stop takes 0.2 s, then "
        "one culling pass; our settings",
        class_runs(1000, 240, [False], server="lightweight", stop_seconds=0.2),
    ),
    "cull-1000": (
        "1100 students over 4.5 minutes with lightweight servers whose stop takes 0.2 s, "
        "one in eleven just active, then one culling pass over the 1000 idle",
        class_runs(1100, 270, [False], server="lightweight", stop_seconds=0.2, active_share=1 / 11),
    ),
    "class-400-profiled": (
        "400 students over 2 minutes with lightweight servers whose stop takes 0.2 s, then "
        "one culling pass, with py-spy sampling the hub: where its time goes",
        class_runs(400, 120, [False], server="lightweight", stop_seconds=0.2, profile=True),
    ),
    "class-300-kube": (
        "300 students over 60 s with lightweight servers, then one culling pass, our settings: "
        "through the chart's KubeSpawner and the Kubernetes stand-in (deployment local-kube), "
        "and beside it through the local spawner (deployment local)",
        in_turn(
            *(
                class_runs(300, 60, [False], server="lightweight", deployment=deployment)
                for deployment in ("local-kube", "local")
            )
        ),
    ),
    "kube-class-50": (
        "50 students over 30 s with lightweight servers, then one culling pass, our settings: "
        "through the chart's KubeSpawner and the Kubernetes stand-in (deployment local-kube), "
        "and beside it through the local spawner (deployment local)",
        in_turn(
            *(
                class_runs(50, 30, [False], server="lightweight", deployment=deployment)
                for deployment in ("local-kube", "local")
            )
        ),
    ),
    "restart-10000": (
        "the hub killed and restarted with 10000 users and 1000 running lightweight servers",
        restart(10_000, 1000),
    ),
    "restart-10000-postgres": (
        "the same restart with the hub's database on PostgreSQL, as prod's is",
        restart(10_000, 1000, database="postgres"),
    ),
}


def measure(name: str) -> Path:
    what, run = MEASUREMENTS[name]
    started = {"machine": machine(), "started_at_unix": int(time.time())}
    started_load = list(os.getloadavg())
    with tempfile.TemporaryDirectory() as state:
        results = run(Path(state))
    output = MEASUREMENTS_DIR / f"{name}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "measurement": name,
        "what": what,
        "command": f"nox -s loadtest -- {name}",
        **started,
        "results": results,
    }
    # One line: a thousand arrivals a run make an indented file long for nothing.
    # Whatever else ran meanwhile (other users of a shared machine) shows here: the
    # 1, 5 and 15 minute load averages when the run began and when it ended.
    record["machine"]["load_averages"] = {"start": started_load, "end": list(os.getloadavg())}
    output.write_text(json.dumps(record) + "\n")
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="name", help=", ".join(MEASUREMENTS))
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(MEASUREMENTS))
    if unknown:
        parser.error(f"unknown measurement {', '.join(unknown)}; known: {', '.join(MEASUREMENTS)}")
    for name in args.names or MEASUREMENTS:
        print(f"measuring {name}: {MEASUREMENTS[name][0]}", flush=True)
        try:
            print(f"wrote {measure(name).relative_to(ROOT)}", flush=True)
        except (ConfigError, LocalHubError, PostgresUnavailable) as err:
            print(f"error: {name}: {err}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
