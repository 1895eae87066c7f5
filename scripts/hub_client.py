"""A person at a browser, in code: log in through GitHub (or its stand-in), start a server.

Used by the tests, the book's chapters and the load test, so all of them walk
the same path a student does: /hub/oauth_login -> GitHub's consent page ->
/hub/oauth_callback -> /hub/spawn -> /user/<name>/lab.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests

from coursehub_tools.hub_api import HubAPI, name
from coursehub_tools.waiting import wait_until

FORM_FIELD = r'name="{}" value="([^"]*)"'


LOOPBACK_NAME = "localhost"


def _getaddrinfo(host, *args, _getaddrinfo=socket.getaddrinfo, **kwargs):
    if isinstance(host, str) and host.lower().rstrip(".").endswith("." + LOOPBACK_NAME):
        host = LOOPBACK_NAME
    return _getaddrinfo(host, *args, **kwargs)


def resolve_localhost_subdomains() -> None:
    """Resolve <name>.localhost to the loopback in this process, as a browser does.

    The local hub is hub.localhost and serves each user's server on its own
    origin, <user>.hub.localhost (JupyterHub.subdomain_host). Names under
    .localhost are the loopback (RFC 6761, section 6.3): Chromium and Firefox
    answer them themselves, and so does systemd-resolved (GitHub's Ubuntu
    runners), but glibc's files and dns lookups do not (Debian without it).
    Every client here (requests, the culler's tornado) resolves through
    socket.getaddrinfo; the Host header still names the host the proxy routes by.
    """
    socket.getaddrinfo = _getaddrinfo


resolve_localhost_subdomains()


@dataclass
class Login:
    session: requests.Session
    response: requests.Response

    @property
    def page(self) -> str:
        return self.response.text


def _form_value(page: str, name: str) -> str:
    match = re.search(FORM_FIELD.format(name), page)
    if match is None:
        raise ValueError(f"no {name!r} field on the consent page")
    return html.unescape(match.group(1))


def _consent(
    hub_url: str, login: str | None, next_url: str, follow: bool
) -> tuple[requests.Session, requests.Response]:
    session = requests.Session()
    start = f"{hub_url}/hub/oauth_login" + (
        f"?next={requests.utils.quote(next_url)}" if next_url else ""
    )
    consent = session.get(start, timeout=30)
    consent.raise_for_status()
    form = {
        "redirect_uri": _form_value(consent.text, "redirect_uri"),
        "state": _form_value(consent.text, "state"),
    }
    form.update({"login": login} if login else {"deny": "1"})
    response = session.post(
        consent.url.split("?")[0], data=form, timeout=120, allow_redirects=follow
    )
    return session, response


def login_with_standin(hub_url: str, login: str | None, *, next_url: str = "") -> Login:
    """Log in as fixture user `login`; None clicks "Cancel" (denies consent)."""
    return Login(*_consent(hub_url, login, next_url, follow=True))


def callback_with_standin(hub_url: str, login: str) -> tuple[requests.Session, str]:
    """Consent as `login` but stop before GitHub's redirect back: (browser, callback URL)."""
    session, response = _consent(hub_url, login, "", follow=False)
    return session, response.headers["Location"]


def error_message(page: str) -> str:
    """The text of a hub error page's message, as a person reads it."""
    match = re.search(r'<div class="error">(.*?)</div>', page, re.S)
    if match is None:
        raise ValueError(f"not a hub error page: {page[:200]!r}")
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())


def wait_for_server(
    session: requests.Session, hub_url: str, user: str, timeout: float = 90
) -> requests.Response:
    """Follow the hub until the user's JupyterLab answers through the proxy."""

    def lab() -> requests.Response | None:
        response = session.get(f"{hub_url}/user/{user}/lab", timeout=30)
        ready = response.status_code == 200 and f"/user/{user}/lab" in response.url
        return response if ready else None

    # A refused connection: the proxy is not listening (yet, or again).
    return wait_until(
        lab, timeout, f"{user}'s server ready", every=0.5, not_yet=(requests.ConnectionError,)
    )


