"""The database and shared-data objects the deploy creates, for every Kubernetes deployment.

Expectations are read from the merged values: the Service is whatever host
hub.db.url names, the claim whatever singleuser.storage.extraVolumes mounts.
The deployment list is read inside the tests, so a broken config fails a test.
"""

from __future__ import annotations

import shlex
import subprocess
from urllib.parse import urlsplit

import pytest
import yaml
from helpers import has_database

from coursehub_tools.config.deployconfig import Layer, load
from coursehub_tools.config.sops_files import KEY_ENVIRONMENT
from coursehub_tools.config.yamlfiles import ConfigError
from coursehub_tools.deploy import cluster, cluster_services

pytestmark = pytest.mark.unit


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def shared_volume(values: dict) -> dict:
    name = values["custom"]["sharedData"]["volume"]
    return next(v for v in values["singleuser"]["storage"]["extraVolumes"] if v["name"] == name)


def wants_shared_data(values: dict) -> bool:
    return values["custom"]["clusterServices"]["sharedData"]["enabled"] and (
        "persistentVolumeClaim" in shared_volume(values)
    )


def test_manifests_are_strictly_valid(cluster_deployment):
    import kubernetes_validate

    objects = cluster_services.manifests(load(cluster_deployment))
    for manifest in objects:
        kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=True)


