"""A person at a browser, in code: log in through GitHub (or its stand-in), start a server.

Used by the tests, the book's chapters and the load test, so all of them walk
the same path a student does: /hub/oauth_login -> GitHub's consent page ->
/hub/oauth_callback -> /hub/spawn -> /user/<name>/lab.
"""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass

import requests

FORM_FIELD = r'name="{}" value="([^"]*)"'


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


def login_with_standin(hub_url: str, login: str | None, *, next_url: str = "") -> Login:
    """Log in as fixture user `login`; None clicks "Cancel" (denies consent)."""
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
    response = session.post(consent.url.split("?")[0], data=form, timeout=120)
    return Login(session, response)


def wait_for_server(
    session: requests.Session, hub_url: str, user: str, timeout: float = 90
) -> requests.Response:
    """Follow the hub until the user's JupyterLab answers through the proxy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = session.get(f"{hub_url}/user/{user}/lab", timeout=30)
        if response.status_code == 200 and f"/user/{user}/lab" in response.url:
            return response
        time.sleep(0.5)
    raise TimeoutError(f"{user}'s server did not become ready within {timeout:.0f} s")
