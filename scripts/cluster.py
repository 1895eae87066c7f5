"""Create clusters and deploy to them: the commands, derived from deploy/, then run.

    coursehub-cluster plan staging     # print what `up` would run and apply
    coursehub-cluster services staging # the objects `up` applies before the chart
    coursehub-cluster up kind          # create the kind cluster if needed, then deploy
    coursehub-cluster up staging       # deploy with hubploy (sops decrypts the secrets)
    coursehub-cluster create kind      # only create the kind cluster, if it is missing
    coursehub-cluster images kind      # the registry's course images, one a line
    coursehub-cluster down kind        # delete the kind cluster

A deploy is the objects the chart does not make (the database, the shared-data
server: scripts/cluster_services.py) applied with kubectl, then the chart:
staging and prod with hubploy (scripts/hubploy_deploy.py), which hands helm the
same files deployconfig.load merged and checked; kind with one `helm upgrade
--install` and one values file, the merged values (hubploy knows only the
environments develop, staging and prod). GKE clusters are created by hand from the printed
gcloud commands (creating one is rare and costs money); kind clusters are
created and deleted here.
"""

from __future__ import annotations

import argparse
import secrets
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import requests
import yaml

from coursehub_tools import certificates, cluster_services, gke, hubploy_deploy, registry_check
from coursehub_tools.deployconfig import (
    DEPLOYMENTS_FILE,
    ROOT,
    ConfigError,
    Deployment,
    Layer,
    load,
    load_deployments,
    read_yaml,
)

TEST_SERVICE = "cluster-tests"
TEST_TOKEN_FILE = ROOT / ".localhub" / "cluster-tests.token"
# `plan` prints the cluster services' manifests after this line, as YAML documents.
MANIFESTS_HEADER = "# the cluster services' manifests (applied before the chart):"
# What kind and staging carry for the cluster tests and nothing else does:
# the service, its role, and the group that spares its users the GitHub check.
SMOKE_TEST_KEYS = (
    f"hub.services.{TEST_SERVICE}",
    f"hub.loadRoles.{TEST_SERVICE}",
    "custom.github.smokeTestGroup",
)


class DeployError(Exception):
    """The cluster did not answer as a deploy needs; the message says what is missing."""


def helm_command(name: str, values_file: Path) -> list[str]:
    spec = load_deployments()
    chart, deployment = spec["chart"], spec["deployments"][name]
    return [
        "helm", "upgrade", "--install", deployment["release"], chart["name"],
        "--repo", chart["repository"], "--version", chart["version"],
        "--namespace", deployment["namespace"], "--create-namespace",
        "--values", str(values_file), "--wait", "--timeout", "10m",
    ]  # fmt: skip


def cluster_spec(name: str) -> tuple[str, dict]:
    cluster_file = load_deployments()["deployments"][name]["cluster"]
    return cluster_file, read_yaml(ROOT / cluster_file)


def kind_cluster_name(name: str) -> str | None:
    """The kind cluster's name from its config file; None if `name` is not on kind."""
    _, spec = cluster_spec(name)
    # kind's own default when the config names none.
    return spec.get("name", "kind") if spec.get("kind") == "Cluster" else None


def cluster_commands(name: str) -> list[list[str]]:
    """The commands that create the cluster deployment `name` runs on."""
    cluster_file, spec = cluster_spec(name)
    if spec.get("kind") == "Cluster":
        return [["kind", "create", "cluster", "--config", cluster_file]]
    if spec["provider"] == "gke":
        return [command for _, section in gke.commands(name) for command in section]
    raise ConfigError(
        f"{cluster_file}: unknown cluster kind; expected kind's Cluster or provider: gke"
    )


def runtime_layers(name: str, token: str | None = None, root: Path = ROOT) -> list[Layer]:
    """What only a deploy run adds: for a hubploy deploy, the generated layers'
    revision (custom.generated, which the chart folder's version also carries); the
    cluster-tests service's token, where the values define that service (kind, staging).

    A new token for each checkout, kept in .localhub/ for the cluster tests that
    run after the deploy; never committed, so the service answers only to the
    job that deployed. `plan` shows a placeholder `token` instead.
    """
    loaded = load(name, root=root)
    layers = []
    if "hubploy" in loaded.spec:
        revision = hubploy_deploy.generated_revision(loaded.layers)
        layers.append(Layer(hubploy_deploy.RUNTIME_SOURCE, {"custom": {"generated": revision}}))
    if TEST_SERVICE not in loaded.values["hub"].get("services", {}):
        return layers
    if token is None:
        token_file = test_token_file(root)
        token_file.parent.mkdir(exist_ok=True)
        if not token_file.exists():
            token_file.write_text(secrets.token_hex(32))
        token = token_file.read_text().strip()
    values = {"hub": {"services": {TEST_SERVICE: {"apiToken": token}}}}
    return [*layers, Layer(hubploy_deploy.RUNTIME_SOURCE, values)]


