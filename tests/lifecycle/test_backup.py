"""The hub database saved and put back on the local hub, as staging and prod keep it (PostgreSQL).

What the database holds and no values file does: the users who logged in or were
added by hand, the groups staff made, the tokens people made. The test saves it
with `coursehub backup` while the hub runs (as the nightly CronJob does), loses
the database, restores it with `coursehub restore`, and starts the hub again.
"""

from __future__ import annotations

import pytest

from coursehub_tools import cli
from coursehub_tools.config.deployconfig import load
from coursehub_tools.local.local_hub import LocalHub, free_port

pytestmark = pytest.mark.hub


def hub_tables(postgres) -> set[str]:
    import psycopg2

    with psycopg2.connect(postgres.url, password=postgres.password) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row[0] for row in cursor.fetchall()}


def test_a_lost_hub_database_comes_back_with_every_user_group_and_token(
    postgres, hub_factory, tmp_path
):
    extra = {"hub": {"db": postgres.hub_db(load("staging").values)}}
    hub = hub_factory(extra_values=extra)
    # A TA added by hand, a study group staff made, a token a student made.
    assert hub.api("POST", "/users", json={"usernames": ["sam", "sky", "tara-ta"]}).ok
    group = hub.api("POST", "/groups/study-circle", json={"users": ["sam", "sky"]})
    assert group.status_code == 201, group.text
    assert hub.api("POST", "/users/sam/tokens", json={"note": "homework"}).status_code == 201
    before = hub.snapshot()
    assert before["groups"]["study-circle"] == ["sam", "sky"]

    dump = tmp_path / "hub.dump"
    db = ["--db-url", postgres.url, "--db-password", postgres.password]
    assert cli.main(["backup", "local", *db, "--to", str(dump)]) == 0
    hub.stop()
    # The disaster: the database is gone.
    postgres.superuser_sql("DROP DATABASE jupyterhub")
    postgres.superuser_sql("CREATE DATABASE jupyterhub OWNER jupyterhub")
    assert hub_tables(postgres) == set(), "the hub's tables are gone"

    assert cli.main(["restore", "local", *db, "--from", str(dump)]) == 0
    with (
        (tmp_path / "restored.log").open("w") as log,
        LocalHub(hub.state_dir, port=free_port(), log_file=log, extra_values=extra) as restored,
    ):
        assert restored.snapshot() == before


def test_restore_refuses_a_missing_file_in_one_line(tmp_path, capsys):
    missing = tmp_path / "nothing.dump"
    status = cli.main(["restore", "local", "--state-dir", str(tmp_path), "--from", str(missing)])
    assert status == 2
    assert capsys.readouterr().err == f"error: no backup at {missing}\n"


def test_a_cluster_database_is_saved_by_its_cronjob_not_from_here(capsys):
    prod = load("prod")
    assert cli.main(["backup", "prod", "--to", "hub.dump"]) == 2
    err = capsys.readouterr().err
    assert "CronJob" in err and prod.spec["namespace"] in err
