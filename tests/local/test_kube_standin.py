"""The Kubernetes stand-in answers the kubernetes client as the API server and a kubelet would.

These drive it with kubernetes_asyncio, the client KubeSpawner uses; the hub
test (tests/local/test_local_kube.py) drives it with KubeSpawner itself.
"""

from __future__ import annotations

import asyncio
import json
import sys

import pytest
import requests
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from coursehub_tools.local.hub.supervisor import Supervisor, free_port, wait_for_port
from coursehub_tools.local.kube_standin.api import HEADER
from coursehub_tools.local.kube_standin.launch import StandinSettings

NAMESPACE = "standin-test"
# Small enough that a test can push a resource version out of the window.
HISTORY = 40
# A server in the container: it binds where the pod spec says, on the wildcard address.
SERVER = (
    "import http.server, os; "
    "http.server.HTTPServer((os.environ['BIND'], 8888), http.server.SimpleHTTPRequestHandler)"
    ".serve_forever()"
)


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    settings = StandinSettings(
        tmp_path_factory.mktemp("kube"),
        free_port(),
        NAMESPACE,
        claims=["shared-claim"],
        backoff_seconds=0.5,
        history=HISTORY,
    )
    settings.write_kubeconfig()
    supervisor = Supervisor()
    process = supervisor.start(settings.command(), {"PATH": "/usr/bin:/bin"})
    try:
        wait_for_port(settings.port, process, "the Kubernetes stand-in", 20)
        yield settings
    finally:
        supervisor.stop()


@pytest.fixture
async def api(standin):
    configuration = client.Configuration()
    await config.load_kube_config(
        config_file=str(standin.kubeconfig), client_configuration=configuration
    )
    async with client.ApiClient(configuration) as api_client:
        yield client.CoreV1Api(api_client)


def pod(name: str, command: list[str], claim: str | None = None, **spec) -> dict:
    container = {
        "name": "notebook",
        "image": "example.org/image:1",
        "command": command,
        "env": [{"name": "BIND", "value": "0.0.0.0"}],
        "ports": [{"containerPort": 8888}],
    }
    volumes = []
    if claim:
        volumes = [{"name": "home", "persistentVolumeClaim": {"claimName": claim}}]
        container["volumeMounts"] = [{"name": "home", "mountPath": "/home/jovyan"}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"component": "singleuser-server"}},
        "spec": {
            "containers": [container],
            "volumes": volumes,
            "restartPolicy": "OnFailure",
            **spec,
        },
    }


def claim(name: str) -> dict:
    return {
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }


