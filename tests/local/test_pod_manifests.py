"""The pod of every registry course, for a student and an instructor, on every cluster deployment.

Built offline by the configured spawner (scripts/local/pod_manifests.py: the chart's
mapping of our values, hub-config's jupyterhub_config.d, CourseKubeSpawner's
get_pod_manifest) and validated strictly with kubernetes-validate. What each pod
must contain is read from the merged values and the registry.
"""

from __future__ import annotations

import pytest

from coursehub_tools.config.deployconfig import Layer, load

pytestmark = pytest.mark.unit
ROLES = ("student", "instructor")


def courses_of(deployment: str) -> dict:
    return load(deployment).values["custom"]["courses"]


def member_of(course: dict, role: str) -> list[str]:
    return course["groups"]["students" if role == "student" else "instructors"][:1]


def course_day(course: dict) -> str:
    """A day the course is open to everyone: its start date."""
    return course["start"]


def manifest(deployment: str, slug: str, role: str, extra_values: dict | None = None) -> dict:
    from coursehub_tools.local.pod_manifests import build

    course = load(deployment).values["custom"]["courses"][slug]
    return build(
        deployment,
        "sam" if role == "student" else "ian",
        member_of(course, role),
        course=slug,
        today=course_day(course),
        extra_values=extra_values,
    )


def container(pod: dict, name: str) -> dict:
    containers = pod["spec"]["containers"] + pod["spec"].get("initContainers", [])
    return next(c for c in containers if c["name"] == name)


@pytest.mark.parametrize("role", ROLES)
def test_course_pods_are_valid_and_are_the_course(cluster_deployment, role, subtests):
    for slug in sorted(courses_of(cluster_deployment)):
        with subtests.test(course=slug):
            check_course_pod(cluster_deployment, slug, role)


