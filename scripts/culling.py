"""One pass of the real jupyterhub-idle-culler at a chosen moment, with the deployment's cull.*.

The hub's culler service runs the same code every `cull.every` seconds with
the flags the chart's own jupyterhub_config.py derives from `cull.*`
(culler_service). Tests and the chapter "Culling" run one pass in-process
instead, with the culler's clock (`utcnow`, its only notion of time) set to a
moment past the idle timeout, so nobody waits an hour to see a cull. Around
the pass: what a server's activity report says and the token a load test's
pass runs with (waiting for the stops the hub finishes after answering is
HubAPI.wait_stopped, scripts/hub_api.py).
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from unittest import mock

import jupyterhub_idle_culler

from coursehub_tools.deployconfig import Deployment
from coursehub_tools.hub_api import name
from coursehub_tools.hub_client import login_with_standin
from coursehub_tools.pod_manifests import hub_config

CULLER = "jupyterhub-idle-culler"


def culler_arguments(cull: dict) -> dict:
    """cull_idle's keyword arguments from values' cull.*, as the chart maps them to flags."""
    return {
        "inactive_limit": cull["timeout"],
        "cull_users": cull["users"],
        "cull_admin_users": cull["adminUsers"],
        "remove_named_servers": cull["removeNamedServers"],
        "max_age": cull["maxAge"],
        "concurrency": cull["concurrency"],
    }


def hub_clock(hub, users: set[str]) -> datetime:
    """The latest moment the hub recorded any of `users` active, by the hub's own clock.

    A pass "an hour from now" is an hour from this: the hub's record, not the
    calendar of the process that asks, which need not be the hub's.
    """
    seen = [hub.client.get(f"/users/{name(user)}")["last_activity"] for user in users]
    return max(datetime.fromisoformat(stamp) for stamp in seen if stamp)


def report_activity(hub, user: str, moment: datetime) -> None:
    """What a server's activity report says: `user` was active at `moment` (a LocalHub's API)."""
    stamp = moment.isoformat().replace("+00:00", "Z")
    hub.client.call(
        "POST",
        f"/users/{name(user)}/activity",
        json={"last_activity": stamp, "servers": {"": {"last_activity": stamp}}},
    )


CULL_PASS_USER = "cull-pass"


def culler_service(deployment: Deployment) -> tuple[dict, dict]:
    """The culler service and its role, as the chart's own config makes them for `deployment`."""
    with tempfile.TemporaryDirectory(prefix="coursehub-culler-") as work:
        config = hub_config(deployment, Path(work))
    (service,) = [s for s in config.JupyterHub.services if s["name"] == CULLER]
    (role,) = [r for r in config.JupyterHub.load_roles if r["name"] == CULLER]
    return service, role


def cull_pass_role(deployment: Deployment) -> dict:
    """A values layer giving GitHub user `cull-pass` the culler role's scopes (hub.loadRoles).

    The hub makes the culler service's token itself at start, so checking it
    costs one hash; a token written in config (the local operator's) costs
    thousands, which at a thousand requests a pass would be measured as the
    culler's. A load test's pass runs with a hub-made token of this user instead
    (who must be a member of an allowed team in the stand-in's world).
    """
    _service, role = culler_service(deployment)
    return {
        "hub": {
            "loadRoles": {
                CULL_PASS_USER: {
                    "description": "A load test's culling pass, with the culler's scopes",
                    "scopes": role["scopes"],
                    "users": [CULL_PASS_USER],
                }
            }
        }
    }


def culler_token(hub) -> str:
    """Log in as cull-pass (so the hub holds their GitHub auth) and make them a token."""
    login_with_standin(hub.url, CULL_PASS_USER, next_url="/hub/home").response.raise_for_status()
    made = hub.client.call(
        "POST", f"/users/{CULL_PASS_USER}/tokens", json={"note": "a load test's cull pass"}
    )
    return made["token"]


async def cull_pass_at(hub_api: str, token: str, cull: dict, moment: datetime) -> None:
    """Run one culling pass against `hub_api` as if it were `moment` (timezone-aware)."""
    with mock.patch.object(jupyterhub_idle_culler, "utcnow", lambda: moment):
        await jupyterhub_idle_culler.cull_idle(hub_api, token, **culler_arguments(cull))
