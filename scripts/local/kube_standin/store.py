"""The stand-in API server's objects: one resource version counter, a change history, watchers.

As etcd behind the API server: every write takes the next resource version;
a watch from resource version N gets every change after N, or `410 Gone` once
changes after N have been compacted away (only the last `history` changes are
kept); a list answers the current objects and the version they are at.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

# The API server's own default is about 1000 changes a resource in etcd's window.
DEFAULT_HISTORY = 1000


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """An answer the API server gives as a Status object (ref: metav1.Status)."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details = details or {}

    def status(self) -> dict:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }


def not_found(resource: str, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{resource} "{name}" not found', {"name": name, "kind": resource}
    )


def gone(version: int, oldest: int) -> ApiError:
    return ApiError(410, "Expired", f"too old resource version: {version} ({oldest})")


def _parse_selector(selector: str, what: str) -> list[tuple[str, str, str]]:
    """`a=b,c!=d` into (key, operator, value); set-based selectors are not served."""
    terms = []
    for term in filter(None, (part.strip() for part in selector.split(","))):
        for operator in ("!=", "==", "="):
            key, found, value = term.partition(operator)
            if found:
                terms.append((key.strip(), "!=" if operator == "!=" else "=", value.strip()))
                break
        else:
            raise ApiError(
                400,
                "BadRequest",
                f"unable to parse requirement: {what} {term!r}: this stand-in serves "
                "equality selectors only (key=value, key!=value)",
            )
    return terms


def _field(obj: dict, path: str):
    value = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


@dataclass
class Selector:
    """A list's or watch's labelSelector and fieldSelector."""

    labels: list[tuple[str, str, str]] = field(default_factory=list)
    fields: list[tuple[str, str, str]] = field(default_factory=list)

    @classmethod
    def parse(cls, label_selector: str, field_selector: str) -> Selector:
        return cls(
            _parse_selector(label_selector, "labelSelector"),
            _parse_selector(field_selector, "fieldSelector"),
        )

    def matches(self, obj: dict) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        for terms, value_of in (
            (self.labels, labels.get),
            (self.fields, lambda path: _field(obj, path)),
        ):
            for key, operator, wanted in terms:
                value = value_of(key)
                value = "" if value is None else str(value)
                if (value == wanted) != (operator == "="):
                    return False
        return True


@dataclass
class Change:
    version: int
    type: str  # ADDED, MODIFIED, DELETED
    resource: str
    namespace: str
    obj: dict


@dataclass(eq=False)
class Watcher:
    resource: str
    namespace: str
    selector: Selector
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)


class Store:
    """Objects by (resource, namespace, name); cluster-scoped ones have namespace ""."""

    def __init__(self, history: int = DEFAULT_HISTORY):
        self.version = 1
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.changes: deque[Change] = deque(maxlen=history)
        self.watchers: set[Watcher] = set()
        # Called with each Change after it is stored (the kubelet follows pods this way).
        self.listeners: list[Callable[[Change], None]] = []

    def _record(self, change_type: str, resource: str, namespace: str, obj: dict) -> dict:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        change = Change(self.version, change_type, resource, namespace, copy.deepcopy(obj))
        self.changes.append(change)
        for watcher in list(self.watchers):
            if watcher.resource == resource and watcher.namespace in ("", namespace):
                watcher.queue.put_nowait(change)
        for listener in self.listeners:
            listener(change)
        return copy.deepcopy(obj)

    def get(self, resource: str, namespace: str, name: str) -> dict:
        try:
            return copy.deepcopy(self.objects[resource, namespace, name])
        except KeyError:
            raise not_found(resource, name) from None

    def exists(self, resource: str, namespace: str, name: str) -> bool:
        return (resource, namespace, name) in self.objects

    def create(self, resource: str, namespace: str, obj: dict) -> dict:
        name = obj["metadata"]["name"]
        if (resource, namespace, name) in self.objects:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{resource} "{name}" already exists',
                {"name": name, "kind": resource},
            )
        metadata = obj["metadata"]
        metadata.update(uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339())
        if namespace:
            metadata["namespace"] = namespace
        self.objects[resource, namespace, name] = obj
        return self._record("ADDED", resource, namespace, obj)

    def update(self, resource: str, namespace: str, name: str, change: Callable[[dict], None]):
        """Apply `change` to the stored object in place and record a MODIFIED."""
        obj = self.objects.get((resource, namespace, name))
        if obj is None:
            raise not_found(resource, name)
        change(obj)
        return self._record("MODIFIED", resource, namespace, obj)

    def remove(self, resource: str, namespace: str, name: str) -> dict:
        obj = self.objects.pop((resource, namespace, name), None)
        if obj is None:
            raise not_found(resource, name)
        return self._record("DELETED", resource, namespace, obj)

    def list(self, resource: str, namespace: str, selector: Selector) -> tuple[list[dict], int]:
        items = [
            copy.deepcopy(obj)
            for (kind, ns, _), obj in self.objects.items()
            if kind == resource and namespace in ("", ns) and selector.matches(obj)
        ]
        return items, self.version

    def changes_after(self, version: int, resource: str, namespace: str) -> list[Change]:
        """Changes after `version`, or 410 Gone if some of them are no longer kept."""
        oldest = self.changes[0].version if self.changes else self.version + 1
        if version < oldest - 1:
            raise gone(version, oldest - 1)
        return [
            change
            for change in self.changes
            if change.version > version
            and change.resource == resource
            and namespace in ("", change.namespace)
        ]