def check_course_pod(deployment, slug, role):
    import kubernetes_validate

    values = load(deployment).values
    course = values["custom"]["courses"][slug]
    pod = manifest(deployment, slug, role)
    kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)

    notebook = container(pod, "notebook")
    assert notebook["image"] == course["image"]
    resources = notebook["resources"]
    assert resources["limits"]["cpu"] == course["resources"]["cpu"]["limit"]
    assert resources["requests"]["cpu"] == course["resources"]["cpu"]["guarantee"]
    env = {item["name"]: item["value"] for item in notebook["env"]}
    assert int(env["MEM_LIMIT"]) == resources["limits"]["memory"]
    assert env["COURSEHUB_COURSE"] == slug and env["COURSEHUB_ROLE"] == role
    assert notebook["securityContext"]["runAsUser"] == values["singleuser"]["uid"]
    assert notebook["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["spec"]["securityContext"]["fsGroup"] == values["singleuser"]["fsGid"]

    # Home: the chart's volume at homeMountPath; shared data: the course's folder,
    # read-only unless the user teaches the course.
    mounts = {m["mountPath"]: m for m in notebook["volumeMounts"]}
    home = mounts[values["singleuser"]["storage"]["homeMountPath"]]
    shared = mounts[values["custom"]["sharedData"]["mountPath"]]
    assert shared["name"] == values["custom"]["sharedData"]["volume"]
    assert shared["subPath"] == slug
    assert shared["readOnly"] is (role == "student")
    volumes = {v["name"] for v in pod["spec"]["volumes"]}
    assert {home["name"], shared["name"]} <= volumes


@pytest.mark.parametrize("role", ROLES)
def test_hooks_run_from_the_image_as_root_then_as_the_user(cluster_deployment, role, subtests):
    for slug in sorted(courses_of(cluster_deployment)):
        with subtests.test(course=slug):
            check_hooks(cluster_deployment, slug, role)


@pytest.mark.parametrize("role", ROLES)
def test_admin_hooks_run_through_the_images_runner_with_the_admin_folder(
    cluster_deployment, role, subtests
):
    for slug in sorted(courses_of(cluster_deployment)):
        with subtests.test(course=slug):
            admin = {"custom": {"courses": {slug: {"hooks": "admin"}}}}
            check_hooks(cluster_deployment, slug, role, admin)


def check_hooks(deployment, slug, role, extra_values=None):
    import kubernetes_validate

    from coursehub.hooks import ADMIN_RUNNER, STEPS, container_name

    layers = [Layer("extra values", extra_values)] if extra_values else []
    values = load(deployment, extra_layers=layers).values
    course = values["custom"]["courses"][slug]
    pod = manifest(deployment, slug, role, extra_values)
    kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)
    hooks = [c for c in pod["spec"]["initContainers"] if c["name"].startswith("hook-")]
    assert [c["name"] for c in hooks] == [container_name(step) for step in STEPS]
    home = values["singleuser"]["storage"]["homeMountPath"]
    hooks_path = values["custom"]["startupHooks"]["path"]
    shared = values["custom"]["sharedData"]
    from_admin = course.get("hooks", "image") == "admin"
    for hook, step in zip(hooks, STEPS, strict=True):
        assert hook["image"] == course["image"], "the hooks come from the course image"
        context = hook["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert "ALL" in context["capabilities"]["drop"]
        env = {item["name"]: item["value"] for item in hook["env"]}
        assert env["COURSEHUB_COURSE"] == slug
        assert ("COURSEHUB_CONTENT_REPO" in env) is ("content" in course)
        if not from_admin:
            assert hook["command"] == [f"{hooks_path}/{step}.sh"]
            assert [m["mountPath"] for m in hook["volumeMounts"]] == [home]
            continue
        # The image's runner, root, with the course's admin folder and nothing else of the volume.
        assert hook["command"] == [f"{hooks_path}/{ADMIN_RUNNER}", step]
        admin = {"mountPath": shared["admin"]["mountPath"], "name": shared["volume"],
                 "subPath": f"{shared['admin']['subPath']}/{slug}", "readOnly": False}  # fmt: skip
        assert hook["volumeMounts"][1:] == [admin]
        assert env["COURSEHUB_ADMIN_HOOKS"] == admin["mountPath"]
        assert env["COURSEHUB_UID"] == str(values["singleuser"]["uid"])
        assert context["runAsUser"] == 0  # tests/hub/test_security.py: with which capabilities
    if from_admin:
        return
    as_root, as_user = hooks
    assert as_root["securityContext"]["runAsUser"] == 0
    assert as_user["securityContext"]["runAsUser"] == values["singleuser"]["uid"]
    assert as_user["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize("role", ROLES)
def test_only_instructors_servers_mount_the_admin_folder(cluster_deployment, role, subtests):
    values = load(cluster_deployment).values
    admin = values["custom"]["sharedData"]["admin"]
    for slug in sorted(courses_of(cluster_deployment)):
        with subtests.test(course=slug):
            notebook = container(manifest(cluster_deployment, slug, role), "notebook")
            mounts = {m["mountPath"]: m for m in notebook["volumeMounts"]}
            env = {item["name"]: item["value"] for item in notebook["env"]}
            if role == "student":
                assert admin["mountPath"] not in mounts
                assert "COURSEHUB_ADMIN_DIR" not in env
                assert not any(admin["subPath"] in m.get("subPath", "") for m in mounts.values())
            else:
                mount = mounts[admin["mountPath"]]
                assert mount["subPath"] == f"{admin['subPath']}/{slug}"
                assert mount["readOnly"] is False
                assert env["COURSEHUB_ADMIN_DIR"] == admin["mountPath"]


def test_a_course_image_is_pulled_only_where_it_is_missing(cluster_deployment):
    """Pinned tags and IfNotPresent: a node keeps the image it pulled for a tag."""
    from coursehub_tools.local.pod_manifests import image_pull_policy

    for slug, course in courses_of(cluster_deployment).items():
        pod = manifest(cluster_deployment, slug, "student")
        for item in pod["spec"]["containers"] + pod["spec"]["initContainers"]:
            if item["image"] == course["image"]:
                assert image_pull_policy(item) == "IfNotPresent", (slug, item["name"])
    assert image_pull_policy({"image": "ghcr.io/coursehub/x:latest"}) == "Always"
    assert image_pull_policy({"image": "ghcr.io/coursehub/x"}) == "Always"


def test_nfs_homes_are_a_subpath_of_one_claim(cluster_deployment):
    import kubernetes_validate

    deployment = cluster_deployment
    slug = sorted(courses_of(deployment))[0]
    nfs = {
        "singleuser": {
            "storage": {
                "type": "static",
                "static": {"pvcName": "home-nfs", "subPath": "{username}"},
            }
        }
    }
    pod = manifest(deployment, slug, "student", extra_values=nfs)
    kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)
    home_path = load(deployment).values["singleuser"]["storage"]["homeMountPath"]
    home = next(
        m for m in container(pod, "notebook")["volumeMounts"] if m["mountPath"] == home_path
    )
    assert home["subPath"] == "sam"
    claim = next(v for v in pod["spec"]["volumes"] if v["name"] == home["name"])
    assert claim["persistentVolumeClaim"]["claimName"] == "home-nfs"
    hooks = [c for c in pod["spec"]["initContainers"] if c["name"].startswith("hook-")]
    assert hooks, "the course's hooks run"
    for hook in hooks:
        assert hook["volumeMounts"] == [home], "hooks see the same home folder"


def test_no_pod_for_a_course_that_is_not_open_to_the_user(cluster_deployment):
    from datetime import date, timedelta

    from coursehub_tools.local.pod_manifests import build

    deployment = cluster_deployment
    courses = courses_of(deployment)
    for slug, course in courses.items():
        day_before = (date.fromisoformat(course["start"]) - timedelta(days=1)).isoformat()
        student = member_of(course, "student")
        with pytest.raises(Exception, match="open to you today"):
            build(deployment, "sam", student, course=slug, today=day_before)
        with pytest.raises(Exception, match="open to you today"):
            build(deployment, "olga", [], course=slug, today=course["start"])


def test_the_command_line_refuses_an_unknown_deployment(capsys):
    from coursehub_tools.local.pod_manifests import main

    assert main(["nowhere", "sam", "coursehub-school:students"]) == 1
    assert capsys.readouterr().err.startswith("error: deploy/deployments.yaml: no deployment")


def test_the_command_line_says_in_one_line_that_a_course_is_closed(capsys):
    from coursehub_tools.local.pod_manifests import main

    argv = ["prod", "sam", "coursehub-school:students", "--course", "data-science-101"]
    # The day after the course's end (deploy/courses/data-science-101.yaml).
    assert main([*argv, "--today", "2027-02-27"]) == 1
    assert capsys.readouterr().err == (
        "error: sam: No course is open to you today: there is nothing to start.\n"
    )


def test_the_command_line_refuses_an_unreadable_date_in_one_line(capsys):
    from coursehub_tools.local.pod_manifests import main

    with pytest.raises(SystemExit) as refused:
        main(["prod", "sam", "coursehub-school:students", "--today", "2026-13-01"])
    assert refused.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "coursehub pod: error: argument --today: invalid fromisoformat value: '2026-13-01'"
    )


