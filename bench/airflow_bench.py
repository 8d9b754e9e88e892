"""pgtidy airflow_prune against Airflow's own `airflow db clean --skip-archive`, on copies of one Airflow database.

A private PostgreSQL (default durability) gets Airflow 3.3's schema from the real ``airflow db migrate``; the
Airflow history of the tests (tests/airflow/make_history.py: real dag.test() runs with mapped tasks, XComs,
retries, asset events, moved back in time) is written by the installed Airflow, and the finished runs of its
ETL DAG older than the retention are copied by SQL (run, task instances, XComs, rendered fields, task maps,
earlier tries, audit entries; each copy a few seconds older than its source) until the database holds
--task-instances task instances (default 1,000,000). Each method prunes its own copy (CREATE DATABASE ...
TEMPLATE, then CHECKPOINT) with a 90-day retention of dag runs and of the audit log:

  db-clean         Airflow's run_cleanup (what `airflow db clean --skip-archive -y` calls), in-process in
                   the interpreter of --airflow-python, tables dag_run and log
  pgtidy           airflow_prune's core (run_prune), keep_runs_per_dag 1, unpaced: no budget caps,
                   max_wal_rate 0; then its re-run on the clean copy
                   (in both pgtidy methods the tables db clean is not asked for are off)
  pgtidy-defaults  the same with every other option at its default: budgets (max_rows 1,000,000, max_wal_bytes
                   1 GiB, ...) and pacing (max_wal_rate) on, as a scheduled run would prune

While each method runs, a writer (bench/_airflow_workers.py) writes what a running Airflow writes, --writer-rate
transactions a second: a dag run created with its task instances, each task instance set running and then
successful, an audit log row per task, the run marked successful. It writes alone for --idle-seconds before
each method: that is the idle baseline, pooled over the methods of the run.

Measured for each: wall time, rows deleted (PostgreSQL's n_tup_del over the tables, cascades included), rows
per second (db clean's over its in-process time, without the interpreter's start), rows examined (rows read by
sequential scans and fetched through indexes), WAL bytes (pg_current_wal_lsn difference, the writer's own
share measured idle subtracted; each copy is dropped once measured, so that autovacuum cleaning up after one
method writes nothing into the next one's measure) per deleted row, the longest transaction (sampled every 50 ms from
pg_stat_activity, the writer's left out), the writer's p50/p99 latency per transaction, and the rows left per
table (the writer's left out). --statements loads pg_stat_statements and lists each method's costliest
statements. The two keep different rows on purpose: `db clean` keeps each DAG's newest non-manual run by start
date, deletes unfinished runs and deletes task instances (and what cascades from them) by their own start date,
also in runs it keeps; airflow_prune keeps unfinished runs, each DAG's newest run, the newest scheduled run by
logical date and the newest asset-triggered run, always whole (docs/airflow.md).

Usage: python bench/airflow_bench.py [--task-instances N] [--methods db-clean,pgtidy,pgtidy-defaults]
       [--writer-rate 50] [--idle-seconds 10] [--set OPTION=VALUE] [--statements] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import psycopg  # noqa: E402

from _airflow_workers import WRITER_DAG  # noqa: E402
from _bench_common import collection_on_path, finish, lsn, machine, percentile, set_options, spawn  # noqa: E402
from airflow_fixture import airflow_env, run_airflow, run_script  # noqa: E402
from pgserver import PgServer  # noqa: E402

RETENTION_DAYS = 90
WORKER = os.path.join(HERE, "_airflow_workers.py")
WRITER_APP = "bench_writer"
METHODS = ("db-clean", "pgtidy", "pgtidy-defaults")
UNPACED = {"max_rows": 0, "max_duration": 0, "max_wal_bytes": "0", "max_wal_rate": 0}
TARGETS = {"vs_db_clean": 1.0, "longest_txn_s": 1.0, "writer_p99_ratio": 2.0}
TABLES = ("dag_run", "task_instance", "task_instance_history", "xcom", "rendered_task_instance_fields",
          "task_map", "log")
# Copied per run; in each, these columns are moved back with the run (the others are copied as they are).
SHIFTED = {"logical_date", "run_after", "start_date", "end_date", "queued_at", "data_interval_start",
           "data_interval_end", "last_scheduling_decision", "updated_at", "queued_dttm", "scheduled_dttm",
           "timestamp", "dttm", "created_at"}
CLEAN = """
import datetime, json, sys, time
from airflow.utils.db_cleanup import run_cleanup
before = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=%d)
t0 = time.monotonic()
run_cleanup(clean_before_timestamp=before, table_names=["dag_run", "log"], confirm=False, skip_archive=True)
with open(sys.argv[1], "w") as fh:
    json.dump({"seconds": time.monotonic() - t0}, fh)
