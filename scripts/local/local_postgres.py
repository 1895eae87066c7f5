"""A throwaway PostgreSQL server on this machine: the database staging and prod give the hub.

The `postgresql` package of Debian or Ubuntu (installed by the nox sessions that
need it; GitHub's Ubuntu runner image has it), run by this user or, when this is
root, by the `postgres` account, on a free loopback port, with a `jupyterhub`
role and database, removed afterwards.
The tests use it to run the hub as staging does, and the load test to measure
a class against the database prod runs rather than SQLite.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from coursehub_tools.local.local_hub import free_port


class PostgresUnavailable(Exception):
    """PostgreSQL cannot run here; the message says why."""


@dataclass(frozen=True)
class Database:
    url: str
    password: str
    # Stops and starts the server, as a database maintenance or failover would.
    restart: Callable[[], None] = field(compare=False, repr=False)
    # Runs SQL as the server's superuser, as an operator's psql would (DROP DATABASE).
    superuser_sql: Callable[[str], None] = field(compare=False, repr=False)

    def hub_db(self, values: dict) -> dict:
        """hub.db from a deployment's merged values, pointed at this server."""
        return {**values["hub"]["db"], "url": self.url, "password": self.password}


def _server_binaries() -> Path:
    servers = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not servers:
        raise PostgresUnavailable(
            "PostgreSQL's server is not installed (no /usr/lib/postgresql/*/bin/postgres): "
            "apt-get install postgresql (nox -s pytest and nox -s loadtest do)"
        )
    return Path(servers[-1]).parent


def _as_postgres_user() -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` account.

    Any other user (GitHub's `runner`) runs it itself, in a data folder it owns.
    """
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError as err:
        raise PostgresUnavailable(
            "running as root and there is no postgres account to run PostgreSQL as"
        ) from err
    return ["runuser", "-u", "postgres", "--"]


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[Database]:
    """Start a server with a `jupyterhub` role and database; stop and delete it afterwards."""
    bindir, prefix = _server_binaries(), _as_postgres_user()
    data = Path(tempfile.mkdtemp(prefix="coursehub-pg-"))
    if prefix:
        shutil.chown(data, "postgres", "postgres")
    password = secrets.token_hex(16)
    port = free_port()

    def run(*cmd: str) -> None:
        subprocess.run([*prefix, *cmd], check=True, capture_output=True)

    # Local socket connections (this module) are trusted; TCP (the hub) needs the password.
    run(str(bindir / "initdb"), "-D", str(data / "db"), "--username=postgres",
        "--auth-local=trust", "--auth-host=scram-sha-256")  # fmt: skip
    # -w waits for the server; -l keeps its output off our pipes; restart reuses -o.
    ctl = [
        str(bindir / "pg_ctl"),
        "-D",
        str(data / "db"),
        "-w",
        "-m",
        "fast",
        "-l",
        str(data / "log"),
    ]
    run(*ctl, "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start")
    try:
        sql = f"CREATE ROLE jupyterhub LOGIN PASSWORD '{password}'; "
        # The server's own clients: no postgresql-common wrapper needed on PATH.
        client = ["-h", str(data), "-p", str(port), "-U", "postgres"]
        run(str(bindir / "psql"), *client, "-c", sql)
        run(str(bindir / "createdb"), *client, "-O", "jupyterhub", "jupyterhub")
        url = f"postgresql://jupyterhub@127.0.0.1:{port}/jupyterhub"
        yield Database(
            url,
            password,
            restart=lambda: run(*ctl, "restart"),
            superuser_sql=lambda sql: run(str(bindir / "psql"), *client, "-c", sql),
        )
    finally:
        run(*ctl, "stop")
        shutil.rmtree(data, ignore_errors=True)
