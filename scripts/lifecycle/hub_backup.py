"""The hub database, saved and put back: `coursehub backup` and `coursehub restore`.

The hub's database holds what no values file does: who has logged in, which
groups they are in (the groups staff made by hand too), their tokens and their
servers' state. PostgreSQL (staging, prod) is saved with pg_dump's custom format
and put back with pg_restore; SQLite (local, kind) with SQLite's own online
backup, a consistent copy even while the hub writes. On a cluster the
scheduled copy is the CronJob `coursehub cluster` makes beside the database
(scripts/deploy/cluster_services.py, `database_backup`); these commands are what an
operator runs by hand, and what the restore test runs on the local hub.

Restore with the hub stopped: the hub keeps users and servers in memory and
would write its own view back over the restored one.
"""

from __future__ import annotations

import glob
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from urllib.parse import urlsplit


class BackupError(Exception):
    """The database could not be saved or restored; the message says why."""


def postgres_tool(name: str) -> str:
    """pg_dump or pg_restore, the newest installed: it must not be older than the server."""
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_major)
    found = versions[-1] if versions else shutil.which(name)
    if not found:
        raise BackupError(f"{name} is not installed: apt-get install postgresql-client")
    return found


def _major(path: str) -> int:
    return int(Path(path).parts[-3])


def _connection(url: str, password: str | None) -> tuple[list[str], dict[str, str]]:
    """libpq arguments and environment for a postgresql:// URL (the password stays off argv)."""
    parts = urlsplit(url)
    args = [
        f"--host={parts.hostname}",
        f"--port={parts.port or 5432}",
        f"--username={parts.username}",
        f"--dbname={parts.path.lstrip('/')}",
    ]
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = password
    return args, env


def sqlite_path(url: str) -> Path:
    if not url.startswith("sqlite:///"):
        raise BackupError(f"not a SQLite URL: {url!r}; expected sqlite:///<path>")
    return Path(url.removeprefix("sqlite:///"))


def backup(url: str, target: Path, password: str | None = None) -> Path:
    """Save the database at `url` into the file `target`; the hub may keep running."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("sqlite"):
        source = sqlite_path(url)
        if not source.exists():
            raise BackupError(f"no hub database at {source}")
        with sqlite3.connect(source) as live, sqlite3.connect(target) as copy:
            live.backup(copy)
        return target
    args, env = _connection(url, password)
    _run([postgres_tool("pg_dump"), *args, "--format=custom", f"--file={target}"], env)
    return target


def restore(url: str, source: Path, password: str | None = None) -> None:
    """Replace the database at `url` with the saved `source`; stop the hub first."""
    if not source.is_file():
        raise BackupError(f"no backup at {source}")
    if url.startswith("sqlite"):
        with sqlite3.connect(source) as saved, sqlite3.connect(sqlite_path(url)) as live:
            saved.backup(live)
        return
    args, env = _connection(url, password)
    # --clean --if-exists: the same restore works into an empty database (after a
    # loss) and over a damaged one. --no-owner: objects belong to the hub's role.
    command = [postgres_tool("pg_restore"), *args, "--clean", "--if-exists", "--no-owner"]
    _run([*command, "--exit-on-error", "--single-transaction", str(source)], env)


def _run(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"{Path(command[0]).name} failed: {done.stderr.strip()[:400]}")