""" % RETENTION_DAYS


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def columns(cur, table):
    cur.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = 'public'"
                " AND table_name = %s AND is_generated = 'NEVER' ORDER BY ordinal_position", (table,))
    return [row[0] for row in cur.fetchall()]


def copy_rows(cur, table, join, replace):
    """INSERT INTO ``table`` a copy of each row of the source runs, through ``join`` (alias t, mapping m)."""
    cols = [c for c in columns(cur, table) if replace.get(c) != "omit"]
    exprs = []
    for col in cols:
        if col in replace:
            exprs.append(replace[col])
        elif col in SHIFTED:
            exprs.append('t."%s" - m.shift' % col)
        else:
            exprs.append('t."%s"' % col)
    cur.execute('INSERT INTO "%s" (%s) SELECT %s FROM "%s" AS t %s' % (
        table, ", ".join('"%s"' % c for c in cols), ", ".join(exprs), table, join))
    return cur.rowcount


def multiply(dsn, task_instances):
    """Copies of the old finished ETL runs until the database holds about ``task_instances`` task instances."""
    with psycopg.connect(dsn, autocommit=False) as conn, conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE src AS SELECT r.id, r.run_id, (SELECT count(*) FROM task_instance ti"
                    " WHERE ti.dag_id = r.dag_id AND ti.run_id = r.run_id) AS tis FROM dag_run r"
                    " WHERE r.dag_id = 'pgtidy_etl' AND r.state IN ('success', 'failed')"
                    " AND r.end_date < now() - interval '%d days'" % RETENTION_DAYS)
        cur.execute("SELECT count(*), sum(tis) FROM src")
        runs, per_round = cur.fetchone()
        cur.execute("SELECT count(*) FROM task_instance")
        have = cur.fetchone()[0]
        rounds = max(0, int((task_instances - have) // max(1, per_round)))
        # Each copy k seconds older than its source: sources are days apart, so logical dates stay unique.
        cur.execute("CREATE TEMP TABLE m AS SELECT s.id AS old_id, s.run_id AS old_run, s.run_id || '__copy' || k"
                    " AS new_run, make_interval(secs => k) AS shift FROM src AS s, generate_series(1, %s) AS k",
                    (rounds,))
        copy_rows(cur, "dag_run", "JOIN m ON t.id = m.old_id", {"id": "omit", "run_id": "m.new_run"})
        # The foreign key checks of the copies below are planned from these statistics: without them the check of
        # each task instance's run reads dag_run whole (a million task instances took more than a quarter hour).
        cur.execute("ANALYZE dag_run")
        cur.execute("CREATE TEMP TABLE m2 AS SELECT m.*, r.id AS new_id FROM m JOIN dag_run AS r"
                    " ON r.dag_id = 'pgtidy_etl' AND r.run_id = m.new_run")
        cur.execute("CREATE INDEX ON m2 (old_run)")
        cur.execute("ANALYZE m2")
        join = "JOIN m2 AS m ON t.dag_id = 'pgtidy_etl' AND t.run_id = m.old_run"
        copy_rows(cur, "task_instance", join, {"id": "gen_random_uuid()", "run_id": "m.new_run"})
        cur.execute("ANALYZE task_instance")
        copy_rows(cur, "task_instance_history", join, {"task_instance_id": "gen_random_uuid()",
                                                       "run_id": "m.new_run"})
        copy_rows(cur, "xcom", join, {"run_id": "m.new_run", "dag_run_id": "m.new_id"})
        copy_rows(cur, "rendered_task_instance_fields", join, {"run_id": "m.new_run"})
        copy_rows(cur, "task_map", join, {"run_id": "m.new_run"})
        copy_rows(cur, "log", join, {"id": "omit", "run_id": "m.new_run"})
        conn.commit()
    return {"source_runs": runs, "copies_per_run": rounds}


def counts(dsn):
    """Rows per table, the writer's left out."""
    with psycopg.connect(dsn) as conn:
        return {t: conn.execute('SELECT count(*) FROM "%s" WHERE dag_id IS DISTINCT FROM %%s' % t,
                                (WRITER_DAG,)).fetchone()[0] for t in TABLES}


