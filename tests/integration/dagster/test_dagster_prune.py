"""dagster_prune against real Dagster metadata databases made by the dagster package."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest

from conftest import COLLECTIONS_ROOT, conn_params
from dagster_checks import AGGRESSIVE, DAGSTER_RELEASES, noise_left, protected_fingerprint, q
# The release-aware dagster_db, and what it needs (pytest finds fixtures among a module's names).
from dagster_checks import (  # noqa: F401  pylint: disable=unused-import
    release_db_fixture, release_fixture, side_templates_fixture)

from ansible_collections.pgtidy.maintenance.plugins.module_utils._dagster.rules import (
    DagsterProfile)
from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.errors import (
    InvalidRequest, LockBusy, ConnectionFailed)
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.errors import SchemaMismatch
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.prune import run_prune

MODULE = "pgtidy.maintenance.dagster_prune"


@pytest.mark.newest_major
@pytest.mark.parametrize("dagster_release", DAGSTER_RELEASES)
def test_prune_keeps_everything_dagster_shows(pg, dagster_db, lock_file):
    """Noise pruning and tick retention: what Dagster's own API shows is the same before and after."""
    release = dagster_db["release"]
    before = release.read(dagster_db["home"], "snapshot")
    fingerprint = protected_fingerprint(pg, dagster_db["db"])
    rows_before = q(pg, dagster_db["db"], "SELECT count(*) FROM event_logs")[0][0]
    assert noise_left(pg, dagster_db["db"]) > 100

    result = run_prune(conn_params(pg, dagster_db["db"], lock_file=lock_file, **AGGRESSIVE), DagsterProfile())

    assert result["changed"] is True and not result["failed_handlers"]
    rows_after = q(pg, dagster_db["db"], "SELECT count(*) FROM event_logs")[0][0]
    assert result["rows_before"]["event_logs"] == rows_before and result["rows_after"]["event_logs"] == rows_after
    assert result["deleted_total"] == (rows_before - rows_after) + \
        (result["rows_before"]["job_ticks"] - result["rows_after"]["job_ticks"])
    assert noise_left(pg, dagster_db["db"]) == 0
    assert protected_fingerprint(pg, dagster_db["db"]) == fingerprint
    assert result["handlers"]["ticks_sensor_skipped"]["deleted"] > 0
    planned = result["handlers"]["events_asset_materialization_planned_superseded"]
    assert planned["deleted"] > 0
    after = release.read(dagster_db["home"], "snapshot")
    # Ticks past retention are gone by design, except each instigator's newest (as Dagster's own purge keeps it);
    # everything else Dagster shows is identical.
    kept_ticks = {name: [t for t in ticks if t[1] not in ("SKIPPED", "FAILURE") or name == "etl_job_schedule"]
                  for name, ticks in before["ticks"].items()}
    newest = {name: max(ticks) for name, ticks in before["ticks"].items()}    # tick ids grow with time here
    assert after["ticks"]["new_files_sensor"] == [t for t in before["ticks"]["new_files_sensor"]
                                                  if t[1] == "SUCCESS" or t == newest["new_files_sensor"]]
    assert newest["new_files_sensor"][1] == "FAILURE"     # past its 1-day retention, kept as the newest
    assert {name: max(ticks) for name, ticks in after["ticks"].items()} == newest
    assert {tuple(t) for t in after["ticks"]["etl_job_schedule"]} <= \
        {tuple(t) for t in before["ticks"]["etl_job_schedule"]}
    assert [t for t in after["ticks"]["etl_job_schedule"] if t[1] == "FAILURE"] == \
        [t for t in kept_ticks["etl_job_schedule"] if t[1] == "FAILURE"]
    before.pop("ticks")
    after.pop("ticks")
    for key in before:
        assert after[key] == before[key], key


@pytest.mark.xdist_group("dagster-1.9")
def test_the_oldest_and_newest_release_write_the_same_tables_and_indexes(pg, dagster_template,
                                                                         dagster_side_templates):
    """What pgtidy's SQL reads and walks (tables, columns, indexes) is the same on Dagster 1.9 and the newest:
    the migrations between them change MySQL column types only. The tests of pgtidy's own mechanics run on
    the newest; what each release writes into these tables is compared by the tests run on both."""
    shape = """SELECT 'column', table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
               FROM information_schema.columns WHERE table_schema = 'public'
               UNION ALL SELECT 'index', indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1, 2"""
    oldest = q(pg, dagster_side_templates(pg, "1.9")["db"], shape)
    newest = q(pg, dagster_template["db"], shape)
    assert oldest == newest
    assert len([row for row in newest if row[0] == "index"]) > 30


