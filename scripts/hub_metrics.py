"""What a running hub reports to Prometheus, read the way Prometheus reads it.

GET /hub/metrics with a token whose role holds `read:metrics` (the `prometheus`
service's, common.yaml), parsed with prometheus_client's own text parser. The
summary is what to watch while a class arrives; JupyterHub has no metric for
starts in progress, so those come from the REST API (servers marked pending).
"""

from __future__ import annotations

from dataclasses import dataclass

import requests
from prometheus_client.parser import text_string_to_metric_families

PREFIX = "jupyterhub_"


@dataclass(frozen=True)
class Snapshot:
    total_users: float
    active_users: dict[str, float]  # period -> users active in it
    running_servers: float
    spawns: dict[str, float]  # status -> count
    spawn_seconds_sum: float
    spawns_within: dict[float, float]  # bucket upper bound (s) -> successful spawns that fast
    pending: int

    def rows(self) -> list[tuple[str, str]]:
        """The snapshot as (what, value) lines for a table."""
        done = self.spawns.get("success", 0)
        mean = self.spawn_seconds_sum / done if done else 0.0
        rows = [
            ("users", f"{self.total_users:.0f}"),
            *((f"active in the last {p}", f"{n:.0f}") for p, n in self.active_users.items()),
            ("servers running", f"{self.running_servers:.0f}"),
            ("starts in progress", str(self.pending)),
            *((f"starts: {status}", f"{n:.0f}") for status, n in sorted(self.spawns.items())),
            ("mean successful start (s)", f"{mean:.2f}"),
        ]
        return rows


def scrape(hub_url: str, token: str) -> dict[str, list]:
    """Every sample of /hub/metrics, by metric family name; refused tokens raise."""
    response = requests.get(
        f"{hub_url}/hub/metrics", headers={"Authorization": f"token {token}"}, timeout=30
    )
    response.raise_for_status()
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


def pending_starts(hub_url: str, token: str) -> int:
    """Servers the hub is starting now, from the REST API (no metric says this)."""
    response = requests.get(
        f"{hub_url}/hub/api/users",
        params={"state": "active"},
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    response.raise_for_status()
    return sum(
        server.get("pending") == "spawn"
        for user in response.json()
        for server in user["servers"].values()
    )


def snapshot(families: dict[str, list], pending: int) -> Snapshot:
    def one(name: str) -> float:
        return sum(s.value for s in families.get(PREFIX + name, []))

    spawn = families.get(PREFIX + "server_spawn_duration_seconds", [])
    counts = {s.labels["status"]: s.value for s in spawn if s.name.endswith("_count")}
    return Snapshot(
        total_users=one("total_users"),
        active_users={
            s.labels["period"]: s.value for s in families.get(PREFIX + "active_users", [])
        },
        running_servers=one("running_servers"),
        spawns={status: n for status, n in counts.items() if n},
        spawn_seconds_sum=sum(
            s.value for s in spawn if s.name.endswith("_sum") and s.labels["status"] == "success"
        ),
        spawns_within={
            float(s.labels["le"]): s.value
            for s in spawn
            if s.name.endswith("_bucket") and s.labels["status"] == "success"
        },
        pending=pending,
    )
