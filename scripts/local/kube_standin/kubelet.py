"""The stand-in's one node: each pod's containers as local processes, reported as a kubelet would.

What a pod gets on this machine instead of a container:

- its own loopback address, 127.0.x.y, reported as status.podIP. There is no
  network namespace, so the one translation made to what a container is told
  is that the wildcard address 0.0.0.0 (KubeSpawner's `ip`, in its
  JUPYTERHUB_SERVICE_URL) means the pod's own address, as it does in a pod;
- its volumes as folders under the state folder, a claim's named after the
  claim (<state>/volumes/<namespace>/<claim>), so a home outlives its pod and
  goes with its claim, as a PVC's volume does; a path under a volume's
  mountPath, in the command, arguments, environment or workingDir, is that folder;
- the image: this machine's Python environment on PATH, plus the folders the
  image carries given as --image-path (the course image's hooks);
- every container as the user the stand-in runs as (securityContext is not
  enforced: there is no root to drop to a uid).

It reports phase, conditions, container states and events as the kubelet does:
init containers in order, then the containers; a container that exits is
restarted after a back-off doubling from `backoff_seconds` up to five minutes
(state `CrashLoopBackOff`, a `BackOff` warning event) unless the pod's
restartPolicy says otherwise; a deleted pod gets SIGTERM, SIGKILL after its
grace period, and is then removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import shutil
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from coursehub_tools.local.kube_standin.store import ApiError, Change, Store, now_rfc3339

log = logging.getLogger("kube-standin")
NODE = "kube-standin-node"
MAX_BACKOFF = 300
# What the course image (docker-stacks) sets: its home is the working folder.
IMAGE_HOME = "/home/jovyan"
CLAIM_WAIT_SECONDS = 2


def pod_addresses():
    """127.0.1.1, 127.0.1.2, ...: loopback addresses Linux answers on without set-up."""
    for third, fourth in itertools.product(range(1, 255), range(1, 255)):
        yield f"127.0.{third}.{fourth}"


@dataclass
class Translator:
    """Paths as a container sees them, to paths on this machine; 0.0.0.0 to the pod's address."""

    folders: dict[str, Path]
    pod_ip: str

    def path(self, value: str) -> str:
        for inside in sorted(self.folders, key=len, reverse=True):
            if value == inside or value.startswith(inside.rstrip("/") + "/"):
                return str(self.folders[inside]) + value[len(inside.rstrip("/")) :]
        return value

    def value(self, value: str) -> str:
        value = value.replace("0.0.0.0", self.pod_ip)
        if value.startswith("/"):
            return self.path(value)
        option, found, rest = value.partition("=")
        if found and rest.startswith("/"):
            return f"{option}={self.path(rest)}"
        return value


class ContainerFailedToStart(Exception):
    """The runtime could not start the command (the kubelet's StartError)."""


