"""Where a course server's files live: the home volume, and the course's shared data.

The home volume comes from the chart (singleuser.storage: a dynamic PVC a
user, or a subPath of one NFS claim). The shared-data volume is listed in
singleuser.storage.extraVolumes; each course's pods mount only its folder
(subPath = slug), writable for the course's instructors, read-only for
students. The mount depends on the user, so it is part of the course profile.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from coursehub.courses import INSTRUCTOR, Course


def keyed_by_name(items: Iterable[Mapping] | Mapping) -> dict:
    """A list of volumes, mounts or containers as a dict keyed by name.

    KubeSpawner accepts either form; only dicts merge with a profile's
    kubespawner_override (a list would be replaced whole, losing the home
    volume or the chart's own init containers).
    ref: https://jupyterhub-kubespawner.readthedocs.io/en/latest/spawner.html
    (KubeSpawner.volumes, volume_mounts, init_containers)
    """
    if isinstance(items, Mapping):
        return dict(items)
    return {item["name"]: item for item in items}


def home_mount(volume_mounts: Mapping[str, Mapping], home: str) -> dict | None:
    """The chart's mount of the home volume (at singleuser.storage.homeMountPath), if any."""
    for mount in volume_mounts.values():
        if mount["mountPath"] == home:
            return dict(mount)
    return None


def shared_data_mount(shared: Mapping, course: Course, role: str) -> dict:
    """The course's folder of the shared-data volume; writable for instructors only."""
    return {
        "name": shared["volume"],
        "mountPath": shared["mountPath"],
        "subPath": course.slug,
        "readOnly": role != INSTRUCTOR,
    }