def test_the_charts_cloud_metadata_block_runs_first(cluster_deployment):
    values = load(cluster_deployment).values
    metadata = values["singleuser"]["cloudMetadata"]
    assert metadata["blockWithIptables"] is True, "the chart's default, kept"
    slug = sorted(courses_of(cluster_deployment))[0]
    pod = manifest(cluster_deployment, slug, "student")
    first, *others = pod["spec"]["initContainers"]
    assert first["name"] == "block-cloud-metadata"
    assert metadata["ip"] in first["command"]
    assert [c["name"] for c in others] == [
        c["name"] for c in others if c["name"].startswith("hook-")
    ]


def test_with_github_unix_ids_the_hooks_hand_the_home_to_the_github_uid(cluster_deployment):
    from coursehub_tools.local.pod_manifests import build

    github_id = 583231
    course_slug, course = sorted(courses_of(cluster_deployment).items())[0]
    pod = build(
        cluster_deployment,
        "sam",
        member_of(course, "student"),
        course=course_slug,
        today=course_day(course),
        extra_values={"custom": {"github": {"unixIds": True}}},
        github_id=github_id,
    )
    notebook = container(pod, "notebook")
    as_root, as_user = container(pod, "hook-as-root"), container(pod, "hook-as-user")
    assert notebook["securityContext"]["runAsUser"] == github_id
    assert as_user["securityContext"]["runAsUser"] == github_id
    chown_to = {item["name"]: item["value"] for item in as_root["env"]}
    assert chown_to["COURSEHUB_UID"] == str(github_id)
    assert chown_to["COURSEHUB_GID"] == str(pod["spec"]["securityContext"]["fsGroup"])
    assert github_id + 1 in pod["spec"]["securityContext"]["supplementalGroups"], "team ids"