@dataclass
class PodRun:
    """One pod on this node, from scheduling to removal."""

    kubelet: Kubelet
    namespace: str
    name: str
    ip: str
    spec: dict
    uid: str
    folder: Path
    processes: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    statuses: dict[str, dict] = field(default_factory=dict)
    init_statuses: dict[str, dict] = field(default_factory=dict)
    phase: str = "Pending"
    initialized: bool = False
    started_at: str = field(default_factory=now_rfc3339)
    stopping: bool = False
    tasks: list[asyncio.Task] = field(default_factory=list)
    events: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def store(self) -> Store:
        return self.kubelet.store

    def publish(self) -> None:
        ready = self.phase == "Running" and all(s["ready"] for s in self.statuses.values())

        def condition(kind: str, true: bool) -> dict:
            return {"type": kind, "status": "True" if true else "False"}

        def change(pod: dict) -> None:
            pod["spec"]["nodeName"] = NODE
            pod["status"] = {
                "phase": self.phase,
                "hostIP": "127.0.0.1",
                "podIP": self.ip,
                "podIPs": [{"ip": self.ip}],
                "startTime": self.started_at,
                "qosClass": "Burstable",
                "conditions": [
                    condition("PodScheduled", True),
                    condition("Initialized", self.initialized),
                    condition("ContainersReady", ready),
                    condition("Ready", ready),
                ],
                "initContainerStatuses": list(self.init_statuses.values()),
                "containerStatuses": list(self.statuses.values()),
            }

        with contextlib.suppress(ApiError):
            self.store.update("pods", self.namespace, self.name, change)

    def event(self, reason: str, message: str, kind: str = "Normal", container: str = "") -> None:
        """Record an event; a repeated one (same reason, same container) is counted, not added."""
        key = (reason, container)
        now = now_rfc3339()
        if key in self.events and self.store.exists("events", self.namespace, self.events[key]):

            def count(event: dict) -> None:
                event.update(count=event["count"] + 1, lastTimestamp=now, message=message)

            self.store.update("events", self.namespace, self.events[key], count)
            return
        name = f"{self.name}.{os.urandom(8).hex()}"
        self.events[key] = name
        involved = {
            "kind": "Pod",
            "apiVersion": "v1",
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
        }
        if container:
            involved["fieldPath"] = f"spec.containers{{{container}}}"
        source = "default-scheduler" if reason == "Scheduled" else "kubelet"
        self.store.create(
            "events",
            self.namespace,
            {
                "kind": "Event",
                "apiVersion": "v1",
                "metadata": {"name": name},
                "involvedObject": involved,
                "reason": reason,
                "message": message,
                "type": kind,
                "source": {"component": source, "host": NODE},
                "reportingComponent": source,
                "reportingInstance": NODE,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "eventTime": None,
                "count": 1,
            },
        )

    def container_status(self, container: dict, state: dict, ready: bool, restarts: int) -> dict:
        return {
            "name": container["name"],
            "image": container["image"],
            "imageID": "",
            "containerID": "",
            "ready": ready,
            "started": "running" in state,
            "restartCount": restarts,
            "state": state,
            "lastState": {},
        }

    async def run(self) -> None:
        self.event("Scheduled", f"Successfully assigned {self.namespace}/{self.name} to {NODE}")
        containers = self.spec["containers"]
        inits = self.spec.get("initContainers") or []
        waiting = {"waiting": {"reason": "PodInitializing" if inits else "ContainerCreating"}}
        for container in inits:
            self.init_statuses[container["name"]] = self.container_status(
                container, {"waiting": {"reason": "PodInitializing"}}, False, 0
            )
        for container in containers:
            self.statuses[container["name"]] = self.container_status(container, waiting, False, 0)
        self.publish()
        folders = await self.volume_folders()
        for container in inits:
            if not await self.keep_running(container, folders, init=True):
                return
        self.initialized = True
        self.phase = "Running"
        self.publish()
        self.tasks = [
            asyncio.create_task(self.keep_running(container, folders)) for container in containers
        ]
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def volume_folders(self) -> dict[str, Path]:
        """Each volume's folder, once every claim it names exists."""
        folders = {}
        for volume in self.spec.get("volumes") or []:
            name = volume["name"]
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                while not self.store.exists("persistentvolumeclaims", self.namespace, claim):
                    if self.stopping:
                        return folders
                    self.event(
                        "FailedScheduling",
                        f'0/1 nodes are available: persistentvolumeclaim "{claim}" not found.',
                        "Warning",
                    )
                    await asyncio.sleep(CLAIM_WAIT_SECONDS)
                folders[name] = self.kubelet.claim_folder(self.namespace, claim)
            elif "hostPath" in volume:
                relative = volume["hostPath"]["path"].lstrip("/")
                folders[name] = self.kubelet.state_dir / "host" / relative
            else:
                # emptyDir, secret, configMap: the pod's own folder (contents not served).
                folders[name] = self.folder / "volumes" / name
            folders[name].mkdir(parents=True, exist_ok=True)
        return folders

    def translator(self, container: dict, folders: dict[str, Path]) -> Translator:
        mapping = dict(self.kubelet.image_files)
        for mount in container.get("volumeMounts") or []:
            folder = folders.get(mount["name"])
            if folder is None:
                continue
            if mount.get("subPath"):
                folder = folder / mount["subPath"]
                folder.mkdir(parents=True, exist_ok=True)
            mapping[mount["mountPath"]] = folder
        # What is neither mounted nor in the image files: the container's own layer.
        own = self.folder / "containers" / container["name"]
        mapping.setdefault(IMAGE_HOME, own / IMAGE_HOME.lstrip("/"))
        return Translator(mapping, self.ip)

    def environment(self, container: dict, translate: Translator) -> dict[str, str]:
        path = os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin:/usr/bin:/bin"])
        env = {"PATH": path, "HOME": IMAGE_HOME, "HOSTNAME": self.name}
        fields = {
            "status.podIP": self.ip,
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "spec.nodeName": NODE,
        }
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = str(item["value"] or "")
            else:
                field_path = ((item.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
                if field_path in fields:
                    env[item["name"]] = fields[field_path]
        return {key: translate.value(value) for key, value in env.items()}

    async def start(self, container: dict, folders: dict[str, Path]):
        translate = self.translator(container, folders)
        env = self.environment(container, translate)
        argv = [
            translate.value(word)
            for word in (container.get("command") or []) + (container.get("args") or [])
        ]
        if not argv:
            raise ContainerFailedToStart("no command: the image's own command is not served here")
        executable = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=env["PATH"])
        if executable is None or not os.access(executable, os.X_OK):
            raise ContainerFailedToStart(
                f'exec: "{argv[0]}": executable file not found in $PATH or not executable'
            )
        working = Path(translate.path(container.get("workingDir") or env["HOME"]))
        working.mkdir(parents=True, exist_ok=True)
        log_file = self.kubelet.log_path(self.namespace, self.name, container["name"])
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("ab") as output:
            return await asyncio.create_subprocess_exec(
                executable,
                *argv[1:],
                env=env,
                cwd=working,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )

    async def keep_running(self, container: dict, folders: dict, init: bool = False) -> bool:
        """Run a container, restarting it as restartPolicy says; True once it has succeeded."""
        name = container["name"]
        statuses = self.init_statuses if init else self.statuses
        policy = self.spec.get("restartPolicy", "Always")
        for restarts in itertools.count():
            if self.stopping:
                return False
            self.event(
                "Pulled",
                f'Container image "{container["image"]}" is not pulled by the stand-in: '
                "the container runs from this machine's Python environment",
                container=name,
            )
            started = now_rfc3339()
            try:
                process = await self.start(container, folders)
            except ContainerFailedToStart as err:
                self.event("Failed", f"Error: {err}", "Warning", name)
                code, reason = 128, "StartError"
            else:
                self.processes[name] = process
                self.event("Created", f"Created container {name}", container=name)
                self.event("Started", f"Started container {name}", container=name)
                running = {"running": {"startedAt": started}}
                # No readiness probe on a KubeSpawner pod: ready once running.
                statuses[name] = self.container_status(container, running, not init, restarts)
                self.publish()
                code = await process.wait()
                self.processes.pop(name, None)
                reason = "Completed" if code == 0 else "Error"
            if self.stopping:
                return False
            terminated = {
                "terminated": {
                    "exitCode": code,
                    "reason": reason,
                    "startedAt": started,
                    "finishedAt": now_rfc3339(),
                }
            }
            if code == 0 and (init or policy != "Always"):
                statuses[name] = self.container_status(container, terminated, False, restarts)
                if not init:
                    self.phase = "Succeeded"
                self.publish()
                return True
            if policy == "Never":
                statuses[name] = self.container_status(container, terminated, False, restarts)
                self.phase = "Failed"
                self.publish()
                return False
            delay = min(self.kubelet.backoff_seconds * 2**restarts, MAX_BACKOFF)
            self.event("BackOff", f"Back-off restarting failed container {name}", "Warning", name)
            status = self.container_status(
                container,
                {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off {delay:g}s restarting failed container={name} "
                        f"pod={self.name}",
                    }
                },
                False,
                restarts + 1,
            )
            status["lastState"] = terminated
            statuses[name] = status
            self.publish()
            await asyncio.sleep(delay)
        return False

    async def terminate(self, grace: int) -> None:
        """Stop every container (SIGTERM, SIGKILL after `grace` seconds), then remove the pod."""
        self.stopping = True
        for name, process in list(self.processes.items()):
            self.event("Killing", f"Stopping container {name}", container=name)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in list(self.processes.values()):
            try:
                await asyncio.wait_for(process.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        for task in self.tasks:
            task.cancel()
        with contextlib.suppress(ApiError):
            self.store.remove("pods", self.namespace, self.name)


class Kubelet:
    """Follows the store's pods: starts each new one, stops each one marked for deletion."""

    def __init__(
        self,
        store: Store,
        state_dir: Path,
        image_files: dict[str, Path] | None = None,
        backoff_seconds: float = 10,
    ):
        self.store = store
        self.state_dir = state_dir
        self.image_files = image_files or {}
        self.backoff_seconds = backoff_seconds
        self.pods: dict[tuple[str, str], PodRun] = {}
        self.free_addresses = pod_addresses()
        self.returned_addresses: list[str] = []
        self.background: set[asyncio.Task] = set()
        store.listeners.append(self.on_change)

    def claim_folder(self, namespace: str, claim: str) -> Path:
        return self.state_dir / "volumes" / namespace / claim

    def log_path(self, namespace: str, pod: str, container: str) -> Path:
        return self.state_dir / "logs" / namespace / pod / f"{container}.log"

    def log_of(self, namespace: str, pod: str, container: str) -> str:
        path = self.log_path(namespace, pod, container)
        return path.read_text(errors="replace") if path.exists() else ""

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task) -> None:
        self.background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("kubelet task failed", exc_info=task.exception())

    def on_change(self, change: Change) -> None:
        if change.resource == "persistentvolumeclaims" and change.type == "DELETED":
            # A dynamically provisioned volume goes with its claim (reclaimPolicy Delete,
            # the default storage classes'): a deleted user's home is gone, as on a cluster.
            claim = self.claim_folder(change.namespace, change.obj["metadata"]["name"])
            shutil.rmtree(claim, ignore_errors=True)
        if change.resource != "pods":
            return
        key = (change.namespace, change.obj["metadata"]["name"])
        metadata = change.obj["metadata"]
        if change.type == "ADDED":
            ip = (
                self.returned_addresses.pop(0)
                if self.returned_addresses
                else next(self.free_addresses)
            )
            pod = PodRun(
                self,
                change.namespace,
                metadata["name"],
                ip,
                change.obj["spec"],
                metadata["uid"],
                self.state_dir / "pods" / change.namespace / metadata["name"],
            )
            self.pods[key] = pod
            self._spawn(pod.run())
        elif change.type == "MODIFIED" and "deletionTimestamp" in metadata:
            pod = self.pods.get(key)
            if pod is not None and not pod.stopping:
                self._spawn(pod.terminate(metadata.get("deletionGracePeriodSeconds", 30)))
        elif change.type == "DELETED":
            pod = self.pods.pop(key, None)
            if pod is not None:
                # An address is handed out again only after its pod has gone.
                self.returned_addresses.append(pod.ip)

    async def stop_all(self) -> None:
        """At shutdown: stop every container at once, as a node going away would."""
        await asyncio.gather(*(pod.terminate(0) for pod in list(self.pods.values())))
