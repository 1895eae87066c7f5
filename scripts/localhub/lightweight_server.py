"""A lightweight single-user server for load tests: the hub's side of a server, nothing more.

A thousand JupyterLab processes do not fit on a 2-core machine, yet a class of a
thousand is what the hub must survive. This server speaks the same hub API
as `jupyterhub-singleuser`, so the hub does the same work for it:

- it answers the hub's readiness check at its URL;
- it lets in only its user, through the hub's OAuth (authorize, token, identify);
- it reports its last activity to the hub, as singleuser does, so culling works.

It uses the standard library only and runs with `python -I -S`, so it starts
in milliseconds and takes a few MB. Everything comes from the environment
JupyterHub gives every server (ref: jupyterhub/spawner.py, Spawner.get_env).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
import threading
import time
from datetime import UTC, datetime
from http import cookies
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit
from urllib.request import Request, urlopen

COOKIE = "coursehub-lightweight"


class HubConnection:
    """What the server knows of its hub and its user, from JupyterHub's environment."""

    def __init__(self, env: dict[str, str]):
        self.user = env["JUPYTERHUB_USER"]
        self.token = env["JUPYTERHUB_API_TOKEN"]
        self.api_url = env["JUPYTERHUB_API_URL"].rstrip("/")
        self.client_id = env["JUPYTERHUB_CLIENT_ID"]
        self.callback_url = env["JUPYTERHUB_OAUTH_CALLBACK_URL"]
        self.prefix = env["JUPYTERHUB_SERVICE_PREFIX"]
        # On the hub's own host: with subdomain_host this server is on another,
        # and the hub passes its host for the browser's way back (JupyterHub's
        # Spawner.get_env sets JUPYTERHUB_HOST, "" without subdomains).
        self.authorize_url = (
            env.get("JUPYTERHUB_HOST", "") + env["JUPYTERHUB_BASE_URL"] + "hub/api/oauth2/authorize"
        )
        self.activity_url = env.get("JUPYTERHUB_ACTIVITY_URL", "")
        self.activity_interval = float(env.get("JUPYTERHUB_ACTIVITY_INTERVAL", "300"))
        self.bind = urlsplit(env["JUPYTERHUB_SERVICE_URL"])
        self.last_activity = datetime.now(UTC)
        self.sessions: set[str] = set()
        self.states: dict[str, str] = {}

    # urllib, not coursehub_tools.hub_api: this server runs as `python -I -S`, with no
    # site-packages (no requests) so a thousand of them start in milliseconds.
    def call(self, url: str, *, data: bytes | None = None, token: str | None = None) -> dict:
        headers = {"Authorization": f"token {token or self.token}"}
        if data is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        with urlopen(Request(url, data=data, headers=headers), timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def user_behind(self, code: str) -> str:
        """Trade an OAuth code for a token and ask the hub whose it is."""
        form = urlencode(
            {
                "grant_type": "authorization_code",
                "code": code,
                "client_id": self.client_id,
                "client_secret": self.token,
                "redirect_uri": self.callback_url,
            }
        ).encode()
        access = self.call(f"{self.api_url}/oauth2/token", data=form)["access_token"]
        return self.call(f"{self.api_url}/user", token=access)["name"]

    def report_activity(self) -> None:
        stamp = self.last_activity.isoformat().replace("+00:00", "Z")
        body = json.dumps({"servers": {"": {"last_activity": stamp}}, "last_activity": stamp})
        request = Request(
            self.activity_url,
            data=body.encode(),
            method="POST",
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urlopen(request, timeout=30):
            pass

    def keep_reporting(self) -> None:
        while True:
            time.sleep(self.activity_interval)
            try:
                self.report_activity()
            except OSError as err:
                print(f"activity report failed: {err}", file=sys.stderr, flush=True)


def handler_for(hub: HubConnection) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):
            pass  # a thousand servers' access logs would drown the hub's

        def reply(self, status: int, body: str = "", headers: dict | None = None) -> None:
            data = body.encode()
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def session(self) -> str | None:
            jar = cookies.SimpleCookie(self.headers.get("Cookie", ""))
            return jar[COOKIE].value if COOKIE in jar else None

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if not url.path.startswith(hub.prefix):
                self.reply(404, f"not under {hub.prefix}")
            elif url.path == hub.prefix + "api":
                self.reply(200, json.dumps({"version": "lightweight"}))
            elif url.path == hub.prefix + "oauth_callback":
                self.finish_login(parse_qs(url.query))
            elif self.session() in hub.sessions:
                hub.last_activity = datetime.now(UTC)
                self.reply(200, f"{hub.user}'s lightweight server: {url.path}")
            else:
                self.start_login()

        def start_login(self) -> None:
            state = secrets.token_urlsafe(16)
            hub.states[state] = self.path
            query = urlencode(
                {
                    "client_id": hub.client_id,
                    "redirect_uri": hub.callback_url,
                    "response_type": "code",
                    "state": state,
                }
            )
            self.reply(302, headers={"Location": f"{hub.authorize_url}?{query}"})

        def finish_login(self, query: dict[str, list[str]]) -> None:
            state = query.get("state", [""])[0]
            code = query.get("code", [""])[0]
            if state not in hub.states or not code:
                self.reply(400, "OAuth state or code missing or unknown; open the server again")
                return
            try:
                who = hub.user_behind(code)
            except OSError as err:
                self.reply(502, f"the hub did not confirm who you are: {err}")
                return
            if who != hub.user:
                self.reply(403, f"this is {hub.user}'s server, not {who}'s")
                return
            session = secrets.token_urlsafe(24)
            hub.sessions.add(session)
            self.reply(
                302,
                headers={
                    "Location": hub.states.pop(state),
                    "Set-Cookie": f"{COOKIE}={session}; Path={hub.prefix}; HttpOnly",
                },
            )

    return Handler


def main() -> None:
    hub = HubConnection(dict(os.environ))
    server = ThreadingHTTPServer((hub.bind.hostname, hub.bind.port), handler_for(hub))
    server.daemon_threads = True
    if hub.activity_url:
        threading.Thread(target=hub.keep_reporting, daemon=True).start()
    # The spawner stops its server with SIGINT.
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