async def wait_for(check, what: str, timeout: float = 30):
    """Poll `check` (async, returns a value or None) until it returns something."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} within {timeout} s")


async def events_of(api, name: str) -> list:
    events = await api.list_namespaced_event(
        NAMESPACE, field_selector=f"involvedObject.name={name}"
    )
    return events.items


async def test_every_answer_says_it_is_a_stand_in_and_a_token_is_needed(standin):
    for path in ("/api/v1/namespaces/standin-test/pods", "/no/such/path"):
        answer = requests.get(standin.url + path, timeout=10)
        assert answer.status_code == 401
        assert "NOT Kubernetes" in answer.headers[HEADER]
        assert answer.json()["kind"] == "Status"
    answer = requests.get(
        standin.url + "/no/such/path",
        headers={"Authorization": f"Bearer {standin.token()}"},
        timeout=10,
    )
    assert (answer.status_code, answer.json()["reason"]) == (404, "NotFound")
    assert "NOT Kubernetes" in answer.headers[HEADER]


async def test_errors_are_status_objects_as_the_api_server_gives_them(api):
    await api.create_namespaced_pod(NAMESPACE, pod("twice", ["sleep", "60"]))
    with pytest.raises(ApiException) as conflict:
        await api.create_namespaced_pod(NAMESPACE, pod("twice", ["sleep", "60"]))
    with pytest.raises(ApiException) as missing:
        await api.read_namespaced_pod("nobody", NAMESPACE)
    with pytest.raises(ApiException) as elsewhere:
        await api.list_namespaced_pod("kube-system")
    with pytest.raises(ApiException) as cluster_wide:
        await api.list_pod_for_all_namespaces()
    with pytest.raises(ApiException) as no_containers:
        await api.create_namespaced_pod(
            NAMESPACE, {"metadata": {"name": "empty"}, "spec": {"containers": []}}
        )
    with pytest.raises(ApiException) as bad_name:
        await api.create_namespaced_persistent_volume_claim(NAMESPACE, claim("Not_A_Name"))
    with pytest.raises(ApiException) as set_selector:
        await api.list_namespaced_pod(NAMESPACE, label_selector="component in (a,b)")
    statuses = {
        name: json.loads(error.value.body)
        for name, error in {
            "conflict": conflict,
            "missing": missing,
            "elsewhere": elsewhere,
            "cluster_wide": cluster_wide,
            "no_containers": no_containers,
            "bad_name": bad_name,
            "set_selector": set_selector,
        }.items()
    }
    assert {name: (s["kind"], s["code"], s["reason"]) for name, s in statuses.items()} == {
        "conflict": ("Status", 409, "AlreadyExists"),
        "missing": ("Status", 404, "NotFound"),
        "elsewhere": ("Status", 403, "Forbidden"),
        "cluster_wide": ("Status", 403, "Forbidden"),
        "no_containers": ("Status", 422, "Invalid"),
        "bad_name": ("Status", 422, "Invalid"),
        "set_selector": ("Status", 400, "BadRequest"),
    }
    assert statuses["conflict"]["message"] == 'pods "twice" already exists'
    assert statuses["no_containers"]["message"] == (
        'Pod "empty" is invalid: spec.containers: Required value'
    )
    assert 'in the namespace "kube-system"' in statuses["elsewhere"]["message"]
    await api.delete_namespaced_pod("twice", NAMESPACE, grace_period_seconds=0)


async def test_a_pod_runs_on_its_own_address_with_its_claim_as_home(api, standin):
    await api.create_namespaced_persistent_volume_claim(NAMESPACE, claim("claim-ada"))
    write_then_serve = [
        sys.executable,
        "-c",
        "import pathlib, os; pathlib.Path(os.environ['HOME'], 'hello').write_text('from ada'); "
        + SERVER,
    ]
    await api.create_namespaced_pod(NAMESPACE, pod("jupyter-ada", write_then_serve, "claim-ada"))

    async def ready():
        found = await api.read_namespaced_pod("jupyter-ada", NAMESPACE)
        conditions = {c.type: c.status for c in found.status.conditions or []}
        return found if conditions.get("Ready") == "True" else None

    running = await wait_for(ready, "the pod was not Ready")
    assert running.status.phase == "Running"
    assert running.status.pod_ip.startswith("127.0.") and running.status.pod_ip != "127.0.0.1"
    answer = await wait_for(
        lambda: asyncio.to_thread(_get, f"http://{running.status.pod_ip}:8888/hello"),
        "the pod's server did not answer at its address",
    )
    assert answer == "from ada"
    home = standin.state_dir / "kube" / "volumes" / NAMESPACE / "claim-ada"
    assert (home / "hello").read_text() == "from ada"
    reasons = [event.reason for event in await events_of(api, "jupyter-ada")]
    assert reasons[:1] == ["Scheduled"] and "Started" in reasons
    await api.delete_namespaced_pod("jupyter-ada", NAMESPACE, grace_period_seconds=0)
    await api.delete_namespaced_persistent_volume_claim("claim-ada", NAMESPACE)
    assert not home.exists(), "a deleted claim's volume goes with it (reclaimPolicy Delete)"


def _get(url: str) -> str | None:
    try:
        return requests.get(url, timeout=2).text
    except requests.ConnectionError:
        return None


async def test_a_watch_streams_changes_and_a_deleted_pod_goes(api):
    listed = await api.list_namespaced_pod(NAMESPACE, label_selector="component=singleuser-server")
    version = listed.metadata.resource_version
    await api.create_namespaced_pod(NAMESPACE, pod("watched", ["sleep", "600"]))
    seen = []
    stream = watch.Watch().stream(
        api.list_namespaced_pod,
        NAMESPACE,
        label_selector="component=singleuser-server",
        resource_version=version,
        timeout_seconds=20,
        allow_watch_bookmarks=True,
    )
    async with stream as events:
        async for event in events:
            if event["raw_object"]["metadata"].get("name") != "watched":
                continue
            seen.append(event["type"])
            if event["type"] == "ADDED":
                await api.delete_namespaced_pod("watched", NAMESPACE, grace_period_seconds=5)
            if event["type"] == "DELETED":
                break
    assert seen[0] == "ADDED" and seen[-1] == "DELETED" and "MODIFIED" in seen
    with pytest.raises(ApiException) as gone:
        await api.read_namespaced_pod("watched", NAMESPACE)
    assert gone.value.status == 404


async def test_a_watch_from_a_compacted_version_is_told_410_gone(api):
    listed = await api.list_namespaced_event(NAMESPACE)
    old = int(listed.metadata.resource_version)
    # Two changes each: creation and deletion, past the kept window.
    for index in range(HISTORY):
        await api.create_namespaced_persistent_volume_claim(NAMESPACE, claim(f"filler-{index}"))
        await api.delete_namespaced_persistent_volume_claim(f"filler-{index}", NAMESPACE)
    stream = watch.Watch().stream(
        api.list_namespaced_event, NAMESPACE, resource_version=str(old), timeout_seconds=5
    )
    with pytest.raises(ApiException) as gone:
        async with stream as events:
            async for _ in events:
                pass
    assert gone.value.status == 410
    assert "too old resource version" in gone.value.reason


async def test_a_failing_command_is_restarted_into_crash_loop_back_off(api):
    await api.create_namespaced_pod(
        NAMESPACE, pod("crashing", [sys.executable, "-c", "raise SystemExit(3)"])
    )

    async def backing_off():
        found = await api.read_namespaced_pod("crashing", NAMESPACE)
        statuses = found.status.container_statuses or []
        waiting = statuses and statuses[0].state.waiting
        if waiting and waiting.reason == "CrashLoopBackOff" and statuses[0].restart_count >= 2:
            return statuses[0]
        return None

    status = await wait_for(backing_off, "the pod did not go into CrashLoopBackOff")
    assert status.last_state.terminated.exit_code == 3
    assert status.ready is False
    back_offs = [e for e in await events_of(api, "crashing") if e.reason == "BackOff"]
    assert len(back_offs) == 1 and back_offs[0].type == "Warning" and back_offs[0].count >= 2
    await api.delete_namespaced_pod("crashing", NAMESPACE, grace_period_seconds=0)

    async def removed():
        pods = await api.list_namespaced_pod(NAMESPACE, field_selector="metadata.name=crashing")
        return not pods.items

    await wait_for(removed, "a crash-looping pod was not removed when deleted", timeout=10)


async def test_an_unknown_command_is_a_start_error_not_a_hang(api):
    await api.create_namespaced_pod(NAMESPACE, pod("no-command", ["no-such-program"]))

    async def failed_start():
        events = await events_of(api, "no-command")
        return [e for e in events if e.reason == "Failed"]

    failed = await wait_for(failed_start, "no Failed event for a missing executable")
    assert "executable file not found" in failed[0].message
    await api.delete_namespaced_pod("no-command", NAMESPACE, grace_period_seconds=0)


async def test_a_watch_asked_for_bookmarks_ends_with_one_at_the_current_version(api):
    listed = await api.list_namespaced_pod(NAMESPACE)
    stream = watch.Watch().stream(
        api.list_namespaced_pod,
        NAMESPACE,
        resource_version=listed.metadata.resource_version,
        timeout_seconds=1,
        allow_watch_bookmarks=True,
    )
    async with stream as events:
        seen = [event async for event in events]
    assert [event["type"] for event in seen][-1:] == ["BOOKMARK"]
    current = (await api.list_namespaced_pod(NAMESPACE)).metadata.resource_version
    # Where the watch had got to: no older than where it started, no newer than now.
    bookmark = int(seen[-1]["raw_object"]["metadata"]["resourceVersion"])
    assert int(listed.metadata.resource_version) <= bookmark <= int(current)


async def test_an_injected_fault_fails_the_named_call_only(api, standin):
    faults = f"{standin.url}/_standin/faults"
    requests.put(faults, json={"create pods": {"status": 500}}, timeout=10).raise_for_status()
    try:
        with pytest.raises(ApiException) as failed:
            await api.create_namespaced_pod(NAMESPACE, pod("unlucky", ["sleep", "60"]))
        listed = await api.list_namespaced_pod(NAMESPACE)
    finally:
        requests.put(faults, json={}, timeout=10).raise_for_status()
    assert failed.value.status == 500
    assert json.loads(failed.value.body)["kind"] == "Status"
    assert "unlucky" not in {item.metadata.name for item in listed.items}
