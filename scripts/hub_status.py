"""The bootcamp's daily checks, read from a running deployment: `coursehub status <deployment>`.

Each check is one line: nodes, placeholders, course images pulled, errors in
the hub's log, the culler's last run, the certificate's expiry. A cluster
deployment is read with kubectl (`kubectl get nodes/pods -o json`, `kubectl
logs deploy/hub`) and a TLS connection to its host, as an organizer would by
hand; the local deployment is read from what the local hub has: its REST API,
its log file. The parsing is separate from the reading, so the tests give it
kubectl's recorded output.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from coursehub_tools.deployconfig import Deployment
from coursehub_tools.hub_api import HubAPI, HubAPIError

OK, WARN, FAIL, NOT_HERE = "ok", "warn", "FAIL", "n/a"
# How far back the hub's log is read for errors: one day, the checklist's rhythm.
LOG_WINDOW = timedelta(hours=24)
# A certificate closer than this to its end is a warning: Let's Encrypt's
# certificates last 90 days and Traefik (the chart's autohttps) renews them at 30.
CERT_WARN = timedelta(days=21)
CULLER = "jupyterhub-idle-culler"
# JupyterHub's log prefix: "[E 2026-11-16 09:00:01.123 JupyterHub app:123] ...".
# ref: jupyterhub/app.py _log_format_default (the time is the hub's local time)
HUB_LINE = re.compile(
    r"^\[(?P<level>[DIWEC]) (?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.\d+"
    r" JupyterHub (?P<where>\S+)\] (?P<message>.*)$"
)


@dataclass(frozen=True)
class Check:
    name: str
    state: str
    detail: str


def format_report(deployment: str, checks: Iterable[Check]) -> str:
    lines = [f"coursehub status {deployment}"]
    lines += [f"  {c.name:<13} {c.state:<4} {c.detail}" for c in checks]
    return "\n".join(lines)


# --- what kubectl says -------------------------------------------------------------------


def _ready(obj: dict) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in obj.get("status", {}).get("conditions", [])
    )


def _component(pod: dict) -> str | None:
    return pod["metadata"].get("labels", {}).get("component")


def node_check(nodes: dict) -> Check:
    """`kubectl get nodes -o json`: every node Ready, counted by the chart's node purpose."""
    items = nodes["items"]
    if not items:
        return Check("nodes", FAIL, "the cluster has no nodes")
    purposes: dict[str, int] = {}
    for node in items:
        purpose = node["metadata"].get("labels", {}).get("hub.jupyter.org/node-purpose", "other")
        purposes[purpose] = purposes.get(purpose, 0) + 1
    not_ready = sorted(n["metadata"]["name"] for n in items if not _ready(n))
    counts = ", ".join(f"{n} {p}" for p, n in sorted(purposes.items()))
    if not_ready:
        return Check("nodes", FAIL, f"not Ready: {', '.join(not_ready)} ({counts})")
    return Check("nodes", OK, f"{len(items)} Ready ({counts})")


def placeholder_check(pods: dict, wanted: int) -> Check:
    """`kubectl get pods -o json`: the chart's user-placeholder pods running, against replicas."""
    if not wanted:
        return Check("placeholders", OK, "none wanted (scheduling.userPlaceholder)")
    placeholders = [
        p
        for p in pods["items"]
        if p["metadata"].get("labels", {}).get("component") == "user-placeholder"
    ]
    running = sum(1 for p in placeholders if p["status"].get("phase") == "Running")
    state = OK if running == wanted else WARN
    pending = len(placeholders) - running
    detail = f"{running} of {wanted} running" + (f", {pending} pending" if pending else "")
    return Check("placeholders", state, detail)


def image_names(reference: str) -> set[str]:
    """The names a node reports for an image, as kubelet lists them (docker.io spelled out)."""
    name, at, digest = reference.partition("@")
    first, slash, _ = name.partition("/")
    # Docker's rule: the first part names a registry only if it looks like a host.
    if not slash or ("." not in first and ":" not in first and first != "localhost"):
        name = f"docker.io/{name}" if "/" in name else f"docker.io/library/{name}"
    repository = name.rsplit(":", 1)[0] if ":" in name.split("/")[-1] else name
    return {f"{repository}@{digest}"} if at else {name}


