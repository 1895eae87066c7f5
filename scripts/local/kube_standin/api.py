"""A local stand-in for the Kubernetes API server, with one kubelet. It is NOT Kubernetes.

It answers the calls KubeSpawner 7 and its kubernetes_asyncio client make, in
one namespace, as the API server answers a hub whose service account has the
chart's Role there (ref: z2jh templates/hub/rbac.yaml): pods (create, get,
list, watch, delete, log), persistentvolumeclaims, events, services and
secrets; lists carry a resourceVersion, `watch=true` streams one JSON line a
change (ADDED, MODIFIED, DELETED, BOOKMARK when asked, ERROR 410 when the
version asked for is compacted away); errors are Status objects (401, 403 for
another namespace or a cluster-wide request, 404, 409, 422 for an invalid
object, 400 for what it cannot parse). Every answer carries the header
`X-Kubernetes-Standin`.

Tests steer it through /_standin/faults: make a verb on a resource fail or slow.

    coursehub kube-standin --port 8443 --namespace ns --state-dir dir --token-file f
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import sys
from http import HTTPStatus
from pathlib import Path

from tornado import httpserver, web
from tornado.iostream import StreamClosedError

from coursehub_tools.local.kube_standin.kubelet import Kubelet
from coursehub_tools.local.kube_standin.store import (
    ApiError,
    Change,
    Selector,
    Store,
    Watcher,
    now_rfc3339,
)

log = logging.getLogger("kube-standin")
BANNER = "local stand-in for the Kubernetes API, NOT Kubernetes"
HEADER = "X-Kubernetes-Standin"
# The API server ends a watch with no timeoutSeconds after 30-60 minutes.
DEFAULT_WATCH_SECONDS = 1800
KINDS = {
    "pods": "Pod",
    "persistentvolumeclaims": "PersistentVolumeClaim",
    "events": "Event",
    "services": "Service",
    "secrets": "Secret",
}
# What the API server's query parameter decoding takes for true (Go's strconv.ParseBool).
TRUE = ("1", "t", "T", "TRUE", "true", "True")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def invalid(kind: str, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 Invalid, with one cause a field, worded as the API server words them."""
    messages = [f"{path}: {message}" for path, message in causes]
    text = messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
    return ApiError(
        422,
        "Invalid",
        f'{kind} "{name}" is invalid: {text}',
        {
            "name": name,
            "kind": kind,
            "causes": [
                {"reason": "FieldValueInvalid", "message": message, "field": path}
                for path, message in causes
            ],
        },
    )


def validate(resource: str, obj: dict) -> None:
    """What the API server's validation refuses for the objects KubeSpawner creates."""
    kind = KINDS[resource]
    metadata = obj.get("metadata") or {}
    name = metadata.get("name") or ""
    causes = []
    if not name:
        causes.append(("metadata.name", "Required value: name or generateName is required"))
    elif len(name) > 253 or not DNS_SUBDOMAIN.match(name):
        causes.append(
            (
                "metadata.name",
                f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of '
                "lower case alphanumeric characters, '-' or '.', and must start and end "
                "with an alphanumeric character",
            )
        )
    spec = obj.get("spec") or {}
    if resource == "pods":
        containers = spec.get("containers") or []
        if not containers:
            causes.append(("spec.containers", "Required value"))
        for group in ("initContainers", "containers"):
            for index, container in enumerate(spec.get(group) or []):
                path = f"spec.{group}[{index}]"
                if not DNS_LABEL.match(container.get("name") or ""):
                    causes.append((f"{path}.name", "Required value: a DNS-1123 label"))
                if not container.get("image"):
                    causes.append((f"{path}.image", "Required value"))
                for number, port in enumerate(container.get("ports") or []):
                    if not 0 < int(port.get("containerPort") or 0) < 65536:
                        causes.append(
                            (
                                f"{path}.ports[{number}].containerPort",
                                f"Invalid value: {port.get('containerPort')}: must be "
                                "between 1 and 65535, inclusive",
                            )
                        )
        policy = spec.get("restartPolicy", "Always")
        if policy not in ("Always", "OnFailure", "Never"):
            causes.append(
                (
                    "spec.restartPolicy",
                    f'Unsupported value: "{policy}": supported values: "Always", '
                    '"OnFailure", "Never"',
                )
            )
    elif resource == "persistentvolumeclaims":
        if not spec.get("accessModes"):
            causes.append(("spec.accessModes", "Required value: at least 1 access mode"))
        if not (spec.get("resources") or {}).get("requests", {}).get("storage"):
            causes.append(("spec.resources[storage]", "Required value"))
    elif resource == "services" and not spec.get("ports"):
        causes.append(("spec.ports", "Required value"))
    if causes:
        raise invalid(kind, name, causes)


