"""Other days for the tests: dates around the registry's courses, and a clock moved to one.

The demo school's hubs judge courses by a pinned date (config/demo-date.yaml),
so nothing the README, the tests or the chapters run may depend on the day
they are run. `days_around` names the days on which a dependence would show:
before every course, inside each course alone, inside two at once, between two,
and after every course. `moved_clock_environment` is what a process needs to
live on one of them: Debian's libfaketime preloaded with an offset, so every
process it starts (hub, proxy, JupyterLab) shares that calendar and its
clock still runs.
"""

from __future__ import annotations

import glob
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta

from coursehub.courses import Course

# A class morning, UTC: the hour the moved clock starts at on each day.
MORNING = time(9, 30)
LIBFAKETIME = "/usr/lib/*/faketime/libfaketime.so.1"


class CannotMoveClock(Exception):
    """libfaketime is missing, or this process's clock is moved in a way that cannot be
    added to; the message says what to do."""


def days_around(courses: Iterable[Course], years_after: int = 2) -> dict[str, date]:
    """Named days on which a different set of courses is open, from the courses' own dates.

    One day in the middle of the first stretch of each set (none, one course
    alone, two at once), plus a month before the first and after the last.
    """
    courses = list(courses)
    if not courses:
        return {}
    first, last = min(c.start for c in courses), max(c.end for c in courses)
    # The first stretch of consecutive days with each set of open courses.
    stretches: dict[frozenset[str], list[date]] = {}
    done: set[frozenset[str]] = set()
    previous: frozenset[str] | None = None
    for n in range((last - first).days + 1):
        day = first + timedelta(days=n)
        open_now = frozenset(c.slug for c in courses if c.start <= day <= c.end)
        if previous is not None and open_now != previous:
            done.add(previous)
        if open_now not in done:
            stretches.setdefault(open_now, []).append(day)
        previous = open_now
    days = {"before every course": first - timedelta(days=30)}
    for open_now, stretch in stretches.items():
        name = f"inside {' and '.join(sorted(open_now))}" if open_now else "between courses"
        days[name] = stretch[len(stretch) // 2]
    days["after every course"] = last + timedelta(days=30)
    days[f"{years_after} years after every course"] = last + timedelta(days=365 * years_after)
    return days


def moved_clock_environment(
    day: date, base: Mapping[str, str], now: datetime | None = None
) -> dict[str, str]:
    """`base` (an environment) with the clock of its processes, and their children's, on `day`.

    libfaketime adds its offset to the real clock, and the offset is taken from
    the real time, so processes started later agree with those started earlier,
    as on one machine. When this process already runs on a moved clock (the
    whole suite under `faketime`), its own offset is taken off first.
    """
    found = sorted(glob.glob(LIBFAKETIME))
    if not found:
        raise CannotMoveClock(
            "libfaketime is not installed: install Debian's or Ubuntu's `faketime` package "
            "(`nox -s pytest` does)"
        )
    real_now = (now or datetime.now(UTC)) - timedelta(seconds=_moved_by(base))
    offset = datetime.combine(day, MORNING, UTC) - real_now
    environment = {key: value for key, value in base.items() if not key.startswith("FAKETIME")}
    # ref: libfaketime's README: "+N" moves every clock, monotonic included, by N
    # seconds; not faking the monotonic clock (FAKETIME_DONT_FAKE_MONOTONIC)
    # breaks Python's time.sleep under it.
    return {**environment, "LD_PRELOAD": found[0], "FAKETIME": f"{int(offset.total_seconds()):+d}"}


def _moved_by(environment: Mapping[str, str]) -> int:
    """Seconds a relative FAKETIME ("+N", as Debian's `faketime` sets) moves this process by."""
    moved = environment.get("FAKETIME", "")
    if not moved:
        return 0
    try:
        return int(moved)
    except ValueError:
        raise CannotMoveClock(
            f"FAKETIME={moved!r} is not an offset in seconds; run under `faketime 'YYYY-MM-DD "
            "HH:MM:SS'` (which sets one) or without FAKETIME"
        ) from None