def follow_progress(
    session: requests.Session, hub_url: str, user: str, timeout: float = 90
) -> requests.Response:
    """What the spawn-pending page does: listen to the start's progress, then open the server.

    The page holds one event stream open (/hub/api/users/<name>/server/progress)
    rather than reloading, so a class waiting costs the hub one request each.
    Raises TimeoutError when no ready event came in time and RuntimeError when
    the hub reported the start failed (its message).
    """
    url = f"{hub_url}/hub/api/users/{user}/server/progress"
    deadline = time.monotonic() + timeout
    with session.get(url, stream=True, timeout=(30, timeout)) as stream:
        stream.raise_for_status()
        for line in stream.iter_lines(decode_unicode=True):
            if not line or not line.startswith("data:"):
                if time.monotonic() > deadline:
                    break
                continue
            event = json.loads(line[len("data:") :])
            if event.get("failed"):
                raise RuntimeError(event.get("message", "the start failed"))
            if event.get("ready"):
                # The server's URL: a path, or a whole URL on its own host (subdomain_host).
                return session.get(urljoin(hub_url, f"{event['url']}lab"), timeout=30)
    raise TimeoutError(f"{user}'s server did not become ready within {timeout:.0f} s")


def own_token(session: requests.Session, hub_url: str, user: str) -> str:
    """A REST API token the logged-in `user` makes for themselves, as on the hub's Token page."""
    session.get(f"{hub_url}/hub/token", timeout=30)  # sets the _xsrf cookie
    response = session.post(
        f"{hub_url}/hub/api/users/{user}/tokens",
        json={"note": "made by hub_client"},
        headers={"X-XSRFToken": session.cookies.get("_xsrf", path="/hub/")},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["token"]


def open_server_as(session: requests.Session, hub_url: str, owner: str) -> requests.Response:
    """Open `owner`'s JupyterLab as someone else: the hub asks "Authorize access?", they agree."""
    ask = session.get(f"{hub_url}/user/{owner}/lab", timeout=60)
    if "/hub/api/oauth2/authorize" not in ask.url:
        raise ValueError(f"expected the hub's authorize page, got {ask.status_code} {ask.url}")
    hidden = re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', ask.text)
    form = [(name, html.unescape(value)) for name, value in hidden]
    return session.post(ask.url, data=form, timeout=60)


def page_of(url: str) -> str:
    """`url` without its query: the hub counts its own redirects there (`redirects=1` when
    it sends a path on its host on to the user's host; ref: jupyterhub 5.5 UserUrlHandler)."""
    return urlsplit(url)._replace(query="").geturl()


def server_url(hub_url: str, user: str, token: str) -> str:
    """`user`'s running server's address, as the hub gives it (ends with /).

    With subdomain_host the server is on a host of its own. A token request to
    its path on the hub's host is redirected there, and requests drops the
    Authorization header on a redirect to another host: ask the server itself.
    """
    model = HubAPI(hub_url, token).get(f"/users/{name(user)}")
    return urljoin(hub_url, model["servers"][""]["url"])


def contents(
    hub_url: str, user: str, token: str, method: str, path: str, **kwargs
) -> requests.Response:
    """A call to jupyter-server's contents API of `user`'s server, with their token."""
    url = f"{server_url(hub_url, user, token)}api/contents/{path}"
    headers = {"Authorization": f"token {token}"}
    return requests.request(method, url, headers=headers, timeout=60, **kwargs)


async def run_in_terminal(
    hub_url: str, user: str, token: str, command: str, timeout: float = 60
) -> tuple[int, str]:
    """Type `command` into a new terminal of `user`'s JupyterLab; its exit status and screen.

    What an instructor does in JupyterLab's Terminal, through jupyter-server's
    terminals API (a POST makes one, a websocket carries its keystrokes and
    output as ["stdin", ...] and ["stdout", ...]). The terminal is closed after.
    """
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    headers = {"Authorization": f"token {token}"}
    server = server_url(hub_url, user, token)
    api = f"{server}api/terminals"
    made = requests.post(api, headers=headers, timeout=30)
    made.raise_for_status()
    name = made.json()["name"]
    socket_url = f"{server.replace('http', 'ws', 1)}terminals/websocket/{name}"
    screen = ""
    try:
        socket = await websocket_connect(HTTPRequest(socket_url, headers=headers))
        # The typed line is echoed with a literal $?; only the shell's answer has digits.
        socket.write_message(json.dumps(["stdin", f'{command}; echo "__done__ $?"\r']))
        deadline = time.monotonic() + timeout
        while (done := re.search(r"__done__ (\d+)", screen)) is None:
            left = deadline - time.monotonic()
            try:
                message = await asyncio.wait_for(socket.read_message(), max(left, 0.1))
            except TimeoutError:
                raise TimeoutError(f"{command!r} did not finish in {timeout:.0f} s") from None
            if message is None:
                raise ConnectionError(f"{user}'s terminal closed: {screen!r}")
            kind, *content = json.loads(message)
            if kind == "stdout":
                screen += content[0]
        socket.close()
    finally:
        requests.delete(f"{api}/{name}", headers=headers, timeout=30)
    return int(done.group(1)), screen
