"""The hub database as staging and prod run it: PostgreSQL, through hub.db values.

A throwaway PostgreSQL server (Debian's, installed by `nox -s pytest`) on a
free loopback port; the local hub gets staging's hub.db settings pointed at it.
"""

from __future__ import annotations

import pytest

from coursehub_tools.config.deployconfig import load
from coursehub_tools.config.hub_client import login_with_standin, wait_for_server

pytestmark = pytest.mark.hub


def test_hub_keeps_users_in_postgres_as_staging_does(postgres, hub_factory):
    hub = hub_factory(extra_values={"hub": {"db": postgres.hub_db(load("staging").values)}})
    login = login_with_standin(hub.url, "sky")
    wait_for_server(login.session, hub.url, "sky")

    import psycopg2

    with psycopg2.connect(postgres.url, password=postgres.password) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT name FROM users ORDER BY name")
        assert ("sky",) in cursor.fetchall()
    assert not (hub.state_dir / "jupyterhub.sqlite").exists(), (
        "no SQLite file when hub.db says postgres"
    )


def test_the_hub_carries_on_when_postgres_restarts_under_it(postgres, hub_factory):
    hub = hub_factory(extra_values={"hub": {"db": postgres.hub_db(load("staging").values)}})
    sam = login_with_standin(hub.url, "sam")
    wait_for_server(sam.session, hub.url, "sam")
    before = hub.snapshot()
    postgres.restart()
    # The first query after the restart may find its pooled connection gone;
    # the hub must answer again at once, with everything it had.
    answers = [hub.api("GET", "/users").status_code for _ in range(3)]
    assert answers[-1] == 200, answers
    assert hub.snapshot() == before
    sky = login_with_standin(hub.url, "sky")
    wait_for_server(sky.session, hub.url, "sky")
    assert wait_for_server(sam.session, hub.url, "sam").status_code == 200
