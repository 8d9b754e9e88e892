"""Pacing against a real streaming standby, a real pause file and real WAL.

The standby is a ``pg_basebackup`` hot standby of the session cluster (tests/pgserver.py), made once for
the module; databases created afterwards reach it through WAL. Its replay is paused with
``pg_wal_replay_pause()`` to make it fall behind. Assertions are on states, counts and reasons: what
stopped a run, whom it named, how much it deleted and wrote past the limit, never how long it took.
"""
from __future__ import annotations

import json
import os
import threading
import time
import uuid

import psycopg
import pytest

from conftest import conn_params
from pgserver import PgServer

from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.runner import Runner
from ansible_collections.pgtidy.maintenance.plugins.module_utils._dagster.rules import DagsterProfile
from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.errors import InvalidRequest
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.pacer import RATE_BURST_S
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.prune import run_prune

STANDBY = "pgtidy_pacing"
AGGRESSIVE = {
    "log_retention_days": {"debug": 1, "info": 1, "warning": 1},
    "event_retention_days": 1,
    "tick_retention_days": {"sensor": {"skipped": 1, "failure": 1}, "schedule": {"skipped": 1}},
}


@pytest.fixture(scope="module")
def standby(pg):
    """A streaming hot standby of the session cluster, known to the primary as ``pgtidy_pacing``
    (its cluster_name), reporting its position every second."""
    server = PgServer(settings=dict(pg.settings, hot_standby="on", cluster_name=STANDBY,
                                    wal_receiver_status_interval="1")).start_standby_of(pg)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def replay(standby, pg):
    """Pause and resume the standby's replay; it is resumed and caught up again after the test."""
    class Replay:
        def pause(self):
            standby.psql("SELECT pg_wal_replay_pause()")

        def resume(self):
            standby.psql("SELECT pg_wal_replay_resume()")

    control = Replay()
    caught_up(pg)
    yield control
    control.resume()
    caught_up(pg)


def caught_up(pg, timeout=60):
    """Wait until the primary sees the standby replayed everything written before the call."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        target = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = conn.execute("SELECT replay_lsn >= %s FROM pg_stat_replication WHERE application_name = %s",
                               (target, STANDBY)).fetchone()
            if row and row[0]:
                return
            time.sleep(0.2)
    raise AssertionError("the standby did not catch up within %d s" % timeout)


def add_old_debug_lines(pg, db, rows=10_000):
    """More of what a real prune deletes: old DEBUG lines of a finished run, copied from a real one, with ids
    below the table's first (ids grow with time, as the id walk expects) so the runs write WAL enough to matter."""
    pg.psql(f"""
        INSERT INTO event_logs (id, run_id, event, dagster_event_type, timestamp, step_key)
        SELECT m.first - g, r.run_id, l.event, NULL, m.oldest - make_interval(secs => g), l.step_key
        FROM generate_series(1, {rows}) AS g,
             (SELECT min(id) AS first, min(timestamp) AS oldest FROM event_logs) AS m,
             (SELECT run_id FROM runs WHERE status = 'SUCCESS' ORDER BY run_id LIMIT 1) AS r,
             (SELECT event, step_key FROM event_logs WHERE dagster_event_type IS NULL
                AND (event::json->>'level')::int = 10 ORDER BY id LIMIT 1) AS l""", db=db)
    pg.psql("ANALYZE event_logs", db=db)


def event_rows(pg, db):
    with psycopg.connect(pg.dsn(db)) as conn:
        return conn.execute("SELECT count(*) FROM event_logs").fetchone()[0]