@pytest.mark.parametrize("dagster_release", DAGSTER_RELEASES)
def test_old_failed_run_reexecutes_from_failure_after_prune(pg, dagster_db, lock_file):
    failed_run = dagster_db["manifest"]["failed_runs"][0]
    run_prune(conn_params(pg, dagster_db["db"], lock_file=lock_file, **AGGRESSIVE), DagsterProfile())
    status, executed = dagster_db["release"].reexecute_from_failure(dagster_db["home"], failed_run)
    assert status == "FAILURE"
    # extract succeeded in the parent run, so only the failed part is executed again.
    assert executed == {"transform", "load"}


def test_unfinished_runs_and_recent_rows_are_never_touched(pg, dagster_db, lock_file):
    in_progress = dagster_db["manifest"]["in_progress"][0]
    q(pg, dagster_db["db"], "UPDATE event_logs SET timestamp = timestamp - interval '400 days'"
      " WHERE run_id = '%s'" % in_progress)
    recent = q(pg, dagster_db["db"], "SELECT count(*) FROM event_logs WHERE timestamp > now() at time zone 'utc'"
               " - interval '20 hours'")[0][0]
    running_rows = q(pg, dagster_db["db"], "SELECT count(*) FROM event_logs WHERE run_id = '%s'" % in_progress)[0][0]
    assert running_rows >= 5
    run_prune(conn_params(pg, dagster_db["db"], lock_file=lock_file, **AGGRESSIVE), DagsterProfile())
    assert q(pg, dagster_db["db"], "SELECT count(*) FROM event_logs WHERE run_id = '%s'" % in_progress)[0][0] \
        == running_rows
    assert q(pg, dagster_db["db"], "SELECT count(*) FROM event_logs WHERE timestamp > now() at time zone 'utc'"
             " - interval '20 hours'")[0][0] == recent


def test_default_retention_prunes_only_old_noise(pg, dagster_db, lock_file):
    fingerprint = protected_fingerprint(pg, dagster_db["db"])
    debug_recent = q(pg, dagster_db["db"], "SELECT count(*) FROM event_logs WHERE dagster_event_type IS NULL"
                     " AND (event::json->>'level')::int = 10 AND timestamp > now() at time zone 'utc' - interval '6 days'")
    result = run_prune(conn_params(pg, dagster_db["db"], lock_file=lock_file), DagsterProfile())
    assert result["deleted_total"] > 0
    assert protected_fingerprint(pg, dagster_db["db"]) == fingerprint
    # Defaults: DEBUG 7 days, INFO 30, WARNING 90, noise 30.
    assert q(pg, dagster_db["db"], "SELECT count(*) FROM event_logs WHERE dagster_event_type IS NULL"
             " AND (event::json->>'level')::int = 30 AND timestamp > now() at time zone 'utc' - interval '89 days'")[0][0] > 0
    assert q(pg, dagster_db["db"], "SELECT count(*) FROM event_logs WHERE dagster_event_type IS NULL"
             " AND (event::json->>'level')::int = 10 AND timestamp > now() at time zone 'utc' - interval '6 days'") \
        == debug_recent
    assert result["retention"]["log_retention_days"] == {"debug": 7, "info": 30, "warning": 90}


def test_schema_qualified_install(pg, dagster_db, lock_file):
    q(pg, dagster_db["db"], "ALTER SCHEMA public RENAME TO dagster; CREATE SCHEMA public")
    with pytest.raises(SchemaMismatch) as err:
        run_prune(conn_params(pg, dagster_db["db"], lock_file=lock_file, **AGGRESSIVE), DagsterProfile())
    assert "not a Dagster metadata schema" in err.value.message
    result = run_prune(conn_params(pg, dagster_db["db"], lock_file=lock_file, schema="dagster", **AGGRESSIVE),
                       DagsterProfile())
    assert result["deleted_total"] > 0 and result["schema"] == "dagster"


def test_refuses_a_database_that_is_not_dagster(pg, fresh_db, lock_file):
    q(pg, fresh_db, "CREATE TABLE event_logs (id bigserial primary key, payload text)")
    with pytest.raises(SchemaMismatch) as err:
        run_prune(conn_params(pg, fresh_db, lock_file=lock_file), DagsterProfile())
    assert "missing table(s)" in err.value.message
    assert q(pg, fresh_db, "SELECT count(*) FROM event_logs") == [(0,)]


