"""What a student who is waiting for a start is told: how many wait before them, about how long.

When `concurrent_spawn_limit` starts are pending, JupyterHub answers /hub/spawn
with 429 and a Retry-After (ref: jupyterhub 5.5 handlers/base.py
spawn_single_user); it keeps no queue, so who gets the next free place is whoever
retries first. The page (hub-config/templates/429.html) reloads itself after the
Retry-After. This module keeps, in the hub's memory, who has seen that page
recently and since when, and how fast the hub has been finishing starts (its own
metric, jupyterhub_server_spawn_duration_seconds), so the page can say "about N
ahead of you, about T seconds".
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

# A student not seen again for this long (two of JupyterHub's longest default
# retries) closed the page: no longer counted as waiting.
GONE_AFTER_SECONDS = 120
# The start rate is measured over at most this long a window.
RATE_WINDOW_SECONDS = 120


@dataclass(frozen=True)
class Place:
    ahead: int  # students who were told to wait before this one and still wait
    starts_per_minute: float | None  # how fast the hub finished starts lately; None: none yet
    wait_seconds: int | None  # roughly until this student's turn; None: no rate to go by


class SpawnQueue:
    """The students told to wait, in the order they were first told, and the hub's start rate."""

    def __init__(self, finished_starts=None, clock=time.monotonic):
        self._finished_starts = finished_starts or successful_spawns
        self._clock = clock
        self._first_seen: dict[str, float] = {}
        self._last_seen: dict[str, float] = {}
        self._counts: deque[tuple[float, float]] = deque()

    def __contains__(self, name: str) -> bool:
        return name in self._first_seen

    def forget(self, name: str) -> None:
        """`name` waits no more: their start is under way."""
        self._first_seen.pop(name, None)
        self._last_seen.pop(name, None)

    def place_of(self, name: str) -> Place:
        """Record that `name` was told to wait now; where they stand."""
        now = self._clock()
        for other in list(self._first_seen):
            if now - self._last_seen[other] > GONE_AFTER_SECONDS:
                self.forget(other)
        first = self._first_seen.setdefault(name, now)
        self._last_seen[name] = now
        ahead = sum(1 for seen in self._first_seen.values() if seen < first)
        rate = self._starts_per_second(now)
        return Place(
            ahead=ahead,
            starts_per_minute=None if rate is None else round(rate * 60, 1),
            wait_seconds=None if not rate else math.ceil((ahead + 1) / rate),
        )

    def _starts_per_second(self, now: float) -> float | None:
        self._counts.append((now, self._finished_starts()))
        while self._counts and now - self._counts[0][0] > RATE_WINDOW_SECONDS:
            self._counts.popleft()
        then, count_then = self._counts[0]
        if now - then < 1:
            return None
        return (self._counts[-1][1] - count_then) / (now - then)


def successful_spawns() -> float:
    """How many starts the hub has finished since it started, from its Prometheus metric."""
    from jupyterhub.metrics import SERVER_SPAWN_DURATION_SECONDS

    for metric in SERVER_SPAWN_DURATION_SECONDS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count") and sample.labels.get("status") == "success":
                return sample.value
    return 0.0


QUEUE = SpawnQueue()


def spawn_queue(user):
    """For c.JupyterHub.template_vars: a function the 429 page calls to learn its place.

    JupyterHub calls each callable template variable with the page's user for every
    page it renders (ref: jupyterhub 5.5 handlers/base.py template_namespace), so a
    student whose start is under way is forgotten at their next page (the
    spawn-pending page); the returned function costs nothing unless a page calls
    it, which only the 429 page does.
    """
    if user is not None and user.name in QUEUE and user.spawner.active:
        QUEUE.forget(user.name)

    def place() -> Place | None:
        return None if user is None else QUEUE.place_of(user.name)

    return place
