"""The pg_repack driver against a real PostgreSQL with the real pg_repack client and extension.

Every skip and failure case is produced for real: the extension dropped, a table without key, a
lock held by another session, a client of another version, a pg_repack killed half-way.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import threading
import time

import psycopg
import pytest

from conftest import conn_params
from ansible_collections.pgtidy.maintenance.plugins.module_utils._repack import catalog, client, options, report
from ansible_collections.pgtidy.maintenance.plugins.module_utils._repack import repack as _repack
from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.errors import InvalidRequest, LockBusy
from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.lock import LockFile

REPACK_BIN = shutil.which("pg_repack") or "/usr/lib/postgresql/15/bin/pg_repack"

pytestmark = pytest.mark.skipif(not os.path.exists(REPACK_BIN), reason="pg_repack client not installed")


def repack_params(pg, db, lock_file, **extra):
    base = {"lock_file": lock_file, "min_table_size": "0", "min_reclaimable_fraction": 0.2, "wait_timeout": 2,
            "repack_command": REPACK_BIN}
    base.update(extra)
    return conn_params(pg, db, **base)


def sql(pg, db, statement):
    with psycopg.connect(pg.dsn(db), autocommit=True) as conn:
        cur = conn.execute(statement)
        return cur.fetchall() if cur.description else None


def make_bloated(pg, db, table="jobs", rows=20000, keep_every=4, key=True):
    """A table with a wide payload where 3 rows in 4 were deleted and vacuumed: the heap keeps its size."""
    pk = "PRIMARY KEY" if key else ""
    sql(pg, db, "CREATE TABLE IF NOT EXISTS %s (id bigserial %s, payload text NOT NULL, n int)" % (table, pk))
    sql(pg, db, "INSERT INTO %s (payload, n) SELECT repeat(md5(g::text), 8), g FROM generate_series(1, %d) g"
        % (table, rows))
    sql(pg, db, "DELETE FROM %s WHERE n %% %d <> 0" % (table, keep_every))
    sql(pg, db, "VACUUM ANALYZE %s" % table)


def checksum(pg, db, table, where="true"):
    return sql(pg, db, "SELECT count(*), md5(COALESCE(string_agg(t::text, '|' ORDER BY id), ''))"
                       " FROM %s t WHERE %s" % (table, where))[0]


def relfilenode(pg, db, table):
    return sql(pg, db, "SELECT relfilenode FROM pg_class WHERE oid = '%s'::regclass" % table)[0][0]


def total_size(pg, db, table):
    return sql(pg, db, "SELECT pg_total_relation_size('%s')" % table)[0][0]


@pytest.fixture
def repack_db(pg, fresh_db):
    sql(pg, fresh_db, "CREATE EXTENSION pg_repack")
    return fresh_db


def script(path, body):
    with open(path, "w") as fh:
        fh.write("#!/bin/sh\n" + body)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


# -- a real Dagster instance whose event_logs is bloated ------------------------------------------

@pytest.fixture(scope="module")
def dagster_db(pg, tmp_path_factory):
    dg = pytest.importorskip("dagster")
    from dagster import DagsterInstance

    db = "repack_dagster"
    pg.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % db)
    pg.create_db(db)
    sql(pg, db, "CREATE EXTENSION pg_repack")
    home = tmp_path_factory.mktemp("dagster_home")
    with open(home / "dagster.yaml", "w") as fh:
        fh.write("storage:\n  postgres:\n    postgres_db:\n      username: postgres\n      password: ''\n"
                 "      hostname: 127.0.0.1\n      db_name: %s\n      port: %d\n"
                 "      scheme: postgresql+psycopg2\n" % (db, pg.port))

    @dg.op
    def extract(context):
        for i in range(5):
            context.log.info("extracted batch %d" % i)
        return 5

    @dg.op
    def load(context, n):
        context.log.debug("loading %d" % n)
        return n

    @dg.job
    def etl():
        load(extract())

    instance = DagsterInstance.from_config(str(home))
    for dummy in range(3):
        assert etl.execute_in_process(instance=instance).success
    # Multiply the real event rows into a large history, then prune most of it as a retention job would.
    sql(pg, db, "INSERT INTO event_logs (run_id, event, dagster_event_type, timestamp, step_key, asset_key,"
                " partition) SELECT 'history-' || (g %% 40), e.event, e.dagster_event_type, e.timestamp, e.step_key,"
                " e.asset_key, e.partition FROM event_logs e, generate_series(1, %d) g" % 600)
    sql(pg, db, "DELETE FROM event_logs WHERE run_id LIKE 'history-%' AND id % 10 < 7")
    sql(pg, db, "VACUUM ANALYZE event_logs")
    yield db, instance
    instance.dispose()
    pg.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % db)


def dagster_view(instance):
    runs = instance.get_runs()
    return {r.run_id: (r.status.value, len(instance.all_logs(r.run_id)),
                       instance.get_run_stats(r.run_id).steps_succeeded) for r in runs}


class Writer(threading.Thread):
    """Keeps inserting into the table during the repack; records what it committed and its longest wait."""

    def __init__(self, dsn, statement):
        super().__init__(daemon=True)
        self.dsn, self.statement = dsn, statement
        self.stop = threading.Event()
        self.ids, self.longest_s, self.errors = [], 0.0, []

    def run(self):
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                t0 = time.monotonic()
                try:
                    self.ids.append(conn.execute(self.statement).fetchone()[0])
                except psycopg.Error as exc:
                    self.errors.append(str(exc))
                self.longest_s = max(self.longest_s, time.monotonic() - t0)
                time.sleep(0.005)


def test_dagster_event_logs_repacked_with_a_concurrent_writer(pg, dagster_db, lock_file):
    db, instance = dagster_db
    before_view = dagster_view(instance)
    before_sum = checksum(pg, db, "event_logs")
    before_size = total_size(pg, db, "event_logs")
    before_node = relfilenode(pg, db, "event_logs")
    params = repack_params(pg, db, lock_file, auto=True, profile="dagster", min_reclaimable_fraction=0.3)

    plan = _repack.run_repack(params, check_mode=True)
    assert plan["changed"] and plan["repacked"] == ["public.event_logs"]
    assert plan["estimate_method"] == "statistics"
    assert plan["tables"]["public.event_logs"]["estimated_reclaimable_fraction"] >= 0.5
    assert relfilenode(pg, db, "event_logs") == before_node, "check mode rewrote the table"

    writer = Writer(pg.dsn(db), "INSERT INTO event_logs (run_id, event, dagster_event_type, timestamp)"
                                " SELECT 'writer', event, dagster_event_type, now() FROM event_logs"
                                " WHERE run_id NOT LIKE 'history-%' LIMIT 1 RETURNING id")
    writer.start()
    try:
        result = _repack.run_repack(params)
    finally:
        writer.stop.set()
        writer.join()
    table = result["tables"]["public.event_logs"]
    assert result["changed"] and table["status"] == "repacked", table
    assert relfilenode(pg, db, "event_logs") != before_node
    # Bytes really given back: the size the module reports matches the catalog, and it shrank a lot.
    assert table["size_before"] == before_size
    assert table["reclaimed_bytes"] == before_size - table["size_after"]
    assert table["reclaimed_bytes"] > before_size * 0.4
    assert total_size(pg, db, "event_logs") <= table["size_after"] + 64 * 1024
    # Rows identical, the writer's rows all there, and Dagster's own API reads what it read before.
    assert checksum(pg, db, "event_logs", "run_id <> 'writer'") == before_sum
    assert writer.ids and not writer.errors
    kept = sql(pg, db, "SELECT count(*) FROM event_logs WHERE id = ANY(ARRAY%s::bigint[])" % writer.ids)[0][0]
    assert kept == len(writer.ids)
    assert dagster_view(instance) == before_view
    print("writer: %d inserts during the repack, longest %.3fs" % (len(writer.ids), writer.longest_s))

    again = _repack.run_repack(params)
    assert not again["changed"] and again["repacked"] == [] and again["candidates_below_threshold"] >= 1


def test_prefect_profile_picks_largest_gain_first_within_max_tables(pg, repack_db, lock_file):
    sql(pg, repack_db, "CREATE EXTENSION IF NOT EXISTS pgcrypto")
    for table, rows in (("log", 24000), ("events", 12000)):
        sql(pg, repack_db, "CREATE TABLE %s (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), created timestamptz"
                           " DEFAULT now(), flow_run_id uuid, level int, message text NOT NULL)" % table)
        sql(pg, repack_db, "INSERT INTO %s (flow_run_id, level, message) SELECT gen_random_uuid(), 20,"
                           " repeat('line ' || g, 20) FROM generate_series(1, %d) g" % (table, rows))
        sql(pg, repack_db, "DELETE FROM %s WHERE level = 20 AND random() < 0.75" % table)
        sql(pg, repack_db, "VACUUM ANALYZE %s" % table)
    sql(pg, repack_db, "CREATE TABLE flow_run (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text)")
    sql(pg, repack_db, "INSERT INTO flow_run (name) SELECT 'run' FROM generate_series(1, 50)")
    make_bloated(pg, repack_db, "unrelated", rows=8000)
    sql(pg, repack_db, "ANALYZE")
    log_sum = checksum(pg, repack_db, "log")
    params = repack_params(pg, repack_db, lock_file, auto=True, profile="prefect", max_tables=1)

    plan = _repack.run_repack(params, check_mode=True)
    result = _repack.run_repack(params)
    for outcome in (plan, result):
        assert outcome["repacked"] == ["public.log"], outcome["tables"]
        assert outcome["deferred_tables"] == ["public.events"]
        assert outcome["capped"] and outcome["capped_by"] == "max_tables"
        assert "public.unrelated" not in outcome["tables"] and "public.flow_run" not in outcome["tables"]
    assert result["reclaimed_bytes"] > 0 and checksum(pg, repack_db, "log") == log_sum

    metrics = report.repack_metrics(result, repack_db).render()
    assert 'pgtidy_repack_table_status{database="%s",job="repack",reason="max_tables",status="deferred",' \
           'table="public.events"} 1' % repack_db in metrics
    assert 'pgtidy_repack_reclaimed_bytes{database="%s",job="repack"} %d' % (repack_db, result["reclaimed_bytes"]) \
        in metrics

    rest = _repack.run_repack(params)
    assert rest["repacked"] == ["public.events"] and not rest["capped"]


def test_pgstattuple_estimate_is_used_when_installed(pg, repack_db, lock_file):
    make_bloated(pg, repack_db)
    sql(pg, repack_db, "CREATE EXTENSION pgstattuple")
    plan = _repack.run_repack(repack_params(pg, repack_db, lock_file, tables=["jobs"]), check_mode=True)
    assert plan["estimate_method"] == "pgstattuple"
    entry = plan["tables"]["public.jobs"]
    assert entry["status"] == "repacked" and 0.6 < entry["estimated_reclaimable_fraction"] <= 1.0


def test_extension_missing_skips_the_whole_run(pg, fresh_db, lock_file):
    make_bloated(pg, fresh_db, rows=2000)
    for check in (True, False):
        result = _repack.run_repack(repack_params(pg, fresh_db, lock_file, tables=["jobs"]), check_mode=check)
        assert result["skipped"] and not result["changed"]
        assert "pg_repack extension is not installed" in result["skip_reason"]


def test_extension_dropped_after_install_is_a_clean_skip(pg, repack_db, lock_file):
    make_bloated(pg, repack_db, rows=2000)
    sql(pg, repack_db, "DROP EXTENSION pg_repack")
    node = relfilenode(pg, repack_db, "jobs")
    result = _repack.run_repack(repack_params(pg, repack_db, lock_file, auto=True))
    assert result["skipped"] and result["tables"] == {} and relfilenode(pg, repack_db, "jobs") == node


def test_table_without_key_is_skipped_and_pg_repack_agrees(pg, repack_db, lock_file):
    make_bloated(pg, repack_db, "nokey", rows=4000, key=False)
    make_bloated(pg, repack_db, "jobs", rows=4000)
    node = relfilenode(pg, repack_db, "nokey")
    result = _repack.run_repack(repack_params(pg, repack_db, lock_file, tables=["nokey", "jobs"]))
    assert result["tables"]["public.nokey"]["status"] == "skipped"
    assert result["tables"]["public.nokey"]["reason"] == "no_key"
    assert "primary key" in result["tables"]["public.nokey"]["fix"]
    assert result["repacked"] == ["public.jobs"] and relfilenode(pg, repack_db, "nokey") == node
    # What pg_repack itself says about that table (exit 0!) is read the same way.
    argv, env = client.repack_invocation(repack_params(pg, repack_db, lock_file), options.validate_options(
        repack_params(pg, repack_db, lock_file, tables=["nokey"])), repack_db)
    rc, output, dummy = client.run_pg_repack(argv + ["--table", "public.nokey"], env, 60)
    assert rc == 0
    assert client.classify_output(rc, output, rewritten=False)[:2] == ("skipped", "no_key")


def test_lock_held_by_another_session_skips_the_table(pg, repack_db, lock_file):
    make_bloated(pg, repack_db, rows=4000)
    before = checksum(pg, repack_db, "jobs")
    node = relfilenode(pg, repack_db, "jobs")
    with psycopg.connect(pg.dsn(repack_db)) as holder:
        holder.execute("SELECT count(*) FROM jobs")  # holds ACCESS SHARE until rollback
        result = _repack.run_repack(repack_params(pg, repack_db, lock_file, tables=["jobs"], wait_timeout=1))
        holder.rollback()
    entry = result["tables"]["public.jobs"]
    assert (entry["status"], entry["reason"]) == ("skipped", "lock_timeout"), entry
    assert "Skipping repack" in entry["output"] and entry["returncode"] == 0
    assert not result["changed"] and result["leftovers"] == []
    assert relfilenode(pg, repack_db, "jobs") == node and checksum(pg, repack_db, "jobs") == before


def test_version_mismatch_names_both_versions(pg, repack_db, lock_file, tmp_path):
    make_bloated(pg, repack_db, rows=2000)
    wrapper = script(tmp_path / "pg_repack_next",
                     'if [ "$1" = "--version" ]; then echo "pg_repack 1.5.2"; exit 0; fi\nexec %s "$@"\n'
                     % REPACK_BIN)
    with pytest.raises(client.VersionMismatch) as err:
        _repack.run_repack(repack_params(pg, repack_db, lock_file, tables=["jobs"], repack_command=wrapper))
    assert "1.5.2" in err.value.message and "1.4.8" in err.value.message
    assert err.value.details["repack_version"] == {"client": "1.5.2", "extension": "1.4.8"}


def test_missing_client_is_a_clear_error(pg, repack_db, lock_file):
    make_bloated(pg, repack_db, rows=1000)
    with pytest.raises(client.RepackUnavailable) as err:
        _repack.run_repack(repack_params(pg, repack_db, lock_file, tables=["jobs"],
                                         repack_command="/nonexistent/pg_repack"))
    assert "not found" in err.value.message


def test_password_goes_through_the_environment_only(pg, repack_db, lock_file, tmp_path):
    make_bloated(pg, repack_db, rows=3000)
    seen = tmp_path / "seen.txt"
    wrapper = script(tmp_path / "pg_repack_spy",
                     'echo "argv: $*" >> %s\necho "PGPASSWORD=${PGPASSWORD:+set}" >> %s\nexec %s "$@"\n'
                     % (seen, seen, REPACK_BIN))
    secret = "s3cret-Pw-8841"
    result = _repack.run_repack(repack_params(pg, repack_db, lock_file, tables=["jobs"], repack_command=wrapper,
                                              login_password=secret))
    assert result["repacked"] == ["public.jobs"]
    text = seen.read_text()
    assert "PGPASSWORD=set" in text and "--table" in text
    assert secret not in text and secret not in json.dumps(result, default=str)


def test_invalid_index_and_small_disk_are_skipped(pg, repack_db, lock_file):
    make_bloated(pg, repack_db, "jobs", rows=4000)
    make_bloated(pg, repack_db, "other", rows=4000)
    sql(pg, repack_db, "INSERT INTO jobs (payload, n) VALUES ('dup', -1), ('dup', -1)")
    with pytest.raises(psycopg.Error):
        sql(pg, repack_db, "CREATE UNIQUE INDEX CONCURRENTLY jobs_n_unique ON jobs (n)")  # leaves it invalid
    result = _repack.run_repack(repack_params(pg, repack_db, lock_file, tables=["jobs", "other"],
                                              free_space_check="64kB"))
    jobs, other = result["tables"]["public.jobs"], result["tables"]["public.other"]
    assert (jobs["status"], jobs["reason"]) == ("skipped", "invalid_index") and "jobs_n_unique" in jobs["error"]
    assert (other["status"], other["reason"]) == ("skipped", "insufficient_disk")
    assert other["free_space"]["free_bytes"] == 64000 and not result["changed"]


def _wait_for(predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_killed_pg_repack_leaves_leftovers_that_are_reported_then_cleaned(pg, repack_db, lock_file):
    make_bloated(pg, repack_db, rows=6000)
    before = checksum(pg, repack_db, "jobs")
    params = repack_params(pg, repack_db, lock_file, tables=["jobs"])
    argv, env = client.repack_invocation(params, options.validate_options(params), repack_db)
    with psycopg.connect(pg.dsn(repack_db)) as old_tx:
        old_tx.execute("SELECT txid_current()")  # pg_repack waits for it after copying: a safe place to kill
        proc = subprocess.Popen(argv + ["--table", "public.jobs"], env=env, stderr=subprocess.PIPE)
        assert _wait_for(lambda: sql(pg, repack_db, "SELECT count(*) FROM pg_class WHERE relname ~ '^log_[0-9]+$'"
                                                    " AND relnamespace = 'repack'::regnamespace")[0][0] == 1)
        time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        old_tx.rollback()
    assert _wait_for(lambda: not sql(pg, repack_db, "SELECT 1 FROM pg_stat_activity"
                                                    " WHERE application_name = 'pg_repack'"))

    check = _repack.run_repack(params, check_mode=True)
    real = _repack.run_repack(params)
    for outcome in (check, real):
        entry = outcome["tables"]["public.jobs"]
        assert (entry["status"], entry["reason"]) == ("skipped", "leftovers")
        kinds = {item["kind"] for item in outcome["leftovers"]}
        assert kinds == {"trigger", "work_table"}, outcome["leftovers"]
        assert all(item["fix"].startswith("SELECT repack.repack_drop(") for item in outcome["leftovers"])
        assert not outcome["changed"]

    cleaned = _repack.run_repack(dict(params, cleanup_leftovers=True))
    assert cleaned["changed"] and cleaned["repacked"] == ["public.jobs"]
    assert any(name.startswith("repack.log_") for name in cleaned["leftovers_cleaned"])
    assert cleaned["leftovers"] == []
    with psycopg.connect(pg.dsn(repack_db), autocommit=True) as conn:
        assert catalog.find_leftovers(conn) == []
    assert checksum(pg, repack_db, "jobs") == before


def test_table_timeout_interrupts_cleanly_and_fails_the_run(pg, repack_db, lock_file):
    make_bloated(pg, repack_db, "jobs", rows=4000)
    before = checksum(pg, repack_db, "jobs")
    with psycopg.connect(pg.dsn(repack_db)) as old_tx:
        old_tx.execute("SELECT txid_current()")
        with pytest.raises(_repack.RepackFailed) as err:
            _repack.run_repack(repack_params(pg, repack_db, lock_file, tables=["jobs"], table_timeout=2))
        old_tx.rollback()
    details = err.value.details
    entry = details["tables"]["public.jobs"]
    assert (entry["status"], entry["reason"]) == ("failed", "interrupted")
    assert details["failed_tables"] == ["public.jobs"] and details["leftovers"] == []
    with psycopg.connect(pg.dsn(repack_db), autocommit=True) as conn:
        assert catalog.find_leftovers(conn) == []
    assert checksum(pg, repack_db, "jobs") == before


def test_lockfile_held_by_a_backup_stops_before_touching_anything(pg, repack_db, lock_file):
    make_bloated(pg, repack_db, rows=2000)
    node = relfilenode(pg, repack_db, "jobs")
    with LockFile(lock_file, wait=0, job="backup"):
        with pytest.raises(LockBusy):
            _repack.run_repack(repack_params(pg, repack_db, lock_file, tables=["jobs"], lock_wait=0))
    assert relfilenode(pg, repack_db, "jobs") == node


def test_unknown_table_is_refused(pg, repack_db, lock_file):
    with pytest.raises(InvalidRequest):
        _repack.run_repack(repack_params(pg, repack_db, lock_file, tables=["nope"]))


def test_compact_listed_table_is_below_threshold_unless_forced(pg, repack_db, lock_file):
    sql(pg, repack_db, "CREATE TABLE compact (id bigserial PRIMARY KEY, payload text)")
    sql(pg, repack_db, "INSERT INTO compact (payload) SELECT md5(g::text) FROM generate_series(1, 5000) g")
    sql(pg, repack_db, "VACUUM ANALYZE compact")
    node = relfilenode(pg, repack_db, "compact")
    result = _repack.run_repack(repack_params(pg, repack_db, lock_file, tables=["compact"]))
    entry = result["tables"]["public.compact"]
    assert (entry["status"], entry["reason"]) == ("skipped", "below_threshold") and not result["changed"]
    assert "below min_reclaimable_fraction" in entry["error"]
    assert relfilenode(pg, repack_db, "compact") == node
    forced = _repack.run_repack(repack_params(pg, repack_db, lock_file, tables=["compact"],
                                              min_reclaimable_fraction=0))
    assert forced["repacked"] == ["public.compact"] and relfilenode(pg, repack_db, "compact") != node


# -- estimates need statistics: none, or stale ones, are never "below threshold" -------------------

def bloat_without_analyze(pg, db, table="events", rows=20000, repeat=8, keep_every=5, vacuum=True):
    """What a big prune leaves before autovacuum analyzed: rows deleted (4 in 5 by default), at most a
    plain VACUUM, no ANALYZE. Autovacuum is off on the table so it cannot analyze it behind the test's back."""
    sql(pg, db, "CREATE TABLE %s (id bigserial PRIMARY KEY, payload text NOT NULL, n int)"
                " WITH (autovacuum_enabled = false)" % table)
    sql(pg, db, "INSERT INTO %s (payload, n) SELECT repeat(md5(g::text), %d), g FROM generate_series(1, %d) g"
        % (table, repeat, rows))
    sql(pg, db, "DELETE FROM %s WHERE n %% %d <> 0" % (table, keep_every))
    if vacuum:
        sql(pg, db, "VACUUM %s" % table)


