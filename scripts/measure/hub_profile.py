"""Where the hub's time goes during a load test: py-spy samples the hub process meanwhile.

py-spy (a sampling profiler, from PyPI) attaches to the running hub by its pid
and records, many times a second, the Python stack of each thread that is
busy. Summed, the samples of the hub's event loop say what share of its work
went to each step of a list (CULL_STEPS, ARRIVAL_STEPS), and to our own code
(hub-config and the local hub's spawner) as a whole. Attaching needs
the right to trace the hub's process (root, or ptrace allowed); without it the
summary says why there is none.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

SAMPLES_PER_SECOND = 100
# Steps of the hub's work: what each is, and the functions (qualified name, file as
# py-spy names it) all of that step runs under; their nested functions count too.
EVERY_REQUEST = {
    "authenticating each request": [
        ("BaseHandler.get_current_user", "jupyterhub/handlers/base.py")
    ],
    "database commits (in any step)": [("Session.commit", "sqlalchemy/orm/session.py")],
}
CULL_STEPS = {
    "stopping a server (JupyterHub's User.stop)": [("User.stop", "jupyterhub/user.py")],
    "looking up the user a request names": [
        ("BaseHandler.find_user", "jupyterhub/handlers/base.py")
    ],
    "removing the server's proxy route": [("Proxy.delete_user", "jupyterhub/proxy.py")],
    **EVERY_REQUEST,
}
ARRIVAL_STEPS = {
    "logging in: GitHub's OAuth callback": [
        ("OAuthCallbackHandler.get", "oauthenticator/oauth2.py")
    ],
    "starting servers (BaseHandler.spawn_single_user)": [
        ("BaseHandler.spawn_single_user", "jupyterhub/handlers/base.py")
    ],
    "the servers' own OAuth with the hub": [
        ("OAuthAuthorizeHandler.get", "jupyterhub/apihandlers/auth.py"),
        ("OAuthAuthorizeHandler.post", "jupyterhub/apihandlers/auth.py"),
        ("OAuthTokenHandler.post", "jupyterhub/apihandlers/auth.py"),
    ],
    "the spawn-pending page's progress stream": [
        ("SpawnProgressAPIHandler.get", "jupyterhub/apihandlers/users.py")
    ],
    **EVERY_REQUEST,
}
# Every stack of the hub's main thread runs under this: tornado's asyncio event loop.
EVENT_LOOP = ("BaseEventLoop.run_forever", "asyncio/base_events.py")
# Files as py-spy names them (relative to the hub's sys.path). Ours: hub-config's
# package from the config dir, and the tools (editable: scripts/) for the local
# spawner. Upstream's: JupyterHub, its authenticator and spawner, tornado. A sample
# is ours when the innermost frame of either kind is ours: what our code spends, in
# itself and in the libraries (SQLAlchemy, YAML, ...) it calls.
OUR_FILES = ("coursehub/", "coursehub_tools/", "scripts/")
UPSTREAM_FILES = ("jupyterhub/", "oauthenticator/", "kubespawner/", "tornado/")


class Sampling:
    """The samples of one `sampled` block; `summary` is filled in when the block ends."""

    def __init__(self) -> None:
        self.summary: dict = {}


@contextlib.contextmanager
def sampled(pid: int, steps: dict, enabled: bool = True) -> Iterator[Sampling]:
    """Sample process `pid` for as long as the block runs; then summarize by `steps`.

    Not `enabled`: nothing is sampled and the summary stays empty."""
    sampling = Sampling()
    if not enabled:
        yield sampling
        return
    with tempfile.TemporaryDirectory(prefix="coursehub-profile-") as work:
        raw = Path(work) / "samples.txt"
        try:
            spy = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "--pid",
                    str(pid),
                    "--format",
                    "raw",
                    "--output",
                    str(raw),
                    "--rate",
                    str(SAMPLES_PER_SECOND),
                    # Not pausing the hub at each sample: what is measured stays unslowed.
                    "--nonblocking",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            # Its first line ("Sampling process ...") comes once it is attached, so
            # the block is sampled from its start; none comes if it cannot attach.
            spy.stdout.readline()
        except FileNotFoundError:
            sampling.summary = {
                "unavailable": "py-spy is not installed (pyproject's profile group)"
            }
            yield sampling
            return
        try:
            yield sampling
        finally:
            # py-spy writes its samples out when interrupted, as at Ctrl-C.
            if spy.poll() is None:
                spy.send_signal(signal.SIGINT)
            _, errors = spy.communicate(timeout=60)
            if raw.exists():
                sampling.summary = summary(raw.read_text(), steps)
            else:
                # Its message is the line starting "Error:"; a backtrace may follow.
                lines = errors.strip().splitlines() or ["no output"]
                why = next((line for line in lines if line.startswith("Error")), lines[-1])
                sampling.summary = {"unavailable": f"py-spy could not sample the hub: {why}"}


def summary(raw: str, steps: dict) -> dict:
    """How many samples caught the hub's event loop busy, and the share of them in each step.

    `raw` is py-spy's raw format: a line a distinct stack, its frames joined by
    ";" from the outermost, each "function (file:line)", then the number of
    samples.
    """
    loop_samples = ours = 0
    in_step = dict.fromkeys(steps, 0)
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [frame_of(text) for text in stack.split(";")]
        if EVENT_LOOP not in frames:
            continue
        samples = int(count)
        loop_samples += samples
        for label, functions in steps.items():
            if any(runs_under(frame, function) for frame in frames for function in functions):
                in_step[label] += samples
        innermost = next(
            (f for _, f in reversed(frames) if f.startswith(OUR_FILES + UPSTREAM_FILES)), ""
        )
        ours += samples if innermost.startswith(OUR_FILES) else 0
    if not loop_samples:
        return {"unavailable": "no samples of the hub's event loop"}
    return {
        # A count, not a time: sampling without pausing the hub, py-spy cannot always
        # tell a busy thread from a waiting one, so the count undercounts busy time
        # (the load test reads the hub's CPU time from /proc instead).
        "samples": loop_samples,
        "share_by_step": {label: round(n / loop_samples, 3) for label, n in in_step.items()},
        "share_in_our_code": round(ours / loop_samples, 3),
    }


def frame_of(text: str) -> tuple[str, str]:
    """(function, file) of a py-spy frame "function (file:line)"."""
    function, _, location = text.partition(" (")
    return function, location.rpartition(":")[0]


def runs_under(frame: tuple[str, str], function: tuple[str, str]) -> bool:
    """Whether `frame` is `function` or a function nested in it."""
    (name, file), (wanted, wanted_file) = frame, function
    return file == wanted_file and (name == wanted or name.startswith(f"{wanted}.<locals>."))


def report(summary: dict) -> str:
    """A summary as the chapters show it: how many samples, then a line a step."""
    if "unavailable" in summary:
        return summary["unavailable"]
    lines = [f"{summary['samples']} samples of the hub's event loop at work, of which:"]
    for label, share in summary["share_by_step"].items():
        lines.append(f"  {share:6.1%}  {label}")
    lines.append(f"  {summary['share_in_our_code']:6.1%}  in our code (hub-config, local spawner)")
    return "\n".join(lines)
