"""An image tag that does not exist is refused before a deploy touches the cluster.

A stand-in registry on this machine speaks the Docker Registry v2 API, with the
token challenge real registries make.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from coursehub_tools import cluster, registry_check
from coursehub_tools.deployconfig import load

pytestmark = pytest.mark.unit

PUSHED = {("course/ds", "2026.11.1")}


class Registry(BaseHTTPRequestHandler):
    def do_HEAD(self):
        if self.headers.get("Authorization") != "Bearer let-me-in":
            realm = f"http://{self.headers['Host']}/token"
            self.send_response(401)
            self.send_header("WWW-Authenticate",
                             f'Bearer realm="{realm}",service="test",scope="pull"')  # fmt: skip
            self.end_headers()
            return
        name, _, tag = self.path.removeprefix("/v2/").partition("/manifests/")
        self.send_response(200 if (name, tag) in PUSHED else 404)
        self.end_headers()

    def do_GET(self):
        body = json.dumps({"token": "let-me-in"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def registry():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_references_are_read_as_docker_reads_them():
    assert registry_check.split("ghcr.io/coursehub/ds:2026.11.1") == (
        "ghcr.io", "coursehub/ds", "2026.11.1")  # fmt: skip
    assert registry_check.split("postgres") == (
        "registry-1.docker.io",
        "library/postgres",
        "latest",
    )
    assert registry_check.split("127.0.0.1:5000/a/b@sha256:00") == (
        "127.0.0.1:5000",
        "a/b",
        "sha256:00",
    )


def test_a_pushed_tag_exists_and_a_missing_one_does_not(registry):
    assert registry_check.exists(f"{registry}/course/ds:2026.11.1")
    assert not registry_check.exists(f"{registry}/course/ds:2099.1.1")


def test_every_image_the_nodes_pull_is_checked_with_where_it_is_set():
    values = load("prod").values
    references = registry_check.image_references(values)
    for slug, course in values["custom"]["courses"].items():
        assert f"deploy/courses/{slug}.yaml" in references[course["image"]]
    single = values["singleuser"]["image"]
    assert references[f"{single['name']}:{single['tag']}"] == "singleuser.image"


def test_a_deploy_naming_a_missing_tag_is_refused_by_name(registry, monkeypatch):
    deployment = load("prod")
    missing = f"{registry}/course/ds:2099.1.1"
    references = {f"{registry}/course/ds:2026.11.1": "singleuser.image",
                  missing: "custom.courses.x.image (deploy/courses/x.yaml)"}  # fmt: skip
    monkeypatch.setattr(registry_check, "image_references", lambda values: references)
    with pytest.raises(cluster.DeployError) as refused:
        cluster.check_images(deployment)
    assert str(refused.value) == (
        "not in its registry, so pods would never start: "
        f"{missing} (set by custom.courses.x.image (deploy/courses/x.yaml))"
    )


def test_a_mirror_answers_for_the_host_it_is_named_for(registry, monkeypatch):
    """$COURSEHUB_REGISTRY_MIRROR_<HOST>: the rehearsal's stand-in registry answers for
    Artifact Registry and ghcr.io; another host is still asked itself."""
    monkeypatch.setenv("COURSEHUB_REGISTRY_MIRROR_GHCR_IO", f"http://{registry}/")
    assert registry_check.endpoint("ghcr.io") == f"http://{registry}"
    assert registry_check.exists("ghcr.io/course/ds:2026.11.1")
    assert not registry_check.exists("ghcr.io/course/ds:2099.1.1")
    assert registry_check.endpoint("quay.io") == "https://quay.io"