@pytest.mark.parametrize("options, fragment", [
    ({"event_types": ["HANDLED_OUTPUT", "ASSET_MATERIALIZATION"]}, "protected Dagster event type(s) ASSET_MATERIALIZATION"),
    ({"event_types": ["STEP_OUTPUT"]}, "protected Dagster event type(s) STEP_OUTPUT"),
    ({"event_types": ["MADE_UP_EVENT"]}, "unknown Dagster event type(s) MADE_UP_EVENT"),
    ({"log_retention_days": {"error": 5}}, "ERROR and CRITICAL log lines are always kept"),
    ({"event_retention_days": 0}, "event_retention_days=0 is out of range"),
    ({"log_retention_days": {"debug": 1000000}}, "out of range"),
    ({"tick_retention_days": {"sensor": {"bogus": 3}}}, "unknown tick status"),
    ({"batch_size": 0}, "batch_size must be between"),
    ({"max_wal_bytes": "lots"}, "max_wal_bytes"),
])
def test_bad_requests_fail_before_anything_is_deleted(pg, dagster_db, lock_file, options, fragment):
    before = q(pg, dagster_db["db"], "SELECT count(*) FROM event_logs")
    with pytest.raises(InvalidRequest) as err:
        run_prune(conn_params(pg, dagster_db["db"], lock_file=lock_file, **options), DagsterProfile())
    assert fragment in err.value.message
    assert q(pg, dagster_db["db"], "SELECT count(*) FROM event_logs") == before


@pytest.mark.every_major
def test_budget_caps_the_run_and_the_next_run_continues(pg, dagster_db, lock_file):
    params = conn_params(pg, dagster_db["db"], lock_file=lock_file, batch_size=25, max_rows=120, **AGGRESSIVE)
    first = run_prune(params, DagsterProfile())
    assert first["deleted_total"] == 120 and first["capped"] is True and first["capped_by"] == "max_rows"
    assert first["remaining_total"] > 0
    assert max(h["deleted"] for h in first["handlers"].values()) <= 120
    total = first["deleted_total"]
    for dummy in range(100):
        run = run_prune(params, DagsterProfile())
        total += run["deleted_total"]
        if not run["capped"]:
            break
    assert run["capped"] is False and run["remaining_total"] == 0
    assert noise_left(pg, dagster_db["db"]) == 0


@pytest.mark.every_major
def test_rows_locked_by_the_application_are_skipped_not_waited_on(pg, dagster_db, lock_file):
    locked_ids = [r[0] for r in q(pg, dagster_db["db"], "SELECT e.id FROM event_logs e JOIN runs r USING (run_id)"
                                  " WHERE e.dagster_event_type = 'HANDLED_OUTPUT' AND r.status = 'SUCCESS'"
                                  " ORDER BY e.id LIMIT 3")]
    holder = psycopg.connect(pg.dsn(dagster_db["db"]))
    try:
        holder.execute("SELECT id FROM event_logs WHERE id = ANY(%s) FOR UPDATE", (locked_ids,))
        result = run_prune(conn_params(pg, dagster_db["db"], lock_file=lock_file, lock_timeout="30s",
                                       **AGGRESSIVE), DagsterProfile())
        assert result["handlers"]["events_handled_output"]["status"] == "ok"
        assert result["handlers"]["events_handled_output"]["deleted"] > 0
        holder.rollback()
    finally:
        holder.close()
    assert sorted(r[0] for r in q(pg, dagster_db["db"], "SELECT id FROM event_logs WHERE id = ANY(ARRAY%s)"
                                  % locked_ids)) == locked_ids
    again = run_prune(conn_params(pg, dagster_db["db"], lock_file=lock_file, **AGGRESSIVE), DagsterProfile())
    assert again["handlers"]["events_handled_output"]["deleted"] == 3


def test_lockfile_held_by_a_backup_waits_then_reports_busy(pg, dagster_db, lock_file):
    backup = subprocess.Popen(["flock", lock_file, "sleep", "30"], start_new_session=True)
    try:
        time.sleep(0.3)
        started = time.monotonic()
        with pytest.raises(LockBusy) as err:
            run_prune(conn_params(pg, dagster_db["db"], lock_file=lock_file, lock_wait=2), DagsterProfile())
        assert time.monotonic() - started >= 2
        assert "held by pid %d, command 'flock %s sleep 30'" % (backup.pid, lock_file) in err.value.message
        assert "Nothing was changed" in err.value.message
    finally:
        os.killpg(backup.pid, signal.SIGKILL)  # the lock lives as long as any process holding the fd
        backup.wait()
    result = run_prune(conn_params(pg, dagster_db["db"], lock_file=lock_file, lock_wait=2), DagsterProfile())
    assert result["deleted_total"] > 0