def column_stats(pg, db, table):
    return sql(pg, db, "SELECT count(*) FROM pg_stats WHERE schemaname = 'public' AND tablename = '%s'" % table)[0][0]


def test_never_analyzed_table_after_a_big_delete_is_analyzed_then_repacked(pg, repack_db, lock_file):
    # The reported case: 300,000 rows (about 230 MB), 80 % deleted, VACUUM but no ANALYZE, default thresholds.
    bloat_without_analyze(pg, repack_db, "events", rows=300000, repeat=22)
    assert column_stats(pg, repack_db, "events") == 0
    before_sum = checksum(pg, repack_db, "events")
    before_size = total_size(pg, repack_db, "events")
    node = relfilenode(pg, repack_db, "events")
    assert before_size > 200 * 1024 * 1024
    params = repack_params(pg, repack_db, lock_file, tables=["events"], min_table_size="100MiB")

    # Check mode reads only: it does not ANALYZE, and says the decision waits for the real run's ANALYZE.
    plan = _repack.run_repack(params, check_mode=True)
    entry = plan["tables"]["public.events"]
    assert (entry["status"], entry["reason"]) == ("skipped", "needs_analyze"), entry
    assert entry["statistics"] == "missing" and not entry["analyzed"]
    assert 'ANALYZE "public"."events"' in entry["fix"] and "check mode" in entry["error"]
    assert any("public.events" in line and "needs_analyze" in line for line in plan["action_needed"])
    assert column_stats(pg, repack_db, "events") == 0, "check mode analyzed the table"
    assert relfilenode(pg, repack_db, "events") == node

    result = _repack.run_repack(params)
    entry = result["tables"]["public.events"]
    assert (entry["status"], entry["reason"]) == ("repacked", ""), entry
    assert entry["analyzed"] and entry["statistics"] == "missing" and entry["estimate_method"] == "statistics"
    assert entry["estimated_reclaimable_fraction"] > 0.6
    after_size = total_size(pg, repack_db, "events")
    assert result["changed"] and relfilenode(pg, repack_db, "events") != node
    assert entry["size_after"] == after_size and after_size < before_size * 0.3
    assert checksum(pg, repack_db, "events") == before_sum
    assert result["action_needed"] == [] and "repacked public.events" in result["msg"]
    print("events: %d bytes before, %d after pg_repack" % (before_size, after_size))

    # The re-run finds it below min_table_size now; even without that threshold there is nothing worth it,
    # and no ANALYZE is needed: pg_repack analyzed the new copy.
    again = _repack.run_repack(params)
    entry = again["tables"]["public.events"]
    assert (entry["status"], entry["reason"]) == ("skipped", "below_threshold") and not again["changed"]
    assert "below min_table_size" in entry["error"] and again["action_needed"] == []
    again = _repack.run_repack(dict(params, min_table_size="1MB"))
    entry = again["tables"]["public.events"]
    assert (entry["status"], entry["reason"]) == ("skipped", "below_threshold") and not again["changed"]
    assert entry["statistics"] == "current" and not entry["analyzed"]
    assert "below min_reclaimable_fraction" in entry["error"]