@pytest.mark.every_major
def test_a_standby_whose_replay_is_paused_caps_the_run_and_is_named(pg, dagster_db, standby, replay, lock_file):
    db = dagster_db["db"]
    add_old_debug_lines(pg, db)
    limit = 128_000
    params = conn_params(pg, db, lock_file=lock_file, batch_size=100, max_replica_lag="128kB", max_lag_wait=2,
                         **AGGRESSIVE)
    plan = run_prune(params, DagsterProfile(), check_mode=True)
    assert plan["pacing"]["limits"]["max_replica_lag_bytes"] == limit and plan["pacing"]["replicas_watched"]
    assert [s["application_name"] for s in plan["pacing"]["standbys"]] == [STANDBY]

    caught_up(pg)               # the old lines just added are replayed: the run starts within the limit
    replay.pause()
    first = run_prune(params, DagsterProfile())
    pacing = first["pacing"]
    assert first["capped"] is True and first["capped_by"] == "replica_lag", json.dumps(pacing)
    assert pacing["stopped_by"] == "replica_lag" and pacing["pauses"]["replica_lag"] == 1
    assert "'%s' (127.0.0.1)" % STANDBY in pacing["stop_reason"], pacing["stop_reason"]
    assert pacing["max_replica_lag_standby"] == {"application_name": STANDBY, "client": "127.0.0.1"}
    assert pacing["max_replica_lag_bytes"] > limit
    assert 0 < first["deleted_total"] < plan["deleted_total"]
    # Every batch but the last started with the standby within the limit, and the standby replayed none of
    # them: what the run wrote is at most the limit plus one batch.
    assert pacing["batch_wal_bytes"] <= limit + pacing["largest_batch_wal_bytes"], pacing
    assert first["rows_before"]["event_logs"] - first["rows_after"]["event_logs"] <= first["deleted_total"]

    replay.resume()
    caught_up(pg)
    second = run_prune(params, DagsterProfile())
    assert second["capped"] is False and second["capped_by"] is None and second["remaining_total"] == 0
    assert second["pacing"]["stopped_by"] is None
    assert first["deleted_total"] + second["deleted_total"] == plan["deleted_total"]


@pytest.mark.every_major
def test_a_synchronous_standby_behind_caps_the_run_without_hanging_it(pg, dagster_db, standby, replay, lock_file):
    db = dagster_db["db"]
    add_old_debug_lines(pg, db)
    pg.psql("ALTER SYSTEM SET synchronous_standby_names = '%s'" % STANDBY)
    pg.psql("SELECT pg_reload_conf()")
    try:
        deadline = time.monotonic() + 30
        while pg.psql("SELECT sync_state FROM pg_stat_replication WHERE application_name = '%s'" % STANDBY) != "sync":
            assert time.monotonic() < deadline, "the standby never became synchronous"
            time.sleep(0.2)
        params = conn_params(pg, db, lock_file=lock_file, batch_size=100, max_replica_lag="128kB", max_lag_wait=1,
                             **AGGRESSIVE)
        caught_up(pg)           # the old lines just added are replayed: the run starts within the limit
        replay.pause()
        result = run_prune(params, DagsterProfile())
        pacing = result["pacing"]
        assert result["capped_by"] == "replica_lag" and result["deleted_total"] > 0
        assert "'%s'" % STANDBY in pacing["stop_reason"]
        (seen,) = pacing["standbys"]
        assert seen["sync_state"] == "sync" and seen["max_lag_bytes"] > 128_000
        assert pacing["batch_wal_bytes"] <= 128_000 + pacing["largest_batch_wal_bytes"]
    finally:
        pg.psql("ALTER SYSTEM RESET synchronous_standby_names")
        pg.psql("SELECT pg_reload_conf()")