def runs_left(dsn):
    """The (dag_id, run_id) of the dag runs left, the writer's left out."""
    with psycopg.connect(dsn) as conn:
        return sorted("%s/%s" % row for row in conn.execute(
            "SELECT dag_id, run_id FROM dag_run WHERE dag_id <> %s", (WRITER_DAG,)).fetchall())


def table_stats(dsn):
    """Rows deleted (n_tup_del, cascades included) and rows examined (read by sequential scans, fetched through
    indexes) over the database's tables."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT coalesce(sum(n_tup_del), 0), coalesce(sum(seq_tup_read), 0),"
                           " coalesce(sum(idx_tup_fetch), 0) FROM pg_stat_user_tables").fetchone()
    return {"deleted": int(row[0]), "seq_read": int(row[1]), "idx_fetched": int(row[2])}


def top_statements(dsn, limit=12):
    """The statements of this database that took the most time (pg_stat_statements, --statements)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT calls, round(total_exec_time::numeric, 1), round(mean_exec_time::numeric, 2), rows,"
            " left(regexp_replace(query, '\\s+', ' ', 'g'), 240) FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " ORDER BY total_exec_time DESC LIMIT %s", (limit,)).fetchall()
    return [{"calls": c, "total_ms": float(t), "mean_ms": float(m), "rows": r, "query": q} for c, t, m, r, q in rows]


class LongestTransaction(threading.Thread):
    """Samples the longest open transaction of a client session on a database every 50 ms (the writer's left out)."""

    def __init__(self, dsn, db):
        super().__init__(daemon=True)
        self.dsn, self.db, self.longest, self.stop = dsn, db, 0.0, threading.Event()

    def run(self):
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                # Client sessions only: autovacuum workers cleaning up after the deletes are not the method's.
                row = conn.execute("SELECT max(extract(epoch FROM clock_timestamp() - xact_start)) FROM"
                                   " pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
                                   " AND backend_type = 'client backend' AND xact_start IS NOT NULL"
                                   " AND application_name <> %s", (self.db, WRITER_APP)).fetchone()
                self.longest = max(self.longest, float(row[0] or 0))
                time.sleep(0.05)


def ms(values, q):
    return round(1000 * percentile(values, q), 2) if values else None


def measure(pg, admin, db, work, opts):
    """``work`` on database ``db`` while the writer writes: the writer alone for --idle-seconds first, then
    during the work. Time, rows deleted and examined, WAL (the writer's own share subtracted), the longest
    transaction, the writer's latencies idle and busy, the rows left."""
    writer = spawn(WORKER, "writer", {"conninfo": pg.dsn(db) + " application_name=" + WRITER_APP,
                                      "rate": opts.writer_rate})
    try:
        writer.stdout.readline()
        idle_start, idle_lsn = time.monotonic(), lsn(admin)
        time.sleep(opts.idle_seconds)
        idle_end, start_lsn = time.monotonic(), lsn(admin)
        writer_wal_rate = (start_lsn - idle_lsn) / (idle_end - idle_start)
        if opts.statements:
            with psycopg.connect(pg.dsn(db), autocommit=True) as conn:
                conn.execute("SELECT pg_stat_statements_reset()")
        sampler = LongestTransaction(pg.dsn("postgres"), db)
        sampler.start()
        before = table_stats(pg.dsn(db))
        t0 = time.monotonic()
        extra = work() or {}
        t1 = time.monotonic()
        end_lsn = lsn(admin)
        sampler.stop.set()
        sampler.join()
    finally:
        writer.terminate()
    samples = finish(writer)["latencies"]
    time.sleep(0.7)        # a backend reports its table statistics a little after its transaction
    after = table_stats(pg.dsn(db))
    deleted = after["deleted"] - before["deleted"]
    seconds = t1 - t0
    # db clean's own time, without the interpreter's start and Airflow's import.
    work_s = extra.get("in_process_seconds", seconds)
    wal = max(0, int(end_lsn - start_lsn - writer_wal_rate * seconds))
    idle = [lat for at, lat, _kind in samples if idle_start <= at < idle_end]
    busy = [lat for at, lat, _kind in samples if t0 <= at < t1]
    out = {"seconds": round(seconds, 2), "rows_deleted": deleted, "rows_per_s": round(deleted / max(work_s, 0.001)),
           "rows_examined": after["seq_read"] + after["idx_fetched"] - before["seq_read"] - before["idx_fetched"],
           "wal_bytes": wal, "wal_bytes_per_row": round(wal / deleted) if deleted else None,
           "longest_txn_s": round(sampler.longest, 2), "left": counts(pg.dsn(db)),
           "writer": {"idle_p50_ms": ms(idle, 50), "idle_p99_ms": ms(idle, 99), "idle_n": len(idle),
                      "busy_p50_ms": ms(busy, 50), "busy_p99_ms": ms(busy, 99), "busy_max_ms": ms(busy, 100),
                      "busy_n": len(busy),
                      "busy_p99_by_kind_ms": {kind: ms([lat for at, lat, k in samples if t0 <= at < t1 and k == kind],
                                                       99) for kind in sorted({k for _a, _l, k in samples})}},
           "_idle": idle, "_busy": busy}
    if opts.statements:
        out["statements"] = top_statements(pg.dsn(db))
    out.update(extra)
    return out