def test_stale_statistics_are_refreshed_before_deciding(pg, repack_db, lock_file):
    # Analyzed when full, then 80 % deleted and not even vacuumed: reltuples still counts every row.
    bloat_without_analyze(pg, repack_db, "jobs", rows=20000, keep_every=1, vacuum=False)
    sql(pg, repack_db, "ANALYZE jobs")
    sql(pg, repack_db, "DELETE FROM jobs WHERE n % 5 <> 0")
    assert _wait_for(lambda: sql(pg, repack_db, "SELECT n_mod_since_analyze FROM pg_stat_user_tables"
                                                " WHERE relname = 'jobs'")[0][0] >= 16000)
    before = total_size(pg, repack_db, "jobs")
    result = _repack.run_repack(repack_params(pg, repack_db, lock_file, tables=["jobs"]))
    entry = result["tables"]["public.jobs"]
    assert (entry["status"], entry["reason"]) == ("repacked", ""), entry
    assert entry["statistics"] == "stale" and entry["analyzed"]
    assert total_size(pg, repack_db, "jobs") < before * 0.4


def test_never_analyzed_compact_table_is_still_below_threshold(pg, repack_db, lock_file):
    sql(pg, repack_db, "CREATE TABLE compact (id bigserial PRIMARY KEY, payload text NOT NULL)"
                       " WITH (autovacuum_enabled = false)")
    sql(pg, repack_db, "INSERT INTO compact (payload) SELECT repeat(md5(g::text), 4) FROM generate_series(1, 20000) g")
    node = relfilenode(pg, repack_db, "compact")
    result = _repack.run_repack(repack_params(pg, repack_db, lock_file, tables=["compact"], min_table_size="1MB"))
    entry = result["tables"]["public.compact"]
    assert (entry["status"], entry["reason"]) == ("skipped", "below_threshold"), entry
    assert entry["estimated_reclaimable_bytes"] is not None and "below min_reclaimable_fraction" in entry["error"]
    assert entry["estimated_reclaimable_fraction"] < 0.1 and entry["analyzed"]
    assert not result["changed"] and result["action_needed"] == []
    assert relfilenode(pg, repack_db, "compact") == node


