"""The local hub's processes: started marked, stopped in reverse order, none left behind.

Every process the local hub starts, and everything those start in turn (the
proxy, the culler, users' servers, their kernels), inherits the environment
variable COURSEHUB_LOCALHUB=<marker>. Stopping sends SIGTERM to what was
started, newest first, then kills whatever still carries the marker, however
the hub ended (Ctrl-C, a crash, its own exit after failed spawns).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from coursehub_tools.waiting import WaitTimeout, wait_until

MARKER_VARIABLE = "COURSEHUB_LOCALHUB"
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class ProcessFailed(Exception):
    """A supervised process did not come up; the message says which and how."""


def _prepare_child() -> None:
    """preexec_fn: have Linux send SIGTERM to the child if the supervisor itself dies,
    and let SIGINT end the child and what it starts, however the runner was started.

    A program started in the background by a non-interactive shell (a CI step,
    `pytest &`) ignores SIGINT, and its children inherit that, so the hub's
    services and users' servers would too. JupyterHub stops each of those with
    SIGINT and waits Spawner.interrupt_timeout (10 s) before SIGTERM
    (ref: jupyterhub/spawner.py, LocalProcessSpawner.stop), one service after
    another: stopping a hub then took over 20 s, against the 30 s `stop` gives
    it, and under load the hub was killed with its services still running.
    """
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


STRAYS_GONE_TIMEOUT = 10


def processes_marked(marker: str) -> list[int]:
    """Processes whose environment carries COURSEHUB_LOCALHUB=<marker> (Linux /proc)."""
    needle = f"{MARKER_VARIABLE}={marker}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if needle in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def command_line(pid: int) -> str:
    """A process's command line, words joined by spaces; empty once it has gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


@dataclass
class Supervisor:
    """Starts processes with the marker; `stop` ends them all."""

    log_file: IO | None = None
    marker: str = field(default_factory=lambda: uuid.uuid4().hex)
    processes: list[subprocess.Popen] = field(default_factory=list)

    def start(self, command: list[str], env: dict[str, str], cwd: Path | None = None):
        output = {"stdout": self.log_file, "stderr": subprocess.STDOUT} if self.log_file else {}
        process = subprocess.Popen(
            command,
            env={**env, MARKER_VARIABLE: self.marker},
            cwd=cwd,
            # Own session: a terminal's Ctrl-C reaches only the runner, which
            # then stops everything in order.
            start_new_session=True,
            preexec_fn=_prepare_child,
            **output,
        )
        self.processes.append(process)
        return process

    def all_running(self) -> bool:
        return all(process.poll() is None for process in self.processes)

    def stop(self) -> list[int]:
        """Stop everything started here; return the pids that had to be killed afterwards."""
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()
        strays = processes_marked(self.marker)
        for pid in strays:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # SIGKILL is delivered, not awaited: return once they are gone.
        with contextlib.suppress(WaitTimeout):  # one the kernel does not end is reported by pid
            wait_until(lambda: not processes_marked(self.marker), STRAYS_GONE_TIMEOUT,
                       "the killed processes gone", every=0.05)  # fmt: skip
        return strays


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, what: str, timeout: float) -> None:
    def listening() -> bool:
        if process.poll() is not None:
            raise ProcessFailed(f"{what} exited with status {process.returncode} while starting")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_until(listening, timeout, f"{what} listening on port {port}", every=0.1)
    except WaitTimeout as err:
        raise ProcessFailed(str(err)) from err
