"""The load tests' lightweight server sends a browser to the hub's own host to log in."""

from __future__ import annotations

import pytest

from coursehub_tools.local.hub.lightweight_server import HubConnection

pytestmark = pytest.mark.unit

# What JupyterHub 5.5's Spawner.get_env gives a server, for a hub on hub.localhost:8000.
ENV = {
    "JUPYTERHUB_USER": "nora",
    "JUPYTERHUB_API_TOKEN": "token",
    "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api",
    "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-nora",
    "JUPYTERHUB_OAUTH_CALLBACK_URL": "/user/nora/oauth_callback",
    "JUPYTERHUB_SERVICE_PREFIX": "/user/nora/",
    "JUPYTERHUB_BASE_URL": "/",
    "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:43873/user/nora/",
}


def test_with_users_on_their_own_hosts_login_goes_to_the_hubs_host():
    hub = HubConnection({**ENV, "JUPYTERHUB_HOST": "http://hub.localhost:8000"})
    # Not a path: the browser is on nora.hub.localhost, where the hub has no session.
    assert hub.authorize_url == "http://hub.localhost:8000/hub/api/oauth2/authorize"


def test_with_users_on_the_hubs_host_login_is_a_path_there():
    assert HubConnection(ENV).authorize_url == "/hub/api/oauth2/authorize"