def test_auto_selection_analyzes_candidates_without_statistics(pg, repack_db, lock_file):
    bloat_without_analyze(pg, repack_db, "events", rows=20000)
    sql(pg, repack_db, "CREATE TABLE compact (id bigserial PRIMARY KEY, payload text NOT NULL)"
                       " WITH (autovacuum_enabled = false)")
    sql(pg, repack_db, "INSERT INTO compact (payload) SELECT repeat(md5(g::text), 4) FROM generate_series(1, 20000) g")
    node = relfilenode(pg, repack_db, "compact")
    result = _repack.run_repack(repack_params(pg, repack_db, lock_file, auto=True, min_table_size="1MB"))
    assert result["repacked"] == ["public.events"], result["tables"]
    assert result["tables"]["public.events"]["analyzed"]
    assert result["candidates_below_threshold"] == 1 and "public.compact" not in result["tables"]
    assert relfilenode(pg, repack_db, "compact") == node


def test_no_estimate_when_the_role_may_not_analyze(pg, repack_db, lock_file):
    """A role that is not the owner (managed services, no_superuser_check): PostgreSQL skips its ANALYZE
    with a warning. The table is reported no_estimate with that warning and a fix, in auto mode too."""
    role = "op_" + repack_db
    bloat_without_analyze(pg, repack_db, "events", rows=20000)
    sql(pg, repack_db, 'CREATE ROLE "%s" LOGIN' % role)
    try:
        sql(pg, repack_db, 'GRANT SELECT ON events TO "%s"' % role)
        node = relfilenode(pg, repack_db, "events")
        for selection in ({"tables": ["events"]}, {"auto": True}):
            result = _repack.run_repack(repack_params(pg, repack_db, lock_file, login_user=role,
                                                      no_superuser_check=True, **selection))
            entry = result["tables"]["public.events"]
            assert (entry["status"], entry["reason"]) == ("skipped", "no_estimate"), (selection, entry)
            assert "owner" in entry["error"] and entry["estimated_reclaimable_bytes"] is None
            assert 'ANALYZE "public"."events"' in entry["fix"] and "MAINTAIN" in entry["fix"]
            assert result["candidates_below_threshold"] == 0 and not result["changed"]
            assert any("public.events" in line and "no_estimate" in line for line in result["action_needed"])
        assert column_stats(pg, repack_db, "events") == 0 and relfilenode(pg, repack_db, "events") == node
    finally:
        sql(pg, repack_db, 'DROP OWNED BY "%s"' % role)
        sql(pg, repack_db, 'DROP ROLE "%s"' % role)


