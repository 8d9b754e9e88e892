"""wal_compression: the prune session compresses its WAL page images when it may, and says what it used.

A private cluster with the server's defaults for WAL (full_page_writes on, wal_compression off) and
autovacuum off, so the WAL a run writes is its own; the session cluster of the other tests runs
with full_page_writes off and would show no page images at all.
"""
from __future__ import annotations

import os
import sys
import uuid

import psycopg
import pytest

from conftest import ROOT, conn_params
from pgserver import PgServer

sys.path.insert(0, os.path.join(ROOT, "bench"))

import _prune_data  # noqa: E402

from ansible_collections.pgtidy.maintenance.plugins.module_utils._dagster.rules import DagsterProfile  # noqa: E402
from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.errors import InvalidRequest  # noqa: E402
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.prune import run_prune  # noqa: E402

ROWS = 30_000


@pytest.fixture(scope="module")
def fpw_server():
    server = PgServer(settings={"fsync": "off", "autovacuum": "off"}).start()
    try:
        _prune_data.migrate(server, "source")
        with psycopg.connect(server.dsn("source"), autocommit=True) as conn:
            _prune_data.fill(conn, ROWS, log=lambda msg: None)
        yield server
    finally:
        server.stop()


def copy_of_source(server):
    name = "c_" + uuid.uuid4().hex[:10]
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
        conn.execute('CREATE DATABASE "%s" TEMPLATE source' % name)
        conn.execute("CHECKPOINT")          # the next change of every page writes its image, as on a live server
    return name


def event_rows(server, db):
    with psycopg.connect(server.dsn(db)) as conn:
        return conn.execute("SELECT count(*) FROM event_logs").fetchone()[0]


def test_compressed_run_deletes_the_same_rows_with_far_less_wal(fpw_server, tmp_path, same_cutoffs):
    results = {}
    for mode in ("server", "auto"):
        db = copy_of_source(fpw_server)
        results[mode] = run_prune(conn_params(fpw_server, db, wal_compression=mode,
                                              lock_file=str(tmp_path / "pgtidy.lock")), DagsterProfile())
    plain, packed = results["server"], results["auto"]
    assert plain["wal_compression"] == {"requested": "server", "server": "off", "used": "off", "note": ""}
    assert packed["wal_compression"]["used"] == "lz4", packed["wal_compression"]
    assert packed["wal_compression"]["server"] == "off"
    # the same rows went, handler by handler
    assert plain["deleted_total"] > ROWS // 3
    assert {n: h["deleted"] for n, h in packed["handlers"].items()} == \
        {n: h["deleted"] for n, h in plain["handlers"].items()}
    assert packed["rows_after"] == plain["rows_after"]
    # page images dominate a delete pass; lz4 takes most of them away
    assert packed["wal_bytes"] < 0.5 * plain["wal_bytes"], (packed["wal_bytes"], plain["wal_bytes"])


@pytest.fixture
def plain_role(fpw_server):
    """A login role that may prune a copy of the Dagster database but is no superuser.

    UPDATE is needed by the row locks (FOR UPDATE SKIP LOCKED) that keep the deletes off rows the
    application holds; pgtidy updates nothing.
    """
    db = copy_of_source(fpw_server)
    role = "tidy_" + uuid.uuid4().hex[:8]
    with psycopg.connect(fpw_server.dsn(db), autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN").format(psycopg.sql.Identifier(role)))
        conn.execute(psycopg.sql.SQL("GRANT SELECT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(
            psycopg.sql.Identifier(role)))
    return db, role


def test_role_that_may_not_set_it_keeps_the_server_setting_and_says_why(fpw_server, plain_role, tmp_path):
    db, role = plain_role
    before = event_rows(fpw_server, db)
    params = conn_params(fpw_server, db, login_user=role, lock_file=str(tmp_path / "pgtidy.lock"))

    # An explicit method that cannot be set stops the run before anything is deleted.
    with pytest.raises(InvalidRequest) as err:
        run_prune(dict(params, wal_compression="lz4"), DagsterProfile())
    assert "permission denied" in str(err.value) and "GRANT SET ON PARAMETER" in str(err.value)
    assert event_rows(fpw_server, db) == before

    # auto prunes with the server's setting and reports why.
    result = run_prune(params, DagsterProfile())
    assert result["wal_compression"]["used"] == "off"
    assert "permission denied" in result["wal_compression"]["note"]
    assert result["deleted_total"] > 0, (result["failed_handlers"], [h["error"] for h in result["handlers"].values()])
    assert event_rows(fpw_server, db) == before - result["deleted_total"]


def test_granted_role_compresses(fpw_server, plain_role, tmp_path, same_cutoffs):
    db, role = plain_role
    with psycopg.connect(fpw_server.dsn(db), autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("GRANT SET ON PARAMETER wal_compression TO {}").format(
            psycopg.sql.Identifier(role)))
    params = conn_params(fpw_server, db, login_user=role, lock_file=str(tmp_path / "pgtidy.lock"))
    check = run_prune(params, DagsterProfile(), check_mode=True)
    assert check["wal_compression"]["used"] == "lz4"
    result = run_prune(dict(params, wal_compression="zstd"), DagsterProfile())
    assert result["wal_compression"]["used"] == "zstd"
    assert result["deleted_total"] == check["deleted_total"] > 0


def test_a_server_that_compresses_already_is_left_alone(fpw_server, tmp_path):
    db = copy_of_source(fpw_server)
    with psycopg.connect(fpw_server.dsn(db), autocommit=True) as conn:
        conn.execute('ALTER DATABASE "%s" SET wal_compression = pglz' % db)
    result = run_prune(conn_params(fpw_server, db, lock_file=str(tmp_path / "pgtidy.lock")), DagsterProfile(),
                       check_mode=True)
    assert result["wal_compression"]["used"] == "pglz"
    assert result["wal_compression"]["note"] == "the server already compresses WAL"