class ApiHandler(web.RequestHandler):
    """Token check, the served namespace, faults, and errors as Status objects."""

    @property
    def store(self) -> Store:
        return self.settings["store"]

    def set_default_headers(self):
        self.set_header(HEADER, BANNER)

    def write_error(self, status_code: int, **kwargs):
        error = kwargs.get("exc_info", (None, None))[1]
        if isinstance(error, ApiError):
            self.write_json(error.status(), error.code)
            return
        reason = HTTPStatus(status_code).phrase.replace(" ", "")
        message = getattr(error, "log_message", None) or HTTPStatus(status_code).phrase
        self.write_json(ApiError(status_code, reason, message).status(), status_code)

    def log_exception(self, typ, value, tb):
        if isinstance(value, ApiError):
            log.info("%s %s: %s %s", self.request.method, self.request.uri, value.code, value)
        else:
            super().log_exception(typ, value, tb)

    def write_json(self, data: dict, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    async def prepare(self):
        if self.request.headers.get("Authorization", "") != f"Bearer {self.settings['token']}":
            raise ApiError(401, "Unauthorized", "Unauthorized")
        verb = self.verb()
        resource = self.path_kwargs.get("resource", "namespaces")
        fault = self.settings["faults"].get(f"{verb} {resource}", {})
        if fault.get("delay"):
            await asyncio.sleep(fault["delay"])
        if fault.get("status"):
            code = int(fault["status"])
            raise ApiError(
                code,
                HTTPStatus(code).phrase.replace(" ", ""),
                f"{BANNER}: injected failure of {verb} {resource}",
            )

    def verb(self) -> str:
        if self.request.method == "GET":
            if self.get_argument("watch", "") in TRUE:
                return "watch"
            return "get" if self.path_kwargs.get("name") else "list"
        return {"POST": "create", "DELETE": "delete"}.get(self.request.method, "update")

    def namespace(self, namespace: str, resource: str) -> str:
        served = self.settings["namespace"]
        if namespace != served:
            account = f"system:serviceaccount:{served}:hub"
            raise ApiError(
                403,
                "Forbidden",
                f'{resource} is forbidden: User "{account}" cannot {self.verb()} resource '
                f'"{resource}" in API group "" in the namespace "{namespace}"',
                {"kind": resource},
            )
        return namespace

    def body(self) -> dict:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError as err:
            raise ApiError(
                400, "BadRequest", f"the body of the request is not JSON: {err}"
            ) from None
        if not isinstance(data, dict):
            raise ApiError(400, "BadRequest", "the body of the request must be a JSON object")
        return data


class CollectionHandler(ApiHandler):
    """/api/v1/namespaces/<ns>/<resource>: list, watch, create."""

    async def get(self, namespace: str, resource: str):
        namespace = self.namespace(namespace, resource)
        selector = Selector.parse(
            self.get_argument("labelSelector", ""), self.get_argument("fieldSelector", "")
        )
        if self.verb() == "watch":
            await self.watch(resource, namespace, selector)
            return
        version = self.get_argument("resourceVersion", "")
        match = self.get_argument("resourceVersionMatch", "")
        if version not in ("", "0"):
            asked = self.version_number(version)
            if asked > self.store.version:
                raise ApiError(
                    504,
                    "Timeout",
                    f"Too large resource version: {asked}, current: {self.store.version}",
                )
            if match == "Exact" and asked != self.store.version:
                # Only the current state is kept, not past snapshots.
                raise ApiError(410, "Expired", f"too old resource version: {asked}")
        items, current = self.store.list(resource, namespace, selector)
        self.write_json(
            {
                "kind": f"{KINDS[resource]}List",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": str(current)},
                "items": items,
            }
        )

    def version_number(self, version: str) -> int:
        try:
            return int(version)
        except ValueError:
            raise ApiError(
                400, "BadRequest", f'invalid resource version "{version}": a number'
            ) from None

    async def watch(self, resource: str, namespace: str, selector: Selector) -> None:
        version = self.get_argument("resourceVersion", "")
        timeout = float(self.get_argument("timeoutSeconds", DEFAULT_WATCH_SECONDS))
        bookmarks = self.get_argument("allowWatchBookmarks", "") in TRUE
        watcher = Watcher(resource, namespace, selector)
        # Registered before the history is read: everything later reaches the queue
        # (one event loop, nothing runs between these lines).
        self.store.watchers.add(watcher)
        self.set_header("Content-Type", "application/json")
        try:
            if version in ("", "0"):
                items, _ = self.store.list(resource, namespace, selector)
                backlog = [("ADDED", item) for item in items]
            else:
                try:
                    changes = self.store.changes_after(
                        self.version_number(version), resource, namespace
                    )
                except ApiError as err:
                    # A watch answers 200 and then one ERROR event with the Status.
                    await self.send("ERROR", err.status())
                    return
                backlog = [(c.type, c.obj) for c in changes if selector.matches(c.obj)]
            for change_type, obj in backlog:
                await self.send(change_type, obj)
            deadline = asyncio.get_running_loop().time() + timeout
            while True:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    change: Change = await asyncio.wait_for(watcher.queue.get(), remaining)
                except TimeoutError:
                    break
                if selector.matches(change.obj):
                    await self.send(change.type, change.obj)
            if bookmarks:
                await self.send(
                    "BOOKMARK",
                    {
                        "kind": KINDS[resource],
                        "apiVersion": "v1",
                        "metadata": {"resourceVersion": str(self.store.version)},
                    },
                )
        except StreamClosedError:
            return
        finally:
            self.store.watchers.discard(watcher)
        self.finish()

    async def send(self, change_type: str, obj: dict) -> None:
        self.write(json.dumps({"type": change_type, "object": obj}) + "\n")
        await self.flush()

    def post(self, namespace: str, resource: str):
        namespace = self.namespace(namespace, resource)
        obj = self.body()
        kind = obj.get("kind", KINDS[resource])
        if kind != KINDS[resource]:
            raise ApiError(
                400, "BadRequest", f"the kind {kind!r} does not match the path's {resource}"
            )
        given = (obj.get("metadata") or {}).get("namespace")
        if given and given != namespace:
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace "
                "sent on the request",
            )
        validate(resource, obj)
        obj.update(kind=KINDS[resource], apiVersion="v1")
        if resource == "pods":
            obj["status"] = {"phase": "Pending", "qosClass": "Burstable"}
        elif resource == "persistentvolumeclaims":
            # Bound at once: the stand-in's storage is a folder made on first use.
            obj["spec"]["volumeName"] = f"pvc-{obj['metadata']['name']}"
            obj["status"] = {"phase": "Bound", **obj["spec"]["resources"]["requests"]}
        self.write_json(self.store.create(resource, namespace, obj), 201)