def test_database_service_is_the_host_hub_db_url_names(cluster_deployment):
    deployment = load(cluster_deployment)
    values = deployment.values
    objects = cluster_services.manifests(deployment)
    if not has_database(deployment):
        assert by_kind(objects, "Secret") == []
        assert not any(o["metadata"]["name"].endswith("-db") for o in objects)
        return
    url = urlsplit(values["hub"]["db"]["url"])
    service, namespace = url.hostname.split(".")[:2]
    assert namespace == deployment.spec["namespace"]
    services = {o["metadata"]["name"]: o for o in by_kind(objects, "Service")}
    assert services[service]["metadata"]["namespace"] == namespace
    assert services[service]["spec"]["ports"][0]["port"] == (url.port or 5432)
    (database,) = [s for s in by_kind(objects, "StatefulSet") if s["metadata"]["name"] == service]
    container = database["spec"]["template"]["spec"]["containers"][0]
    settings = values["custom"]["clusterServices"]["database"]
    assert container["image"] == settings["image"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POSTGRES_USER"]["value"] == url.username
    assert env["POSTGRES_DB"]["value"] == url.path.lstrip("/")
    claim = database["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["resources"]["requests"]["storage"] == settings["storage"]
    # Not root, and no way to become it.
    security = container["securityContext"]
    assert security["runAsNonRoot"] and security["runAsUser"] != 0
    assert security["allowPrivilegeEscalation"] is False


def test_the_database_is_dumped_on_schedule_by_a_pod_its_policy_admits(cluster_deployment):
    deployment = load(cluster_deployment)
    values = deployment.values
    objects = cluster_services.manifests(deployment)
    if not has_database(deployment):
        assert by_kind(objects, "CronJob") == [], "no database, nothing to dump"
        return
    url = urlsplit(values["hub"]["db"]["url"])
    service = url.hostname.split(".")[0]
    settings = values["custom"]["clusterServices"]
    (cronjob,) = by_kind(objects, "CronJob")
    assert cronjob["spec"]["schedule"] == settings["databaseBackup"]["schedule"]
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    # The server's own image: pg_dump is never older than the server it dumps.
    assert container["image"] == settings["database"]["image"]
    env = {e["name"]: e for e in container["env"]}
    assert (env["PGHOST"]["value"], env["PGUSER"]["value"]) == (service, url.username)
    assert env["PGDATABASE"]["value"] == url.path.lstrip("/")
    assert env["PGPORT"]["value"] == str(url.port or 5432)
    secret = by_kind(objects, "Secret")[0]["metadata"]["name"]
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": "password"}
    assert "pg_dump --format=custom" in container["command"][-1]
    assert env["BACKUPS"]["value"] == pod["spec"]["containers"][0]["volumeMounts"][0]["mountPath"]
    # Its own claim, not the database's volume.
    claim = pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
    claims = {c["metadata"]["name"]: c for c in by_kind(objects, "PersistentVolumeClaim")}
    storage = claims[claim]["spec"]["resources"]["requests"]["storage"]
    assert storage == settings["databaseBackup"]["storage"]
    # The database's NetworkPolicy admits the hub; the dump's pod must get through too.
    (policy,) = [p for p in by_kind(objects, "NetworkPolicy") if p["metadata"]["name"] == service]
    admitted = [peer["podSelector"]["matchLabels"] for peer in policy["spec"]["ingress"][0]["from"]]
    labels = pod["metadata"]["labels"]
    assert any(all(labels.get(k) == v for k, v in selector.items()) for selector in admitted)


def test_shared_data_claim_is_the_one_the_users_pods_mount(cluster_deployment):
    deployment = load(cluster_deployment)
    values = deployment.values
    objects = cluster_services.manifests(deployment)
    if not wants_shared_data(values):
        assert by_kind(objects, "PersistentVolume") == []
        return
    claim_name = shared_volume(values)["persistentVolumeClaim"]["claimName"]
    namespace = deployment.spec["namespace"]
    # The one claim bound to an NFS volume (the database's backups have their own, not shared).
    (claim,) = [c for c in by_kind(objects, "PersistentVolumeClaim") if "volumeName" in c["spec"]]
    (volume,) = by_kind(objects, "PersistentVolume")
    assert claim["metadata"] == {**claim["metadata"], "name": claim_name, "namespace": namespace}
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["volumeName"] == volume["metadata"]["name"]
    assert volume["spec"]["claimRef"] == {"namespace": namespace, "name": claim_name}
    assert volume["spec"]["accessModes"] == ["ReadWriteMany"]
    storage = values["custom"]["clusterServices"]["sharedData"]["storage"]
    assert volume["spec"]["capacity"]["storage"] == storage
    # The volume mounts the NFS server's Service, which the deploy creates too.
    service = cluster_services.nfs_service(deployment)
    assert service in {s["metadata"]["name"] for s in by_kind(objects, "Service")}
    assert service in volume["spec"]["nfs"]["server"]
    with_address = cluster_services.manifests(deployment, nfs_server="10.0.0.7")
    assert by_kind(with_address, "PersistentVolume")[0]["spec"]["nfs"]["server"] == "10.0.0.7"


def test_objects_are_made_only_where_the_values_need_them(cluster_deployment):
    deployment = load(cluster_deployment)
    values = deployment.values
    objects = cluster_services.manifests(deployment)
    assert bool(objects) == (has_database(deployment) or wants_shared_data(values))


def test_plan_prints_the_objects_it_applies(cluster_deployment, capsys):
    deployment = load(cluster_deployment)
    assert cluster.main(["plan", cluster_deployment]) == 0
    out = capsys.readouterr().out
    expected = cluster_services.manifests(deployment)
    if not expected:
        assert cluster.MANIFESTS_HEADER not in out
        assert "no database or shared-data server to create" in out
        return
    printed = list(yaml.safe_load_all(out.split(cluster.MANIFESTS_HEADER + "\n", 1)[1]))
    assert printed == expected
    namespace = deployment.spec["namespace"]
    # Each step is a line a reader can run: the objects come from `services`, not from stdin.
    services = shlex.join(cluster.services_command(cluster_deployment))
    assert f"{services} | {shlex.join(cluster.apply_command(namespace))}\n" in out
    # The plan never holds a password: the layer holding it is not read for a plan.
    for secret in by_kind(printed, "Secret"):
        assert secret["stringData"]["password"] == cluster_services.password_placeholder(deployment)


def test_services_are_what_up_applies_before_and_after_the_nfs_address(cluster_deployment):
    decrypted = load(
        cluster_deployment, extra_layers=[Layer("test", {"hub": {"db": {"password": "s3cret"}}})]
    )
    objects = cluster_services.manifests(decrypted, secrets=True, nfs_server="10.0.0.7")
    first = cluster.services_to_apply(decrypted)
    then = cluster.services_to_apply(decrypted, "10.0.0.7")
    assert first + then == sorted(objects, key=lambda o: o["kind"] == "PersistentVolume")
    assert [o["kind"] for o in then] == (
        ["PersistentVolume"] if by_kind(objects, "PersistentVolume") else []
    )
    assert all(o["spec"]["nfs"]["server"] == "10.0.0.7" for o in then)


def test_services_refuse_without_the_key_in_one_line(encrypted_deployment, monkeypatch, capsys):
    name = encrypted_deployment
    for variable in KEY_ENVIRONMENT:
        monkeypatch.delenv(variable, raising=False)
    assert cluster.main(["services", name]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "encrypted" in captured.err, captured.err


def test_up_refuses_without_the_decrypted_layer(encrypted_deployment, monkeypatch, capsys):
    name = encrypted_deployment
    ran = []
    real_run = subprocess.run

    def only_git(command, *args, **kwargs):
        # Reading hubploy's image tag from git changes nothing; anything else would.
        if command[0] == "git":
            return real_run(command, *args, **kwargs)
        ran.append(command)
        pytest.fail(str(command))

    monkeypatch.setattr(subprocess, "run", only_git)
    for variable in KEY_ENVIRONMENT:
        monkeypatch.delenv(variable, raising=False)
    assert cluster.main(["up", name]) == 1
    err = capsys.readouterr().err
    skipped = load(name).skipped
    assert err.count("\n") == 1 and err.startswith(f"error: {skipped[0]}:"), err
    assert ran == [], "nothing may run before the refusal"


def test_database_needs_the_password_the_encrypted_layer_holds(database_deployment):
    deployment = load(database_deployment)
    # Loaded without decrypting: printing works with a placeholder, applying refuses.
    assert cluster_services.manifests(deployment)
    with pytest.raises(ConfigError) as refused:
        cluster_services.manifests(deployment, secrets=True)
    message = str(refused.value)
    assert "\n" not in message
    assert "hub.db.password" in message
    for layer in deployment.skipped:
        assert layer in message
    # With the password (as the decrypted layer gives it) the Secret carries it.
    decrypted = load(
        database_deployment, extra_layers=[Layer("test", {"hub": {"db": {"password": "s3cret"}}})]
    )
    objects = cluster_services.manifests(decrypted, secrets=True)
    assert by_kind(objects, "Secret")[0]["stringData"]["password"] == "s3cret"


def test_a_database_host_in_another_namespace_is_refused(database_deployment):
    deployment = load(database_deployment)
    url = urlsplit(deployment.values["hub"]["db"]["url"])
    elsewhere = url._replace(netloc=url.netloc.replace(url.hostname, "db.somewhere-else.svc"))
    moved = load(
        database_deployment,
        extra_layers=[Layer("test-layer", {"hub": {"db": {"url": elsewhere.geturl()}}})],
    )
    with pytest.raises(ConfigError, match=r"^test-layer: hub.db.url: .*somewhere-else"):
        cluster_services.manifests(moved)


def test_course_images_are_the_registrys(cluster_deployment, capsys):
    courses = load(cluster_deployment).values["custom"]["courses"]
    assert cluster.main(["images", cluster_deployment]) == 0
    printed = capsys.readouterr().out.split()
    assert sorted(printed) == sorted({c["image"] for c in courses.values()})
    assert printed, "the registry has courses, so there are images to load"


# The dump Job's script, run here as the CronJob's pod runs it: pg_dump and date are
# stand-ins on PATH (no server to dump; a pinned clock), the claim a folder.
STANDIN_PG_DUMP = """#!/bin/sh
# Stand-in pg_dump for the test (not PostgreSQL's): writes a file where --file says,
# or fails as pg_dump does when the server is unreachable.
if [ -n "${PG_DUMP_FAILS:-}" ]; then
  echo 'pg_dump: error: connection to server failed: Connection refused (stand-in)' >&2
  exit 1
fi
for arg in "$@"; do
  case "$arg" in --file=*) echo "stand-in dump" > "${arg#--file=}" ;; esac
done
"""
STANDIN_DATE = """#!/bin/sh
# Stand-in date for the test: the pinned time, in the format the script asks for.
echo 20261116T031500Z
"""


def dump_job(tmp_path, *, fails: bool = False) -> tuple[subprocess.CompletedProcess, int]:
    """Run prod's dump script in `tmp_path/backups`; its result and the `keep` it uses."""
    deployment = load("prod")
    (cronjob,) = by_kind(cluster_services.manifests(deployment), "CronJob")
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    tools = tmp_path / "tools"
    tools.mkdir()
    for name, text in (("pg_dump", STANDIN_PG_DUMP), ("date", STANDIN_DATE)):
        (tools / name).write_text(text)
        (tools / name).chmod(0o755)
    env = {"PATH": f"{tools}:/usr/bin:/bin", "BACKUPS": str(tmp_path / "backups")}
    if fails:
        env["PG_DUMP_FAILS"] = "1"
    done = subprocess.run(container["command"], env=env, capture_output=True, text=True)
    return done, cluster_services.settings(deployment)["databaseBackup"]["keep"]


def old_dumps(folder, days: int) -> list[str]:
    """Dumps of the nights of October 2026, one a night, as earlier runs left them."""
    folder.mkdir()
    names = [f"hub-202610{day:02d}T031500Z.dump" for day in range(1, days + 1)]
    for name in names:
        (folder / name).write_text("an earlier dump")
    (folder / "README.txt").write_text("an operator's note, not a dump")
    return names


def test_the_dump_job_keeps_the_newest_dumps_and_nothing_else_is_touched(tmp_path):
    keep = cluster_services.settings(load("prod"))["databaseBackup"]["keep"]
    earlier = old_dumps(tmp_path / "backups", keep + 3)
    done, keep = dump_job(tmp_path)
    assert done.returncode == 0, done.stderr
    left = sorted(p.name for p in (tmp_path / "backups").iterdir())
    newest = "hub-20261116T031500Z.dump"
    assert left == sorted([*earlier[-(keep - 1) :], newest, "README.txt"])
    assert (tmp_path / "backups" / newest).read_text() == "stand-in dump\n"
    assert done.stdout.count("pruned ") == 4 and f"kept: {keep}" in done.stdout


def test_a_failed_dump_prunes_nothing_and_leaves_no_dump(tmp_path):
    keep = cluster_services.settings(load("prod"))["databaseBackup"]["keep"]
    earlier = old_dumps(tmp_path / "backups", keep + 3)
    done, _ = dump_job(tmp_path, fails=True)
    assert done.returncode != 0 and "Connection refused" in done.stderr
    left = sorted(p.name for p in (tmp_path / "backups").iterdir() if p.name.startswith("hub-"))
    assert left == earlier, "the good dumps stay while dumps fail"
