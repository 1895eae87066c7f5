"""Where a course server's files live: the home volume, and the course's shared data.

The home volume comes from the chart (singleuser.storage: a dynamic PVC a
user, or a subPath of one NFS claim). The shared-data volume is listed in
singleuser.storage.extraVolumes; each course's pods mount only its folder
(subPath = slug), writable for the course's instructors, read-only for
students. Each course also has an admin folder on the same volume
(custom.sharedData.admin: subPath <admin subPath>/<slug>), its instructors'
shared home, where admin hooks and their logs live: mounted in its
instructors' servers only. The mounts depend on the user, so they are part of
the course profile.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from coursehub.courses import INSTRUCTOR, Course


def name_of(item) -> str:
    """The name of a volume, mount or container given as a dict or a kubernetes model object.

    The chart builds some of them as model objects (its cloud-metadata init
    container is a V1Container), hub.config and our values as dicts.
    """
    return item["name"] if isinstance(item, Mapping) else item.name


def keyed_by_name(items: Iterable | Mapping) -> dict:
    """A list of volumes or mounts as a dict keyed by name.

    KubeSpawner accepts either form; only dicts merge with a profile's
    kubespawner_override (a list would be replaced whole, losing the home
    volume or the chart's own mounts).
    ref: https://jupyterhub-kubespawner.readthedocs.io/en/latest/spawner.html
    (KubeSpawner.volumes, volume_mounts, init_containers)
    """
    if isinstance(items, Mapping):
        return dict(items)
    return {name_of(item): item for item in items}


def in_order(first: Iterable | Mapping, then: Iterable) -> dict:
    """Containers as a dict whose sorted keys keep this order: `first`, then `then`.

    KubeSpawner runs a dict of init containers in the order of its sorted keys;
    the chart's own (the cloud-metadata block) must run before the course's hooks.
    """
    if isinstance(first, Mapping):
        first = [first[key] for key in sorted(first)]
    ordered = [*first, *then]
    return {f"{index:02d}-{name_of(item)}": item for index, item in enumerate(ordered)}


def home_mount(volume_mounts: Mapping, home: str) -> dict | None:
    """The chart's mount of the home volume (at singleuser.storage.homeMountPath), if any."""
    for mount in volume_mounts.values():
        if not isinstance(mount, Mapping):
            mount = _as_dict(mount)
        if mount["mountPath"] == home:
            return dict(mount)
    return None


def _as_dict(model) -> dict:
    """A kubernetes model object (V1VolumeMount) as the camelCase dict KubeSpawner also takes."""
    return {
        model.attribute_map[attribute]: value
        for attribute, value in model.to_dict().items()
        if value is not None
    }


def shared_data_mount(shared: Mapping, course: Course, role: str) -> dict:
    """The course's folder of the shared-data volume; writable for instructors only."""
    return {
        "name": shared["volume"],
        "mountPath": shared["mountPath"],
        "subPath": course.slug,
        "readOnly": role != INSTRUCTOR,
    }


def admin_mount(shared: Mapping, course: Course) -> dict:
    """The course's admin folder: for its instructors' servers and its admin hooks only."""
    admin = shared["admin"]
    return {
        "name": shared["volume"],
        "mountPath": admin["mountPath"],
        "subPath": f"{admin['subPath']}/{course.slug}",
        "readOnly": False,
    }