@pytest.mark.every_major
def test_a_role_that_cannot_see_the_standbys(pg, dagster_db, standby, lock_file):
    """A set max_replica_lag it cannot enforce is refused before anything is deleted; the default warns and
    says the lag was not watched; with pg_monitor the same request runs."""
    db = dagster_db["db"]
    role = "pacing_app_" + uuid.uuid4().hex[:6]
    pg.psql("CREATE ROLE %s LOGIN" % role)
    pg.psql("GRANT SELECT, DELETE ON ALL TABLES IN SCHEMA public TO %s" % role, db=db)
    try:
        params = conn_params(pg, db, lock_file=lock_file, login_user=role, max_replica_lag="64MB", **AGGRESSIVE)
        rows = event_rows(pg, db)
        with pytest.raises(InvalidRequest) as err:
            run_prune(params, DagsterProfile())
        assert "pg_monitor" in err.value.message and STANDBY in err.value.message
        assert "max_replica_lag: 0" in err.value.message
        assert event_rows(pg, db) == rows

        params.pop("max_replica_lag")
        plan = run_prune(params, DagsterProfile(), check_mode=True)
        pacing = plan["pacing"]
        assert pacing["replicas_visible"] is False and pacing["replicas_watched"] is False
        assert pacing["max_replica_lag_bytes"] is None and pacing["standbys"] == []
        assert any("not watched" in w and "pg_monitor" in w for w in pacing["warnings"])

        pg.psql("GRANT pg_monitor TO %s" % role)
        plan = run_prune(dict(params, max_replica_lag="64MB"), DagsterProfile(), check_mode=True)
        assert plan["pacing"]["replicas_visible"] is True and plan["pacing"]["warnings"] == []
        assert [s["application_name"] for s in plan["pacing"]["standbys"]] == [STANDBY]
    finally:
        pg.psql("DROP OWNED BY %s" % role, db=db)
        pg.psql("DROP ROLE %s" % role)


@pytest.mark.every_major
def test_an_inactive_slot_holding_wal_is_reported_before_the_run(pg, dagster_db, lock_file):
    db = dagster_db["db"]
    slot = "pacing_idle_" + uuid.uuid4().hex[:6]
    pg.psql("SELECT pg_create_physical_replication_slot('%s', true)" % slot)
    try:
        pg.psql("CREATE TABLE filler AS SELECT g, repeat('x', 500) AS pad FROM generate_series(1, 2000) AS g", db=db)
        plan = run_prune(conn_params(pg, db, lock_file=lock_file, max_replica_lag="64kB", **AGGRESSIVE),
                         DagsterProfile(), check_mode=True)
        (found,) = [s for s in plan["pacing"]["inactive_slots"] if s["slot_name"] == slot]
        assert found["slot_type"] == "physical" and found["retained_bytes"] > 64_000
        assert any(("'%s'" % slot) in w and "not active" in w for w in plan["pacing"]["warnings"])
    finally:
        pg.psql("SELECT pg_drop_replication_slot('%s')" % slot)


def test_pause_file_created_during_a_run_pauses_it_and_removed_lets_it_finish(
        pg, dagster_db, lock_file, tmp_path, monkeypatch):
    db = dagster_db["db"]
    pause = str(tmp_path / "pgtidy.pause")
    params = conn_params(pg, db, lock_file=lock_file, batch_size=50, pause_file=pause, **AGGRESSIVE)
    plan = run_prune(params, DagsterProfile(), check_mode=True)
    assert plan["pacing"]["pause_file_present_at_start"] is False and plan["deleted_total"] > 150

    batches = []
    original = Runner.batch

    def batch_then_touch(self, state, limit, upper):
        out = original(self, state, limit, upper)
        batches.append(out[0])
        if len(batches) == 2:           # the operator touches the file while the run goes
            open(pause, "w").close()
        return out

    monkeypatch.setattr(Runner, "batch", batch_then_touch)
    paused, outcome = threading.Event(), {}

    def log(msg):
        if msg.startswith("pausing: pause_file"):
            paused.set()

    def run():
        try:
            outcome["result"] = run_prune(params, DagsterProfile(), log=log)
        except BaseException as exc:    # surfaced by the assertions below
            outcome["error"] = exc
            paused.set()

    worker = threading.Thread(target=run)
    worker.start()
    try:
        assert paused.wait(60), "the run never paused"
        assert "error" not in outcome, outcome
        rows = event_rows(pg, db)
        time.sleep(1.5)                 # several polls of the file, and no batch in between
        assert event_rows(pg, db) == rows and len(batches) == 2
    finally:
        if os.path.lexists(pause):
            os.unlink(pause)
        worker.join(120)
    result = outcome["result"]
    assert result["capped"] is False and result["deleted_total"] == plan["deleted_total"]
    assert result["pacing"]["pauses"]["pause_file"] == 1 and result["pacing"]["paused_s"]["pause_file"] > 0
    assert len(batches) > 2


