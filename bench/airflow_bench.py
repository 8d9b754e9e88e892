"""pgtidy airflow_prune against Airflow's own `airflow db clean --skip-archive`, on copies of one Airflow database.

A private PostgreSQL (default durability) gets Airflow 3.3's schema from the real ``airflow db migrate``; the
Airflow history of the tests (tests/airflow/make_history.py: real dag.test() runs with mapped tasks, XComs,
retries, asset events, moved back in time) is written by the installed Airflow, and the finished runs of its
ETL DAG older than the retention are copied by SQL (run, task instances, XComs, rendered fields, task maps,
earlier tries, audit entries; each copy a few seconds older than its source) until the database holds
--task-instances task instances. Each method prunes its own copy (CREATE DATABASE ... TEMPLATE) with a 90-day
retention of dag runs and of the audit log:

  db-clean   Airflow's run_cleanup (what `airflow db clean --skip-archive -y` calls), in-process in
             the interpreter of --airflow-python, tables dag_run and log: one DELETE per table, the rows
             of the runs going by PostgreSQL's ON DELETE CASCADE
  pgtidy     airflow_prune's core (run_prune), keep_runs_per_dag 1, no budget caps, max_wal_rate 0

Measured for each: wall time, rows deleted (PostgreSQL's n_tup_del over the tables, cascades included), rows
per second (db clean's over its in-process time, without the interpreter's start), the longest transaction
(sampled every 50 ms from pg_stat_activity), and the rows left per table; then pgtidy's re-run on its clean
copy. The two keep different runs on purpose: `db clean` keeps each DAG's
newest non-manual run by start date and deletes unfinished runs; airflow_prune keeps unfinished runs, each
DAG's newest run, the newest scheduled run by logical date and the newest asset-triggered run (docs/airflow.md).
Not measured yet: a concurrent writer's latency, WAL per row.

Usage: python bench/airflow_bench.py [--task-instances N] [--airflow-python PY] [--json out.json]
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

from _bench_common import machine  # noqa: E402
from airflow_fixture import airflow_env, run_airflow, run_script  # noqa: E402
from pgserver import PgServer  # noqa: E402

sys.path.insert(0, os.path.join(tempfile.gettempdir(), "pgtidy-bench-collections"))
RETENTION_DAYS = 90
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


def collection_root():
    """The collection at ansible_collections/pgtidy/maintenance, for the module's core imports."""
    root = os.path.join(tempfile.gettempdir(), "pgtidy-bench-collections")
    target = os.path.join(root, "ansible_collections", "pgtidy")
    os.makedirs(target, exist_ok=True)
    link = os.path.join(target, "maintenance")
    if not os.path.islink(link):
        os.symlink(ROOT, link)
    return root


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
        cur.execute("CREATE TEMP TABLE m2 AS SELECT m.*, r.id AS new_id FROM m JOIN dag_run AS r"
                    " ON r.dag_id = 'pgtidy_etl' AND r.run_id = m.new_run")
        cur.execute("CREATE INDEX ON m2 (old_run)")
        cur.execute("ANALYZE m2")
        join = "JOIN m2 AS m ON t.dag_id = 'pgtidy_etl' AND t.run_id = m.old_run"
        copy_rows(cur, "task_instance", join, {"id": "gen_random_uuid()", "run_id": "m.new_run"})
        copy_rows(cur, "task_instance_history", join, {"task_instance_id": "gen_random_uuid()",
                                                       "run_id": "m.new_run"})
        copy_rows(cur, "xcom", join, {"run_id": "m.new_run", "dag_run_id": "m.new_id"})
        copy_rows(cur, "rendered_task_instance_fields", join, {"run_id": "m.new_run"})
        copy_rows(cur, "task_map", join, {"run_id": "m.new_run"})
        copy_rows(cur, "log", join, {"id": "omit", "run_id": "m.new_run"})
        conn.commit()
    return {"source_runs": runs, "copies_per_run": rounds}


def counts(dsn):
    with psycopg.connect(dsn) as conn:
        return {t: conn.execute('SELECT count(*) FROM "%s"' % t).fetchone()[0] for t in TABLES}


def deleted_rows(dsn):
    with psycopg.connect(dsn) as conn:
        return int(conn.execute("SELECT coalesce(sum(n_tup_del), 0) FROM pg_stat_user_tables").fetchone()[0])


class LongestTransaction(threading.Thread):
    """Samples the longest open transaction of a client session on a database every 50 ms."""

    def __init__(self, dsn, db):
        super().__init__(daemon=True)
        self.dsn, self.db, self.longest, self.stop = dsn, db, 0.0, threading.Event()

    def run(self):
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                # Client sessions only: autovacuum workers cleaning up after the deletes are not the method's.
                row = conn.execute("SELECT max(extract(epoch FROM clock_timestamp() - xact_start)) FROM"
                                   " pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
                                   " AND backend_type = 'client backend' AND xact_start IS NOT NULL",
                                   (self.db,)).fetchone()
                self.longest = max(self.longest, float(row[0] or 0))
                time.sleep(0.05)


