"""The hub API client waits out a busy or restarting hub and names the call a hub refuses.

Paging through a real hub's lists: tests/test_hub_client.py. Here the other
side is a stand-in on loopback (not JupyterHub) that answers as JupyterHub does
when it is busy: 429 from its spawn throttle, with a Retry-After in seconds
and a JSON message (ref: jupyterhub/handlers/base.py, spawn_single_user).
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import pytest
import requests

from coursehub_tools.hub_api import HubAPI, HubAPIError
from coursehub_tools.localhub.supervisor import free_port
from coursehub_tools.serving import serving

pytestmark = pytest.mark.unit


def answering(*answers: tuple[int, dict, dict]):
    """A stand-in hub giving `answers` (status, headers, JSON body) in turn; what it was asked."""
    asked: list[tuple[str, str, str | None]] = []
    queue = list(answers)

    class StandinHub(BaseHTTPRequestHandler):
        def log_message(self, format, *args):
            pass

        def answer(self) -> None:
            asked.append((self.command, self.path, self.headers.get("Authorization")))
            status, headers, body = queue.pop(0)
            data = json.dumps(body).encode()
            self.send_response(status)
            for key, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = answer

    return StandinHub, asked


BUSY = {"status": 429, "message": "Too many users trying to log in right now. Try again."}


def test_a_busy_hub_is_asked_again_after_the_wait_it_names():
    handler, asked = answering(
        (429, {"Retry-After": "7"}, BUSY),
        (503, {"Retry-After": "2"}, {"status": 503, "message": "busy"}),
        (200, {}, {"name": "sam"}),
    )
    waited: list[float] = []
    with serving(handler) as port:
        hub = HubAPI(f"http://127.0.0.1:{port}", "secret", sleep=waited.append)
        assert hub.get("/users/sam") == {"name": "sam"}
    assert waited == [7, 2], "the hub's own Retry-After, in seconds"
    assert asked == [("GET", "/hub/api/users/sam", "token secret")] * 3


def test_a_hub_busy_past_the_last_attempt_is_a_refusal_naming_the_call():
    handler, _asked = answering(*[(429, {"Retry-After": "100"}, BUSY)] * 3)
    waited: list[float] = []
    with serving(handler) as port:
        hub = HubAPI(f"http://127.0.0.1:{port}", "secret", attempts=3, sleep=waited.append)
        with pytest.raises(HubAPIError) as refused:
            hub.call("POST", "/users/sam/server")
    assert waited == [30, 30], "never longer than longest_wait, whatever the hub says"
    assert refused.value.status == 429
    assert str(refused.value) == (
        "POST /users/sam/server: the hub answered 429: "
        "Too many users trying to log in right now. Try again."
    )


def test_a_refusal_is_not_asked_again_and_a_missing_one_may_be_none():
    handler, asked = answering(
        (403, {}, {"status": 403, "message": "Action is not authorized with current scopes"}),
        (404, {}, {"status": 404, "message": "Not Found"}),
    )
    with serving(handler) as port:
        hub = HubAPI(f"http://127.0.0.1:{port}", "weak", sleep=pytest.fail)
        with pytest.raises(HubAPIError, match=r"^GET /users: the hub answered 403: Action is"):
            hub.every("/users")
        assert hub.call("GET", "/groups/nobody", missing_ok=True) is None
    assert len(asked) == 2


def test_a_hub_that_does_not_listen_is_asked_again_only_for_what_is_safe_to_repeat():
    waited: list[float] = []
    hub = HubAPI(f"http://127.0.0.1:{free_port()}", "secret", attempts=4, sleep=waited.append)
    with pytest.raises(requests.ConnectionError):
        hub.get("/users")
    assert waited == [0.5, 1, 2], "backing off between the four attempts"
    waited.clear()
    with pytest.raises(requests.ConnectionError):
        hub.call("POST", "/users/sam/tokens")
    assert waited == [], "a POST that may have reached the hub is not sent twice"
