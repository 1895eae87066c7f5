"""The hub's REST API with a token: the one client every tool here calls it through.

A hub under a class answers some calls late or not at all: a restarting hub
refuses connections, a busy one answers 429 (too many starts at once,
JupyterHub.concurrent_spawn_limit) or 503, each with a Retry-After. `HubAPI`
waits and asks again in those cases, pages through lists, and raises
`HubAPIError` naming the call when the hub refuses one.
(Logging in as a person does, with cookies: scripts/hub_client.py.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import quote

import requests

from coursehub_tools.waiting import wait_until

# The media type under which the hub's REST API says where a list's next page is.
# ref: https://jupyterhub.readthedocs.io/en/stable/reference/rest-api.html (pagination)
PAGINATION = "application/jupyterhub-pagination+json"
# Statuses a hub gives when it is too busy now but not later: it says when to ask again.
BUSY = (429, 503)
# A connection refused or reset may have reached the hub before it failed only for a
# call that changes something; asking again is safe for those that do not or are idempotent.
SAFE_TO_REPEAT = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}


class HubAPIError(Exception):
    """The hub refused a call: the call, its status and the hub's message."""

    def __init__(self, method: str, url: str, status: int, message: str):
        super().__init__(f"{method} {url}: the hub answered {status}: {message}")
        self.status = status


def name(value: str) -> str:
    """A user's or group's name as one path segment (a group may hold ':' or '/')."""
    return quote(value, safe="")


def _message(response: requests.Response) -> str:
    try:
        return str(response.json().get("message") or response.reason)
    except ValueError:  # not JSON: a proxy's or a server's error page
        return response.reason or response.text[:200]


def _seconds_to_wait(response: requests.Response, default: float) -> float:
    """The hub's Retry-After in seconds (it sends a number); `default` when absent."""
    try:
        return max(float(response.headers["Retry-After"]), 0.0)
    except (KeyError, ValueError):
        return default


@dataclass
class HubAPI:
    """Calls to the hub at `url` (http://host:port, its API under /hub/api) with `token`."""

    url: str
    token: str | None  # None: anonymous, as anyone may ask the API's root
    timeout: float = 30
    # How many times one call is sent at most, and the longest wait between two.
    attempts: int = 5
    longest_wait: float = 30
    sleep: Callable[[float], object] = time.sleep

    @property
    def api_url(self) -> str:
        return f"{self.url}/hub/api"

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        """The hub's answer to `method path` (under /hub/api), whatever its status, after
        waiting out connection failures and busy answers; for callers that read a refusal."""
        url = f"{self.api_url}{path}"
        headers = {"Authorization": f"token {self.token}"} if self.token else {}
        headers.update(kwargs.pop("headers", {}))
        kwargs.setdefault("timeout", self.timeout)
        for attempt in range(1, self.attempts + 1):
            backoff = min(0.5 * 2 ** (attempt - 1), self.longest_wait)
            try:
                response = requests.request(method, url, headers=headers, **kwargs)
            except requests.ConnectionError:
                if method not in SAFE_TO_REPEAT or attempt == self.attempts:
                    raise
                self.sleep(backoff)
                continue
            if response.status_code not in BUSY or attempt == self.attempts:
                return response
            self.sleep(min(_seconds_to_wait(response, backoff), self.longest_wait))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def call(self, method: str, path: str, *, missing_ok: bool = False, **kwargs):
        """The JSON the hub answers (None for no body); HubAPIError when it refuses.

        With `missing_ok`, a 404 answers None: a user or group that is not there.
        """
        response = self.request(method, path, **kwargs)
        if missing_ok and response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise HubAPIError(method, path, response.status_code, _message(response))
        return response.json() if response.content else None

    def get(self, path: str, **params):
        return self.call("GET", path, params=params)

    def version(self) -> str:
        """The JupyterHub version the API's root answers anyone."""
        return self.get("/")["version"]

    def every(self, path: str, **params) -> list[dict]:
        """Every item of a list the hub answers a page at a time (/users, /groups).

        Asked without PAGINATION, JupyterHub answers one page of at most
        JupyterHub.api_page_max_limit items (200 by default) and does not say there is
        more; asked with it, each page names the next. Items that come or go between two
        pages (a server stopping, while listing ?state=active) may be missed or seen twice,
        as in any listing of a hub that keeps working meanwhile.
        """
        items: list[dict] = []
        query = dict(params)
        while True:
            page = self.call("GET", path, params=query, headers={"Accept": PAGINATION})
            items.extend(page["items"])
            following = page["_pagination"].get("next")
            if not following:
                return items
            query = {**params, "offset": following["offset"], "limit": following["limit"]}

    def with_servers(self, users: Iterable[str]) -> set[str]:
        """Those of `users` who have a server, even one that is stopping."""
        active = {user["name"] for user in self.every("/users", state="active")}
        return active & set(users)

    def wait_stopped(self, users: Iterable[str], timeout: float) -> None:
        """Return once none of `users` has a server, even a stopping one (WaitTimeout else).

        With slow_stop_timeout 0 (config/common.yaml) the hub answers a stop at once
        and stops the server after, so a stop asked (or a culling pass) ends first.
        """
        users = set(users)
        wait_until(
            lambda: not self.with_servers(users),
            timeout,
            f"the servers of {', '.join(sorted(users))} stopped",
            every=0.3,
        )

    def stop_servers(self, users: Iterable[str], timeout: float) -> None:
        """Stop each user's server and return once every one is gone."""
        users = set(users)
        for user in sorted(users):
            self.call("DELETE", f"/users/{name(user)}/server")
        self.wait_stopped(users, timeout)