def make_index_bloated(pg, db, table="events"):
    """A steadily pruned table: most old rows deleted and vacuumed, as many new rows added since.

    The new rows fill the heap's free space, so the heap stays compact, but their ids are all larger
    than any old one: the index entries go to new pages at the right edge, and the old leaf pages,
    each still holding the entries of the few rows kept, are never filled again.
    """
    sql(pg, db, "CREATE TABLE %s (id bigserial PRIMARY KEY, kind text NOT NULL, payload text NOT NULL)" % table)
    sql(pg, db, "CREATE INDEX %s_kind ON %s (kind, id)" % (table, table))
    sql(pg, db, "INSERT INTO %s (kind, payload) SELECT 'k' || (g %% 7), md5(g::text)"
                " FROM generate_series(1, 120000) g" % table)
    sql(pg, db, "DELETE FROM %s WHERE id %% 20 <> 0" % table)
    sql(pg, db, "VACUUM %s" % table)
    sql(pg, db, "INSERT INTO %s (kind, payload) SELECT 'k' || (g %% 7), md5(g::text)"
                " FROM generate_series(1, 114000) g" % table)
    sql(pg, db, "VACUUM ANALYZE %s" % table)


def index_nodes(pg, db, table):
    return sql(pg, db, "SELECT i.relname, i.relfilenode, pg_relation_size(i.oid) FROM pg_index x"
                       " JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = '%s'::regclass ORDER BY 1" % table)