def measure(pg, db, work):
    sampler = LongestTransaction(pg.dsn("postgres"), db)
    sampler.start()
    deleted0 = deleted_rows(pg.dsn(db))
    t0 = time.monotonic()
    extra = work()
    seconds = time.monotonic() - t0
    sampler.stop.set()
    sampler.join()
    time.sleep(0.7)        # the statistics collector reports a little later
    deleted = deleted_rows(pg.dsn(db)) - deleted0
    extra = extra or {}
    # db clean's own time, without the interpreter's start and Airflow's import.
    work_s = extra.get("in_process_seconds", seconds)
    out = {"seconds": round(seconds, 2), "rows_deleted": deleted, "rows_per_s": round(deleted / max(work_s, 0.001)),
           "longest_txn_s": round(sampler.longest, 2), "left": counts(pg.dsn(db))}
    out.update(extra)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task-instances", type=int, default=200000)
    parser.add_argument("--airflow-python", default=os.environ.get("PGTIDY_AIRFLOW_PYTHON") or
                        os.path.join(ROOT, ".venv-airflow-3", "bin", "python"))
    parser.add_argument("--json")
    opts = parser.parse_args()
    collection_root()
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._airflow.rules import AirflowProfile
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.prune import run_prune

    pg = PgServer(settings={"max_connections": "40"}).start()
    home = tempfile.mkdtemp(prefix="pgtidy-airflow-bench-")
    try:
        template = "airflow_bench_tpl"
        pg.create_db(template)
        env = airflow_env(pg, template, home)
        log("airflow db migrate and the real Airflow history ...")
        run_airflow(opts.airflow_python, ["-m", "airflow", "db", "migrate"], env, "airflow db migrate")
        run_script(opts.airflow_python, "make_history.py", env)
        log("copying runs up to %d task instances ..." % opts.task_instances)
        t0 = time.monotonic()
        data = multiply(pg.dsn(template), opts.task_instances)
        pg.psql("VACUUM ANALYZE", template)
        data["seconds"] = round(time.monotonic() - t0, 1)
        data["rows"] = counts(pg.dsn(template))
        log("data: %s" % json.dumps(data))
        results = {"data": data}
        with psycopg.connect(pg.dsn(template)) as conn:
            results["machine"] = machine(conn)

        def clone(name):
            pg.psql('CREATE DATABASE "%s" TEMPLATE "%s"' % (name, template))
            return name

        db = clone("bench_db_clean")
        script = os.path.join(home, "clean.py")
        with open(script, "w") as fh:
            fh.write(CLEAN)

        def db_clean():
            out = os.path.join(home, "clean.json")
            subprocess.run([opts.airflow_python, script, out], env=airflow_env(pg, db, home), check=True,
                           capture_output=True)
            with open(out) as fh:
                return {"in_process_seconds": round(json.load(fh)["seconds"], 2)}
        log("db-clean ...")
        results["db-clean"] = measure(pg, db, db_clean)

        db = clone("bench_pgtidy")
        params = {"login_host": "127.0.0.1", "login_port": pg.port, "login_user": "postgres", "login_password": "",
                  "login_db": db, "ssl_mode": "disable", "lock_file": os.path.join(home, "pgtidy.lock"),
                  "lock_wait": 5, "dag_run_retention_days": RETENTION_DAYS, "keep_runs_per_dag": 1,
                  "log_retention_days": RETENTION_DAYS, "asset_event_retention_days": -1,
                  "job_retention_days": -1, "import_error_retention_days": -1, "max_rows": 0,
                  "max_duration": 0, "max_wal_bytes": "0", "max_wal_rate": 0}

        def pgtidy():
            result = run_prune(params, AirflowProfile())
            assert not result["failed_handlers"] and not result["capped"], result["handlers"]
            return {"deleted_total": result["deleted_total"],
                    "longest_batch_s": max(h["longest_batch_s"] for h in result["handlers"].values()),
                    "batches": sum(h["batches"] for h in result["handlers"].values())}
        log("pgtidy ...")
        results["pgtidy"] = measure(pg, db, pgtidy)
        log("pgtidy re-run ...")
        results["pgtidy-rerun"] = measure(pg, db, pgtidy)
        results["vs_db_clean"] = round(results["pgtidy"]["rows_per_s"] / max(1, results["db-clean"]["rows_per_s"]), 2)
        text = json.dumps(results, indent=2, sort_keys=True)
        print(text)
        if opts.json:
            with open(opts.json, "w") as fh:
                fh.write(text + "\n")
    finally:
        pg.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
