"""What a running hub reports to Prometheus, read the way Prometheus reads it.

GET /hub/metrics with a bearer token whose role holds `read:metrics` (the
`prometheus` service's, common.yaml), parsed with prometheus_client's own text
parser. The summary is what to watch while a class arrives. JupyterHub 5 has
no metric for starts in progress, so those come from the REST API (servers
whose `pending` is "spawn").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import requests
from prometheus_client.parser import text_string_to_metric_families

from coursehub_tools.hub_api import HubAPI

PREFIX = "jupyterhub_"
SPAWN_HISTOGRAM = PREFIX + "server_spawn_duration_seconds"
# Both upper bounds a chapter prints: half the starts, and all but the slowest tenth.
SHOWN_QUANTILES = (0.5, 0.9)


class MetricsRefused(Exception):
    """The hub refused the token: its role lacks `read:metrics`, or it is not a token."""


@dataclass(frozen=True)
class Snapshot:
    total_users: float
    active_users: dict[str, float]  # period -> users active in it
    running_servers: float
    spawns: dict[str, float]  # status -> starts that ended so
    spawn_seconds_sum: float
    spawns_within: dict[float, float]  # bucket upper bound (s) -> successful starts that fast
    pending: int
    # The hub process's own (prometheus_client's process collector, Linux only).
    hub_cpu_seconds: float
    hub_memory_bytes: float

    def spawn_quantile_bound(self, quantile: float) -> float | None:
        """The smallest bucket bound (s) within which `quantile` of the successful starts ended.

        A histogram keeps counts per bucket, not each duration, so this is an
        upper bound (Prometheus's histogram_quantile interpolates inside the
        bucket instead). None before the first successful start.
        """
        done = self.spawns.get("success", 0)
        if not done:
            return None
        for bound, count in sorted(self.spawns_within.items()):
            if count >= quantile * done:
                return bound
        return math.inf

    def rows(self) -> list[tuple[str, str]]:
        """The snapshot as (what, value) lines for a table."""
        done = self.spawns.get("success", 0)
        mean = self.spawn_seconds_sum / done if done else 0.0
        bounds = [(q, self.spawn_quantile_bound(q)) for q in SHOWN_QUANTILES]
        return [
            ("users", f"{self.total_users:.0f}"),
            *((f"active in the last {p}", f"{n:.0f}") for p, n in self.active_users.items()),
            ("servers running", f"{self.running_servers:.0f}"),
            ("starts in progress (REST API)", str(self.pending)),
            *((f"starts: {status}", f"{n:.0f}") for status, n in sorted(self.spawns.items())),
            ("mean successful start (s)", f"{mean:.2f}"),
            *(
                (f"{q:.0%} of the starts within (s)", f"≤ {bound:g}")
                for q, bound in bounds
                if bound is not None
            ),
            ("hub CPU since it started (s)", f"{self.hub_cpu_seconds:.1f}"),
            ("hub memory (MB)", f"{self.hub_memory_bytes / 1e6:.0f}"),
        ]


def scrape(hub_url: str, token: str) -> dict[str, list]:
    """Every sample of /hub/metrics, by metric family name.

    The token goes as Prometheus sends it (`authorization.credentials_file`
    makes a Bearer header; JupyterHub takes "token" or "bearer").
    """
    url = f"{hub_url}/hub/metrics"
    response = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    if response.status_code in (401, 403):
        raise MetricsRefused(
            f"{url} answered {response.status_code}: the token's role needs the read:metrics scope"
        )
    response.raise_for_status()
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


def count_pending(users: list[dict]) -> int:
    """Servers being started, in a REST API /users answer."""
    return sum(
        server.get("pending") == "spawn"
        for user in users
        for server in (user.get("servers") or {}).values()
    )


def pending_starts(hub_url: str, token: str) -> int:
    """Servers the hub is starting now, from the REST API (no metric says this).

    The token needs list:users and read:servers (an operator's, not the scraper's).
    """
    return count_pending(HubAPI(hub_url, token).every("/users", state="active"))


def snapshot(families: dict[str, list], pending: int) -> Snapshot:
    """The summary of one scrape, with the pending starts counted beside it."""

    def total(name: str) -> float:
        return sum(s.value for s in families.get(name, []))

    spawn = families.get(SPAWN_HISTOGRAM, [])
    succeeded = [s for s in spawn if s.labels.get("status") == "success"]
    counts = {s.labels["status"]: s.value for s in spawn if s.name.endswith("_count")}
    return Snapshot(
        total_users=total(PREFIX + "total_users"),
        active_users={
            s.labels["period"]: s.value for s in families.get(PREFIX + "active_users", [])
        },
        running_servers=total(PREFIX + "running_servers"),
        spawns={status: n for status, n in counts.items() if n},
        spawn_seconds_sum=sum(s.value for s in succeeded if s.name.endswith("_sum")),
        spawns_within={
            float(s.labels["le"]): s.value for s in succeeded if s.name.endswith("_bucket")
        },
        pending=pending,
        hub_cpu_seconds=total("process_cpu_seconds"),
        hub_memory_bytes=total("process_resident_memory_bytes"),
    )
