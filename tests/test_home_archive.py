"""Homes archived on a cluster by a Job a student: the home it mounts is the one the
student's pod mounted, the manifest is valid Kubernetes, and the Job's own command
keeps the local archive's rule (written whole, once)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import tarfile

import pytest

from coursehub_tools import dispatcher
from coursehub_tools.deployconfig import Layer, load
from coursehub_tools.home_archive import (
    ARCHIVE_SCRIPT,
    HomeVolumes,
    archive_job,
    job_name,
)

pytestmark = pytest.mark.unit
NFS_HOMES = {
    "singleuser": {
        "storage": {"type": "static", "static": {"pvcName": "homes", "subPath": "{username}"}}
    }
}


def students_pod(deployment: str, user: str, extra_values: dict | None = None) -> dict:
    from coursehub_tools.pod_manifests import build

    slug, course = next(iter(load(deployment).values["custom"]["courses"].items()))
    return build(deployment, user, course["groups"]["students"][:1], course=slug,
                 today=course["start"], extra_values=extra_values)  # fmt: skip


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
