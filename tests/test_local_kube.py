"""The chart's KubeSpawner on this machine: the `local-kube` hub and the Kubernetes stand-in.

The hub is the local one with nothing swapped but the API server address
(scripts/localhub/kube_backend.py): CourseKubeSpawner creates the claim and the
pod, its reflectors watch them, the stand-in's kubelet runs the hooks and the
server. Expectations come from the merged `local-kube` values.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from coursehub_tools import culling
from coursehub_tools.deployconfig import load
from coursehub_tools.hub_client import follow_progress, login_with_standin, wait_for_server
from coursehub_tools.localhub import kube_backend
from coursehub_tools.pod_manifests import build_async

pytestmark = pytest.mark.hub

DEPLOYMENT = "local-kube"


@pytest.fixture(scope="module")
def kube_hub(tmp_path_factory, start_hub):
    with start_hub(tmp_path_factory.mktemp("localkube"), deployment=DEPLOYMENT) as hub:
        yield hub


@asynccontextmanager
async def kube_api(hub):
    """The stand-in's API as the hub's kubeconfig reaches it."""
    configuration = client.Configuration()
    await config.load_kube_config(
        config_file=str(hub.kube.kubeconfig), client_configuration=configuration
    )
    async with client.ApiClient(configuration) as api_client:
        yield client.CoreV1Api(api_client)


def server_state(hub, user: str) -> dict:
    return hub.api("GET", f"/users/{user}").json()["servers"][""]["state"]


async def pod_gone(api, namespace: str, name: str) -> bool:
    try:
        await api.read_namespaced_pod(name, namespace)
    except ApiException as err:
        return err.status == 404
    return False


def without_nulls(data):
    """As the API server stores an object: a field sent as null is not there."""
    if isinstance(data, dict):
        return {key: without_nulls(value) for key, value in data.items() if value is not None}
    if isinstance(data, list):
        return [without_nulls(item) for item in data]
    return data


async def same_pod_as_built_offline(api, pod, deployment) -> None:
    """The pod KubeSpawner sent is the one scripts/pod_manifests.py builds offline for sam.

    Only what this run alone decides differs: environment values (tokens, the
    hub's ports) and what the local hub adds to them; every name is there."""
    live = api.api_client.sanitize_for_serialization(pod)["spec"]
    student_team = deployment.values["custom"]["github"]["studentTeams"][0]
    offline = (
        await build_async(
            DEPLOYMENT, "sam", [student_team], extra_values=kube_backend.runtime_values()
        )
    )["spec"]

    def shape(spec: dict) -> dict:
        def container(c: dict) -> dict:
            return {key: c.get(key) for key in ("name", "image", "command", "volumeMounts")}

        return {
            "volumes": spec["volumes"],
            "initContainers": [container(c) for c in spec.get("initContainers") or []],
            "containers": [container(c) for c in spec["containers"]],
            "securityContext": spec.get("securityContext"),
        }

    assert without_nulls(shape(live)) == without_nulls(shape(offline))
    for live_container, offline_container in zip(
        live["containers"], offline["containers"], strict=True
    ):
        names = {item["name"] for item in live_container["env"]}
        assert {item["name"] for item in offline_container["env"]} <= names


async def test_a_students_server_is_a_pod_started_and_stopped_by_kubespawner(kube_hub):
    deployment = load(DEPLOYMENT)
    namespace = deployment.spec["namespace"]
    home_path = deployment.values["singleuser"]["storage"]["homeMountPath"]
    login = login_with_standin(kube_hub.url, "sam")
    wait_for_server(login.session, kube_hub.url, "sam", timeout=120)
    state = server_state(kube_hub, "sam")
    assert state["namespace"] == namespace
    async with kube_api(kube_hub) as api:
        pod = await api.read_namespaced_pod(state["pod_name"], namespace)
        claim = await api.read_namespaced_persistent_volume_claim(state["pvc_name"], namespace)
        assert pod.status.phase == "Running"
        assert pod.metadata.labels["component"] == "singleuser-server"
        mounts = {m.mount_path: m.name for m in pod.spec.containers[0].volume_mounts}
        volumes = {v.name: v for v in pod.spec.volumes}
        assert volumes[mounts[home_path]].persistent_volume_claim.claim_name == claim.metadata.name
        # The proxy routes the student to the pod's own address, at the port its spec names.
        routes = kube_hub.api("GET", "/proxy").json()
        targets = {prefix.rstrip("/"): route["target"] for prefix, route in routes.items()}
        port = pod.spec.containers[0].ports[0].container_port
        # Routed by sam's own host and path (subdomain_host), as the hub gives its URL.
        server = urlsplit(kube_hub.api("GET", "/users/sam").json()["servers"][""]["url"])
        route = f"{server.hostname or ''}{server.path}".rstrip("/")
        assert targets[route] == f"http://{pod.status.pod_ip}:{port}"
        await same_pod_as_built_offline(api, pod, deployment)
        # The course's start-up hooks ran in the pod's init containers, on the claim.
        home = kube_hub.kube.state_dir / "kube" / "volumes" / namespace / claim.metadata.name
        assert (home / "shared").is_symlink()

        kube_hub.client.stop_servers({"sam"}, timeout=60)
        assert await pod_gone(api, namespace, state["pod_name"])
        kept = await api.read_namespaced_persistent_volume_claim(state["pvc_name"], namespace)
        assert kept.metadata.uid == claim.metadata.uid, "the home claim outlives the server"


async def test_an_idle_server_is_culled_through_kubespawner(kube_hub):
    values = load(DEPLOYMENT).values
    login = login_with_standin(kube_hub.url, "sky")
    wait_for_server(login.session, kube_hub.url, "sky", timeout=120)
    state = server_state(kube_hub, "sky")
    later = culling.hub_clock(kube_hub, {"sky"}) + timedelta(seconds=values["cull"]["timeout"] + 60)

    await culling.cull_pass_at(
        f"{kube_hub.url}/hub/api", kube_hub.operator_token, values["cull"], later
    )

    kube_hub.client.wait_stopped({"sky"}, timeout=60)
    async with kube_api(kube_hub) as api:
        assert await pod_gone(api, state["namespace"], state["pod_name"])


async def test_a_failing_server_command_fails_the_start_and_the_hub_keeps_answering(
    hub_factory,
):
    start_timeout = 20
    hub = hub_factory(
        deployment=DEPLOYMENT,
        extra_values={
            "singleuser": {
                "cmd": ["python", "-c", "raise SystemExit(3)"],
                "startTimeout": start_timeout,
            }
        },
    )
    login = login_with_standin(hub.url, "sam")
    login.session.get(f"{hub.url}/hub/spawn", timeout=30)
    # The hub reports the start as failed (RuntimeError), rather than leaving the
    # page waiting (TimeoutError), once startTimeout has passed.
    with pytest.raises(RuntimeError):
        follow_progress(login.session, hub.url, "sam", timeout=start_timeout + 120)
    assert hub.api("GET", "/users/sam").status_code == 200, "the hub still answers"
    namespace = load(DEPLOYMENT).spec["namespace"]
    async with kube_api(hub) as api:
        # This hub's stand-in has seen one pod: sam's.
        events = await api.list_namespaced_event(namespace)
        reasons = {event.reason: event for event in events.items}
        assert reasons["BackOff"].type == "Warning"
        deadline = time.monotonic() + 30
        while (await api.list_namespaced_pod(namespace)).items and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert (await api.list_namespaced_pod(namespace)).items == [], "the failed pod is deleted"