def test_pause_file_there_from_the_start_holds_the_run_until_max_duration(pg, dagster_db, lock_file, tmp_path):
    db = dagster_db["db"]
    pause = str(tmp_path / "pgtidy.pause")
    os.symlink(str(tmp_path / "nowhere"), pause)     # a link counts; it is never followed
    params = conn_params(pg, db, lock_file=lock_file, pause_file=pause, max_duration=1, **AGGRESSIVE)
    plan = run_prune(params, DagsterProfile(), check_mode=True)
    assert plan["pacing"]["pause_file_present_at_start"] is True and plan["deleted_total"] > 0
    assert plan["pacing"]["paused_s_total"] == 0

    rows = event_rows(pg, db)
    result = run_prune(params, DagsterProfile())
    assert result["capped"] is True and result["capped_by"] == "pause_file" and result["deleted_total"] == 0
    assert result["pacing"]["stopped_by"] == "pause_file" and "max_duration" in result["pacing"]["stop_reason"]
    assert event_rows(pg, db) == rows


def test_max_wal_rate_spaces_the_batches(pg, dagster_db, lock_file):
    db = dagster_db["db"]
    add_old_debug_lines(pg, db, 4000)
    rate = 64_000  # the lowest rate the module accepts; 3,000 deletes write well over twice that
    params = conn_params(pg, db, lock_file=lock_file, batch_size=100, max_rows=3000, max_wal_rate="64kB",
                         max_replica_lag="0", **AGGRESSIVE)
    result = run_prune(params, DagsterProfile())
    pacing = result["pacing"]
    assert pacing["batch_wal_bytes"] > 2 * rate, "too little WAL for the rate to matter: %r" % pacing
    assert result["deleted_total"] == 3000 and result["capped_by"] == "max_rows"
    assert pacing["limits"]["max_wal_rate"] == rate and pacing["largest_batch_wal_bytes"] > 0
    assert pacing["pauses"]["wal_rate"] >= 1 and pacing["paused_s"]["wal_rate"] > 0
    # The pacing's guarantee: the batches wrote no more than the rate over their span and one second of
    # credit, plus the last batch.
    assert pacing["batch_wal_bytes"] <= rate * (pacing["batches_span_s"] + RATE_BURST_S) + \
        pacing["largest_batch_wal_bytes"]


def test_the_module_takes_the_options_and_reports_the_limits_nonsense_is_refused(
        pg, dagster_db, lock_file, tmp_path, ansible):
    db = dagster_db["db"]
    metrics = str(tmp_path / "pgtidy.prom")
    args = conn_params(pg, db, lock_file=lock_file, max_replica_lag="64MB, 30s", max_lag_wait=60,
                       ignore_replicas=["reporting"], max_wal_rate="8MB", pause_file=str(tmp_path / "pause"),
                       metrics_file=metrics, **AGGRESSIVE)
    rc, res, out = ansible.run_task("pgtidy.maintenance.dagster_prune", args, check=True)
    assert rc == 0, out
    assert res["pacing"]["limits"] == {
        "max_replica_lag_bytes": 64_000_000, "max_replica_lag_s": 30.0, "max_replica_lag_set": True,
        "max_lag_wait": 60, "ignore_replicas": ["reporting"], "max_wal_rate": 8_000_000,
        "pause_file": str(tmp_path / "pause")}, json.dumps(res["pacing"])
    with open(metrics) as fh:
        text = fh.read()
    assert 'pgtidy_wal_rate_limit_bytes_per_second{database="%s",job="dagster_prune"} 8000000' % db in text
    assert 'pgtidy_paused_seconds{database="%s",job="dagster_prune",reason="replica_lag"} 0' % db in text

    rows = event_rows(pg, db)
    with pytest.raises(InvalidRequest) as err:
        run_prune(dict(args, max_replica_lag="5 parsecs", max_wal_rate="1kB"), DagsterProfile())
    assert "max_replica_lag must be" in err.value.message and "max_wal_rate" in err.value.message
    assert event_rows(pg, db) == rows
