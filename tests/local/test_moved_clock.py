"""The days the tests move the clock to, and the clock they move (scripts/local/moved_clock.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from coursehub.courses import load_courses
from coursehub_tools.config.deployconfig import load
from coursehub_tools.local.moved_clock import CannotMoveClock, days_around, moved_clock_environment

pytestmark = pytest.mark.unit

REGISTRY = load_courses(load("prod").values["custom"]["courses"])


def course(slug: str, start: str, end: str):
    return replace(
        REGISTRY[0], slug=slug, start=date.fromisoformat(start), end=date.fromisoformat(end)
    )


def test_each_set_of_open_courses_gets_a_day_inside_it():
    spring, summer, autumn = (
        course("spring", "2027-03-01", "2027-05-31"),
        course("summer", "2027-05-01", "2027-07-31"),
        course("autumn", "2027-09-01", "2027-12-15"),
    )
    days = days_around([autumn, summer, spring])
    assert days == {
        "before every course": date(2027, 1, 30),
        "inside spring": date(2027, 3, 31),
        "inside spring and summer": date(2027, 5, 16),
        "inside summer": date(2027, 7, 1),
        "between courses": date(2027, 8, 16),
        "inside autumn": date(2027, 10, 24),
        "after every course": date(2028, 1, 14),
        "2 years after every course": date(2029, 12, 14),
    }
    for name, day in days.items():
        open_then = {c.slug for c in (spring, summer, autumn) if c.start <= day <= c.end}
        if name.startswith("inside "):
            assert open_then == set(name.removeprefix("inside ").split(" and "))
        else:
            assert open_then == set(), name


def test_the_example_registry_has_days_before_inside_and_after_its_courses():
    names = list(days_around(REGISTRY))
    assert names[0] == "before every course" and names[-2] == "after every course"
    assert sum(name.startswith("inside ") for name in names) >= len(REGISTRY)


def test_a_moved_clock_moves_a_process_and_its_children_to_the_day():
    env = moved_clock_environment(date(2029, 9, 1), os.environ)
    assert env["PATH"] == os.environ["PATH"], "everything else is kept"
    script = (
        "import datetime, subprocess, sys, time; t = time.monotonic(); time.sleep(0.2);"
        "assert time.monotonic() - t >= 0.2, 'sleep and the monotonic clock still run';"
        "print(datetime.date.today());"
        "sys.stdout.flush();"
        "subprocess.run([sys.executable, '-c', 'import datetime; print(datetime.date.today())'])"
    )
    days = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert days == ["2029-09-01", "2029-09-01"]


def test_a_clock_already_moved_is_moved_from_the_real_time():
    real = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
    moved_a_day = {"FAKETIME": "+86400", "FAKETIME_SHARED": "/sem /shm", "HOME": "/home/x"}
    env = moved_clock_environment(date(2026, 12, 9), moved_a_day, now=real + timedelta(days=1))
    assert env["FAKETIME"] == f"+{2 * 86400}"
    assert "FAKETIME_SHARED" not in env and env["HOME"] == "/home/x"


def test_a_faketime_that_is_not_an_offset_is_refused_in_one_line():
    with pytest.raises(CannotMoveClock, match=r"FAKETIME='@2027-01-01 10:00:00' is not an offset"):
        moved_clock_environment(date(2027, 3, 15), {"FAKETIME": "@2027-01-01 10:00:00"})


def test_the_services_the_hub_starts_share_its_moved_clock():
    from coursehub_tools.local.hub.spawner import MOVED_CLOCK, services_share_the_clock

    started = {"name": "enrollment", "command": ["python"], "environment": {"A": "1"}}
    external = {"name": "prometheus", "api_token": "t"}
    moved = {"LD_PRELOAD": "/lib/libfaketime.so.1", "FAKETIME": "+86400", "HOME": "/x"}
    services_share_the_clock([started, external], moved)
    assert started["environment"] == {"A": "1", **{key: moved[key] for key in MOVED_CLOCK}}
    assert "environment" not in external, "the hub does not start it"

    unmoved = {"name": "culler", "command": ["python"]}
    services_share_the_clock([unmoved], {"HOME": "/x"})
    assert "environment" not in unmoved, "no moved clock, nothing added"
