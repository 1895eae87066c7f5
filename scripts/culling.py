"""One pass of the real jupyterhub-idle-culler at a chosen moment, with the deployment's cull.*.

The hub's culler service runs the same code every `cull.every` seconds with
the flags the chart derives from `cull.*` (scripts/localhub/chart_values.py,
culler_service). Tests and the chapter "Culling" run one pass in-process
instead, with the culler's clock (`utcnow`, its only notion of time) set to a
moment past the idle timeout, so nobody waits an hour to see a cull.
"""

from __future__ import annotations

from datetime import datetime
from unittest import mock

import jupyterhub_idle_culler


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


async def cull_pass_at(hub_api: str, token: str, cull: dict, moment: datetime) -> None:
    """Run one culling pass against `hub_api` as if it were `moment` (timezone-aware)."""
    with mock.patch.object(jupyterhub_idle_culler, "utcnow", lambda: moment):
        await jupyterhub_idle_culler.cull_idle(hub_api, token, **culler_arguments(cull))