def wanted_images(values: dict) -> list[str]:
    """The images every user node should have: singleuser.image and prePuller.extraImages."""
    images = []
    for spec in [values["singleuser"]["image"], *values["prePuller"]["extraImages"].values()]:
        if spec.get("name"):
            images.append(f"{spec['name']}:{spec['tag']}" if spec.get("tag") else spec["name"])
    return images


def image_check(nodes: dict, images: list[str]) -> Check:
    """Each user node's status.images holds every wanted image (the pre-puller did its job)."""
    users = [
        n for n in nodes["items"]
        if n["metadata"].get("labels", {}).get("hub.jupyter.org/node-purpose") == "user"
    ]  # fmt: skip
    if not users:
        return Check("images", WARN, "no user nodes to hold the images")
    missing = []
    for node in users:
        held = {name for image in node["status"].get("images", []) for name in image["names"]}
        for image in images:
            if not image_names(image) & held:
                missing.append(f"{image} on {node['metadata']['name']}")
    if missing:
        return Check("images", WARN, "not pulled: " + "; ".join(missing))
    return Check("images", OK, f"{len(images)} image(s) on all {len(users)} user node(s)")


def hub_pod_check(pods: dict) -> Check:
    hubs = [p for p in pods["items"] if _component(p) == "hub"]
    if not hubs:
        return Check("hub", FAIL, "no hub pod")
    hub = hubs[0]
    restarts = sum(s.get("restartCount", 0) for s in hub["status"].get("containerStatuses", []))
    name = hub["metadata"]["name"]
    if not _ready(hub):
        return Check("hub", FAIL, f"{name} is not Ready ({hub['status'].get('phase')})")
    return Check("hub", OK if not restarts else WARN, f"{name} Ready, {restarts} restart(s)")


# --- what the hub's log says -------------------------------------------------------------


def hub_log_lines(log: str) -> list[tuple[str, datetime, str]]:
    """(level, time, message) of the hub's own lines; servers' and proxy's lines are left out."""
    lines = []
    for line in log.splitlines():
        match = HUB_LINE.match(line)
        if match:
            when = datetime.strptime(match["time"], "%Y-%m-%d %H:%M:%S")
            lines.append((match["level"], when, match["message"]))
    return lines


def log_errors_check(log: str, now: datetime) -> Check:
    errors = [
        (when, message)
        for level, when, message in hub_log_lines(log)
        if level in "EC" and now - when <= LOG_WINDOW
    ]
    if not errors:
        return Check("hub log", OK, "no errors in the last 24 h")
    when, last = errors[-1]
    return Check(
        "hub log", WARN, f"{len(errors)} error(s) in 24 h; last at {when:%H:%M}: {last[:120]}"
    )


def culler_check(log: str, now: datetime, every: int, enabled: bool) -> Check:
    """The culler's last request to the hub's API, as the hub logged it (user@ip: the service)."""
    if not enabled:
        return Check("culler", WARN, "cull.enabled is false: idle servers are never stopped")
    runs = [when for _, when, message in hub_log_lines(log) if f"({CULLER}@" in message]
    if not runs:
        return Check("culler", FAIL, "no request from the culler in the hub's log")
    age = now - runs[-1]
    # The culler runs every cull.every seconds; two missed runs is a stopped culler.
    state = OK if age <= timedelta(seconds=2 * every) else FAIL
    minutes = int(age.total_seconds() // 60)
    return Check(
        "culler", state, f"last ran {runs[-1]:%Y-%m-%d %H:%M} ({minutes} min ago, every {every} s)"
    )


def certificate_check(host: str | None, not_after: str | None, now: datetime) -> Check:
    """`not_after` as Python's ssl module gives it (getpeercert()['notAfter'], GMT)."""
    if host is None:
        return Check("certificate", NOT_HERE, "proxy.https is off: the hub is served over http")
    if not_after is None:
        return Check("certificate", FAIL, f"{host}:443 did not complete a TLS handshake")
    ends = datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), UTC).replace(tzinfo=None)
    left = ends - now
    state = FAIL if left <= timedelta(0) else WARN if left < CERT_WARN else OK
    return Check("certificate", state, f"{host} valid until {ends:%Y-%m-%d} ({left.days} days)")


