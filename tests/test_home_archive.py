"""Homes archived on a cluster by a Job a student: the home it mounts is the one the
student's pod mounted, the manifest is valid Kubernetes, and the Job's own command
keeps the local archive's rule (written whole, once)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from helpers import students_pod

from coursehub_tools import dispatcher, home_archive
from coursehub_tools.deployconfig import Layer, load
from coursehub_tools.home_archive import (
    ARCHIVE_SCRIPT,
    ClusterHomes,
    HomeVolumes,
    archive_job,
    job_name,
)
from coursehub_tools.pod_manifests import OFFLINE_KUBECONFIG
from coursehub_tools.yamlfiles import ConfigError

pytestmark = pytest.mark.unit
NFS_HOMES = {
    "singleuser": {
        "storage": {"type": "static", "static": {"pvcName": "homes", "subPath": "{username}"}}
    }
}


def home_of(pod: dict, home_path: str) -> tuple[str, str | None]:
    """The claim and subPath a pod mounts at the home path."""
    (notebook,) = [c for c in pod["spec"]["containers"] if c["name"] == "notebook"]
    (mount,) = [m for m in notebook["volumeMounts"] if m["mountPath"] == home_path]
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == mount["name"]]
    return volume["persistentVolumeClaim"]["claimName"], mount.get("subPath")


@pytest.mark.parametrize("user", ["sam", "ann.lee-2"])
def test_the_job_mounts_the_home_the_students_pod_mounted(cluster_deployment, user):
    import kubernetes_validate

    values = load(cluster_deployment).values
    pod = students_pod(cluster_deployment, user)
    home = asyncio.run(HomeVolumes(cluster_deployment).of(user))
    assert home == home_of(pod, values["singleuser"]["storage"]["homeMountPath"])
    job = archive_job("climate-lab", user, home, "coursehub-archive", "example.org/image:1")
    kubernetes_validate.validate(job, kubernetes_validate.latest_version(), strict=True)
    (mount, archive) = job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert mount["readOnly"] is True and archive["subPath"] == "climate-lab"
    assert job["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_on_nfs_the_job_mounts_the_students_folder_of_the_share():
    pod = students_pod("prod", "ann.lee-2", NFS_HOMES)
    home_path = load("prod").values["singleuser"]["storage"]["homeMountPath"]
    volumes = HomeVolumes("prod", [Layer("nfs homes", NFS_HOMES)])
    claim, folder = asyncio.run(volumes.of("ann.lee-2"))
    assert (claim, folder) == home_of(pod, home_path) and claim == "homes"
    assert folder.startswith("ann-lee-2"), "KubeSpawner's safe name, as the pod mounted it"


def test_job_names_are_valid_and_distinct():
    names = {job_name("climate-lab", user) for user in ("sam", "Sam", "x" * 60, "y" * 60)}
    assert len(names) == 4 and all(len(name) <= 63 for name in names)
    assert job_name("climate-lab", "sam") == "archive-climate-lab-sam"


def run_archive_script(homes, archive, user) -> subprocess.CompletedProcess:
    env = {**os.environ, "ARCHIVE_USER": user, "HOMES_FOLDER": str(homes),
           "ARCHIVE_FOLDER": str(archive)}  # fmt: skip
    return subprocess.run(["sh", "-c", ARCHIVE_SCRIPT], env=env, capture_output=True, check=False)


def test_the_jobs_command_archives_like_the_local_dispatcher_once_and_whole(tmp_path):
    homes, archive, local = tmp_path / "homes", tmp_path / "archive", tmp_path / "local"
    (homes / "sam" / "week1").mkdir(parents=True)
    (homes / "sam" / "week1" / "analysis.ipynb").write_text("{}")
    archive.mkdir()
    (archive / "sam.tar.gz.partial").write_text("left by a Job killed midway")
    assert run_archive_script(homes, archive, "sam").returncode == 0
    target = archive / "sam.tar.gz"
    written = target.read_bytes()
    assert not (archive / "sam.tar.gz.partial").exists()
    with (
        tarfile.open(target) as cluster,
        tarfile.open(dispatcher.archive_home(homes / "sam", local)) as here,
    ):
        assert sorted(cluster.getnames()) == sorted(here.getnames())
        assert "sam/week1/analysis.ipynb" in cluster.getnames()

    (homes / "sam" / "week1" / "later.ipynb").write_text("{}")
    assert run_archive_script(homes, archive, "sam").returncode == 0
    assert target.read_bytes() == written, "an archive already written is kept"


def test_a_home_that_cannot_be_read_fails_the_job_and_leaves_no_archive(tmp_path):
    (tmp_path / "homes").mkdir()
    (tmp_path / "archive").mkdir()
    result = run_archive_script(tmp_path / "homes", tmp_path / "archive", "nobody")
    assert result.returncode != 0
    assert not (tmp_path / "archive" / "nobody.tar.gz").exists()


def test_homes_on_a_cluster_without_a_kubeconfig_are_refused_before_any_step(
    project_copy, monkeypatch, capsys, tmp_path
):
    root, slug = project_copy.root, "data-science-101"
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv(dispatcher.TOKEN_ENV, "a-token")
    end = str(dispatcher.registry(root)[slug]["end"])
    after = f"{int(end[:4]) + 1}{end[4:]}"
    argv = ["--root", str(root), "--today", after, "--hub", "http://127.0.0.1:9",
            "--cluster-homes", "prod"]  # fmt: skip
    assert dispatcher.main(argv) == 1
    assert "--cluster-homes needs a kubeconfig" in capsys.readouterr().err
    assert dispatcher.registry(root)[slug]["lifecycle"]["state"] == "DEPLOYED"


def test_homes_from_a_folder_and_a_cluster_at_once_are_refused(capsys):
    with pytest.raises(SystemExit):
        dispatcher.main(["--homes", "/tmp", "--cluster-homes", "prod", "--dry-run"])
    assert "not both" in capsys.readouterr().err


class KubernetesAPI(BaseHTTPRequestHandler):
    """The few calls ClusterHomes makes, answered as the Kubernetes API would: claims
    that exist, Jobs created (409 when there already), and each Job's status."""

    claims: ClassVar[set[str]] = set()
    jobs: ClassVar[dict[str, dict]] = {}
    policies: ClassVar[dict[str, dict]] = {}
    calls: ClassVar[list[str]] = []
    job_status: ClassVar[dict] = {"succeeded": 1}

    def _answer(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        *_, kind, name = self.path.rstrip("/").removesuffix("/status").split("/")
        self.calls.append(f"read {name}")
        if kind == "persistentvolumeclaims":
            found = name in self.claims
            self._answer(200 if found else 404, {"kind": "PersistentVolumeClaim"}
                         if found else {"kind": "Status", "code": 404})  # fmt: skip
        else:
            self._answer(200, {**self.jobs[name], "status": self.job_status})

    def do_POST(self):
        made = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        name = made["metadata"]["name"]
        self.calls.append(f"create {name}")
        kept = self.policies if self.path.endswith("/networkpolicies") else self.jobs
        conflict = name in kept
        kept.setdefault(name, made)
        answer = {"kind": "Status", "code": 409} if conflict else made
        self._answer(409 if conflict else 201, answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def kubernetes_api(tmp_path, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), KubernetesAPI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    KubernetesAPI.claims, KubernetesAPI.jobs, KubernetesAPI.calls = set(), {}, []
    KubernetesAPI.policies = {}
    KubernetesAPI.job_status = {"succeeded": 1}
    config = {
        **OFFLINE_KUBECONFIG,
        "clusters": [
            {"name": "offline", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}
        ],
    }
    (tmp_path / "kubeconfig").write_text(json.dumps(config))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    yield KubernetesAPI
    server.shutdown()


def test_a_job_a_member_with_a_home_and_one_found_again_is_waited_on(kubernetes_api):
    """Through the real Kubernetes client: members without a claim get no Job, a second
    run finds the Jobs (409) and waits on them instead of making them again."""
    home, _ = asyncio.run(HomeVolumes("prod").of("sam"))
    kubernetes_api.claims.add(home)
    homes = ClusterHomes("prod", "coursehub-archive", timeout=30)
    done = homes.archive("climate-lab", ["sam", "never-started"], "example.org/image:1")
    assert done == ["archived sam's home (Job archive-climate-lab-sam)"]
    assert list(kubernetes_api.jobs) == ["archive-climate-lab-sam"]
    sent = kubernetes_api.jobs["archive-climate-lab-sam"]
    assert sent == archive_job("climate-lab", "sam", (home, None), "coursehub-archive",
                               "example.org/image:1")  # fmt: skip
    assert homes.archive("climate-lab", ["sam"], "example.org/image:1") == done


def test_no_archive_pod_reaches_or_is_reached_by_anything(kubernetes_api):
    """The Job runs the course's image as root: a deny-all policy selects its pod, and
    stands before the first Job is created."""
    import kubernetes_validate

    home, _ = asyncio.run(HomeVolumes("prod").of("sam"))
    kubernetes_api.claims.add(home)
    ClusterHomes("prod", "coursehub-archive", timeout=30).archive("climate-lab", ["sam"], "i:1")
    (name,) = kubernetes_api.policies
    policy = kubernetes_api.policies[name]
    kubernetes_validate.validate(policy, kubernetes_validate.latest_version(), strict=True)
    assert kubernetes_api.calls.index(f"create {name}") < kubernetes_api.calls.index(
        "create archive-climate-lab-sam"
    )
    pod = kubernetes_api.jobs["archive-climate-lab-sam"]["spec"]["template"]
    selector = policy["spec"]["podSelector"]
    assert set(selector) == {"matchLabels"}
    assert selector["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in policy["spec"] and "egress" not in policy["spec"], "no rule admits"


def test_a_failed_job_fails_the_step_and_says_how_to_retry(kubernetes_api):
    home, _ = asyncio.run(HomeVolumes("prod").of("sam"))
    kubernetes_api.claims.add(home)
    kubernetes_api.job_status = {
        "failed": 3,
        "conditions": [
            {"type": "Failed", "status": "True", "message": "Job has reached the backoff limit"}
        ],
    }
    homes = ClusterHomes("prod", "coursehub-archive", timeout=30)
    with pytest.raises(ConfigError, match=r"backoff limit .*kubectl delete job -n coursehub-prod"):
        homes.archive("climate-lab", ["sam"], "example.org/image:1")


def test_a_large_course_is_archived_in_rounds(kubernetes_api, monkeypatch):
    monkeypatch.setattr(home_archive, "JOBS_AT_ONCE", 2)
    users = ["ann", "bob", "cy"]
    for user in users:
        kubernetes_api.claims.add(asyncio.run(HomeVolumes("prod").of(user))[0])
    ClusterHomes("prod", "coursehub-archive", timeout=30).archive("climate-lab", users, "i:1")
    jobs = [c for c in kubernetes_api.calls if c.startswith(("create archive", "read archive"))]
    assert jobs == [
        "create archive-climate-lab-ann",
        "create archive-climate-lab-bob",
        "read archive-climate-lab-ann",
        "read archive-climate-lab-bob",
        "create archive-climate-lab-cy",
        "read archive-climate-lab-cy",
    ], "the next round starts once the last one has finished"


def test_a_days_backup_copy_is_a_job_of_that_day_in_a_folder_of_that_day(kubernetes_api):
    """A daily copy is not the end-of-course archive (found again by name and kept): each
    day's Jobs and files are that day's, so yesterday's do not stand for today's."""
    home, _ = asyncio.run(HomeVolumes("prod").of("sam"))
    kubernetes_api.claims.add(home)
    homes = ClusterHomes("prod", "coursehub-archive", timeout=30)
    for day in ("2026-11-16", "2026-11-17"):
        done = homes.archive("climate-lab", ["sam"], "example.org/image:1", copy=day)
        name = f"archive-climate-lab-{day}-sam"
        assert done == [f"archived sam's home (Job {name})"]
        mounts = kubernetes_api.jobs[name]["spec"]["template"]["spec"]["containers"][0]
        archive_mount = next(m for m in mounts["volumeMounts"] if m["name"] == "archive")
        assert archive_mount["subPath"] == f"backups/{day}/climate-lab"
    assert "archive-climate-lab-sam" not in kubernetes_api.jobs, "no end-of-course archive"
