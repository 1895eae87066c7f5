"""What a deployment needs on its cluster besides the chart: its database and its shared data.

The chart makes the hub, the proxy and the users' pods, but not the PostgreSQL
that hub.db.url names nor the ReadWriteMany claim that
singleuser.storage.extraVolumes mounts; on a fresh cluster the hub would not
start and users' pods would stay Pending. This module turns a deployment's
merged values into those objects, as plain dicts, for `coursehub cluster plan`
to print and `coursehub cluster up` to apply before `helm upgrade --install`.

Every name comes from the values: the database Service from hub.db.url's
host, the claim from the extraVolume named custom.sharedData.volume. What to
create, and its images and sizes, is custom.clusterServices. Each is created
only where the values ask for it: the database when hub.db.type is postgres,
the NFS server when the shared-data volume is a PersistentVolumeClaim (kind
uses SQLite and a folder on its node, so it gets neither).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from coursehub_tools.config.deployconfig import VALUES_SCHEMA, Deployment
from coursehub_tools.config.yamlfiles import ConfigError

PART_OF = "coursehub"
MANAGED_BY = "coursehub-cluster"
POSTGRES_PORT = 5432
NFS_PORT = 2049
# Where the NFS server's own volume is mounted and exported (the image's
# run_nfs.sh exports the folders it is given, the first as the NFSv4 root).
EXPORT_PATH = "/exports"
# The official postgres image's Debian variant creates its postgres user with
# this fixed uid and gid (the Alpine variant uses 70), so the pod can run as it.
POSTGRES_UID = 999


def password_placeholder(deployment: Deployment) -> str:
    layers = ", ".join(deployment.skipped) or "an encrypted secrets layer"
    return f"<hub.db.password from {layers}, not decrypted>"


def nfs_server_placeholder(service: str) -> str:
    return f"<clusterIP of Service {service}, read by `coursehub cluster up`>"


def source_of(deployment: Deployment, dotted: str) -> str:
    """The last layer that sets `dotted`: the file to fix."""
    for layer in reversed(deployment.layers):
        node: Any = layer.values
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            return layer.source
    return VALUES_SCHEMA


def settings(deployment: Deployment) -> dict[str, Any]:
    return deployment.values["custom"]["clusterServices"]


def _labels(name: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": component,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def _meta(name: str, namespace: str | None, labels: dict[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    return {**meta, "labels": dict(labels)}


def _restricted(uid: int) -> dict[str, Any]:
    """A container that runs as `uid`, cannot gain privileges and holds no capabilities."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


# The database --------------------------------------------------------------


def database_target(deployment: Deployment) -> dict[str, Any] | None:
    """Service name, user, database and port from hub.db.url; None when no database is made."""
    values = deployment.values
    db = values["hub"].get("db", {})
    if not settings(deployment)["database"]["enabled"] or db.get("type") != "postgres":
        return None
    source = source_of(deployment, "hub.db.url")
    url = urlsplit(db.get("url") or "")
    if not url.scheme.startswith("postgres") or not url.hostname:
        raise ConfigError(
            f"{source}: hub.db.url: must be postgresql://<user>@<service>.<namespace>.svc"
            f":<port>/<database> when custom.clusterServices.database is enabled"
        )
    namespace = deployment.spec["namespace"]
    service, *rest = url.hostname.split(".")
    # A Service is reached as name, name.namespace, name.namespace.svc or
    # name.namespace.svc.cluster.local; anything else is not this cluster's.
    if rest[1:] not in ([], ["svc"], ["svc", "cluster", "local"]):
        raise ConfigError(
            f"{source}: hub.db.url: host {url.hostname!r} is not a Service of the cluster; "
            "set custom.clusterServices.database.enabled: false for an external database"
        )
    if rest and rest[0] != namespace:
        raise ConfigError(
            f"{source}: hub.db.url: host {url.hostname!r} is in namespace {rest[0]!r}, "
            f"but the deployment's namespace is {namespace!r} (deploy/deployments.yaml)"
        )
    database = url.path.lstrip("/")
    if not url.username or not database:
        raise ConfigError(f"{source}: hub.db.url: must name a user and a database")
    return {
        "service": service,
        "namespace": namespace,
        "user": url.username,
        "database": database,
        "port": url.port or POSTGRES_PORT,
    }


def database_password(deployment: Deployment, *, secrets: bool) -> str:
    """hub.db.password; a placeholder for printing; an error when it is needed and unknown."""
    password = deployment.values["hub"].get("db", {}).get("password")
    if password:
        return password
    if not secrets:
        return password_placeholder(deployment)
    if deployment.skipped:
        raise ConfigError(
            f"{', '.join(deployment.skipped)}: not decrypted, so hub.db.password is unknown; "
            "refusing to create the database without it (decrypt the layer, then retry)"
        )
    raise ConfigError(
        f"{source_of(deployment, 'hub.db')}: hub.db.password: required for the cluster's "
        "database (custom.clusterServices.database); put it in the encrypted secrets layer"
    )


