"""Start-up hooks: two scripts the course image carries, run before the user's server.

  as-root.sh  as root: make the home folder the user's (a new volume is root's).
  as-user.sh  as the user: pull the course content with nbgitpuller, link the
              course's shared data into the home folder.

They are baked into the image, owned by root (deploy/deployments/coursehub/image/Dockerfile), so
students cannot change what runs before their own server; they get their
settings from the environment built here. On a cluster each step is an init
container of the user's pod (its log: `kubectl logs <pod> -c <step>`); the
local hub runs the same scripts before the server process
(scripts/localhub/spawner.py). A step that fails stops the start.
"""

from __future__ import annotations

from collections.abc import Mapping

from coursehub.courses import Course

STEPS = ("as-root", "as-user")


def container_name(step: str) -> str:
    return f"hook-{step}"


def hook_environment(course: Course, role: str, home: str, shared_dir: str) -> dict[str, str]:
    """What the hooks (and the server) know about the course; strings only."""
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
    return env


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