def test_lockfile_released_while_waiting_lets_the_run_proceed(pg, dagster_db, lock_file):
    backup = subprocess.Popen(["flock", lock_file, "sleep", "1"])
    time.sleep(0.2)
    result = run_prune(conn_params(pg, dagster_db["db"], lock_file=lock_file, lock_wait=20), DagsterProfile())
    backup.wait()
    assert result["lock_waited_s"] > 0.3 and result["deleted_total"] > 0


@pytest.mark.every_major
def test_second_host_on_the_same_database_is_refused(pg, dagster_db, tmp_path):
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.lock import (
        ADVISORY_CLASS_ID, ADVISORY_OBJECT_ID)
    other = psycopg.connect(pg.dsn(dagster_db["db"]), autocommit=True)
    try:
        other.execute("SELECT pg_advisory_lock(%s::int4, %s::int4)", (ADVISORY_CLASS_ID, ADVISORY_OBJECT_ID))
        before = q(pg, dagster_db["db"], "SELECT count(*) FROM event_logs")
        with pytest.raises(LockBusy) as err:
            run_prune(conn_params(pg, dagster_db["db"], lock_file=str(tmp_path / "own.lock")), DagsterProfile())
        assert "another pgtidy session" in err.value.message
        assert q(pg, dagster_db["db"], "SELECT count(*) FROM event_logs") == before
    finally:
        other.close()


def test_killed_mid_run_loses_nothing_protected_and_next_run_finishes(pg, dagster_db, lock_file, tmp_path):
    fingerprint = protected_fingerprint(pg, dagster_db["db"])
    script = tmp_path / "run.py"
    script.write_text(
        "import sys, json\n"
        "sys.path[:0] = %r\n"
        "from ansible_collections.pgtidy.maintenance.plugins.module_utils._dagster.rules import DagsterProfile\n"
        "from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.prune import run_prune\n"
        "run_prune(json.loads(sys.argv[1]), DagsterProfile())\n" % ([COLLECTIONS_ROOT],))
    import json
    params = conn_params(pg, dagster_db["db"], lock_file=lock_file, batch_size=5, batch_pause=0.2, **AGGRESSIVE)
    proc = subprocess.Popen([sys.executable, str(script), json.dumps(params)])
    deadline = time.monotonic() + 30
    start_noise = noise_left(pg, dagster_db["db"])
    while noise_left(pg, dagster_db["db"]) == start_noise and time.monotonic() < deadline \
            and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None, "the pruning process ended before it was killed (rc %s)" % proc.returncode
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    mid = noise_left(pg, dagster_db["db"])
    assert 0 < mid < start_noise
    assert protected_fingerprint(pg, dagster_db["db"]) == fingerprint
    result = run_prune(conn_params(pg, dagster_db["db"], lock_file=lock_file, **AGGRESSIVE), DagsterProfile())
    assert result["capped"] is False and not result["failed_handlers"]
    assert noise_left(pg, dagster_db["db"]) == 0
    assert protected_fingerprint(pg, dagster_db["db"]) == fingerprint


@pytest.mark.every_major
def test_connection_dropped_mid_run_reports_failure_and_keeps_data(pg, dagster_db, lock_file):
    fingerprint = protected_fingerprint(pg, dagster_db["db"])
    params = conn_params(pg, dagster_db["db"], lock_file=lock_file, batch_size=5, batch_pause=0.1, **AGGRESSIVE)

    def killer():
        time.sleep(1.0)
        q(pg, "postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
          " WHERE application_name = 'pgtidy' AND datname = '%s'" % dagster_db["db"])
    thread = threading.Thread(target=killer)
    thread.start()
    result = run_prune(params, DagsterProfile())
    thread.join()
    assert result["failed_handlers"]
    assert result["capped_by"] == "connection_lost" or result["failed_handlers"]
    assert protected_fingerprint(pg, dagster_db["db"]) == fingerprint
    again = run_prune(conn_params(pg, dagster_db["db"], lock_file=lock_file, **AGGRESSIVE), DagsterProfile())
    assert not again["failed_handlers"] and noise_left(pg, dagster_db["db"]) == 0


def test_unreachable_server_gives_a_clear_error(lock_file):
    from pgserver import free_port
    params = {"login_host": "127.0.0.1", "login_port": free_port(), "login_db": "dagster",
              "login_password": "s3cret-value", "lock_file": lock_file, "lock_wait": 1}
    with pytest.raises(ConnectionFailed) as err:
        run_prune(params, DagsterProfile())
    assert "cannot connect to PostgreSQL as postgres@127.0.0.1" in err.value.message
    assert "s3cret-value" not in err.value.message
