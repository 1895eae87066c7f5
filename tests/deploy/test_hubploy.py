"""hubploy, run for real, hands helm exactly the layers our merge uses.

The dry run (scripts/deploy/hubploy_dryrun.py) runs `hubploy deploy` with a recording
helm and a stand-in Kubernetes API; everything below is compared with
deployconfig.load of the same copy, so no expectation is written out here.
"""

from __future__ import annotations

import shutil

import pytest
import yaml

from coursehub_tools.config.deployconfig import load_deployments, merge
from coursehub_tools.deploy.cluster import TEST_SERVICE
from coursehub_tools.deploy.hubploy_deploy import runtime_layers
from coursehub_tools.deploy.hubploy_dryrun import STANDIN_SECRETS, record

pytestmark = pytest.mark.unit

HUBPLOY_DEPLOYMENTS = [
    name for name, entry in load_deployments()["deployments"].items() if "hubploy" in entry
]


@pytest.fixture(scope="module", params=HUBPLOY_DEPLOYMENTS)
def recorded(request):
    for tool, group in (("hubploy", "deploy"), ("sops", "deploy")):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: the `{group}` dependency group installs it")
    return record(request.param)


def nested(dotted: dict[str, str]) -> dict:
    values: dict = {}
    for key, value in dotted.items():
        *parents, last = key.split(".")
        node = values
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return values


def test_helm_gets_the_listed_files_in_order(recorded):
    listed = [
        item if isinstance(item, str) else item["path"]
        for item in recorded.deployment.spec["values"]
    ]
    ours = {layer.source: layer.values for layer in recorded.deployment.layers}
    handed = [yaml.safe_load(text) for text in recorded.upgrade["files"]]
    assert handed == [ours[source] for source in listed]
    assert STANDIN_SECRETS in handed, "the secrets layer was decrypted by hubploy's sops call"


def test_image_and_runtime_flags_are_our_layers(recorded):
    """hubploy's image tags, and the deploy run's own values (the cluster tests' token)."""
    (image_layer,) = [
        layer for layer in recorded.deployment.layers if layer.source.startswith("hubploy's image")
    ]
    expected = image_layer.values
    for layer in runtime_layers(recorded.deployment):
        expected = merge(expected, layer.values)
    assert nested(recorded.set_strings()) == expected


def test_the_cluster_tests_token_reaches_helm_where_the_values_define_the_service(recorded):
    services = recorded.deployment.values["hub"].get("services", {})
    token_key = f"hub.services.{TEST_SERVICE}.apiToken"
    if TEST_SERVICE in services:
        # The token the deploy made (kept for the smoke test), not one the chart generates.
        assert recorded.set_strings()[token_key] == services[TEST_SERVICE]["apiToken"]
    else:
        assert token_key not in recorded.set_strings()


def test_release_and_namespace_are_the_deployments(recorded):
    argv = recorded.upgrade["argv"]
    spec = recorded.deployment.spec
    namespace = argv[argv.index("--namespace") + 1]
    release = argv[argv.index("--install") + 3]
    assert (release, namespace) == (spec["release"], spec["namespace"])
    assert recorded.namespaces_read == [spec["namespace"]]
    assert ["dep", "up"] in [call["argv"] for call in recorded.calls]


def test_what_helm_merges_is_what_we_merged(recorded):
    """Chart folder values, then the -f files, then --set-string: helm's order."""
    # Merged into nothing first, as deployconfig does the chart's own values: a
    # null there (`enabled`, `nameOverride`) means unset.
    effective = merge({}, recorded.chart_values)
    for text in recorded.upgrade["files"]:
        effective = merge(effective, yaml.safe_load(text))
    effective = merge(effective, nested(recorded.set_strings()))
    assert effective == recorded.deployment.values
