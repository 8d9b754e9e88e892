"""The modules against a real streaming hot standby: prune refuses, repack skips, health reports it."""
from __future__ import annotations

import os
import shutil

import psycopg
import pytest

from conftest import conn_params
from pgserver import PgServer

REPACK_BIN = shutil.which("pg_repack") or "/usr/lib/postgresql/15/bin/pg_repack"


def _event_rows(dsn):
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM event_logs").fetchone()[0]


@pytest.fixture
def standby(pg, dagster_db):
    """A hot standby of the session cluster, taken after the Dagster database (and pg_repack, where the server has
    it) exist."""
    with psycopg.connect(pg.dsn(dagster_db["db"]), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_repack'").fetchone():
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_repack")
    # A hot standby needs max_connections (and the other limits) at least as high as the primary's.
    server = PgServer(settings=dict(pg.settings, hot_standby="on")).start_standby_of(pg)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.newest_major
def test_standby_is_refused_by_prune_skipped_by_repack_and_reported_by_health(
        pg, dagster_db, standby, lock_file, ansible):
    db = dagster_db["db"]
    with psycopg.connect(standby.dsn(db)) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
    primary_rows = _event_rows(pg.dsn(db))
    assert _event_rows(standby.dsn(db)) == primary_rows

    args = conn_params(standby, db, lock_file=lock_file, event_retention_days=1,
                       log_retention_days={"debug": 1, "info": 1, "warning": 1})
    rc, res, out = ansible.run_task("pgtidy.maintenance.dagster_prune", args)
    assert rc != 0, out
    assert res["error_kind"] == "standby" and "standby" in res["msg"] and "primary" in res["msg"], res
    assert _event_rows(pg.dsn(db)) == primary_rows

    if os.path.exists(REPACK_BIN):
        rc, res, out = ansible.run_task("pgtidy.maintenance.repack",
                                        conn_params(standby, db, lock_file=lock_file, tables=["event_logs"]))
        assert rc == 0, out
        assert res["skipped"] is True and res["changed"] is False, res
        assert "standby" in res["skip_reason"] and res["repacked"] == [], res

    health_args = conn_params(standby, db)
    health_args.pop("lock_wait")  # health_info takes no lock: it only reads
    rc, res, out = ansible.run_task("pgtidy.maintenance.health_info", health_args)
    assert rc == 0, out
    assert res["available"] is True and res["database"]["in_recovery"] is True, res
    assert res["tables"], "a standby still reports table sizes"