@pytest.mark.parametrize("method", ["statistics", "pgstattuple"])
def test_bloated_indexes_of_a_compact_heap_are_rebuilt_alone(pg, repack_db, lock_file, method):
    make_index_bloated(pg, repack_db)
    if method == "pgstattuple":
        sql(pg, repack_db, "CREATE EXTENSION pgstattuple")
    heap_node, before, data = relfilenode(pg, repack_db, "events"), index_nodes(pg, repack_db, "events"), \
        checksum(pg, repack_db, "events")
    params = repack_params(pg, repack_db, lock_file, tables=["events"], estimate_method=method)

    off = _repack.run_repack(dict(params, rebuild_indexes=False), check_mode=True)
    assert off["tables"]["public.events"]["reason"] == "below_threshold", off["tables"]
    plan = _repack.run_repack(params, check_mode=True)
    entry = plan["tables"]["public.events"]
    assert entry["estimated_reclaimable_fraction"] < 0.2, "the heap must be compact for this test"
    assert entry["mode"] == "indexes" and entry["status"] == "repacked", entry
    assert "--index" in entry["command"] and "--table" not in entry["command"] and "--dry-run" in entry["command"]
    assert sorted(entry["rebuild_indexes"]) == ["events_kind", "events_pkey"]
    assert entry["estimated_index_reclaimable_fraction"] >= 0.2
    pkey = next(i for i in entry["indexes"] if i["index"] == "events_pkey")
    assert pkey["estimated_reclaimable_bytes"] > 0

    result = _repack.run_repack(params)
    entry = result["tables"]["public.events"]
    assert entry["status"] == "repacked" and entry["mode"] == "indexes", entry
    after = index_nodes(pg, repack_db, "events")
    assert relfilenode(pg, repack_db, "events") == heap_node, "the heap must not be rewritten"
    assert [i[1] for i in after] != [i[1] for i in before]
    shrunk = sum(i[2] for i in before) - sum(i[2] for i in after)
    assert shrunk == entry["reclaimed_bytes"] > 0
    # The estimate is of the right size: within a factor of two of what the rebuild gave back.
    assert 0.5 * shrunk <= plan["tables"]["public.events"]["reclaimed_bytes"] <= 2 * shrunk
    assert checksum(pg, repack_db, "events") == data
    assert sql(pg, repack_db, "SELECT count(*) FROM pg_index WHERE indrelid = 'events'::regclass"
                              " AND NOT indisvalid")[0][0] == 0

    again = _repack.run_repack(params)
    assert again["tables"]["public.events"]["reason"] == "below_threshold" and not again["repacked"]


