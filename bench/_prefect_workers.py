"""Child processes of the Prefect prune benchmark: one per prune and one for the writer.

Each runs in a fresh interpreter so its peak resident memory is its own. Usage:
``python _prefect_workers.py MODE JSON_ARGS``; the result is one JSON object on stdout.

- ``pgtidy``: ``run_prune(params, PrefectProfile())``, once or in phases (one handler group each);
- ``prefect``: Prefect 3.8's own vacuum functions, called in-process in the order its services run them,
  with the same retention; run with the interpreter of an environment that has ``prefect``;
- ``writer``: a log line and an event with two resources per tick, one transaction each, until SIGTERM.

Prune modes report, per phase, the rows deleted (``n_tup_del``) and the rows examined (rows read by
sequential scans plus index entries read, ``seq_tup_read`` + ``idx_tup_read``) from PostgreSQL's
statistics, summed over the benchmark's tables.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

from _bench_common import collection_on_path, paced, peak_rss_mb  # noqa: E402

TABLES = ("flow_run", "flow_run_state", "task_run", "task_run_state", "log", "artifact", "artifact_collection",
          "events", "event_resources")
STATS_SQL = (
    "SELECT s.relname, s.seq_tup_read, coalesce((SELECT sum(i.idx_tup_read) FROM pg_stat_user_indexes AS i"
    " WHERE i.relid = s.relid), 0), s.n_tup_del FROM pg_stat_user_tables AS s"
    " WHERE s.schemaname = 'public' AND s.relname = ANY(%s)")
HANDLER_FIELDS = ("deleted", "cascaded", "scanned", "batches", "duration_s", "longest_batch_s", "wal_bytes",
                  "remaining", "capped", "repointed", "status")
# pgtidy's handlers in the groups Prefect's vacuum functions cover, in the order the phased run takes them.
PHASES = (
    ("flow runs", {"prune_orphans": False, "prune_artifact_collections": False, "event_retention_days": -1}),
    ("orphans", {"flow_run_retention_days": -1, "prune_artifact_collections": False, "event_retention_days": -1}),
    ("collections", {"flow_run_retention_days": -1, "prune_orphans": False, "event_retention_days": -1}),
    ("events", {"flow_run_retention_days": -1, "prune_orphans": False, "prune_artifact_collections": False}),
)
WRITER_EVENT = "bench.writer.tick"


def _delta(before, after):
    """What happened between two ``stats``: rows examined (rows read by sequential scans, index entries
    read) and deleted, in all and per table."""
    out = {"examined": 0, "deleted": 0, "tables": {}}
    for table, (seq, idx, deleted) in after.items():
        s0, i0, d0 = before.get(table, (0, 0, 0))
        ds, di, dd = int(seq - s0), int(idx - i0), int(deleted - d0)
        out["examined"] += ds + di
        out["deleted"] += dd
        if ds or di or dd:
            out["tables"][table] = {"examined": ds + di, "seq_rows": ds, "index_entries": di, "deleted": dd}
    return out


def stats(conn):
    """Per table: (rows read by sequential scans, index entries read, rows deleted) as the statistics have them."""
    conn.execute("SELECT pg_stat_clear_snapshot()")
    return {r[0]: (r[1], r[2], r[3]) for r in conn.execute(STATS_SQL, (list(TABLES),)).fetchall()}


def settled_stats(conn, wait=1.5):
    """Statistics once the pruning backends have flushed theirs (they do when they exit)."""
    time.sleep(wait)
    return stats(conn)


# -- pgtidy ----------------------------------------------------------------------------------------

def _summary(result):
    handlers = result["handlers"]
    return {
        "deleted": result["deleted_total"],
        "longest_txn_s": max([h["longest_batch_s"] for h in handlers.values()] or [0.0]),
        "batches": sum(h["batches"] for h in handlers.values()),
        "engine_wal_bytes": result["wal_bytes"],
        "capped": result["capped"],
        "capped_by": result["capped_by"],
        "failed_handlers": result["failed_handlers"],
        "handlers": {name: {k: h[k] for k in HANDLER_FIELDS if k in h} for name, h in handlers.items()},
    }


def run_pgtidy(args):
    """One run_prune; or, with ``phased``, one per handler group with the statistics of each."""
    import psycopg
    collection_on_path()
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._prefect.rules import PrefectProfile
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.prune import run_prune
    phased = bool(args.get("phased"))
    phases = PHASES if phased else (("all", {}),)
    if phased:
        # Rows examined per handler group: without the exact row counts of tables under 100,000 rows that
        # every run makes for its rows_before / rows_after (the single run keeps them, and they show there).
        PrefectProfile.table_rows = lambda self, conn, schema: {}
    out = {"phases": [], "deleted": 0, "longest_txn_s": 0.0, "handlers": {}, "batches": 0, "engine_wal_bytes": 0,
           "capped": False, "capped_by": None, "failed_handlers": []}
    with psycopg.connect(args["conninfo"], autocommit=True) as conn:
        before = stats(conn) if phased else None
        for name, extra in phases:
            p0 = time.monotonic()
            result = run_prune(dict(args["params"], **extra), PrefectProfile())
            took = time.monotonic() - p0
            summary = _summary(result)
            phase = {"phase": name, "seconds": round(took, 3), "deleted_reported": summary["deleted"],
                     "longest_txn_s": summary["longest_txn_s"], "handlers": summary["handlers"]}
            if phased:
                after = settled_stats(conn)
                phase.update(_delta(before, after))
                before = after
            out["phases"].append(phase)
            out["deleted"] += summary["deleted"]
            out["longest_txn_s"] = max(out["longest_txn_s"], summary["longest_txn_s"])
            out["handlers"].update(summary["handlers"])
            out["batches"] += summary["batches"]
            out["engine_wal_bytes"] += summary["engine_wal_bytes"]
            out["capped"] = out["capped"] or summary["capped"]
            out["capped_by"] = out["capped_by"] or summary["capped_by"]
            out["failed_handlers"] += summary["failed_handlers"]
        out["elapsed_s"] = sum(p["seconds"] for p in out["phases"])
    out["peak_rss_mb"] = peak_rss_mb()
    return out


# -- Prefect's own vacuum ------------------------------------------------------------------------------

PREFECT_ORDER = ("vacuum_old_flow_runs", "vacuum_orphaned_logs", "vacuum_orphaned_artifacts",
                 "vacuum_stale_artifact_collections", "vacuum_events_with_retention_overrides", "vacuum_old_events")


def run_prefect(args):
    """Prefect 3.8's db_vacuum task functions with the settings in ``args["env"]``, one after the other.

    Every maintenance session is one transaction: its duration is the transaction's. Between functions the
    vacuum's own connection flushes its statistics, so each function's rows examined and deleted are its own.
    """
    import asyncio
    import contextlib

    os.environ.update(args["env"])
    import sqlalchemy as sa
    from prefect.server.database import provide_database_interface
    from prefect.server.services import db_vacuum

    longest = [0.0]
    sessions = [0]
    original = db_vacuum._maintenance_session

    @contextlib.asynccontextmanager
    async def timed_session(db, with_for_update=False):
        t0 = time.monotonic()
        async with original(db, with_for_update=with_for_update) as session:
            yield session
        longest[0] = max(longest[0], time.monotonic() - t0)
        sessions[0] += 1

    async def read_stats(db):
        async with original(db) as session:
            await session.execute(sa.text("SELECT pg_stat_force_next_flush()"))
        await asyncio.sleep(0.2)
        async with original(db) as session:
            await session.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
            rows = (await session.execute(sa.text(STATS_SQL.replace("%s", ":tables")),
                                          {"tables": list(TABLES)})).all()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    async def main():
        db = provide_database_interface()
        db_vacuum._maintenance_session = timed_session
        out = {"phases": [], "deleted": 0}
        before = await read_stats(db)
        t0 = time.monotonic()
        paused = 0.0
        for name in PREFECT_ORDER:
            longest[0], sessions[0] = 0.0, 0
            p0 = time.monotonic()
            await getattr(db_vacuum, name)(db=db)
            took = time.monotonic() - p0
            s0 = time.monotonic()
            after = await read_stats(db)
            paused += time.monotonic() - s0
            phase = {"phase": name, "seconds": round(took, 3), "longest_txn_s": round(longest[0], 3),
                     "transactions": sessions[0]}
            phase.update(_delta(before, after))
            before = after
            out["phases"].append(phase)
            out["deleted"] += phase["deleted"]
        out["elapsed_s"] = time.monotonic() - t0 - paused
        out["longest_txn_s"] = max(p["longest_txn_s"] for p in out["phases"])
        out["batches"] = sum(p["transactions"] for p in out["phases"])
        return out

    out = asyncio.run(main())
    out["peak_rss_mb"] = peak_rss_mb()
    return out


# -- the writer --------------------------------------------------------------------------------------

def run_writer(args):
    """Every 1/rate seconds one transaction: a log line of a running flow run, an event and two resources."""
    import uuid

    import psycopg
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    rate = float(args["rate"])
    latencies = []
    flow_run = args["flow_run_id"]
    with psycopg.connect(args["conninfo"], autocommit=True) as conn:
        print("ready", flush=True)
        for n, _tick in enumerate(paced(rate, stop), start=1):
            event_id = uuid.uuid4()
            resource = "bench.writer.%d" % (n % 50)
            s0 = time.monotonic()
            with conn.transaction():
                conn.execute("INSERT INTO log (name, level, flow_run_id, message, timestamp)"
                             " VALUES ('prefect.flow_runs', 20, %s, %s, now())",
                             (flow_run, "writer line %d %s" % (n, "y" * 120)))
                conn.execute(
                    "INSERT INTO events (id, occurred, event, resource_id, resource, related_resource_ids, related,"
                    " payload, received, recorded) VALUES (%s, now(), %s, %s, %s, '[\"bench.writer\"]',"
                    " %s, '{}', now(), now())",
                    (event_id, WRITER_EVENT, resource, json.dumps({"prefect.resource.id": resource}),
                     json.dumps([{"prefect.resource.id": "bench.writer", "prefect.resource.role": "tag"}])))
                conn.execute(
                    "INSERT INTO event_resources (occurred, resource_id, resource_role, resource, event_id)"
                    " VALUES (now(), %s, '', %s, %s), (now(), 'bench.writer', 'tag', %s, %s)",
                    (resource, json.dumps({"prefect.resource.id": resource}), event_id,
                     json.dumps({"prefect.resource.id": "bench.writer"}), event_id))
            latencies.append((s0, time.monotonic() - s0))
    return {"latencies": latencies}


MODES = {"pgtidy": run_pgtidy, "prefect": run_prefect, "writer": run_writer}

if __name__ == "__main__":
    mode, raw = sys.argv[1], sys.argv[2]
    result = MODES[mode](json.loads(raw))
    sys.stdout.write(json.dumps(result, default=str) + "\n")