def database(deployment: Deployment, *, secrets: bool) -> list[dict[str, Any]]:
    """Secret, Service and StatefulSet of the hub's PostgreSQL, or nothing."""
    target = database_target(deployment)
    if target is None:
        return []
    spec = settings(deployment)["database"]
    name, namespace = target["service"], target["namespace"]
    labels = _labels(name, "postgresql")
    secret = f"{name}-password"
    pgdata = "/var/lib/postgresql/data"
    container = {
        "name": "postgres",
        "image": spec["image"],
        "ports": [{"name": "postgres", "containerPort": POSTGRES_PORT}],
        "env": [
            {"name": "POSTGRES_USER", "value": target["user"]},
            {"name": "POSTGRES_DB", "value": target["database"]},
            {
                "name": "POSTGRES_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}},
            },
            # A folder inside the volume: initdb wants an empty directory it
            # owns, and a fresh volume's root may hold lost+found.
            {"name": "PGDATA", "value": f"{pgdata}/pgdata"},
        ],
        "volumeMounts": [{"name": "data", "mountPath": pgdata}],
        "readinessProbe": {
            "exec": {"command": ["pg_isready", "--username", target["user"]]},
            "periodSeconds": 10,
        },
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
        "securityContext": _restricted(POSTGRES_UID),
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _meta(secret, namespace, labels),
            "type": "Opaque",
            "stringData": {"password": database_password(deployment, secrets=secrets)},
        },
        # The volume is made writable for the postgres group.
        *_one_server(
            name, namespace, labels, container, target["port"], ("data", spec["storage"]),
            pod_security={"fsGroup": POSTGRES_UID},
        ),
        database_policy(name, namespace, labels, deployment.spec["release"]),
        *database_backup(deployment, target, container),
    ]  # fmt: skip


def backup_labels(name: str) -> dict[str, str]:
    return _labels(f"{name}-backup", "postgresql-backup")


def database_backup(
    deployment: Deployment, target: dict[str, Any], server: dict[str, Any]
) -> list[dict[str, Any]]:
    """A CronJob that saves the hub database with pg_dump, into a claim of its own.

    Its own claim, so losing the database's volume does not lose the copies;
    the server's image, so pg_dump is never older than the server. Each run
    keeps the newest `keep` dumps (backup_script); `coursehub restore`
    (scripts/lifecycle/hub_backup.py) reads them back with pg_restore.
    """
    spec = settings(deployment)["databaseBackup"]
    name, namespace = f"{target['service']}-backup", target["namespace"]
    labels = backup_labels(target["service"])
    folder = "/backups"
    # pg_dump reads its connection from libpq's variables; the password from the
    # database's own Secret, never from argv.
    env = [
        {"name": "PGHOST", "value": target["service"]},
        {"name": "PGPORT", "value": str(target["port"])},
        {"name": "PGUSER", "value": target["user"]},
        {"name": "PGDATABASE", "value": target["database"]},
        next(e for e in server["env"] if e["name"] == "POSTGRES_PASSWORD") | {"name": "PGPASSWORD"},
    ]
    container = {
        "name": "pg-dump",
        "image": server["image"],
        "command": ["sh", "-c", backup_script(spec["keep"])],
        "env": [*env, {"name": "BACKUPS", "value": folder}],
        "volumeMounts": [{"name": "backups", "mountPath": folder}],
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}},
        "securityContext": _restricted(POSTGRES_UID),
    }
    pod = {
        "metadata": {"labels": labels},
        "spec": {
            "restartPolicy": "OnFailure",
            "securityContext": {"fsGroup": POSTGRES_UID},
            "containers": [container],
            "volumes": [{"name": "backups", "persistentVolumeClaim": {"claimName": name}}],
        },
    }
    claim = _claim_template(name, spec["storage"], labels)
    return [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": _meta(name, namespace, labels),
            "spec": claim["spec"],
        },
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": _meta(name, namespace, labels),
            "spec": {
                "schedule": spec["schedule"],
                "timeZone": "Etc/UTC",
                # A dump still running when the next is due is not doubled.
                "concurrencyPolicy": "Forbid",
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {"spec": {"backoffLimit": 2, "template": pod}},
            },
        },
    ]