def deployed(name: str, *, decrypt: bool, root: Path = ROOT) -> Deployment:
    """The deployment as a deploy run has it: its layers plus the runtime ones."""
    return load(name, decrypt=decrypt, root=root, extra_layers=runtime_layers(name, root=root))


def test_token_file(root: Path = ROOT) -> Path:
    """Where a deploy keeps the cluster-tests token for the smoke test that follows."""
    return root / TEST_TOKEN_FILE.relative_to(ROOT)


def values_file(deployment: Deployment, directory: Path) -> Path:
    path = directory / f"{deployment.name}.values.yaml"
    # Our layers only: helm adds the chart's own defaults itself, and a null
    # in them handed back to helm would delete the key instead.
    path.write_text(yaml.safe_dump(deployment.helm_values, sort_keys=False))
    path.chmod(0o600)
    return path


def write_values(name: str, directory: Path, *, decrypt: bool) -> Path:
    return values_file(deployed(name, decrypt=decrypt), directory)


def dump_manifests(objects: list[dict]) -> str:
    """YAML documents, every object written out in full (no anchors for shared labels)."""
    dumper = type("PlainDumper", (yaml.SafeDumper,), {"ignore_aliases": lambda *_: True})
    return yaml.dump_all(objects, Dumper=dumper, sort_keys=False, explicit_start=True)


def apply_command(namespace: str) -> list[str]:
    return ["kubectl", "apply", "--namespace", namespace, "-f", "-"]


def services_command(name: str) -> list[str]:
    return ["coursehub-cluster", "services", name]


def services_to_apply(deployment: Deployment, nfs_server: str | None = None) -> list[dict]:
    """One of `up`'s two steps before the chart: without the shared-data server's
    address, everything but the PersistentVolume; with it, the PersistentVolume."""
    objects = cluster_services.manifests(deployment, secrets=True, nfs_server=nfs_server)
    return [o for o in objects if (o["kind"] == "PersistentVolume") == (nfs_server is not None)]


def cluster_ip_command(namespace: str, service: str) -> list[str]:
    return [
        "kubectl", "get", "service", service, "--namespace", namespace,
        "--output", "jsonpath={.spec.clusterIP}",
    ]  # fmt: skip


def _runtime_token(layers: list[Layer]) -> str | None:
    services = [layer.values.get("hub", {}).get("services", {}) for layer in layers]
    return next((s[TEST_SERVICE]["apiToken"] for s in services if TEST_SERVICE in s), None)


def _run(
    command: list[str], stdin: str | None = None, cwd: Path | None = None, secret: str | None = None
) -> None:
    shown = shlex.join(command)
    print("+", shown.replace(secret, "<token>") if secret else shown, flush=True)
    subprocess.run(command, input=stdin, text=True, check=True, cwd=cwd)


def kind_cluster_exists(name: str) -> bool:
    listed = subprocess.run(["kind", "get", "clusters"], capture_output=True, text=True, check=True)
    return kind_cluster_name(name) in listed.stdout.split()


def create_kind_cluster(name: str) -> None:
    if not kind_cluster_exists(name):
        for command in cluster_commands(name):
            _run(command)


def apply_cluster_services(deployment: Deployment) -> None:
    """The database and the shared-data server, then the volume that needs the server's address."""
    namespace = deployment.spec["namespace"]
    first = services_to_apply(deployment)
    if not first:
        return
    _run(apply_command(namespace), stdin=dump_manifests(first))
    service = cluster_services.nfs_service(deployment)
    if service is None:
        return
    command = cluster_ip_command(namespace, service)
    print("+", shlex.join(command), flush=True)
    address = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    if not address or address == "None":
        raise DeployError(f"Service {service} in {namespace} has no cluster IP for NFS")
    _run(apply_command(namespace), stdin=dump_manifests(services_to_apply(deployment, address)))


def apply_certificates(deployment: Deployment) -> None:
    """cert-manager as pinned, then the wildcard certificate's ClusterIssuer and Certificate."""
    objects = certificates.objects(deployment)
    if not objects:
        return
    _run(certificates.install_command(certificates.cluster_spec(deployment)))
    _run(apply_command(deployment.spec["namespace"]), stdin=dump_manifests(objects))


def check_images(deployment: Deployment) -> None:
    """Every image the users' nodes would pull exists in its registry, or DeployError."""
    references = registry_check.image_references(deployment.values)
    try:
        absent = registry_check.missing(references)
    except requests.RequestException as err:
        raise DeployError(f"cannot ask the registries whether the images exist: {err}") from err
    if absent:
        raise DeployError(
            "not in its registry, so pods would never start: "
            + "; ".join(f"{image} (set by {references[image]})" for image in absent)
        )


