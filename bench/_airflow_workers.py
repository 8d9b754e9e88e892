"""The concurrent writer of the Airflow benchmark, in a process of its own.

Usage: ``python _airflow_workers.py writer JSON_ARGS``; until SIGTERM it writes what a running Airflow writes,
one transaction every 1/rate seconds, and prints one JSON object with the latency of each transaction.

A writer run goes as the scheduler and the task runner take it: the dag run is created with its task
instances in one transaction (the scheduler's ``create_dagrun`` and ``verify_integrity``); then, task by task,
the task instance is set running, an audit ``log`` row is written (the API server's ``running`` event), and the
task instance is set to success; then the run is marked successful. The writer's rows belong to a DAG of its
own (``WRITER_DAG``), younger than any retention, so neither method deletes them and the comparison of the rows
left leaves them out.
"""
from __future__ import annotations

import json
import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

WRITER_DAG = "bench_writer"
TASKS = ("extract", "transform", "load")


def _runs(conn, version):
    """One writer run after the other, as (kind, statements) transactions: statements are (SQL, params)."""
    n = 0
    tag = os.getpid()
    while True:
        n += 1
        run = "manual__bench_writer_%d_%d" % (tag, n)
        key = {"dag": WRITER_DAG, "run": run}
        yield "create_run", [
            ("INSERT INTO dag_run (dag_id, run_id, run_type, state, queued_at, start_date, run_after, triggered_by,"
             " conf, created_dag_version_id, created_at, updated_at) VALUES (%(dag)s, %(run)s, 'manual', 'running',"
             " now(), now(), now(), 'TIMETABLE', '{}', %(version)s, now(), now())", dict(key, version=version)),
            ("INSERT INTO task_instance (id, task_id, dag_id, run_id, map_index, try_number, max_tries, pool,"
             " pool_slots, queue, priority_weight, operator, state, dag_version_id, updated_at)"
             " SELECT gen_random_uuid(), t, %(dag)s, %(run)s, -1, 0, 1, 'default_pool', 1, 'default', 1,"
             " '_PythonDecoratedOperator', 'scheduled', %(version)s, now() FROM unnest(%(tasks)s::text[]) AS t",
             dict(key, version=version, tasks=list(TASKS)))]
        for task in TASKS:
            ti = dict(key, task=task)
            where = " WHERE dag_id = %(dag)s AND run_id = %(run)s AND task_id = %(task)s AND map_index = -1"
            yield "task_running", [("UPDATE task_instance SET state = 'running', try_number = 1, start_date = now(),"
                                    " hostname = 'bench', pid = 4242, updated_at = now()" + where, ti)]
            yield "audit_log", [("INSERT INTO log (dttm, dag_id, task_id, map_index, event, run_id, owner, extra,"
                                 " try_number) VALUES (now(), %(dag)s, %(task)s, -1, 'running', %(run)s, 'airflow',"
                                 " '{\"host_name\": \"bench\"}', 1)", ti)]
            yield "task_success", [("UPDATE task_instance SET state = 'success', end_date = now(),"
                                    " duration = extract(epoch FROM now() - start_date), updated_at = now()" + where,
                                    ti)]
        yield "run_success", [("UPDATE dag_run SET state = 'success', end_date = now(), updated_at = now()"
                               " WHERE dag_id = %(dag)s AND run_id = %(run)s", key)]


def run_writer(args):
    """One transaction every 1/rate seconds until SIGTERM; the latency of each, with its start and kind."""
    import time

    import psycopg

    from _bench_common import paced
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    rate = float(args["rate"])
    latencies = []
    with psycopg.connect(args["conninfo"], autocommit=True) as conn:
        row = conn.execute("SELECT dag_version_id FROM task_instance WHERE dag_version_id IS NOT NULL"
                           " LIMIT 1").fetchone()
        work = _runs(conn, row[0] if row else None)
        print("ready", flush=True)
        for _tick in paced(rate, stop):
            kind, statements = next(work)
            s0 = time.monotonic()
            with conn.transaction():
                for statement, params in statements:
                    conn.execute(statement, params)
            latencies.append((s0, time.monotonic() - s0, kind))
    return {"latencies": latencies}


MODES = {"writer": run_writer}

if __name__ == "__main__":
    result = MODES[sys.argv[1]](json.loads(sys.argv[2]))
    sys.stdout.write(json.dumps(result) + "\n")
