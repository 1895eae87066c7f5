"""A student turned away by concurrent_spawn_limit is told they are queued, and gets in.

JupyterHub answers 429 with a Retry-After when `hub.concurrentSpawnLimit` starts
are pending; hub-config/templates/429.html makes that a page saying so, where
the student stands (hub-config/coursehub/queue.py) and that reloads itself.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from coursehub.queue import GONE_AFTER_SECONDS, SpawnQueue
from coursehub_tools.class_arrival import held_start
from coursehub_tools.hub_client import login_with_standin, wait_for_server


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.unit
def test_students_stand_in_the_order_they_were_first_told_to_wait():
    clock, finished = Clock(), [0]
    queue = SpawnQueue(finished_starts=lambda: finished[0], clock=clock)
    first = queue.place_of("ann")
    assert (first.ahead, first.starts_per_minute, first.wait_seconds) == (0, None, None)
    clock.now += 10
    finished[0] = 5  # half a start a second over those 10 s
    bob = queue.place_of("bob")
    assert bob.ahead == 1
    assert bob.starts_per_minute == 30.0
    assert bob.wait_seconds == 4, "two starts (ann's, then bob's) at 0.5 a second"
    clock.now += 5
    assert queue.place_of("ann").ahead == 0, "a retry keeps one's place"
    queue.forget("ann")
    assert queue.place_of("bob").ahead == 0


@pytest.mark.unit
def test_a_student_who_closed_the_page_no_longer_counts():
    clock = Clock()
    queue = SpawnQueue(finished_starts=lambda: 0, clock=clock)
    queue.place_of("ann")
    clock.now += GONE_AFTER_SECONDS + 1
    assert queue.place_of("bob").ahead == 0
    assert "ann" not in queue


@pytest.mark.hub
def test_the_student_past_the_spawn_limit_is_queued_and_gets_in(hub_factory, tmp_path):
    gate = tmp_path / "gate"
    hub = hub_factory(
        extra_values=[
            held_start(gate),
            {
                "hub": {
                    "concurrentSpawnLimit": 1,
                    # Not a config trait of JupyterHub's, read from tornado_settings (ref:
                    # jupyterhub 5.5 app.py spawn_throttle_retry_range, init_tornado_settings).
                    "config": {
                        "JupyterHub": {"tornado_settings": {"spawn_throttle_retry_range": [2, 3]}}
                    },
                },
            },
        ]
    )
    first = login_with_standin(hub.url, "sam", next_url="/hub/spawn")
    assert first.response.status_code == 200, "sam's start is under way"
    second = login_with_standin(hub.url, "sky", next_url="/hub/spawn")
    page = second.response
    assert page.status_code == 429, page.text[:500]
    retry_after = int(page.headers["Retry-After"])
    assert 2 <= retry_after <= 3
    assert "You are in the queue" in page.text
    assert re.search(rf'<meta http-equiv="refresh" content="{retry_after}">', page.text)
    assert "You are next." in page.text
    assert re.search(rf"tries again by itself in .*>{retry_after}</span> seconds", page.text)

    gate.touch()
    wait_for_server(first.session, hub.url, "sam")
    # What the browser does with the page: reload it after the time it says.
    deadline = time.monotonic() + 90
    while page.status_code == 429 and time.monotonic() < deadline:
        time.sleep(int(page.headers["Retry-After"]))
        page = second.session.get(page.url, timeout=60)
    assert page.status_code == 200, page.text[:500]
    wait_for_server(second.session, hub.url, "sky")


def render_429(**namespace) -> str:
    """hub-config's 429.html rendered as JupyterHub renders it: our templates first, its
    own after them and under the prefix templates/ (ref: jupyterhub 5.5 app.py
    init_tornado_settings)."""
    from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader
    from jupyterhub._data import DATA_FILES_PATH

    from coursehub.values import CONFIG_DIR

    theirs = str(Path(DATA_FILES_PATH) / "templates")
    loader = ChoiceLoader(
        [
            PrefixLoader({"templates": FileSystemLoader([theirs])}, "/"),
            FileSystemLoader([str(CONFIG_DIR / "templates"), theirs]),
        ]
    )
    page = Environment(loader=loader, autoescape=True).get_template("429.html")
    return page.render(static_url=lambda path, **kw: path, base_url="/hub/", **namespace)


@pytest.mark.unit
def test_a_429_without_retry_after_is_jupyterhubs_own_page():
    """active_server_limit's 429 says "try again in a few minutes" and sends no Retry-After:
    no queue to stand in, so no queue page and no reload."""
    from tornado import web

    limit = web.HTTPError(429, "Active user limit exceeded. Try again in a few minutes.")
    page = render_429(
        status_code=429,
        status_message="Too Many Requests",
        message="Active user limit exceeded. Try again in a few minutes.",
        exception=limit,
    )
    assert "Active user limit exceeded" in page
    assert "queue" not in page
    assert 'http-equiv="refresh"' not in page


@pytest.mark.unit
def test_the_queue_page_says_how_many_wait_before_and_about_how_long():
    from tornado import web

    from coursehub.queue import Place

    throttled = web.HTTPError(429, "Too many users trying to log in right now.")
    throttled.headers = {"Retry-After": 17}
    page = render_429(
        status_code=429,
        status_message="Too Many Requests",
        message="Too many users trying to log in right now.",
        exception=throttled,
        spawn_queue=lambda: Place(ahead=3, starts_per_minute=120.0, wait_seconds=2),
    )
    assert "You are in the queue" in page
    assert '<meta http-equiv="refresh" content="17">' in page
    assert " ".join(page.split()).count("3 students are waiting before you.") == 1
    assert "about 120.0 starts a minute" in " ".join(page.split())
    assert "in about 2 seconds" in " ".join(page.split())