def up(name: str, is_kind: bool) -> None:
    # Every encrypted layer is read: kind's with the test-only key (nox -s kind).
    deployment = deployed(name, decrypt=True)
    # Refuse before anything runs if a service cannot be made (no database password).
    cluster_services.manifests(deployment, secrets=True)
    # ... or an image is not in its registry (kind's are loaded into its node instead).
    if not is_kind:
        check_images(deployment)
    if is_kind:
        create_kind_cluster(name)
    apply_cluster_services(deployment)
    apply_certificates(deployment)
    with tempfile.TemporaryDirectory() as tmp:
        if "hubploy" in deployment.spec:
            chart_folder = hubploy_deploy.pull_chart(Path(tmp))
            hubploy_deploy.add_generated_values(deployment, chart_folder)
            _run(
                hubploy_deploy.command(deployment, chart_folder),
                cwd=hubploy_deploy.hubploy_root(),
                secret=_runtime_token(hubploy_deploy.runtime_layers(deployment)),
            )
        else:
            _run(helm_command(name, values_file(deployment, Path(tmp))))


def plan(name: str) -> None:
    deployment = load(name, extra_layers=runtime_layers(name, token="<new token>"))
    namespace = deployment.spec["namespace"]
    objects = cluster_services.manifests(deployment)
    print("# create the cluster (once):")
    for command in cluster_commands(name):
        print(gke.shown(command))
    if objects:
        service = cluster_services.nfs_service(deployment)
        # What `up` runs, as a reader can type it: the objects come from `services`, which
        # reads the password from the encrypted layer, as `up` does.
        apply = shlex.join(apply_command(namespace))
        print("# the database and the shared-data server (every change, before the chart):")
        print(f"{shlex.join(services_command(name))} | {apply}")
        if service:
            print(f"address=$({shlex.join(cluster_ip_command(namespace, service))})")
            print(f'{shlex.join(services_command(name))} --volume-at "$address" | {apply}')
    else:
        why = cluster_services.why_none(deployment)
        print(f"# no database or shared-data server to create: {why}")
    if certificates.objects(deployment):
        print("# the wildcard certificate: cert-manager, its ClusterIssuer and Certificate:")
        print(shlex.join(certificates.install_command(certificates.cluster_spec(deployment))))
        print(shlex.join(apply_command(namespace)), " # scripts/certificates.py's objects")
    print("# deploy (every change):")
    if "hubploy" in deployment.spec:
        chart_folder = Path("<chart folder>", load_deployments()["chart"]["name"])
        print(shlex.join(hubploy_deploy.pull_chart_command(chart_folder.parent)))
        print(f"# then {chart_folder}/values.yaml += the registry and hub-config/, and in deploy/:")
        print(shlex.join(hubploy_deploy.command(deployment, chart_folder)))
    else:
        print(shlex.join(helm_command(name, Path(f"<merged values of {name}>"))))
    if objects:
        print(MANIFESTS_HEADER)
        print(dump_manifests(objects), end="")


def course_images(name: str) -> list[str]:
    """Every registry course's image (custom.courses), as the users' pods will pull it."""
    courses = load(name).values["custom"]["courses"]
    return sorted({course["image"] for course in courses.values()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["plan", "up", "services", "create", "images", "down"])
    parser.add_argument("deployment")
    parser.add_argument(
        "--volume-at",
        metavar="ADDRESS",
        help="services: only the PersistentVolume, at the shared-data server's cluster IP",
    )
    args = parser.parse_args(argv)
    if args.volume_at and args.action != "services":
        parser.error(f"--volume-at is for services, not {args.action}")
    try:
        spec = load_deployments()["deployments"].get(args.deployment)
        if spec is None or spec["backend"] != "kubernetes":
            raise ConfigError(
                f"{args.deployment!r} is not a Kubernetes deployment in {DEPLOYMENTS_FILE}"
            )
        kind_name = kind_cluster_name(args.deployment)
        if args.action == "plan":
            plan(args.deployment)
        elif args.action == "up":
            up(args.deployment, kind_name is not None)
        elif args.action == "services":
            services = services_to_apply(deployed(args.deployment, decrypt=True), args.volume_at)
            print(dump_manifests(services), end="")
        elif args.action == "images":
            print("\n".join(course_images(args.deployment)))
        elif kind_name is None:
            raise ConfigError(
                f"{spec['cluster']}: only kind clusters are created and deleted by this script; "
                f"create this one from the commands of `coursehub-cluster plan {args.deployment}`"
            )
        elif args.action == "create":
            create_kind_cluster(args.deployment)
        else:
            _run(["kind", "delete", "cluster", "--name", kind_name])
    except (ConfigError, DeployError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (subprocess.CalledProcessError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
