"""`coursehub`: every tool of the project, as `coursehub <group> <verb>`.

    coursehub status prod                   # the daily checks (chapter "Running a bootcamp")
    coursehub hub run > hub.log 2>&1 &      # the local hub, its output in a file
    coursehub status local --log hub.log    # its state in .localhub, on port 8000
    coursehub backup local --to hub.backup  # the hub database, saved
    coursehub restore local --from hub.backup

A cluster deployment is read with kubectl's current context, in the
deployment's namespace (deploy/deployments.yaml); the local deployment from the
local hub's state folder. The operator's commands for a running deployment
(status, backup, restore) are subparsers in `parser()` with the function each
names (`set_defaults(run=...)`). Every other group is a tool module's own `main`,
listed in GROUPS: `coursehub <group> ...` hands it the rest of the command line, so
`coursehub <group> --help` is that tool's own help.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from coursehub_tools.config.deployconfig import ROOT, ConfigError, load
from coursehub_tools.lifecycle import hub_backup, hub_status

log = logging.getLogger("coursehub")

# group -> (module under coursehub_tools whose main(argv) runs it, what it is for)
GROUPS = {
    "config": ("config.deployconfig", "the merged values of a deployment"),
    "chart": ("config.chart", "the pinned z2jh chart, kept whole as data"),
    "hub": ("local.local_hub", "run the reference hub on this machine"),
    "pod": ("local.pod_manifests", "the pod a user's server gets, built offline"),
    "github-standin": ("local.github_standin", "a stand-in for GitHub"),
    "kube-standin": ("local.kube_standin.api", "a stand-in for the Kubernetes API"),
    "cluster": ("deploy.cluster", "create clusters and deploy to them"),
    "gke": ("deploy.gke", "a GKE cluster for a deployment"),
    "capacity": ("deploy.capacity", "nodes and placeholders the courses need, and their cost"),
    "workflows": ("deploy.workflow_check", "the deploy order the workflows promise, checked"),
    "rehearse": ("deploy.rehearsal", "from a fork to the first deploy, rehearsed here"),
    "course": ("lifecycle.course_lifecycle", "a course's life in the registry"),
    "dispatch": ("lifecycle.dispatcher", "what each course's state and dates call for now"),
    "content": ("lifecycle.content_check", "a course's notebooks, run before students see them"),
    "class-arrival": ("measure.class_arrival", "a class arriving at the local hub, measured"),
    "hub-restart": ("measure.hub_restart", "the hub restarted during a course, measured"),
    "loadtest": ("measure.loadtest", "the measurements the book reports"),
    "diagram": ("book.architecture_diagram", "the architecture drawn from the values"),
    "book-check": ("book.book_check", "what a reader would see wrong in the built book"),
}
OPERATOR_TOKEN = "operator-token"


def _operator_token(state: Path) -> str:
    """The local hub's operator token, which it keeps in its state folder (never made here)."""
    path = state / f"{OPERATOR_TOKEN}.secret"
    if not path.exists():
        raise hub_status.StatusError(
            f"{path} does not exist: is {state} the state folder of a local hub that ran?"
        )
    return path.read_text().strip()


def _status(args: argparse.Namespace) -> int:
    deployment = load(args.deployment)
    if deployment.backend == "local":
        state = Path(args.state_dir)
        # The hub writes its log in its local time; compare with the same clock.
        checks = hub_status.local_checks(
            deployment,
            args.url,
            _operator_token(state),
            Path(args.log) if args.log else state / "hub.log",
            datetime.now(),
        )
    else:
        # The hub pod logs in UTC, and certificates are dated in GMT.
        checks = hub_status.cluster_checks(
            deployment, datetime.now(UTC).replace(tzinfo=None), hub_status.run_kubectl
        )
    print(hub_status.format_report(args.deployment, checks))
    return hub_status.exit_status(checks)


def _database(args: argparse.Namespace) -> tuple[str, str | None]:
    """The hub database's URL and password for a deployment on this machine."""
    deployment = load(args.deployment)
    if deployment.backend != "local":
        namespace = deployment.spec["namespace"]
        raise hub_backup.BackupError(
            f"{args.deployment} runs on a cluster: its database is saved by the CronJob "
            f"`coursehub cluster up` makes; list the saved files with `kubectl --namespace "
            f"{namespace} get cronjob,jobs` (chapter 'Storage')"
        )
    db = deployment.values["hub"]["db"]
    if args.db_url:
        return args.db_url, args.db_password
    if db["type"] == "sqlite-pvc":
        return f"sqlite:///{Path(args.state_dir).resolve() / 'jupyterhub.sqlite'}", None
    return db["url"], db.get("password")


def _backup(args: argparse.Namespace) -> int:
    url, password = _database(args)
    saved = hub_backup.backup(url, Path(args.to), password)
    print(f"saved the hub database to {saved}")
    return 0


def _restore(args: argparse.Namespace) -> int:
    url, password = _database(args)
    hub_backup.restore(url, Path(args.source), password)
    print(f"restored the hub database from {args.source}; start the hub")
    return 0


def _local_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("deployment", help="a deployment of deploy/deployments.yaml")
    parser.add_argument(
        "--state-dir", default=str(ROOT / ".localhub"), help="the local hub's state folder"
    )


def _database_options(parser: argparse.ArgumentParser) -> None:
    _local_options(parser)
    parser.add_argument("--db-url", help="the hub database's URL, if not the deployment's")
    parser.add_argument("--db-password", help="its password (else PGPASSWORD)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="coursehub", description=__doc__.split("\n\n")[0])
    sub = top.add_subparsers(dest="command", required=True)
    for group, (_, purpose) in GROUPS.items():
        # listed for --help only: main() hands these to the tool before parsing
        sub.add_parser(group, help=purpose, add_help=False)
    status = sub.add_parser("status", help="nodes, placeholders, images, hub log, culler, TLS")
    _local_options(status)
    status.add_argument("--url", default="http://127.0.0.1:8000", help="the local hub's URL")
    status.add_argument("--log", help="the local hub's log file (default <state-dir>/hub.log)")
    status.set_defaults(run=_status)
    save = sub.add_parser("backup", help="save the hub database to a file")
    _database_options(save)
    save.add_argument("--to", required=True, help="the file to write")
    save.set_defaults(run=_backup)
    put_back = sub.add_parser("restore", help="put a saved hub database back (hub stopped)")
    _database_options(put_back)
    put_back.add_argument("--from", dest="source", required=True, help="the saved file")
    put_back.set_defaults(run=_restore)
    return top


def run_group(group: str, argv: list[str]) -> int:
    """Run a tool's own main on the rest of the command line; its usage says `coursehub group`."""
    module = importlib.import_module(f"coursehub_tools.{GROUPS[group][0]}")
    # argparse names a parser without prog after sys.argv[0]
    program = sys.argv[0]
    sys.argv[0] = f"coursehub {group}"
    try:
        return module.main(argv)
    finally:
        sys.argv[0] = program


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in GROUPS:
        return run_group(argv[0], argv[1:])
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (ConfigError, hub_status.StatusError, hub_backup.BackupError) as err:
        log.warning("%s", err)
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