def backup_script(keep: int) -> str:
    """Dump into $BACKUPS, then delete all but the newest `keep` dumps.

    By count, not age: when dumps fail for a while, pruning by age would delete the
    last good ones while no new ones arrive, and pruning runs only after a dump that
    succeeded. The dump is written under a temporary name and renamed when complete,
    so a failed one never takes a good one's place. Names carry the UTC time, so
    their order is their age. POSIX sh: the postgres image's shell.
    """
    return (
        "set -eu\n"
        'stamp="$(date -u +%Y%m%dT%H%M%SZ)"\n'
        'pg_dump --format=custom --file="$BACKUPS/.partial.dump"\n'
        'mv "$BACKUPS/.partial.dump" "$BACKUPS/hub-$stamp.dump"\n'
        f"ls -1 \"$BACKUPS\" | grep -E '^hub-[0-9]{{8}}T[0-9]{{6}}Z[.]dump$' | sort -r"
        f" | tail -n +{keep + 1}"
        ' | while read -r old; do rm -f -- "$BACKUPS/$old"; echo "pruned $old"; done\n'
        'echo "kept: $(ls -1 "$BACKUPS" | grep -c \'^hub-\')"\n'
    )


def database_policy(
    name: str, namespace: str, labels: dict[str, str], release: str
) -> dict[str, Any]:
    """Only this release's hub pod reaches the database: not users' pods, not the
    other deployment's pods (staging and prod share a cluster), nothing else.

    A `from` peer without a namespaceSelector admits pods of this namespace only.
    The hub pod's labels are the chart's recommended ones (ref: z2jh 4.4.0
    _helpers.tpl, jupyterhub.matchLabels), which it renders on the hub Deployment.
    """
    hub = {"app.kubernetes.io/component": "hub", "app.kubernetes.io/instance": release}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(name, namespace, labels),
        "spec": {
            "podSelector": {"matchLabels": labels},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    # The hub, and the backup CronJob's pods (database_backup).
                    "from": [
                        {"podSelector": {"matchLabels": hub}},
                        {"podSelector": {"matchLabels": backup_labels(name)}},
                    ],
                    "ports": [{"port": "postgres", "protocol": "TCP"}],
                }
            ],
        },
    }


def _one_server(
    name: str,
    namespace: str,
    labels: dict[str, str],
    container: dict[str, Any],
    port: int,
    volume: tuple[str, str],
    pod_security: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """A Service and a one-replica StatefulSet with its own volume, for `container`.

    The Service's port is named after the container's first port, which it targets.
    """
    port_name = container["ports"][0]["name"]
    pod_spec = {"containers": [container]}
    if pod_security:
        pod_spec["securityContext"] = pod_security
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(name, namespace, labels),
            "spec": {
                "selector": labels,
                "ports": [{"name": port_name, "port": port, "targetPort": port_name}],
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": _meta(name, namespace, labels),
            "spec": {
                "serviceName": name,
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod_spec},
                "volumeClaimTemplates": [_claim_template(*volume, labels)],
            },
        },
    ]


def _claim_template(name: str, storage: str, labels: dict[str, str]) -> dict[str, Any]:
    """A ReadWriteOnce claim from the cluster's default storage class."""
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": storage}},
        },
    }


# The shared data -------------------------------------------------------------


def shared_claim(deployment: Deployment) -> str | None:
    """The claim the shared-data volume mounts; None when no NFS server is made."""
    values = deployment.values
    if not settings(deployment)["sharedData"]["enabled"]:
        return None
    volume = values["custom"]["sharedData"]["volume"]
    volumes = values["singleuser"].get("storage", {}).get("extraVolumes", [])
    entry = next((v for v in volumes if v.get("name") == volume), None)
    if entry is None:
        raise ConfigError(
            f"{source_of(deployment, 'custom.sharedData.volume')}: custom.sharedData.volume: "
            f"no volume {volume!r} in singleuser.storage.extraVolumes"
        )
    return entry.get("persistentVolumeClaim", {}).get("claimName")


def nfs_service(deployment: Deployment) -> str | None:
    """The NFS server's Service, whose address the PersistentVolume needs; None if none."""
    claim = shared_claim(deployment)
    return f"{claim}-nfs" if claim else None


