"""Where the hub's time goes: py-spy's samples summed by step (scripts/measure/hub_profile.py)."""

import subprocess
import sys
import textwrap

import pytest

from coursehub_tools.measure.hub_profile import (
    ARRIVAL_STEPS,
    CULL_STEPS,
    report,
    sampled,
    summary,
)

LOOP = "BaseEventLoop.run_forever (asyncio/base_events.py:607)"
STOP = "User.stop (jupyterhub/user.py:1120)"
COMMIT = "Session.commit (sqlalchemy/orm/session.py:2035)"
OURS = "LightweightCourseSpawner.stop (scripts/local/hub/spawner.py:163)"
WORKER = "_worker (concurrent/futures/thread.py:90)"
OUR_HANDLER = "LoginCallbackHandler.get (coursehub/login_errors.py:98)"
GITHUB_CALLBACK = "OAuthCallbackHandler.get (oauthenticator/oauth2.py:250)"
YAML = "safe_load (yaml/__init__.py:125)"


def raw(*stacks: tuple[list[str], int]) -> str:
    return "\n".join(f"{';'.join(frames)} {count}" for frames, count in stacks) + "\n"


def test_shares_are_of_the_event_loops_samples_and_count_a_stack_once_per_step():
    samples = raw(
        (["<module> (jupyterhub/__main__.py:3)", LOOP, STOP, COMMIT, COMMIT], 30),
        ([LOOP, STOP, OURS], 10),
        ([LOOP, "RequestHandler._execute (tornado/web.py:2004)"], 60),
        # A worker thread, waiting or not, is not the hub's event loop.
        (["Thread.run (threading.py:982)", WORKER], 500),
    )
    result = summary(samples, CULL_STEPS)
    assert result["samples"] == 100
    shares = result["share_by_step"]
    assert shares["stopping a server (JupyterHub's User.stop)"] == 0.4
    assert shares["database commits (in any step)"] == 0.3
    assert shares["authenticating each request"] == 0
    assert set(shares) == set(CULL_STEPS)
    assert result["share_in_our_code"] == 0.1


def test_time_is_ours_where_our_code_is_the_innermost_hub_side_caller():
    nested = (
        "BaseHandler.spawn_single_user.<locals>.finish_user_spawn"
        " (jupyterhub/handlers/base.py:1140)"
    )
    samples = raw(
        # Our login handler wraps oauthenticator's: the work beneath is upstream's.
        ([LOOP, OUR_HANDLER, GITHUB_CALLBACK, COMMIT], 6),
        # Our code reading YAML: the library's time is ours.
        ([LOOP, GITHUB_CALLBACK, OUR_HANDLER, YAML], 3),
        ([LOOP, nested], 1),
    )
    result = summary(samples, ARRIVAL_STEPS)
    assert result["share_in_our_code"] == 0.3
    assert result["share_by_step"]["logging in: GitHub's OAuth callback"] == 0.9
    assert result["share_by_step"]["starting servers (BaseHandler.spawn_single_user)"] == 0.1


def test_no_event_loop_in_the_samples_says_so():
    assert summary(raw(([WORKER], 5)), CULL_STEPS) == {
        "unavailable": "no samples of the hub's event loop"
    }


BUSY_LOOP = textwrap.dedent(
    """
    import asyncio, time
    async def spin():
        end = time.monotonic() + 30
        while time.monotonic() < end:
            sum(range(10_000))
    asyncio.run(spin())
    """
)


def test_a_busy_event_loop_is_sampled_while_the_block_runs():
    busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    try:
        with sampled(busy.pid, CULL_STEPS) as sampling:
            subprocess.run([sys.executable, "-c", "import time; time.sleep(2)"], check=True)
    finally:
        busy.kill()
        busy.wait()
    if sampling.summary.get("unavailable", "").startswith("py-spy could not sample"):
        pytest.skip(f"this machine does not let py-spy trace a process: {sampling.summary}")
    # Two seconds at 100 samples a second, less what py-spy takes to attach.
    assert 20 <= sampling.summary["samples"] <= 400
    assert sampling.summary["share_in_our_code"] == 0
    assert not any(sampling.summary["share_by_step"].values())


def test_a_process_that_is_gone_gives_the_reason_not_a_traceback():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with sampled(gone.pid, CULL_STEPS) as sampling:
        pass
    why = sampling.summary["unavailable"]
    assert why.startswith("py-spy could not sample the hub: Error"), why


def test_sampling_not_enabled_starts_nothing_and_summarizes_nothing():
    with sampled(-1, CULL_STEPS, enabled=False) as sampling:
        pass
    assert sampling.summary == {}


def test_the_report_has_a_line_a_step_and_our_share():
    result = summary(raw(([LOOP, STOP, OURS], 1), ([LOOP, COMMIT], 3)), CULL_STEPS)
    lines = report(result).splitlines()
    assert len(lines) == 2 + len(CULL_STEPS)
    assert "25.0%  stopping a server (JupyterHub's User.stop)" in lines[1]
    assert lines[-1].strip().startswith("25.0%  in our code")
    assert report({"unavailable": "why"}) == "why"
