"""Start-up hooks: two steps run before the user's server, from the image or also the admin folder.

  as-root.sh  as root: make the home folder the user's (a new volume is root's).
  as-user.sh  as the user: pull the course content with nbgitpuller, link the
              course's shared data (and, for instructors, the admin folder)
              into the home folder.

By default (a course's `hooks: image`) only the scripts baked into the image
run, owned by root (deploy/deployments/coursehub/image/Dockerfile), so they
change only by a reviewed rebuild. A course with `hooks: admin` runs, in each
step, the image's script and then the one of that name in the course's admin
folder (custom.sharedData.admin), which its instructors edit and students
never mount: the image's run-admin-hook.sh checks who can write it before
running it and keeps each start's output in the admin folder's
logs/<user>-<step>.log. On a cluster each step is an init container of the
user's pod (its log: `kubectl logs <pod> -c <step>`); the local hub runs the
same scripts before the server process (scripts/local/hub/spawner.py). A step
that fails stops the start.
"""

from __future__ import annotations

from collections.abc import Mapping

from coursehub.courses import INSTRUCTOR, Course

STEPS = ("as-root", "as-user")
ADMIN = "admin"
# Baked into the image beside the steps: runs one step's image script, then
# the admin folder's, after checking that only its owner or root can write it.
ADMIN_RUNNER = "run-admin-hook.sh"


def container_name(step: str) -> str:
    return f"hook-{step}"


def hook_environment(
    course: Course, role: str, home: str, shared_dir: str, admin_dir: str
) -> dict[str, str]:
    """What the hooks (and the server) know about the course; strings only.

    COURSEHUB_ADMIN_DIR only for instructors, whose servers mount the admin
    folder there (as-user.sh links it as ~/admin).
    """
    env = {
        "COURSEHUB_COURSE": course.slug,
        "COURSEHUB_ROLE": role,
        "COURSEHUB_IMAGE": course.image,
        "COURSEHUB_HOME": home,
        "COURSEHUB_SHARED_DIR": shared_dir,
    }
    if course.content_repo:
        env["COURSEHUB_CONTENT_REPO"] = course.content_repo
        env["COURSEHUB_CONTENT_BRANCH"] = course.content_branch
    if role == INSTRUCTOR:
        env["COURSEHUB_ADMIN_DIR"] = admin_dir
    return env


def admin_hook_environment(user: str, admin_dir: str) -> dict[str, str]:
    """What run-admin-hook.sh needs besides the course's environment."""
    return {"COURSEHUB_USER": user, "COURSEHUB_ADMIN_HOOKS": admin_dir}


def init_containers(
    course: Course,
    hooks_path: str,
    env: Mapping[str, str],
    home_mount: Mapping,
    uid: int,
    gid: int,
) -> list[dict]:
    """One init container a step, in order, in the course image.

    `uid` and `gid` are the server's own (the spawner's, after the
    authenticator set them), so the home the as-root step hands over is the
    one the server and the as-user step run as.
    """
    env_list = [{"name": key, "value": value} for key, value in sorted(env.items())]
    ids = [
        {"name": "COURSEHUB_UID", "value": str(uid)},
        {"name": "COURSEHUB_GID", "value": str(gid)},
    ]
    not_escalating = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    root = {
        **not_escalating,
        "runAsUser": 0,
        "runAsGroup": 0,
        "runAsNonRoot": False,
        # Only what changing ownership needs, not the rest of root's powers.
        "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "FOWNER"]},
    }
    user = {**not_escalating, "runAsUser": uid, "runAsGroup": gid, "runAsNonRoot": True}
    return [
        {
            "name": container_name(step),
            "image": course.image,
            "command": [f"{hooks_path}/{step}.sh"],
            "env": env_list + ids,
            "volumeMounts": [dict(home_mount)],
            "securityContext": root if step == "as-root" else user,
        }
        for step in STEPS
    ]


# A new admin folder is made by the kubelet for the subPath mount, owned by
# root (ref: Kubernetes' subPath handling, SafeMakeDir, with the volume root's
# mode). Root-owned, its instructors could not write it; given to the server's
# uid and gid the first time an instructor starts, it is theirs from then on.
# Never taken from an owner it has: only root's folder changes hands. Only the
# owner may enter it, as run-admin-hook.sh requires of what it runs as root.
CLAIM_ADMIN_FOLDER = (
    'set -eu; folder="$1"; owner="$(stat -c %u "$folder")"; '
    'if [ "$owner" = 0 ]; then chown "$2:$3" "$folder"; owner="$2"; fi; '
    'if [ "$owner" = "$2" ]; then chmod 0700 "$folder"; fi; '
    'stat -c "admin folder %n: owner %u, mode %a" "$folder"'
)
ADMIN_FOLDER_CONTAINER = "admin-folder"


def admin_folder_container(course: Course, admin_mount: Mapping, uid: int, gid: int) -> dict:
    """For an instructor's server: the course's admin folder made theirs, mode 0700."""
    return {
        "name": ADMIN_FOLDER_CONTAINER,
        "image": course.image,
        "command": [
            "sh",
            "-c",
            CLAIM_ADMIN_FOLDER,
            "claim-admin-folder",
            admin_mount["mountPath"],
            str(uid),
            str(gid),
        ],
        "volumeMounts": [dict(admin_mount)],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "runAsUser": 0,
            "runAsGroup": 0,
            "runAsNonRoot": False,
            "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "FOWNER"]},
        },
    }


def admin_init_containers(
    course: Course,
    hooks_path: str,
    env: Mapping[str, str],
    home_mount: Mapping,
    admin_mount: Mapping,
    uid: int,
    gid: int,
) -> list[dict]:
    """The steps of a course with hooks: admin, each run by run-admin-hook.sh as root.

    Both start as root: the runner writes the step's log into the admin folder
    (owned by its instructors, so DAC_OVERRIDE) and hands it to the folder's
    owner; for as-user it switches to the server's uid and gid (SETUID,
    SETGID, with setpriv) before running the scripts, which drops root's
    capabilities. `env` must hold admin_hook_environment's variables.
    """
    env_list = [{"name": key, "value": value} for key, value in sorted(env.items())]
    ids = [
        {"name": "COURSEHUB_UID", "value": str(uid)},
        {"name": "COURSEHUB_GID", "value": str(gid)},
    ]
    runner = {
        "allowPrivilegeEscalation": False,
        "runAsUser": 0,
        "runAsGroup": 0,
        "runAsNonRoot": False,
        "capabilities": {
            "drop": ["ALL"],
            "add": ["CHOWN", "FOWNER", "DAC_OVERRIDE", "SETUID", "SETGID"],
        },
    }
    return [
        {
            "name": container_name(step),
            "image": course.image,
            "command": [f"{hooks_path}/{ADMIN_RUNNER}", step],
            "env": env_list + ids,
            "volumeMounts": [dict(home_mount), dict(admin_mount)],
            "securityContext": runner,
        }
        for step in STEPS
    ]
