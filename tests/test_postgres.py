"""The hub database as staging and prod run it: PostgreSQL, through hub.db values.

A throwaway PostgreSQL server (Debian's, installed by `nox -s pytest`) on a
free loopback port; the local hub gets staging's hub.db settings pointed at it.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from coursehub_tools.deployconfig import load
from coursehub_tools.hub_client import login_with_standin, wait_for_server
from coursehub_tools.local_hub import free_port

pytestmark = pytest.mark.hub


def _as_postgres_user() -> list[str]:
    """Run PostgreSQL as the `postgres` account when we are root: it refuses to run as root."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and there is no postgres account to run PostgreSQL as")
    return ["runuser", "-u", "postgres", "--"]


@pytest.fixture
def postgres():
    """A PostgreSQL server with a `jupyterhub` role and database; yields its URL and password."""
    servers = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not servers:
        pytest.skip("Debian's postgresql is not installed (nox -s pytest installs it)")
    bindir = Path(servers[-1]).parent
    prefix = _as_postgres_user()
    data = Path(tempfile.mkdtemp(prefix="coursehub-pg-"))
    if prefix:
        shutil.chown(data, "postgres", "postgres")
    password = secrets.token_hex(16)
    port = free_port()
    run = lambda *cmd: subprocess.run([*prefix, *cmd], check=True, capture_output=True)  # noqa: E731
    # Local socket connections (this fixture) are trusted; TCP (the hub) needs the password.
    run(str(bindir / "initdb"), "-D", str(data / "db"), "--username=postgres",
        "--auth-local=trust", "--auth-host=scram-sha-256")  # fmt: skip
    run(str(bindir / "pg_ctl"), "-D", str(data / "db"), "-w", "-l", str(data / "log"),
        "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start")  # fmt: skip
    try:
        sql = f"CREATE ROLE jupyterhub LOGIN PASSWORD '{password}'; "
        run("psql", "-h", str(data), "-p", str(port), "-U", "postgres", "-c", sql)
        run("createdb", "-h", str(data), "-p", str(port), "-U", "postgres", "-O", "jupyterhub",
            "jupyterhub")  # fmt: skip
        yield f"postgresql://jupyterhub@127.0.0.1:{port}/jupyterhub", password
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data / "db"), "-m", "fast", "stop")
        shutil.rmtree(data, ignore_errors=True)


def test_hub_keeps_users_in_postgres_as_staging_does(postgres, hub_factory):
    url, password = postgres
    staging_db = load("staging").values["hub"]["db"]
    db = {**staging_db, "url": url, "password": password}
    hub = hub_factory(extra_values={"hub": {"db": db}})
    login = login_with_standin(hub.url, "sky")
    wait_for_server(login.session, hub.url, "sky")

    import psycopg2

    with psycopg2.connect(url.replace("jupyterhub@", f"jupyterhub:{password}@")) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT name FROM users ORDER BY name")
        assert ("sky",) in cursor.fetchall()
    assert not (hub.state_dir / "jupyterhub.sqlite").exists(), (
        "no SQLite file when hub.db says postgres"
    )