class ObjectHandler(ApiHandler):
    """/api/v1/namespaces/<ns>/<resource>/<name>: get, delete."""

    def get(self, namespace: str, resource: str, name: str):
        namespace = self.namespace(namespace, resource)
        self.write_json(self.store.get(resource, namespace, name))

    def delete(self, namespace: str, resource: str, name: str):
        namespace = self.namespace(namespace, resource)
        if resource != "pods":
            self.write_json(self.store.remove(resource, namespace, name))
            return
        # A pod is marked first; its kubelet stops it and then removes it.
        grace = self.get_argument("gracePeriodSeconds", None)
        if grace is None:
            grace = self.body().get("gracePeriodSeconds")
        pod = self.store.get(resource, namespace, name)
        if "deletionTimestamp" in pod["metadata"]:
            self.write_json(pod)
            return
        grace = pod["spec"].get("terminationGracePeriodSeconds", 30) if grace is None else grace

        def mark(obj: dict) -> None:
            obj["metadata"]["deletionTimestamp"] = now_rfc3339()
            obj["metadata"]["deletionGracePeriodSeconds"] = int(grace)

        self.write_json(self.store.update(resource, namespace, name, mark))


class LogHandler(ApiHandler):
    """/api/v1/namespaces/<ns>/pods/<name>/log: a container's output, as plain text."""

    def get(self, namespace: str, name: str):
        namespace = self.namespace(namespace, "pods")
        pod = self.store.get("pods", namespace, name)
        container = self.get_argument("container", pod["spec"]["containers"][0]["name"])
        self.set_header("Content-Type", "text/plain")
        self.finish(self.settings["kubelet"].log_of(namespace, name, container))


class NamespaceHandler(ApiHandler):
    """/api/v1/namespaces/<ns>: the served namespace only."""

    def get(self, name: str):
        self.namespace(name, "namespaces")
        self.write_json(self.store.get("namespaces", "", name))


