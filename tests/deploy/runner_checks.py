"""Checks tests/deploy/test_runner_user.py runs as a user that is not root (GitHub's `runner`).

Run from the top of a checkout, with the project's test environment:
`python tests/deploy/runner_checks.py install-debian` or
`python tests/deploy/runner_checks.py postgres`.
Each prints what the test reads and exits non-zero when the check fails.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

# A command every Debian and Ubuntu has, and one from a small package nothing else needs.
PRESENT = {"sh": "dash"}
MISSING = {"hello": "hello"}


class PrintingSession:
    """What install_debian uses of a nox session: it runs commands and fails with a message."""

    def run(self, *command: str, external: bool = False) -> None:
        print("ran:", " ".join(command), flush=True)
        subprocess.run(command, check=True)

    def error(self, message: str) -> None:
        sys.exit(f"session error: {message}")


@functools.cache
def load_noxfile(root: Path):
    """noxfile.py as a module, loaded once: loading registers its sessions with nox."""
    spec = importlib.util.spec_from_file_location("noxfile", root / "noxfile.py")
    noxfile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(noxfile)
    return noxfile


def install_debian() -> None:
    noxfile = load_noxfile(Path.cwd())
    print(f"uid {os.geteuid()}", flush=True)
    print("--- present", flush=True)
    noxfile.install_debian(PrintingSession(), PRESENT)
    print("--- missing", flush=True)
    noxfile.install_debian(PrintingSession(), MISSING)


def postgres() -> None:
    import psycopg2

    from coursehub_tools.local.local_postgres import throwaway_postgres

    with (
        throwaway_postgres() as database,
        psycopg2.connect(database.url, password=database.password) as conn,
    ):
        cursor = conn.cursor()
        cursor.execute("SELECT current_user")
        print(f"uid {os.geteuid()} connected as {cursor.fetchone()[0]}")


if __name__ == "__main__":
    {"install-debian": install_debian, "postgres": postgres}[sys.argv[1]]()