def drop(admin, db):
    """A measured copy goes at once: autovacuum cleaning up after its deletes would write WAL into the next
    method's measure (pg_current_wal_lsn is the cluster's)."""
    admin.execute('DROP DATABASE "%s" WITH (FORCE)' % db)


def pgtidy_work(params, profile_class, run_prune, unpaced):
    def work():
        result = run_prune(params, profile_class())
        assert not result["failed_handlers"], result["handlers"]
        if unpaced:
            assert not result["capped"], result["handlers"]
        handlers = result["handlers"].values()
        return {"deleted_total": result["deleted_total"], "capped_by": result["capped_by"],
                "longest_batch_s": max(h["longest_batch_s"] for h in handlers),
                "batches": sum(h["batches"] for h in handlers),
                "paused_s": (result.get("pacing") or {}).get("paused_s_total"), "engine_wal_bytes": result["wal_bytes"],
                "wal_compression": result.get("wal_compression")}
    return work


def checks(results, opts):
    """Every target with its figure and whether it is met (None: only reported)."""
    out = []
    clean, tidy = results.get("db-clean"), results.get("pgtidy")
    if clean and tidy:
        diff = {t: tidy["left"][t] - clean["left"][t] for t in TABLES if tidy["left"][t] != clean["left"][t]}
        out.append(("rows left, pgtidy minus db clean (the runs each keeps on purpose)", diff or 0, "same rows",
                    None))
        out.append(("throughput pgtidy / db clean (unpaced)", results["vs_db_clean"], ">= 1.0",
                    results["vs_db_clean"] >= TARGETS["vs_db_clean"]))
        out.append(("longest transaction db clean (s)", clean["longest_txn_s"], "-", None))
    if tidy:
        out.append(("longest transaction pgtidy (s, sampled / its longest batch)",
                    "%s / %s" % (tidy["longest_txn_s"], tidy["longest_batch_s"]), "<= 1.0",
                    max(tidy["longest_txn_s"], tidy["longest_batch_s"]) <= TARGETS["longest_txn_s"]))
    for name in ("db-clean", "pgtidy", "pgtidy-defaults"):
        row = results.get(name)
        if row:
            out.append(("WAL bytes per row, %s" % name, row["wal_bytes_per_row"], "-", None))
    pooled = results.get("writer_idle_pooled_p99_ms")
    for name in ("pgtidy-defaults", "pgtidy", "db-clean"):
        row = results.get(name)
        if row and row["writer"]["busy_p99_ms"] and pooled:
            ratio = round(row["writer"]["busy_p99_ms"] / pooled, 2)
            target = name == "pgtidy-defaults"
            out.append(("writer p99 during %s / pooled idle p99 %.2f ms" % (name, pooled), ratio,
                        "<= 2.0" if target else "-", ratio <= TARGETS["writer_p99_ratio"] if target else None))
    rerun = results.get("pgtidy-rerun")
    if rerun:
        out.append(("re-run on the clean copy: s, rows examined, dag runs left",
                    "%s s, %d, %d" % (rerun["seconds"], rerun["rows_examined"], rerun["left"]["dag_run"]),
                    "O(dag runs)", None))
    return out