# --- reading a deployment --------------------------------------------------------------------


def https_host(values: dict) -> str | None:
    https = values["proxy"].get("https", {})
    return https["hosts"][0] if https.get("enabled") and https.get("hosts") else None


def peer_not_after(host: str, port: int = 443, timeout: float = 10) -> str | None:
    """The certificate's end date as a browser would see it; None if no verified handshake."""
    context = ssl.create_default_context()
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            return tls.getpeercert()["notAfter"]
    except (OSError, ssl.SSLError):
        return None


def kubectl_commands(namespace: str) -> dict[str, list[str]]:
    """What `coursehub status` runs against a cluster deployment (kubectl's current context)."""
    return {
        "nodes": ["kubectl", "get", "nodes", "-o", "json"],
        "pods": ["kubectl", "get", "pods", "--namespace", namespace, "-o", "json"],
        "log": ["kubectl", "logs", "--namespace", namespace, "deploy/hub", "--since=24h"],
    }


def cluster_checks(
    deployment: Deployment,
    now: datetime,
    run: Callable[[list[str]], str],
    not_after: Callable[[str], str | None] = peer_not_after,
) -> list[Check]:
    values = deployment.values
    commands = kubectl_commands(deployment.spec["namespace"])
    nodes, pods = json.loads(run(commands["nodes"])), json.loads(run(commands["pods"]))
    log = run(commands["log"])
    placeholders = values["scheduling"]["userPlaceholder"]
    host = https_host(values)
    return [
        hub_pod_check(pods),
        node_check(nodes),
        placeholder_check(pods, placeholders["replicas"] if placeholders["enabled"] else 0),
        image_check(nodes, wanted_images(values)),
        log_errors_check(log, now),
        culler_check(log, now, values["cull"]["every"], values["cull"]["enabled"]),
        certificate_check(host, not_after(host) if host else None, now),
    ]


def run_kubectl(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise StatusError(f"`{' '.join(command)}` failed: {done.stderr.strip()[:300]}")
    return done.stdout


class StatusError(Exception):
    """The deployment could not be read; the message says which step failed."""


def local_checks(
    deployment: Deployment, hub_url: str, token: str, log_file: Path, now: datetime
) -> list[Check]:
    """The local hub: the same checks where they mean something on one machine."""
    values = deployment.values
    try:
        hub = HubAPI(hub_url, token)
        version = hub.version()
        active = hub.every("/users", state="active")
    except (requests.RequestException, HubAPIError, ValueError) as err:
        raise StatusError(f"the hub at {hub_url} did not answer its REST API: {err}") from err
    servers = [s for user in active for s in user["servers"].values()]
    starting = sum(1 for s in servers if s.get("pending") == "spawn")
    if not log_file.is_file():
        raise StatusError(
            f"no hub log at {log_file}: pass --log with the file the hub's output goes to"
        )
    log = log_file.read_text(errors="replace")
    here = "servers are processes on this machine"
    return [
        Check(
            "hub",
            OK,
            f"JupyterHub {version}: {len(servers)} server(s) running, {starting} starting",
        ),
        Check("nodes", NOT_HERE, f"{here}, no nodes"),
        Check("placeholders", NOT_HERE, f"{here}, nothing to hold room for"),
        Check("images", NOT_HERE, f"{here}, run from this Python environment"),
        log_errors_check(log, now),
        culler_check(log, now, values["cull"]["every"], values["cull"]["enabled"]),
        certificate_check(https_host(values), None, now),
    ]


def exit_status(checks: Iterable[Check]) -> int:
    """1 when any check failed, so a scheduled run can page someone."""
    return 1 if any(c.state == FAIL for c in checks) else 0
