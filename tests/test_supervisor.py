"""What the local hub starts can be interrupted, whoever started the local hub.

JupyterHub stops its services and local servers with SIGINT first; a child
that ignores SIGINT costs each stop Spawner.interrupt_timeout (10 s), and a
runner started in the background (a CI step) passes SIGINT ignored on.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from coursehub_tools.localhub.supervisor import Supervisor, processes_marked
from coursehub_tools.waiting import wait_until

pytestmark = pytest.mark.unit


def ignored_signals(pid: int) -> set[int]:
    """The signals a process ignores, from Linux /proc (its SigIgn mask)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            mask = int(line.split()[1], 16)
            return {number for number in range(1, 65) if mask & (1 << (number - 1))}
    raise AssertionError(f"no SigIgn line for process {pid}")


def test_a_child_does_not_inherit_an_ignored_sigint():
    supervisor = Supervisor()
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a background runner has it
    try:
        # A grandchild too: JupyterHub's services and servers are the hub's children.
        child = supervisor.start(
            [sys.executable, "-c", "import subprocess; subprocess.run(['sleep', '60'])"], {}
        )
    finally:
        signal.signal(signal.SIGINT, before)
    try:
        (grandchild,) = wait_until(
            lambda: [pid for pid in processes_marked(supervisor.marker) if pid != child.pid],
            30,
            "the child's own child started",
        )
        assert signal.SIGINT not in ignored_signals(grandchild)
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=30) != 0, "interrupted, not finished"
    finally:
        supervisor.stop()
