"""A stand-in Docker engine and registry: the Engine API calls docker-py and the docker CLI make
for hubploy's build and push, answered and recorded, with no container built.

This machine has no dockerd. The rehearsal (scripts/deploy/rehearsal.py) and the course image
pipeline's tests (tests/lifecycle/test_course_image.py) point DOCKER_HOST here, so hubploy,
repo2docker, docker-py and the docker CLI (build, login, push) run unchanged and their
requests are what the real engine would get; no container is run (`docker run` gets a 404).
Its registry answers the
Registry v2 manifest lookup (HEAD /v2/<name>/manifests/<tag>, as scripts/config/registry_check.py
asks) for images named with the stand-in's own address as their host.
It fails as dockerd does where the input is wrong: a build context without its
Dockerfile, an unknown instruction, a COPY of a file the context lacks, a push of an image never
built, a push without credentials, and a registry that has no such tag (manifest unknown).
Every answer says it comes from a stand-in.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from coursehub_tools.deploy.serving import serving

API_VERSION = "1.47"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
SERVER_VERSION = "stand-in (coursehub rehearsal; not dockerd)"
# ref: https://docs.docker.com/reference/dockerfile/ (the instructions dockerd's parser knows)
INSTRUCTIONS = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}  # fmt: skip
# A reference as dockerd accepts it: a host (with an optional port), a lowercase
# repository path, an optional tag. ref: distribution/reference's grammar.
REFERENCE = re.compile(
    r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*(:[\w][\w.-]{0,127})?$"
)


@dataclass
class Engine:
    """What the stand-in was asked and what it holds."""

    built: dict[str, str] = field(default_factory=dict)  # image:tag -> image id
    registry: set[str] = field(default_factory=set)  # image:tag pushed
    requests: list[str] = field(default_factory=list)
    builds: list[dict[str, Any]] = field(default_factory=list)
    pushes: list[dict[str, Any]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)


class DockerError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each line, continuation lines joined; comments dropped."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    found = []
    for number, line in enumerate(joined.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() not in INSTRUCTIONS:
            raise DockerError(
                400, f"dockerfile parse error on line {number}: unknown instruction: {word}"
            )
        found.append((word.upper(), rest.strip()))
    if not found or found[0][0] not in ("FROM", "ARG"):
        raise DockerError(400, "failed to solve: no build stage in current context")
    return found


def copy_sources(arguments: str) -> list[str]:
    parts = [part for part in arguments.split() if not part.startswith("--")]
    return parts[:-1]


def build(engine: Engine, query: dict[str, str], context: bytes) -> Iterator[dict[str, Any]]:
    tag = query.get("t", "")
    if tag and not REFERENCE.match(tag):
        raise DockerError(
            400, f"invalid reference format: repository name ({tag}) must be lowercase"
        )
    with tarfile.open(fileobj=io.BytesIO(context)) as archive:
        names = {member.name.removeprefix("./").rstrip("/") for member in archive.getmembers()}
        dockerfile_name = query.get("dockerfile") or "Dockerfile"
        if dockerfile_name not in names:
            raise DockerError(500, f"Cannot locate specified Dockerfile: {dockerfile_name}")
        dockerfile = archive.extractfile(dockerfile_name).read().decode()
    steps = instructions(dockerfile)
    yield {"stream": f"Docker engine {SERVER_VERSION}: nothing is built, the request is recorded\n"}
    for number, (word, arguments) in enumerate(steps, 1):
        yield {"stream": f"Step {number}/{len(steps)} : {word} {arguments}\n"}
        if word in ("COPY", "ADD") and "--from" not in arguments:
            for source in copy_sources(arguments):
                wanted = source.rstrip("/")
                if wanted not in names and not any(n.startswith(wanted + "/") for n in names):
                    message = (
                        f"COPY failed: file not found in build context or excluded by "
                        f".dockerignore: stat {source}: file does not exist"
                    )
                    yield {"errorDetail": {"message": message}, "error": message}
                    return
    image_id = "sha256:" + hashlib.sha256(context + tag.encode()).hexdigest()
    engine.builds.append({
        "tag": tag, "buildargs": json.loads(query.get("buildargs") or "{}"),
        "dockerfile": dockerfile_name, "steps": len(steps), "context_files": len(names),
    })  # fmt: skip
    if tag:
        engine.built[tag if ":" in tag.rsplit("/", 1)[-1] else f"{tag}:latest"] = image_id
    yield {"aux": {"ID": image_id}}
    yield {"stream": f"Successfully built {image_id[7:19]}\n"}
    if tag:
        yield {"stream": f"Successfully tagged {tag}\n"}


def credentials(header: str | None) -> dict[str, Any]:
    if not header:
        return {}
    padded = header + "=" * (-len(header) % 4)
    try:
        decoded = json.loads(base64.urlsafe_b64decode(padded))
    except ValueError:
        return {}
    # dockerd decodes it with Go's encoding/json, which matches keys case-insensitively.
    return (
        {key.lower(): value for key, value in decoded.items()} if isinstance(decoded, dict) else {}
    )


def push(engine: Engine, name: str, tag: str, auth: dict[str, Any]) -> Iterator[dict[str, Any]]:
    reference = f"{name}:{tag or 'latest'}"
    if reference not in engine.built:
        raise DockerError(404, f"An image does not exist locally with the tag: {name}")
    yield {"status": f"The push refers to repository [{name}] (stand-in registry: recorded)"}
    if not (auth.get("password") or auth.get("identitytoken")):
        message = (
            "denied: Unauthenticated request. Unauthenticated requests do not have permission "
            '"artifactregistry.repositories.uploadArtifacts" on resource'
        )
        yield {"errorDetail": {"message": message}, "error": message}
        return
    engine.registry.add(reference)
    engine.pushes.append({"reference": reference, "username": auth.get("username", "")})
    digest = engine.built[reference]
    yield {"status": f"{tag}: digest: {digest} size: 1234"}


class _Handler(BaseHTTPRequestHandler):
    engine: Engine
    protocol_version = "HTTP/1.1"

    def _path(self) -> tuple[str, dict[str, str]]:
        url = urlparse(self.path)
        path = re.sub(r"^/v[0-9.]+", "", url.path)
        return unquote(path), {k: v[-1] for k, v in parse_qs(url.query).items()}

    def _send(self, status: int, body: Any, stream: bool = False) -> None:
        """JSON, plain bytes, or (stream) JSON lines in chunks, as dockerd streams progress."""
        self.send_response(status)
        self.send_header(
            "Content-Type", "text/plain" if isinstance(body, bytes) else "application/json"
        )
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Server", f"Docker/{SERVER_VERSION}")
        if stream:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for line in body:
                data = json.dumps(line).encode() + b"\r\n"
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding") == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if not size:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return b""

    def _answer(self, method: str) -> None:
        path, query = self._path()
        self.engine.requests.append(f"{method} {path}")
        body = self._body() if method == "POST" else b""
        try:
            self._route(method, path, query, body)
        except DockerError as err:
            self._send(err.status, {"message": f"{err} (stand-in Docker engine)"})

    def _route(self, method: str, path: str, query: dict[str, str], body: bytes) -> None:
        engine = self.engine
        if path == "/_ping":
            return self._send(200, b"OK")
        if path == "/version":
            return self._send(200, {
                "Version": SERVER_VERSION, "ApiVersion": API_VERSION, "MinAPIVersion": "1.24",
                "Os": "linux", "Arch": "amd64",
            })  # fmt: skip
        if path == "/info":
            return self._send(200, {"ServerVersion": SERVER_VERSION, "Images": len(engine.built)})
        if path == "/images/json":
            tags: dict[str, list[str]] = {}
            for reference, image_id in engine.built.items():
                tags.setdefault(image_id, []).append(reference)
            return self._send(200, [{"Id": i, "RepoTags": t} for i, t in tags.items()])
        if method == "POST" and path == "/auth":
            # dockerd asks the registry; the stand-in's registry takes any password.
            login = json.loads(body or b"{}")
            if not login.get("password"):
                raise DockerError(401, "unauthorized: incorrect username or password")
            engine.logins.append(login.get("serveraddress", ""))
            return self._send(200, {"Status": "Login Succeeded", "IdentityToken": ""})
        if method == "POST" and path == "/build":
            return self._send(200, list(build(engine, query, body)), stream=True)
        if method == "POST" and path == "/images/create":
            reference = f"{query.get('fromImage')}:{query.get('tag') or 'latest'}"
            if reference not in engine.registry:
                raise DockerError(
                    404, f"manifest for {reference} not found: manifest unknown: manifest unknown"
                )
            return self._send(200, [{"status": f"Pulled {reference}"}], stream=True)
        pushed = re.fullmatch(r"/images/(.+)/push", path)
        if method == "POST" and pushed:
            auth = credentials(self.headers.get("X-Registry-Auth"))
            lines = list(push(engine, pushed.group(1), query.get("tag", ""), auth))
            return self._send(200, lines, stream=True)
        # The registry API (HEAD /v2/<repository>/manifests/<tag>) for each registry host,
        # as a mirror of it: $COURSEHUB_REGISTRY_MIRROR_<HOST> = <this>/registries/<host>.
        manifest = re.fullmatch(r"/registries/([^/]+)/v2/(.+)/manifests/([^/]+)", path)
        if manifest:
            host, repository, tag = manifest.groups()
            return self._manifest(f"{host}/{repository}:{tag}")
        distribution = re.fullmatch(r"/distribution/(.+)/json", path)
        if distribution:
            reference = distribution.group(1)
            if reference not in engine.registry:
                raise DockerError(404, f"{reference}: manifest unknown: manifest unknown")
            digest = "sha256:" + hashlib.sha256(reference.encode()).hexdigest()
            return self._send(200, {
                "Descriptor": {"mediaType": MANIFEST_TYPE,
                               "digest": digest, "size": 1234},
                "Platforms": [{"architecture": "amd64", "os": "linux"}],
            })  # fmt: skip
        # The registry's own API (Docker Registry v2, /v2 taken off with the engine's
        # version above), for a reference naming the stand-in's address as its host.
        manifest = re.fullmatch(r"/(.+)/manifests/([^/]+)", path)
        if method == "GET" and manifest:
            return self._manifest(f"{self.headers['Host']}/{manifest.group(1)}:{manifest.group(2)}")
        raise DockerError(404, f"page not found: {method} {path}")

    def _manifest(self, reference: str):
        """The registry's answer to a manifest lookup of `reference`, as Registry v2 gives it."""
        if reference not in self.engine.registry:
            message = "manifest unknown (stand-in registry)"
            unknown = {"code": "MANIFEST_UNKNOWN", "message": message}
            return self._send(404, {"errors": [unknown]})
        return self._send(200, {"schemaVersion": 2, "mediaType": MANIFEST_TYPE})

    def do_GET(self):
        self._answer("GET")

    def do_HEAD(self):
        self._answer("GET")

    def do_POST(self):
        self._answer("POST")

    def log_message(self, *args):
        pass


@contextmanager
def docker_engine() -> Iterator[tuple[str, Engine]]:
    """A running stand-in engine: (DOCKER_HOST value, its record)."""
    engine = Engine()
    with serving(type("Handler", (_Handler,), {"engine": engine})) as port:
        yield f"tcp://127.0.0.1:{port}", engine