def shared_mounts(pod: dict, volume: str) -> dict[str, list[str]]:
    """The subPaths of `volume` each container (init containers too) mounts."""
    found: dict[str, list[str]] = {}
    for item in pod["spec"]["containers"] + pod["spec"].get("initContainers", []):
        for mount in item.get("volumeMounts", []):
            if mount["name"] == volume:
                found.setdefault(item["name"], []).append(mount.get("subPath", ""))
    return found


@pytest.mark.parametrize("hooks_from", ["image", "admin"])
def test_the_admin_folder_is_its_instructors_and_out_of_students_reach(
    cluster_deployment, hooks_from
):
    """What root runs from the admin folder, no student can write: the kubelet makes the
    folder root's, an instructor's pod makes it theirs (0700) before anything runs, and a
    student's containers mount neither it nor a folder holding it; with hooks: admin only
    the image's runner (root, checking the owner) mounts it in a student's pod."""
    from coursehub.hooks import ADMIN_FOLDER_CONTAINER, ADMIN_RUNNER

    values = load(cluster_deployment).values
    shared = values["custom"]["sharedData"]
    for slug in sorted(courses_of(cluster_deployment)):
        admin = f"{shared['admin']['subPath']}/{slug}"
        extra = {"custom": {"courses": {slug: {"hooks": hooks_from}}}}
        student = manifest(cluster_deployment, slug, "student", extra)
        for name, subpaths in shared_mounts(student, shared["volume"]).items():
            runner = container(student, name).get("command", [""])[0].endswith(ADMIN_RUNNER)
            for subpath in subpaths:
                holds_admin = admin == subpath or admin.startswith(subpath.rstrip("/") + "/")
                if holds_admin or subpath == "":
                    assert hooks_from == "admin" and runner, (slug, name, subpath)
        instructor = manifest(cluster_deployment, slug, "instructor", extra)
        names = [c["name"] for c in instructor["spec"]["initContainers"]]
        claim = container(instructor, ADMIN_FOLDER_CONTAINER)
        hook_positions = [i for i, n in enumerate(names) if n.startswith("hook-")]
        assert names.index(ADMIN_FOLDER_CONTAINER) < min(hook_positions), names
        assert [m.get("subPath") for m in claim["volumeMounts"]] == [admin]
        notebook = container(instructor, "notebook")
        uid = str(notebook.get("securityContext", {}).get("runAsUser", values["singleuser"]["uid"]))
        assert claim["command"][-2] == uid, "the folder goes to the uid the server runs as"
        assert claim["securityContext"]["capabilities"] == {
            "drop": ["ALL"], "add": ["CHOWN", "FOWNER"]}  # fmt: skip


def run_claim(folder, uid: int, gid: int) -> str:
    """The instructor's admin-folder step, as the rendered pod runs it, on `folder`."""
    import subprocess

    from coursehub.hooks import CLAIM_ADMIN_FOLDER

    done = subprocess.run(
        ["sh", "-c", CLAIM_ADMIN_FOLDER, "claim", str(folder), str(uid), str(gid)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout


def test_the_admin_folder_step_takes_only_roots_folder_and_closes_it(tmp_path):
    import os

    me, group = os.geteuid(), os.getegid()
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o777)
    mine.chmod(0o777)
    # Already the server's: kept, and closed to everyone else.
    assert run_claim(mine, me, group).strip() == f"admin folder {mine}: owner {me}, mode 700"
    # Someone else's (another instructor's, or a uid the server does not run as): untouched.
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o750)
    owner = 4242 if me == 0 else me
    os.chown(theirs, owner, -1)
    run_claim(theirs, owner + 1, group)
    assert (theirs.stat().st_uid, oct(theirs.stat().st_mode & 0o777)) == (owner, "0o750")
    if me == 0:
        # As the kubelet leaves it: root's, with the volume root's mode.
        new = tmp_path / "new"
        new.mkdir(mode=0o777)
        new.chmod(0o777)
        assert "owner 1000, mode 700" in run_claim(new, 1000, 100)
        assert (new.stat().st_uid, new.stat().st_gid) == (1000, 100)