def table(results, opts):
    lines = ["| method | rows deleted | s | rows/s | longest txn s | longest batch s | WAL B/row | writer idle p99 ms"
             " | writer p50 ms | writer p99 ms | writer max ms |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in ("db-clean", "pgtidy", "pgtidy-defaults", "pgtidy-rerun"):
        row = results.get(name)
        if not row:
            continue
        w = row["writer"]
        lines.append("| %s | %d | %.1f | %d | %.2f | %s | %s | %s | %s | %s | %s |" % (
            name, row["rows_deleted"], row.get("in_process_seconds", row["seconds"]), row["rows_per_s"],
            row["longest_txn_s"], row.get("longest_batch_s", "-"), row["wal_bytes_per_row"], w["idle_p99_ms"],
            w["busy_p50_ms"], w["busy_p99_ms"], w["busy_max_ms"]))
    lines += ["", "| check | measured | target | met |", "|---|---|---|---|"]
    for name, value, target, met in checks(results, opts):
        lines.append("| %s | %s | %s | %s |" % (name, value, target, "-" if met is None else ("yes" if met else "NO")))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--task-instances", type=int, default=1000000,
                        help="task instances of the database (default 1,000,000; 100000 for a quick check)")
    parser.add_argument("--airflow-python", default=os.environ.get("PGTIDY_AIRFLOW_PYTHON") or
                        os.path.join(ROOT, ".venv-airflow-3", "bin", "python"))
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated subset of %s (default all)" % ",".join(METHODS))
    parser.add_argument("--writer-rate", type=float, default=50.0, help="writer transactions per second (default 50)")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="writer-only time before each method")
    parser.add_argument("--set", dest="pgtidy_set", action="append", default=[], metavar="OPTION=VALUE",
                        help="an airflow_prune option for both pgtidy methods (repeatable), e.g. --set batch_size=9000")
    parser.add_argument("--statements", action="store_true",
                        help="load pg_stat_statements and report each method's most expensive statements")
    parser.add_argument("--json")
    opts = parser.parse_args()
    methods = [m for m in opts.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error("unknown method(s) %s; choose among %s" % (", ".join(unknown), ", ".join(METHODS)))
    options = set_options(parser, opts.pgtidy_set)
    collection_on_path()
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._airflow.rules import AirflowProfile
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._airflow.families import FAMILY_OPTIONS
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.prune import run_prune

    settings = {"max_connections": "40"}
    if opts.statements:
        settings["shared_preload_libraries"] = "pg_stat_statements"
    pg = PgServer(settings=settings).start()
    home = tempfile.mkdtemp(prefix="pgtidy-airflow-bench-")
    try:
        admin = psycopg.connect(pg.dsn("postgres"), autocommit=True)
        template = "airflow_bench_tpl"
        pg.create_db(template)
        env = airflow_env(pg, template, home)
        results = {"load_before": os.getloadavg(), "options": options, "writer_rate": opts.writer_rate}
        log("airflow db migrate and the real Airflow history ...")
        run_airflow(opts.airflow_python, ["-m", "airflow", "db", "migrate"], env, "airflow db migrate")
        run_script(opts.airflow_python, "make_history.py", env)
        log("copying runs up to %d task instances ..." % opts.task_instances)
        t0 = time.monotonic()
        data = multiply(pg.dsn(template), opts.task_instances)
        pg.psql("VACUUM ANALYZE", template)
        if opts.statements:
            pg.psql("CREATE EXTENSION pg_stat_statements", template)
        data["seconds"] = round(time.monotonic() - t0, 1)
        data["rows"] = counts(pg.dsn(template))
        data["database_bytes"] = admin.execute("SELECT pg_database_size(%s)", (template,)).fetchone()[0]
        log("data: %s" % json.dumps(data))
        results["data"] = data
        results["machine"] = machine(admin)

        def clone(name):
            admin.execute('CREATE DATABASE "%s" TEMPLATE "%s"' % (name, template))
            admin.execute("CHECKPOINT")         # every method starts right after a checkpoint
            return name

        script = os.path.join(home, "clean.py")
        with open(script, "w") as fh:
            fh.write(CLEAN)

        def params(db, **extra):
            out = {"login_host": "127.0.0.1", "login_port": pg.port, "login_user": "postgres", "login_password": "",
                   "login_db": db, "ssl_mode": "disable", "lock_file": os.path.join(home, "pgtidy.lock"),
                   "lock_wait": 5, "dag_run_retention_days": RETENTION_DAYS, "keep_runs_per_dag": 1,
                   "log_retention_days": RETENTION_DAYS, "asset_event_retention_days": -1,
                   "job_retention_days": -1, "import_error_retention_days": -1}
            # The tables db clean is asked for (dag_run and log) and nothing else: the other families off too.
            out.update({option: -1 for option in FAMILY_OPTIONS})
            out.update(extra)
            out.update(options)
            return out

        if "db-clean" in methods:
            db = clone("bench_db_clean")

            def db_clean():
                out = os.path.join(home, "clean.json")
                subprocess.run([opts.airflow_python, script, out], env=airflow_env(pg, db, home), check=True,
                               capture_output=True)
                with open(out) as fh:
                    return {"in_process_seconds": round(json.load(fh)["seconds"], 2)}
            log("db-clean ...")
            results["db-clean"] = measure(pg, admin, db, db_clean, opts)
            results["db-clean"]["runs_left"] = runs_left(pg.dsn(db))
            drop(admin, db)
        if "pgtidy" in methods:
            db = clone("bench_pgtidy")
            log("pgtidy (unpaced, no budget caps) ...")
            results["pgtidy"] = measure(pg, admin, db, pgtidy_work(params(db, **UNPACED), AirflowProfile, run_prune,
                                                                   True), opts)
            results["pgtidy"]["runs_left"] = runs_left(pg.dsn(db))
            log("pgtidy re-run ...")
            results["pgtidy-rerun"] = measure(pg, admin, db, pgtidy_work(params(db, **UNPACED), AirflowProfile,
                                                                         run_prune, True), opts)
            drop(admin, db)
            if "db-clean" in results:
                results["vs_db_clean"] = round(results["pgtidy"]["rows_per_s"] /
                                               max(1, results["db-clean"]["rows_per_s"]), 2)
                clean_runs, tidy_runs = set(results["db-clean"]["runs_left"]), set(results["pgtidy"]["runs_left"])
                results["runs_left_only_db_clean"] = sorted(clean_runs - tidy_runs)
                results["runs_left_only_pgtidy"] = sorted(tidy_runs - clean_runs)
        if "pgtidy-defaults" in methods:
            db = clone("bench_pgtidy_defaults")
            log("pgtidy with its defaults (pacing and budgets on) ...")
            results["pgtidy-defaults"] = measure(pg, admin, db, pgtidy_work(params(db), AirflowProfile, run_prune,
                                                                            False), opts)
        # The writer alone before every method, pooled: a steadier baseline than one method's few seconds.
        idle = [lat for name in METHODS + ("pgtidy-rerun",) if name in results for lat in results[name]["_idle"]]
        results["writer_idle_pooled_p99_ms"] = ms(idle, 99)
        results["writer_idle_pooled_n"] = len(idle)
        for name in METHODS + ("pgtidy-rerun",):
            if name in results:
                results[name].pop("_idle")
                results[name].pop("_busy")
        results["load_after"] = os.getloadavg()
        results["checks"] = [{"check": c, "measured": v, "target": t, "met": m} for c, v, t, m in checks(results, opts)]
        admin.close()
        print(json.dumps({k: v for k, v in results.items() if k != "checks"}, indent=2, sort_keys=True, default=str))
        print("task instances: %d, writer %.0f transactions/s; %s cores, PostgreSQL %s; load %s -> %s" % (
            data["rows"]["task_instance"], opts.writer_rate, results["machine"]["nproc"],
            results["machine"]["postgres"], "/".join("%.2f" % v for v in results["load_before"]),
            "/".join("%.2f" % v for v in results["load_after"])))
        print(table(results, opts))
        if opts.json:
            with open(opts.json, "w") as fh:
                json.dump(results, fh, indent=2, sort_keys=True, default=str)
                fh.write("\n")
    finally:
        pg.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
