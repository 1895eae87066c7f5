"""Create clusters and deploy to them: the commands, derived from deploy/, then run.

    coursehub-cluster plan staging     # print what `up` would run
    coursehub-cluster up kind          # create the kind cluster if needed, then deploy
    coursehub-cluster up staging       # deploy (decrypts deploy/secrets with age)
    coursehub-cluster down kind        # delete the kind cluster

A deploy is one `helm upgrade --install` of the pinned chart with one values
file: the deployment's merged values, written by scripts/deployconfig.py, so
what is deployed is exactly what was checked. GKE clusters are created by
hand from the printed gcloud commands (creating one is rare and costs money);
kind clusters are created and deleted here.
"""

from __future__ import annotations

import argparse
import secrets
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from coursehub_tools.deployconfig import (
    DEPLOYMENTS_FILE,
    ROOT,
    ConfigError,
    Layer,
    load,
    load_deployments,
    read_yaml,
)

TEST_SERVICE = "cluster-tests"
TEST_TOKEN_FILE = ROOT / ".localhub" / "cluster-tests.token"


def helm_command(name: str, values_file: Path) -> list[str]:
    spec = load_deployments()
    chart, deployment = spec["chart"], spec["deployments"][name]
    return [
        "helm", "upgrade", "--install", deployment["release"], chart["name"],
        "--repo", chart["repository"], "--version", chart["version"],
        "--namespace", deployment["namespace"], "--create-namespace",
        "--values", str(values_file), "--wait", "--timeout", "10m",
    ]  # fmt: skip


def cluster_commands(name: str) -> list[list[str]]:
    """The commands that create the cluster deployment `name` runs on."""
    cluster_file = load_deployments()["deployments"][name]["cluster"]
    spec = read_yaml(ROOT / cluster_file)
    if spec.get("kind") == "Cluster":
        return [["kind", "create", "cluster", "--config", cluster_file]]
    if spec["provider"] == "gke":
        return gke_commands(spec)
    raise ConfigError(
        f"{cluster_file}: unknown cluster kind; expected kind's Cluster or provider: gke"
    )


def gke_commands(spec: dict) -> list[list[str]]:
    where = ["--project", spec["project"], "--zone", spec["zone"]]
    core, *others = spec["nodePools"]
    commands = [[
        "gcloud", "container", "clusters", "create", spec["name"], *where,
        "--release-channel", spec["releaseChannel"], *_pool_flags(core),
    ]]  # fmt: skip
    for pool in others:
        commands.append([
            "gcloud", "container", "node-pools", "create", pool["name"],
            "--cluster", spec["name"], *where, *_pool_flags(pool),
        ])  # fmt: skip
    return commands


def _pool_flags(pool: dict) -> list[str]:
    flags = [
        "--machine-type", pool["machineType"], "--enable-autoscaling",
        "--num-nodes", str(pool["minNodes"]),
        "--min-nodes", str(pool["minNodes"]), "--max-nodes", str(pool["maxNodes"]),
        "--node-labels", ",".join(f"{k}={v}" for k, v in pool["labels"].items()),
    ]  # fmt: skip
    if pool.get("taints"):
        flags += ["--node-taints", ",".join(pool["taints"])]
    return flags


def test_service_layer(token: str) -> Layer:
    """A service token for the cluster tests, only on a throwaway cluster."""
    values = {
        "hub": {
            "services": {TEST_SERVICE: {"apiToken": token}},
            "loadRoles": {
                TEST_SERVICE: {
                    "scopes": [
                        "admin:users",
                        "admin:servers",
                        "admin:groups",
                        "read:hub",
                        "access:servers",
                    ],
                    "services": [TEST_SERVICE],
                }
            },
        }
    }
    return Layer("runtime (scripts/cluster.py)", values)


def runtime_layers(name: str) -> list[Layer]:
    """What only a deploy run adds: on the throwaway kind cluster, the test service's token."""
    if name != "kind":
        return []
    TEST_TOKEN_FILE.parent.mkdir(exist_ok=True)
    if not TEST_TOKEN_FILE.exists():
        TEST_TOKEN_FILE.write_text(secrets.token_hex(32))
    return [test_service_layer(TEST_TOKEN_FILE.read_text().strip())]


def write_values(name: str, directory: Path, *, decrypt: bool) -> Path:
    values = load(name, decrypt=decrypt, extra_layers=runtime_layers(name)).values
    path = directory / f"{name}.values.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    path.chmod(0o600)
    return path


def _run(command: list[str]) -> None:
    print("+", shlex.join(command), flush=True)
    subprocess.run(command, check=True)


def kind_cluster_exists() -> bool:
    listed = subprocess.run(["kind", "get", "clusters"], capture_output=True, text=True, check=True)
    return "coursehub" in listed.stdout.split()


def up(name: str, is_kind: bool) -> None:
    if is_kind and not kind_cluster_exists():
        for command in cluster_commands(name):
            _run(command)
    with tempfile.TemporaryDirectory() as tmp:
        # Real deployments need their encrypted layer; the throwaway kind one has none.
        _run(helm_command(name, write_values(name, Path(tmp), decrypt=not is_kind)))


def plan(name: str) -> None:
    print("# create the cluster (once):")
    for command in cluster_commands(name):
        print(shlex.join(command))
    print("# deploy (every change):")
    print(shlex.join(helm_command(name, Path(f"<merged values of {name}>"))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["plan", "up", "down"])
    parser.add_argument("deployment")
    args = parser.parse_args(argv)
    try:
        spec = load_deployments()["deployments"].get(args.deployment)
        if spec is None or spec["backend"] != "kubernetes":
            raise ConfigError(
                f"{args.deployment!r} is not a Kubernetes deployment in {DEPLOYMENTS_FILE}"
            )
        is_kind = read_yaml(ROOT / spec["cluster"]).get("kind") == "Cluster"
        if args.action == "plan":
            plan(args.deployment)
        elif args.action == "up":
            up(args.deployment, is_kind)
        elif is_kind:
            _run(["kind", "delete", "cluster", "--name", "coursehub"])
        else:
            raise ConfigError("only kind clusters are deleted by this script")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (subprocess.CalledProcessError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
