"""The local reference hub: log in through the GitHub stand-in, start JupyterLab, reach it."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from coursehub_tools.deployconfig import ROOT, load
from coursehub_tools.hub_client import login_with_standin, wait_for_server
from coursehub_tools.localhub.supervisor import processes_marked

pytestmark = pytest.mark.hub


def test_student_logs_in_and_reaches_jupyterlab(local_hub):
    login = login_with_standin(local_hub.url, "sam")
    assert login.response.status_code == 200
    lab = wait_for_server(login.session, local_hub.url, "sam")
    assert "JupyterLab" in lab.text
    user = local_hub.api("GET", "/users/sam").json()
    assert user["servers"][""]["ready"] is True
    assert (local_hub.state_dir / "homes" / "sam").is_dir()
    # On its own origin (subdomain_host): the proxy routes sam's host and path.
    server = urlparse(user["servers"][""]["url"])
    hub_host = urlparse(local_hub.url).hostname
    assert server.hostname == f"sam.{hub_host}" and lab.url.startswith(user["servers"][""]["url"])
    routes = local_hub.api("GET", "/proxy").json()
    assert f"sam.{hub_host}/user/sam/" in routes, "the proxy routes sam's host to sam's server"


def test_local_hub_loaded_the_deployed_hub_config(local_hub):
    """The chart's own file ran hub-config's jupyterhub_config.d, as staging's and prod's do."""
    config_d = local_hub.config_dir / "jupyterhub_config.d"
    # The chart's file names each file it loads, in its order, in the hub's log.
    announced = f"Loading {config_d} config: "
    log = (local_hub.state_dir / "hub.log").read_text().splitlines()
    loaded = [line.removeprefix(announced) for line in log if line.startswith(announced)]
    ran = {name: hashlib.sha256((config_d / name).read_bytes()).hexdigest() for name in loaded}
    for deployment in ("staging", "prod"):
        mounted = {
            entry["mountPath"].rsplit("/", 1)[1]: hashlib.sha256(
                entry["stringData"].encode()
            ).hexdigest()
            for entry in load(deployment).values["hub"]["extraFiles"].values()
            if "/jupyterhub_config.d/" in entry["mountPath"]
        }
        assert ran == mounted
    assert loaded == sorted(loaded)


def test_local_hub_runs_the_merged_local_values(local_hub):
    import yaml

    running = yaml.safe_load((local_hub.config_dir / "secret" / "values.yaml").read_text())
    expected = load("local", extra_layers=[local_hub.runtime_layer()]).mounted_values()
    assert running == expected
    culler = local_hub.api("GET", "/services/jupyterhub-idle-culler").json()
    assert f"--timeout={expected['cull']['timeout']}" in culler["command"]


def run_cli(*args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "coursehub_tools.local_hub", "run", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_port_in_use_is_a_one_line_error(local_hub, tmp_path):
    cli = run_cli("--port", str(local_hub.port), "--state-dir", str(tmp_path))
    _out, err = cli.communicate(timeout=60)
    assert cli.returncode == 1
    assert err.splitlines() == [
        f"error: port {local_hub.port} on 127.0.0.1 is already in use; stop what uses it "
        "(another hub?) or choose a free port with --port"
    ]


def test_ctrl_c_stops_everything(tmp_path, local_hub_pieces):
    from coursehub_tools.local_hub import PUBLIC_HOST, free_port

    port = free_port()
    cli = run_cli("--port", str(port), "--state-dir", str(tmp_path))
    lines = []
    for line in cli.stdout:
        lines.append(line)
        if "Press Ctrl-C" in line:
            break
    else:
        pytest.fail(f"the hub did not start: {''.join(lines)} {cli.stderr.read()}")
    url = f"http://{PUBLIC_HOST}:{port}"
    assert url in "".join(lines), "it says where it runs"
    login = login_with_standin(url, "sky")
    wait_for_server(login.session, url, "sky")
    env_marker = _marker_of(cli.pid)
    assert len(processes_marked(env_marker)) >= 4, "stand-in, hub, proxy, culler and sky's server"
    cli.send_signal(signal.SIGINT)
    out, _err = cli.communicate(timeout=60)
    assert cli.returncode == 0
    assert "coursehub stopped." in out
    assert "left behind" not in out
    time.sleep(0.5)
    assert processes_marked(env_marker) == [], "stray processes after Ctrl-C"


def _marker_of(runner_pid: int) -> str:
    """The COURSEHUB_LOCALHUB marker the runner gave its children."""
    for child in subprocess.run(
        ["pgrep", "-P", str(runner_pid)], capture_output=True, text=True
    ).stdout.split():
        environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        for item in environ:
            if item.startswith(b"COURSEHUB_LOCALHUB="):
                return item.split(b"=", 1)[1].decode()
    raise AssertionError("no child of the runner carries the marker")
