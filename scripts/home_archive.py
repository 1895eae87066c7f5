"""Students' homes archived on a cluster, where the dispatcher cannot read them.

On a cluster a home is a volume that only a pod can mount, so degrading a course
there (`coursehub-dispatch --hub URL --cluster-homes prod`) runs one Kubernetes
Job a member in the deployment's namespace. The Job mounts the member's home
read-only, found as their server found it (KubeSpawner's own claim name, from the
deployment's singleuser.storage), and the archive volume (clusterArchive.claim
in deploy/lifecycle.yaml) at the course's folder, and writes <user>.tar.gz there
whole or not at all, keeping one already written: the rule of the dispatcher's
local archive_home, so a run that dies midway leaves Jobs and archives that the
next run finds and keeps.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from coursehub_tools.deployconfig import Layer, load
from coursehub_tools.pod_manifests import hub_config, make_spawner, make_user
from coursehub_tools.waiting import WaitTimeout, wait_until
from coursehub_tools.yamlfiles import ConfigError

# The Job's container, in the course's image (on the user nodes already). The
# paths and the user come from the environment, so a test runs this same line.
ARCHIVE_SCRIPT = (
    'target="$ARCHIVE_FOLDER/$ARCHIVE_USER.tar.gz"; [ -e "$target" ] && exit 0; '
    'tar -czf "$target.partial" -C "$HOMES_FOLDER" "$ARCHIVE_USER" '
    '&& mv "$target.partial" "$target"'
)
HOMES_FOLDER = "/homes"
ARCHIVE_FOLDER = "/archive"
COURSE_LABEL = "coursehub.org/archive-of"
# User pods' nodes carry this taint (the chart's scheduling.userPods); the Job may
# run there, where the course image is, or on a core node.
USER_NODE_TOLERATIONS = [
    {"key": key, "operator": "Equal", "value": "user", "effect": "NoSchedule"}
    for key in ("hub.jupyter.org/dedicated", "hub.jupyter.org_dedicated")
]
KEPT_FOR = 7 * 24 * 3600  # s a finished Job stays, for its log
# A course of a thousand is archived in rounds: each Job's pod attaches the member's
# disk, and a node attaches only so many (a limit of its machine type).
JOBS_AT_ONCE = 50
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# Every archive Job's pod carries this label, which the deny-all policy selects.
ARCHIVE_POD = {"app.kubernetes.io/component": "home-archive"}


def job_name(slug: str, user: str) -> str:
    """archive-<course>-<user>, or with a digest where that is no valid Job name."""
    name = f"archive-{slug}-{user}"
    if len(name) <= 63 and DNS_LABEL.fullmatch(name):
        return name
    digest = hashlib.sha256(f"{slug}/{user}".encode()).hexdigest()[:12]
    return f"archive-{slug[:40].rstrip('-')}-{digest}"


class HomeVolumes:
    """Each user's home volume as the deployment's KubeSpawner mounts it."""

    def __init__(self, deployment: str, extra_layers: Sequence[Layer] = ()):
        merged = load(deployment, extra_layers=extra_layers)
        self.namespace = merged.spec["namespace"]
        self.storage = merged.values["singleuser"]["storage"]
        self._work = tempfile.TemporaryDirectory(prefix="coursehub-homes-")
        self._config = hub_config(merged, Path(self._work.name))

    async def of(self, user: str) -> tuple[str, str | None] | None:
        """The claim and subPath of `user`'s home; None where homes are not kept."""
        if self.storage["type"] == "none":
            return None
        # KubeSpawner makes its (unused) API client on the running event loop.
        spawner = make_spawner(self._config, make_user(user, [], 0))
        try:
            if self.storage["type"] == "dynamic":
                return spawner.pvc_name, None
            # static: one claim, a folder a user. KubeSpawner expands the chart's
            # subPath template when it builds the pod; the same expansion here.
            # ref: kubespawner/spawner.py KubeSpawner._expand_user_properties
            sub_path = spawner._expand_user_properties(self.storage["static"]["subPath"])
            return self.storage["static"]["pvcName"], sub_path
        finally:
            await spawner.api.api_client.close()