def shared_data(deployment: Deployment, *, nfs_server: str | None = None) -> list[dict[str, Any]]:
    """An NFS server with its own volume, and the ReadWriteMany claim users' pods mount.

    `nfs_server` is the address the PersistentVolume mounts: the Service's
    clusterIP. Not its DNS name: the kubelet mounts NFS with the node's own
    resolver, which does not know cluster Services (on GKE among others), so
    `coursehub cluster up` reads the clusterIP once the Service exists.
    """
    claim = shared_claim(deployment)
    if claim is None:
        return []
    spec = settings(deployment)["sharedData"]
    namespace = deployment.spec["namespace"]
    name = nfs_service(deployment)
    labels = _labels(name, "nfs-server")
    # Writable by the users' group (singleuser.fsGid), as the users' pods run:
    # run_nfs.sh -G makes the export owned by that group, mode 070.
    fs_gid = deployment.values["singleuser"].get("fsGid")
    args = ["-G", str(fs_gid), EXPORT_PATH] if fs_gid is not None else [EXPORT_PATH]
    container = {
        "name": "nfs-server",
        "image": spec["image"],
        "args": args,
        "ports": [{"name": "nfs", "containerPort": NFS_PORT}],
        "volumeMounts": [{"name": "exports", "mountPath": EXPORT_PATH}],
        "readinessProbe": {"tcpSocket": {"port": "nfs"}, "periodSeconds": 10},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
        # The kernel's NFS server needs root with privileges: the image mounts
        # the nfsd filesystem and starts rpc.nfsd, which no capability set short
        # of SYS_ADMIN (nearly privileged anyway) allows. This one pod, in the
        # deployment's namespace, is the only privileged thing created here.
        "securityContext": {"privileged": True},
    }
    # Cluster-scoped, so named after the namespace too: staging and prod share a cluster.
    volume = f"{namespace}-{claim}"
    return [
        *_one_server(name, namespace, labels, container, NFS_PORT, ("exports", spec["storage"])),
        nfs_policy(deployment, name, labels),
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": _meta(volume, None, labels),
            "spec": {
                "capacity": {"storage": spec["storage"]},
                "accessModes": ["ReadWriteMany"],
                # Course data outlives a deleted claim; removing it is a human decision.
                "persistentVolumeReclaimPolicy": "Retain",
                # "": no storage class, so no provisioner makes another volume for the claim.
                "storageClassName": "",
                "claimRef": {"namespace": namespace, "name": claim},
                # NFSv4: one port (the Service's), and the export is the v4 root "/".
                "mountOptions": ["nfsvers=4.1"],
                "nfs": {"server": nfs_server or nfs_server_placeholder(name), "path": "/"},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": _meta(claim, namespace, labels),
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "",
                "volumeName": volume,
                "resources": {"requests": {"storage": spec["storage"]}},
            },
        },
    ]


def nfs_policy(deployment: Deployment, name: str, labels: dict[str, str]) -> dict[str, Any]:
    """Only the cluster's nodes reach the NFS server: no pod, of this deployment
    or of the other one sharing the cluster.

    The users' pods never talk to it: the kubelet mounts the share on their
    node and hands the pod a folder, so the connection comes from the node's
    address. Those addresses are custom.clusterServices.sharedData.nodeCidr;
    pods' addresses come from the cluster's pod range, outside it. The node the
    server runs on is always admitted (ref: Kubernetes docs, Network Policies,
    "What you can't do": a pod cannot block access from its resident node).
    """
    node_cidr = settings(deployment)["sharedData"].get("nodeCidr")
    if not node_cidr:
        raise ConfigError(
            f"{source_of(deployment, 'custom.clusterServices.sharedData')}: "
            "custom.clusterServices.sharedData.nodeCidr: required with the NFS server "
            "(the nodes' subnet, such as 10.128.0.0/20), the only sources it admits"
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(name, deployment.spec["namespace"], labels),
        "spec": {
            "podSelector": {"matchLabels": labels},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"ipBlock": {"cidr": node_cidr}}],
                    "ports": [{"port": "nfs", "protocol": "TCP"}],
                }
            ],
        },
    }


def manifests(
    deployment: Deployment, *, secrets: bool = False, nfs_server: str | None = None
) -> list[dict[str, Any]]:
    """Everything to apply before the chart, in order; [] when the values need nothing.

    With `secrets`, the database password must be known (the encrypted layer
    decrypted); without, a placeholder stands in for it, for printing.
    """
    objects = database(deployment, secrets=secrets) + shared_data(deployment, nfs_server=nfs_server)
    if not objects:
        return []
    namespace = deployment.spec["namespace"]
    # Applied before `helm --create-namespace` runs, so the namespace is made here.
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": _meta(namespace, None, {"app.kubernetes.io/part-of": PART_OF}),
        },
        *objects,
    ]


def why_none(deployment: Deployment) -> str:
    """One line saying why a deployment gets no cluster services (for `plan`)."""
    values = deployment.values
    volume = values["custom"]["sharedData"]["volume"]
    kinds = [
        next((k for k in v if k != "name"), "?")
        for v in values["singleuser"].get("storage", {}).get("extraVolumes", [])
        if v.get("name") == volume
    ]
    return (
        f"hub.db.type is {values['hub'].get('db', {}).get('type')}; "
        f"the {volume} volume is {kinds[0] if kinds else 'absent'}"
    )
