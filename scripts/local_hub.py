"""Run the reference hub on this machine: same values, same hub-config, local processes.

    coursehub-hub run [--port 8000] [--state-dir .localhub] [--deployment local]

It merges the `local` deployment (deploy/deployments.yaml), lays out the
merged values and hub-config/ the way the chart mounts them in the hub pod,
starts the GitHub stand-in and the proxy (its own process, as the chart's proxy
pod is), and starts JupyterHub with scripts/localhub/jupyterhub_config.py.
Ctrl-C stops the hub, every user's server, the proxy and the stand-in; anything
left behind is found and stopped. With `--deployment local-kube` the hub keeps
the chart's KubeSpawner and users' servers are pods of the Kubernetes stand-in
(scripts/kube_standin/, started here too; scripts/localhub/kube_backend.py).
Tests and the book use `LocalHub` the same way (`with LocalHub(...) as hub:`).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

import requests

from coursehub_tools.deployconfig import ROOT, ConfigError, Layer, load, load_deployments
from coursehub_tools.hub_api import HubAPI, name
from coursehub_tools.kube_standin.launch import StandinSettings
from coursehub_tools.localhub import kube_backend
from coursehub_tools.localhub.facts import FACTS_VARIABLE, LOCAL_SPAWNERS, LocalFacts
from coursehub_tools.localhub.layout import PROXY_TOKEN_KEY, hub_environment, lay_out, release_of
from coursehub_tools.localhub.supervisor import (
    ProcessFailed,
    Supervisor,
    free_port,
    wait_for_port,
)
from coursehub_tools.waiting import WaitTimeout, wait_until

LOCALHUB_DIR = ROOT / "scripts" / "localhub"
FIXTURE = LOCALHUB_DIR / "github-users.yaml"
CLIENT_ID = "coursehub-local"
# Chromium and Firefox resolve every name under localhost to the loopback (RFC 6761),
# so users' servers get hosts <user>.hub.localhost with no DNS set-up. Not `localhost`
# itself: the hub's session cookie is set for its domain and subdomains, and Python's
# cookie jar never sends a cookie whose domain has no dot (http.cookiejar).
PUBLIC_HOST = "hub.localhost"
OPERATOR_SERVICE = "local-operator"
# The account the course request page opens pull requests as, on the stand-in
# (scripts/localhub/github-users.yaml lets it write), and its token's secret.
REQUESTS_BOT = "coursehub-requests-bot"
REQUESTS_TOKEN = "course-requests-github-token"
# Only a guard against a hub that hangs: a start that fails ends JupyterHub's process,
# which wait_ready notices at once. On a loaded 2-core machine the hub's imports alone
# took 41 s, so the 60 s this was failed starts that were only slow.
READY_TIMEOUT = 300


class LocalHubError(Exception):
    """The local hub cannot start; the message says why and what to do."""


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def find_chp() -> Path:
    chp = ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
    if not chp.exists():
        raise LocalHubError(
            f"{chp.relative_to(ROOT)} is missing: run `nox -s hub`, which installs it with npm"
        )
    return chp


@dataclass
class LocalHub:
    """The local reference hub: prepare, start, use, stop."""

    state_dir: Path
    port: int = 8000
    deployment: str = "local"
    # Layers after the deployment's own: one dict, or several in order.
    extra_values: dict | list[dict] | None = None
    log_file: IO | None = None
    # Who the GitHub stand-in knows: users, organizations, teams.
    fixture: Path = FIXTURE
    # Users' servers: "jupyterlab", or "lightweight" for load tests (LOCAL_SPAWNERS).
    server: str = "jupyterlab"
    hub_port: int = 0
    proxy_api_port: int = 0
    standin_port: int = 0
    supervisor: Supervisor = field(init=False)
    # The Kubernetes stand-in, for a `local-kube` deployment (scripts/localhub/kube_backend.py).
    kube: StandinSettings | None = field(default=None, init=False)
    kube_process: subprocess.Popen | None = field(default=None, init=False)
    # The hub's namespace, as the chart's hub reads it from its pod ($POD_NAMESPACE).
    namespace: str = field(default="", init=False)
    host_routing: bool = field(default=False, init=False)
    hub_process: subprocess.Popen | None = field(default=None, init=False)
    _stopping: threading.Event = field(default_factory=threading.Event, init=False)

    def __post_init__(self) -> None:
        if self.server not in LOCAL_SPAWNERS:
            raise LocalHubError(
                f"unknown server {self.server!r}; choose one of: {', '.join(LOCAL_SPAWNERS)}"
            )
        self.supervisor = Supervisor(self.log_file)

    @property
    def marker(self) -> str:
        """What every process of this hub carries in its environment."""
        return self.supervisor.marker

    @property
    def url(self) -> str:
        """The hub's address, whose subdomains are users' servers' hosts."""
        return f"http://{PUBLIC_HOST}:{self.port}"

    @property
    def standin_url(self) -> str:
        return f"http://127.0.0.1:{self.standin_port}"

    @property
    def config_dir(self) -> Path:
        return self.state_dir / "etc" / "jupyterhub"

    @property
    def operator_token(self) -> str:
        return self._secret("operator-token")

    def _secret(self, name: str) -> str:
        """A value kept in the state folder, made at first use: the chart's generated
        Secret's values (tokens, keys) stay the same across restarts, as helm keeps them."""
        path = self.state_dir / f"{name}.secret"
        if not path.exists():
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def runtime_layer(self) -> Layer:
        """What only this run can know: the stand-in's address and this hub's ports."""
        github = {
            "client_id": CLIENT_ID,
            "client_secret": self._secret("github-client-secret"),
            "github_url": self.standin_url,
            "oauth_callback_url": f"{self.url}/hub/oauth_callback",
        }
        # Each user's server on its own origin, <user>.hub.localhost:<port>, as on the
        # clusters (their values set it from their host): a page a student's
        # server serves cannot read or act on the hub session of an instructor
        # who opens it (book/reliability.md, the threat model).
        hub_config = {"GitHubOAuthenticator": github, "JupyterHub": {"subdomain_host": self.url}}
        # The course request page opens pull requests on the stand-in, with the token
        # the stand-in was given for the bot account (on a cluster: the secrets layer).
        requests = {"githubApi": f"{self.standin_url}/api/v3",
                    "githubToken": self._secret(REQUESTS_TOKEN)}  # fmt: skip
        values = {"hub": {"config": hub_config}, "custom": {"courseRequests": requests}}
        return Layer("runtime (scripts/local_hub.py)", values)

    def prepare(self) -> None:
        """Check ports and config, then lay out <state>/etc/jupyterhub like the hub pod's."""
        if not port_is_free(self.port):
            raise LocalHubError(
                f"port {self.port} on 127.0.0.1 is already in use; stop what uses it "
                "(another hub?) or choose a free port with --port"
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.hub_port, self.proxy_api_port, self.standin_port = (
            free_port(),
            free_port(),
            free_port(),
        )
        layers = [self.runtime_layer()]
        if load_deployments()["deployments"].get(self.deployment, {}).get("backend") == (
            kube_backend.BACKEND
        ):
            layers.append(Layer("runtime (local-kube)", kube_backend.runtime_values()))
        extra = self.extra_values or []
        for values in [extra] if isinstance(extra, dict) else extra:
            layers.append(Layer("extra values (LocalHub.extra_values)", values))
        deployment = load(self.deployment, extra_layers=layers)
        hub_app = deployment.values["hub"].get("config", {}).get("JupyterHub", {})
        self.host_routing = bool(hub_app.get("subdomain_host"))
        if deployment.backend not in ("local", kube_backend.BACKEND):
            raise LocalHubError(
                f"deployment {self.deployment!r} runs on {deployment.backend}, not on this machine"
            )
        if deployment.backend == kube_backend.BACKEND:
            self.kube = kube_backend.standin_settings(deployment, self.state_dir, free_port())
            self.kube.write_kubeconfig()
        lay_out(deployment, self.config_dir, self._secret)
        self.namespace = release_of(deployment)[1]
        LocalFacts(
            state_dir=self.state_dir,
            pod_dir=self.config_dir,
            public_port=self.port,
            hub_port=self.hub_port,
            proxy_api_port=self.proxy_api_port,
            backend=deployment.backend,
            server=self.server,
            marker=self.marker,
            operator_token=self.operator_token,
        ).write()

    def environment(self) -> dict[str, str]:
        """The hub's environment: what its pod's has on a cluster (layout.hub_environment),
        this run's facts file, and KUBECONFIG for a `local-kube` hub's KubeSpawner."""
        env = dict(os.environ)
        ports = {"hub": self.hub_port, "proxy-api": self.proxy_api_port}
        env.update(hub_environment(self.config_dir, self.namespace, ports))
        env[FACTS_VARIABLE] = str(self.state_dir / "this-machine.json")
        # The chart's hub imports hub-config from its config dir, first on its path
        # (before this machine's swaps import the local spawner, which uses it).
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(self.config_dir), os.environ.get("PYTHONPATH")])
        )
        if self.kube is not None:
            env["KUBECONFIG"] = str(self.kube.kubeconfig)
        return env

    def start(self) -> None:
        self.prepare()
        env = self.environment()
        standin = [
            sys.executable,
            "-m",
            "coursehub_tools.github_standin",
            "--port",
            str(self.standin_port),
            "--fixture",
            str(self.fixture),
            "--client-id",
            CLIENT_ID,
            "--client-secret",
            self._secret("github-client-secret"),
            "--token",
            f"{REQUESTS_BOT}={self._secret(REQUESTS_TOKEN)}",
        ]
        try:
            process = self.supervisor.start(standin, env)
            wait_for_port(self.standin_port, process, "the GitHub stand-in", 20)
            if self.kube is not None:
                self.kube_process = self.supervisor.start(self.kube.command(), env)
                wait_for_port(self.kube.port, self.kube_process, "the Kubernetes stand-in", 20)
            proxy = self.supervisor.start(self.proxy_command(), env)
            wait_for_port(self.port, proxy, "configurable-http-proxy", 20)
        except ProcessFailed as err:
            self.stop()
            raise LocalHubError(str(err)) from err
        threading.Thread(target=self._keep_running, args=(proxy, env), daemon=True).start()
        self.start_hub()

    def _keep_running(self, proxy: subprocess.Popen, env: dict[str, str]) -> None:
        """Start the proxy again whenever it exits, as Kubernetes restarts the proxy pod
        (the hub, which did not start it, only routes it again at its next activity
        check, JupyterHub.last_activity_interval).

        It blocks on the proxy's exit rather than polling on a timed wait: stop()
        says it is stopping before it ends the proxy. (A timed lock wait also never
        ends under a clock moved with libfaketime, which does not intercept the
        sem_clockwait CPython waits with; tests/test_other_days.py moves it.)
        """
        while True:
            proxy.wait()
            if self._stopping.is_set():
                return
            proxy = self.supervisor.start(self.proxy_command(), env)

    def proxy_command(self) -> list[str]:
        """configurable-http-proxy with the arguments of the chart's proxy pod
        (templates/proxy/deployment.yaml), on this machine's ports. A process of its
        own, not the hub's child: it routes on while the hub restarts."""
        hub = f"http://127.0.0.1:{self.hub_port}"
        return [
            str(find_chp()),
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--api-ip=127.0.0.1",
            f"--api-port={self.proxy_api_port}",
            f"--default-target={hub}",
            f"--error-target={hub}/hub/error",
            # As the chart's proxy pod with subdomain_host set: routes are host/path.
            *(["--host-routing"] if self.host_routing else []),
        ]

    def start_hub(self) -> None:
        """Start JupyterHub (again, after kill_hub) and wait until its API answers."""
        config = LOCALHUB_DIR / "jupyterhub_config.py"
        self.hub_process = self.supervisor.start(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)],
            self.environment(),
            cwd=self.state_dir,
        )
        self.wait_ready(self.hub_process)

    def kill_hub(self) -> None:
        """Kill JupyterHub alone (SIGKILL), as an out-of-memory kill or a lost node would.

        Users' servers and the proxy keep running, as pods do when the hub pod goes.
        """
        self.hub_process.kill()
        self.hub_process.wait()

    def wait_ready(self, hub, timeout: float = READY_TIMEOUT) -> None:
        def routed() -> bool:
            if hub.poll() is not None:
                raise LocalHubError(
                    f"JupyterHub exited with status {hub.returncode} while starting; see its log"
                )
            return self.services_routed()

        # A poll answered late is a hub still starting, as one refused: under load
        # the starting hub took longer than a poll's 2 s to answer, and the
        # ReadTimeout, counted as a failure, failed the hub's start.
        try:
            wait_until(
                routed,
                timeout,
                f"JupyterHub answering on {self.url}",
                not_yet=(requests.ConnectionError, requests.Timeout),
            )
        except (LocalHubError, WaitTimeout) as err:
            self.stop()
            raise LocalHubError(str(err)) from err

    def services_routed(self) -> bool:
        """The hub's API answers and the proxy routes each of its services with a URL
        to where it listens now: the hub's last step at start.

        The proxy sends everything it has no route for to the hub, so the API answers
        as soon as the hub listens, before it has started its services; after a
        restart the proxy still has the killed hub's routes, and a service's new
        address (a new port here) is routed only at the end of the start.
        """
        # Asked once: this is a poll, the next one asks again.
        once = replace(self.client, attempts=1, timeout=2)
        if HubAPI(self.url, None, attempts=1, timeout=2).request("GET", "/").status_code != 200:
            return False
        services = once.request("GET", "/services")
        if services.status_code != 200:
            return False
        routes = requests.get(
            f"http://127.0.0.1:{self.proxy_api_port}/api/routes",
            headers={"Authorization": f"token {self._secret(PROXY_TOKEN_KEY)}"},
            timeout=2,
        ).json()
        # With host routing the proxy keys a route by host, then path; services are
        # on the hub's host (coursehub/origins.py).
        host = f"/{PUBLIC_HOST}" if self.host_routing else ""
        targets = {
            prefix.removeprefix(host).rstrip("/"): route["target"]
            for prefix, route in routes.items()
        }
        return all(
            targets.get(service["prefix"].rstrip("/")) == service["url"]
            for service in services.json().values()
            if service.get("url")
        )

    def snapshot(self) -> dict:
        """What a fault or a hostile request must not change: users, groups, tokens, servers."""
        users = {
            user["name"]: (sorted(user["groups"]), user["admin"], sorted(user["servers"]))
            for user in self.client.every("/users")
        }
        groups = {g["name"]: sorted(g["users"]) for g in self.client.every("/groups")}
        tokens = {
            user: len(self.client.get(f"/users/{name(user)}/tokens")["api_tokens"])
            for user in users
        }
        return {"users": users, "groups": groups, "tokens": tokens}

    @property
    def client(self) -> HubAPI:
        """The hub's REST API as the local operator service."""
        return HubAPI(self.url, self.operator_token)

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        """The hub's answer to a REST call as the local operator, whatever its status
        (for tests of what it refuses; `client` raises on a refusal)."""
        return self.client.request(method, path, **kwargs)

    def stop(self) -> list[int]:
        """Stop everything this hub started; return the pids that had to be killed afterwards."""
        self._stopping.set()
        return self.supervisor.stop()

    def __enter__(self) -> LocalHub:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def run(args: argparse.Namespace) -> int:
    hub = LocalHub(
        state_dir=Path(args.state_dir).resolve(), port=args.port, deployment=args.deployment
    )
    try:
        hub.start()
    except (ConfigError, LocalHubError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(
        f"\ncoursehub is running at {hub.url}\n"
        f"Log in with GitHub: the local GitHub stand-in ({hub.standin_url}) asks who you are.\n"
        "Users come from scripts/localhub/github-users.yaml: ada is a hub admin, ian teaches\n"
        "both courses, tara data-science-101 and tom climate-lab; sam and sky are students of\n"
        "data-science-101, bea of climate-lab; nora, olga and wes are refused.\n"
        f"REST API as the operator: curl -H 'Authorization: token {hub.operator_token}' "
        f"{hub.url}/hub/api/users\n"
        "Press Ctrl-C to stop the hub, the proxy and every server.\n",
        flush=True,
    )
    try:
        while hub.supervisor.all_running():
            time.sleep(0.5)
        print("error: a hub process exited; stopping the rest", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        status = 0
    strays = hub.stop()
    if strays:
        print(f"stopped {len(strays)} process(es) left behind: {strays}", file=sys.stderr)
    print("coursehub stopped.")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("run", help="run the hub until Ctrl-C")
    start.add_argument("--port", type=int, default=8000, help="public port on 127.0.0.1")
    start.add_argument(
        "--state-dir", default=str(ROOT / ".localhub"), help="database, homes, secrets"
    )
    start.add_argument(
        "--deployment",
        default="local",
        help="a deployment this machine runs: local, local-sso, or local-kube (KubeSpawner "
        "on the Kubernetes stand-in)",
    )
    args = parser.parse_args(argv)
    # A terminal's Ctrl-C reaches only this process (children run in their own
    # sessions) and LocalHub.stop stops them in order; `kill` is treated the same.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