def archive_job(
    slug: str,
    user: str,
    home: tuple[str, str | None],
    archive_claim: str,
    image: str,
    copy: str | None = None,
) -> dict[str, Any]:
    """The Job that archives `user`'s home (claim, subPath) for course `slug`; with `copy`
    (a day, YYYY-MM-DD), that day's backup copy, in backups/<day>/<slug>/ of the claim."""
    claim, sub_path = home
    folder = f"backups/{copy}/{slug}" if copy else slug
    home_mount = {"name": "home", "mountPath": f"{HOMES_FOLDER}/{user}", "readOnly": True}
    if sub_path:
        home_mount["subPath"] = sub_path
    labels = {COURSE_LABEL: slug, **ARCHIVE_POD}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(f"{slug}-{copy}" if copy else slug, user), "labels": labels},
        "spec": {
            "backoffLimit": 2,
            "ttlSecondsAfterFinished": KEPT_FOR,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    # It runs the course's image as root and needs no Kubernetes API:
                    # no token for code in that image to use.
                    "automountServiceAccountToken": False,
                    "tolerations": USER_NODE_TOLERATIONS,
                    "volumes": [
                        {"name": "home", "persistentVolumeClaim": {"claimName": claim}},
                        {"name": "archive", "persistentVolumeClaim": {"claimName": archive_claim}},
                    ],
                    "containers": [
                        {
                            "name": "archive",
                            "image": image,
                            "command": ["sh", "-c", ARCHIVE_SCRIPT],
                            "env": [
                                {"name": "ARCHIVE_USER", "value": user},
                                {"name": "HOMES_FOLDER", "value": HOMES_FOLDER},
                                {"name": "ARCHIVE_FOLDER", "value": ARCHIVE_FOLDER},
                            ],
                            # Root, to read every file of a home whatever its owner (the
                            # user's uid from GitHub, custom.github.unixIds); the home is
                            # mounted read-only.
                            "securityContext": {"runAsUser": 0, "allowPrivilegeEscalation": False},
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"memory": "512Mi"},
                            },
                            "volumeMounts": [
                                home_mount,
                                {"name": "archive", "mountPath": ARCHIVE_FOLDER, "subPath": folder},
                            ],
                        }
                    ],
                },
            },
        },
    }


def archive_policy() -> dict[str, Any]:
    """No traffic in or out of an archive Job's pod.

    It runs the course's image, code the course's authors chose, as root, beside
    a student's home: it needs no network to tar two mounted volumes, so it gets
    none (no reaching the hub, the database, the NFS server, the metadata
    server or the internet). Policy types with no rules deny both directions.
    """
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "home-archive-deny-all", "labels": dict(ARCHIVE_POD)},
        "spec": {"podSelector": {"matchLabels": dict(ARCHIVE_POD)},
                 "policyTypes": ["Ingress", "Egress"]},
    }  # fmt: skip


class ClusterHomes:
    """The Kubernetes API of a deployment's namespace, for archiving homes.

    The client (the `deploy` dependencies) is imported where a cluster is used, so the
    dispatcher runs without it on this machine.
    """

    def __init__(self, deployment: str, archive_claim: str, timeout: float = 1800):
        from kubernetes import client, config

        try:
            # $KUBECONFIG as get-gke-credentials sets it, read now: the client reads it
            # once, when it is first imported.
            config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
        except (config.ConfigException, OSError) as err:
            raise ConfigError(f"--cluster-homes needs a kubeconfig ($KUBECONFIG): {err}") from None
        self.batch, self.core = client.BatchV1Api(), client.CoreV1Api()
        self.networking = client.NetworkingV1Api()
        self.volumes = HomeVolumes(deployment)
        self.namespace = self.volumes.namespace
        self.archive_claim = archive_claim
        self.timeout = timeout

    def archive(
        self, slug: str, users: list[str], image: str, copy: str | None = None
    ) -> list[str]:
        """Archive each user's home for `slug` (with `copy`, that day's backup copy),
        JOBS_AT_ONCE Jobs at a time; what was done, a line each."""
        from kubernetes.client.exceptions import ApiException

        try:
            homes = {}
            for user in users:
                home = asyncio.run(self.volumes.of(user))
                if home is None:
                    return [f"{slug}: no homes archived (singleuser.storage.type is none)"]
                if self._claim_exists(home[0]):  # no claim: never started, there is no home
                    homes[user] = home
            done, members = [], list(homes)
            if members:  # the wall stands before any Job's pod does
                self._create_policy(archive_policy())
            for first in range(0, len(members), JOBS_AT_ONCE):
                started = []
                for user in members[first : first + JOBS_AT_ONCE]:
                    job = archive_job(slug, user, homes[user], self.archive_claim, image, copy)
                    self._create(job)
                    started.append((user, job["metadata"]["name"]))
                for user, name in started:
                    self._wait(name)
                    done.append(f"archived {user}'s home (Job {name})")
            return done
        except ApiException as err:
            raise ConfigError(
                f"the cluster refused the archive of {slug}'s homes: {err.status} {err.reason}"
            ) from None

    def _claim_exists(self, claim: str) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            self.core.read_namespaced_persistent_volume_claim(claim, self.namespace)
        except ApiException as err:
            if err.status == 404:
                return False
            raise
        return True

    def _create(self, job: dict) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.batch.create_namespaced_job(self.namespace, job)
        except ApiException as err:
            if err.status != 409:  # 409: a run before this one created it
                raise

    def _create_policy(self, policy: dict) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.networking.create_namespaced_network_policy(self.namespace, policy)
        except ApiException as err:
            if err.status != 409:  # 409: an earlier run created it
                raise

    def _wait(self, name: str) -> None:
        def finished() -> bool:
            status = self.batch.read_namespaced_job_status(name, self.namespace).status
            failed = [
                c for c in status.conditions or [] if c.type == "Failed" and c.status == "True"
            ]
            if failed:
                raise ConfigError(
                    f"the archive Job {name} failed: {failed[0].message} (the next run tries "
                    f"again once it is deleted: kubectl delete job -n {self.namespace} {name})"
                )
            return bool(status.succeeded)

        try:
            wait_until(finished, self.timeout, f"the archive Job {name} finished", every=5)
        except WaitTimeout as err:
            raise ConfigError(str(err)) from err
