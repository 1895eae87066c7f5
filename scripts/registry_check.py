"""Every image a deploy would have nodes pull exists in its registry, asked before anything runs.

A tag that does not exist shows up on a cluster as pods stuck in ImagePullBackOff,
after the deploy said it succeeded. So before a deploy, each image reference of
the deployment's values is looked up with the registry's own HTTP API (Docker
Registry v2, which ghcr.io, Docker Hub, quay.io and Artifact Registry speak):
HEAD /v2/<name>/manifests/<tag>. A registry that wants a token says where to get
one; public images get an anonymous one, and private ones use
$COURSEHUB_REGISTRY_AUTH_<HOST> (user:password, the host upper-cased with
non-letters as _; for Artifact Registry, oauth2accesstoken:$(gcloud auth
print-access-token)). $COURSEHUB_REGISTRY_MIRROR_<HOST> (a URL) sends a host's questions
to a mirror that answers for it instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

import requests

MANIFESTS = ", ".join((
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))  # fmt: skip
DOCKER_HUB = "registry-1.docker.io"
# Plain HTTP only for a registry on this machine (the tests' stand-in).
LOCAL = ("127.0.0.1", "localhost")


def split(reference: str) -> tuple[str, str, str]:
    """host, repository and tag (or digest) of an image reference."""
    name, _, digest = reference.partition("@")
    name, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "latest")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, repository = first, rest
    else:
        host, repository = DOCKER_HUB, name if "/" in name else f"library/{name}"
    return host, repository, digest or tag


def image_references(values: dict[str, Any]) -> dict[str, str]:
    """Every image reference the users' nodes pull, and where in the values it is set."""
    found = {}
    single = values["singleuser"]["image"]
    found[f"{single['name']}:{single['tag']}"] = "singleuser.image"
    for slug, course in values["custom"]["courses"].items():
        found[course["image"]] = f"custom.courses.{slug}.image (deploy/courses/{slug}.yaml)"
    return found


def credentials(host: str) -> tuple[str, str] | None:
    value = _variable("COURSEHUB_REGISTRY_AUTH_", host)
    if not value:
        return None
    user, _, password = value.partition(":")
    return user, password


def _variable(prefix: str, host: str) -> str | None:
    return os.environ.get(prefix + re.sub(r"[^A-Z0-9]", "_", host.upper()))


def endpoint(host: str) -> str:
    """Where `host`'s registry API is asked: $COURSEHUB_REGISTRY_MIRROR_<HOST> (a mirror that
    answers for that host, such as the rehearsal's stand-in registry), else the host itself."""
    mirror = _variable("COURSEHUB_REGISTRY_MIRROR_", host)
    if mirror:
        return mirror.rstrip("/")
    return f"{'http' if host.split(':')[0] in LOCAL else 'https'}://{host}"


def exists(reference: str, timeout: float = 30) -> bool:
    host, repository, tag = split(reference)
    url = f"{endpoint(host)}/v2/{repository}/manifests/{tag}"
    headers = {"Accept": MANIFESTS}
    answer = requests.head(url, headers=headers, timeout=timeout)
    if answer.status_code == 401:
        headers["Authorization"] = f"Bearer {_token(answer, host, timeout)}"
        answer = requests.head(url, headers=headers, timeout=timeout)
    if answer.status_code in (200, 404):
        return answer.status_code == 200
    answer.raise_for_status()
    raise requests.HTTPError(f"{url}: unexpected {answer.status_code}")


def _token(challenge: requests.Response, host: str, timeout: float) -> str:
    fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge.headers.get("WWW-Authenticate", "")))
    if "realm" not in fields:
        raise requests.HTTPError(f"{host} asked for credentials without saying where to get them")
    params = {key: fields[key] for key in ("service", "scope") if key in fields}
    answer = requests.get(fields["realm"], params=params, auth=credentials(host), timeout=timeout)
    answer.raise_for_status()
    body = answer.json()
    return body.get("token") or body["access_token"]


def missing(references: Iterable[str]) -> list[str]:
    return [reference for reference in references if not exists(reference)]