def test_indexes_of_a_table_below_min_table_size_are_rebuilt_alone(pg, repack_db, lock_file):
    """Run retention's small tables: too small for a heap rewrite, but their indexes bloat without end."""
    make_index_bloated(pg, repack_db)
    heap_node, before, data = relfilenode(pg, repack_db, "events"), index_nodes(pg, repack_db, "events"), \
        checksum(pg, repack_db, "events")
    assert all(row[2] >= 1 << 20 for row in before), before
    params = repack_params(pg, repack_db, lock_file, auto=True, profile="any", min_table_size="1GiB")

    floor = _repack.run_repack(dict(params, auto=False, tables=["events"], min_index_size="1GiB"), check_mode=True)
    entry = floor["tables"]["public.events"]
    assert entry["reason"] == "below_threshold" and not floor["repacked"], entry
    assert "below min_table_size" in entry["error"] and "below min_index_size" in entry["error"], entry["error"]
    off = _repack.run_repack(dict(params, rebuild_indexes=False), check_mode=True)
    assert off["candidates_below_threshold"] >= 1 and "public.events" not in off["tables"], off
    high = _repack.run_repack(dict(params, min_index_reclaimable_fraction=0.99), check_mode=True)
    assert not high["repacked"] and "public.events" not in high["tables"], high["tables"]

    plan = _repack.run_repack(params, check_mode=True)
    entry = plan["tables"]["public.events"]
    assert entry["mode"] == "indexes" and entry["status"] == "repacked", entry
    assert sorted(entry["rebuild_indexes"]) == ["events_kind", "events_pkey"]
    assert "--table" not in entry["command"] and entry["command"].count("--index") == 2

    result = _repack.run_repack(params)
    entry = result["tables"]["public.events"]
    assert entry["status"] == "repacked" and entry["mode"] == "indexes", entry
    assert relfilenode(pg, repack_db, "events") == heap_node, "a table below min_table_size is never rewritten"
    after = index_nodes(pg, repack_db, "events")
    shrunk = sum(i[2] for i in before) - sum(i[2] for i in after)
    assert shrunk == entry["reclaimed_bytes"] > 0
    assert 0.5 * shrunk <= plan["tables"]["public.events"]["reclaimed_bytes"] <= 2 * shrunk
    assert checksum(pg, repack_db, "events") == data

    again = _repack.run_repack(params)
    assert not again["repacked"] and "public.events" not in again["tables"], again["tables"]
    assert again["candidates_below_threshold"] >= 1