class ClusterWideHandler(ApiHandler):
    """Lists across namespaces and namespace creation: the hub's Role does not allow them."""

    def get(self, resource: str):
        raise self.forbidden(resource)

    def post(self, resource: str):
        raise self.forbidden(resource)

    def forbidden(self, resource: str) -> ApiError:
        account = f"system:serviceaccount:{self.settings['namespace']}:hub"
        return ApiError(
            403,
            "Forbidden",
            f'{resource} is forbidden: User "{account}" cannot {self.verb()} resource '
            f'"{resource}" in API group "" at the cluster scope',
            {"kind": resource},
        )


class UnknownHandler(ApiHandler):
    """Anything else: the API server's 404 for a path it does not serve."""

    async def prepare(self):
        await super().prepare()
        raise ApiError(404, "NotFound", "the server could not find the requested resource")


class FaultsHandler(web.RequestHandler):
    """PUT {"create pods": {"status": 500}, "list events": {"delay": 3}}: replaces all faults."""

    def set_default_headers(self):
        self.set_header(HEADER, BANNER)

    def put(self):
        self.settings["faults"].clear()
        self.settings["faults"].update(json.loads(self.request.body or b"{}"))
        self.finish({"faults": self.settings["faults"]})


def make_app(store: Store, kubelet: Kubelet, namespace: str, token: str) -> web.Application:
    resources = "|".join(KINDS)
    return web.Application(
        [
            (r"/_standin/faults", FaultsHandler),
            (r"/api/v1/namespaces/(?P<name>[^/]+)", NamespaceHandler),
            (r"/api/v1/namespaces/(?P<namespace>[^/]+)/pods/(?P<name>[^/]+)/log", LogHandler),
            (
                rf"/api/v1/namespaces/(?P<namespace>[^/]+)/(?P<resource>{resources})",
                CollectionHandler,
            ),
            (
                rf"/api/v1/namespaces/(?P<namespace>[^/]+)/(?P<resource>{resources})"
                r"/(?P<name>[^/]+)",
                ObjectHandler,
            ),
            (rf"/api/v1/(?P<resource>{resources}|namespaces)", ClusterWideHandler),
            (r".*", UnknownHandler),
        ],
        store=store,
        kubelet=kubelet,
        namespace=namespace,
        token=token,
        faults={},
    )


def pre_create(store: Store, namespace: str, claims: list[str]) -> None:
    """The namespace, and claims made beside the chart (the shared-data volume's)."""
    store.create(
        "namespaces", "", {"kind": "Namespace", "metadata": {"name": namespace}, "status": {}}
    )
    for claim in claims:
        store.create(
            "persistentvolumeclaims",
            namespace,
            {
                "kind": "PersistentVolumeClaim",
                "apiVersion": "v1",
                "metadata": {"name": claim},
                "spec": {"accessModes": ["ReadWriteMany"], "volumeName": f"pvc-{claim}"},
                "status": {"phase": "Bound"},
            },
        )


def path_pair(text: str) -> tuple[str, Path]:
    inside, found, local = text.partition("=")
    if not found or not inside.startswith("/"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected /path/in/image=/local/path")
    return inside, Path(local).resolve()


async def serve(args: argparse.Namespace) -> None:
    store = Store(history=args.history)
    pre_create(store, args.namespace, args.claim)
    kubelet = Kubelet(
        store,
        Path(args.state_dir).resolve(),
        image_files=dict(args.image_path),
        backoff_seconds=args.backoff_seconds,
    )
    token = Path(args.token_file).read_text().strip()
    server = httpserver.HTTPServer(make_app(store, kubelet, args.namespace, token))
    server.listen(args.port, address="127.0.0.1")
    log.info("%s: http://127.0.0.1:%s, namespace %s", BANNER, args.port, args.namespace)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    server.stop()
    await kubelet.stop_all()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--namespace", required=True, help="the one namespace served")
    parser.add_argument("--state-dir", required=True, help="volumes and container logs")
    parser.add_argument("--token-file", required=True, help="file with the bearer token")
    parser.add_argument(
        "--claim", action="append", default=[], help="a claim that exists before the hub"
    )
    parser.add_argument(
        "--image-path",
        type=path_pair,
        action="append",
        default=[],
        help="a folder the image carries, as /in/image=/on/this/machine",
    )
    parser.add_argument(
        "--history", type=int, default=1000, help="changes kept for watches (older: 410)"
    )
    parser.add_argument(
        "--backoff-seconds",
        type=float,
        default=10,
        help="first restart delay of a failed container, doubled each time (kubelet: 10)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="[kube-standin %(asctime)s] %(message)s", stream=sys.stderr
    )
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
