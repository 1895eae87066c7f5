"""Culling on the local hub: the real jupyterhub-idle-culler, its clock pinned, not slept on.

The culler's own pass (`cull_idle`) runs against a real hub with the arguments
the chart derives from `cull.*` in the merged values; `utcnow`, the culler's
one notion of time, is moved past the idle timeout instead of waiting for it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import requests

from coursehub_tools import culling
from coursehub_tools.deployconfig import load
from coursehub_tools.hub_client import login_with_standin, wait_for_server

pytestmark = pytest.mark.hub


async def cull_pass_at(hub, values: dict, moment: datetime) -> None:
    await culling.cull_pass_at(f"{hub.url}/hub/api", hub.operator_token, values["cull"], moment)


def running(hub, user: str) -> bool:
    model = hub.api("GET", f"/users/{user}")
    return model.status_code == 200 and "" in model.json()["servers"]


async def test_an_idle_server_is_culled_and_an_active_one_kept(hub_factory):
    hub = hub_factory()
    values = load("local").values
    for student in ("sam", "sky"):
        wait_for_server(login_with_standin(hub.url, student).session, hub.url, student)
    now, timeout = culling.hub_clock(hub, {"sam", "sky"}), values["cull"]["timeout"]
    # The hub takes no activity from over an hour ahead, so sky's comes at most 50 min on.
    active_at = now + timedelta(seconds=min(timeout, 3000))
    culling.report_activity(hub, "sky", active_at)
    later = now + timedelta(seconds=timeout + 60)
    assert (later - active_at).total_seconds() < timeout

    await cull_pass_at(hub, values, later)

    hub.client.wait_stopped({"sam"}, timeout=30)  # idle: stopped
    assert running(hub, "sky"), "active within cull.timeout: kept"
    # cull.users is off on the GitHub hub: the user stays, only the server went.
    assert values["cull"]["users"] is False
    assert hub.api("GET", "/users/sam").status_code == 200
    assert (hub.state_dir / "homes" / "sam").is_dir(), "nothing on disk is lost"


async def test_a_temporary_user_is_removed_with_their_server(hub_factory):
    values = load("local-sso").values
    hub = hub_factory(deployment="local-sso")
    session = requests.Session()
    session.get(f"{hub.url}/hub/login", timeout=60)
    guest = session.get(f"{hub.url}/hub/api/user", timeout=30).json()["name"]
    wait_for_server(session, hub.url, guest)
    later = culling.hub_clock(hub, {guest}) + timedelta(seconds=values["cull"]["timeout"] + 60)

    await cull_pass_at(hub, values, later)
    # The hub answered "stopping" (slow_stop_timeout 0), and the culler removes
    # a user only once their servers are gone: at its next pass.
    hub.client.wait_stopped({guest}, timeout=30)
    await cull_pass_at(hub, values, later)

    assert values["cull"]["users"] is True
    assert hub.api("GET", f"/users/{guest}").status_code == 404, "the temporary user is gone"


async def test_an_admin_user_is_removed_only_if_cull_admin_users(hub_factory):
    hub = hub_factory()
    values = load("local").values
    # ada administers the hub and takes no course: she logs in, starts nothing.
    assert login_with_standin(hub.url, "ada", next_url="/hub/home").response.status_code == 200
    assert hub.api("GET", "/users/ada").json()["admin"] is True
    later = culling.hub_clock(hub, {"ada"}) + timedelta(seconds=values["cull"]["timeout"] + 60)
    with_user_culling = {**values["cull"], "users": True}

    # With user culling on, an idle admin stays unless cull.adminUsers says otherwise.
    await cull_pass_at(hub, {**values, "cull": {**with_user_culling, "adminUsers": False}}, later)
    assert hub.api("GET", "/users/ada").status_code == 200
    await cull_pass_at(hub, {**values, "cull": {**with_user_culling, "adminUsers": True}}, later)
    assert hub.api("GET", "/users/ada").status_code == 404
