"""Child processes of the prune benchmark, one per pruning method and one for the writer.

Each runs in a fresh interpreter so its peak resident memory is its own. Usage:
``python _prune_workers.py MODE JSON_ARGS``; the result is one JSON object on stdout.
"""
from __future__ import annotations

import datetime
import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

from _bench_common import collection_on_path, paced, peak_rss_mb  # noqa: E402


HANDLER_FIELDS = ("deleted", "batches", "duration_s", "longest_batch_s", "wal_bytes", "remaining", "capped")


def run_pgtidy(args):
    collection_on_path()
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._dagster.rules import DagsterProfile
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.prune import run_prune
    t0 = time.monotonic()
    result = run_prune(args["params"], DagsterProfile())
    elapsed = time.monotonic() - t0
    handlers = result["handlers"]
    return {
        "elapsed_s": elapsed,
        "deleted": result["deleted_total"],
        "longest_txn_s": max([h["longest_batch_s"] for h in handlers.values()] or [0.0]),
        "batches": sum(h["batches"] for h in handlers.values()),
        "engine_wal_bytes": result["wal_bytes"],
        "capped": result["capped"],
        "capped_by": result["capped_by"],
        "failed_handlers": result["failed_handlers"],
        "wal_compression": result.get("wal_compression"),
        "pacing": result.get("pacing"),
        "handlers": {name: {k: h[k] for k in HANDLER_FIELDS} for name, h in handlers.items()},
        "peak_rss_mb": peak_rss_mb(),
    }


def _cutoff(text):
    return datetime.datetime.fromisoformat(text)


def run_recipe(args):
    """One DELETE per category, each in its own transaction."""
    import psycopg
    out = {"statements": [], "deleted": 0, "longest_txn_s": 0.0}
    t0 = time.monotonic()
    with psycopg.connect(args["conninfo"], autocommit=True) as conn:
        for name, statement, cutoff in args["categories"]:
            s0 = time.monotonic()
            with conn.transaction():
                cur = conn.execute("DELETE FROM event_logs AS t WHERE " + statement, {"cutoff": _cutoff(cutoff)})
                count = cur.rowcount
            took = time.monotonic() - s0
            out["statements"].append({"category": name, "deleted": count, "seconds": round(took, 3)})
            out["deleted"] += count
            out["longest_txn_s"] = max(out["longest_txn_s"], took)
    out["elapsed_s"] = time.monotonic() - t0
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def run_batch_loop(args):
    """Per category: SELECT id ... LIMIT n, then DELETE ... WHERE id IN (...), one transaction each."""
    import psycopg
    size = args.get("batch", 200)
    out = {"categories": [], "deleted": 0, "longest_txn_s": 0.0, "batches": 0}
    t0 = time.monotonic()
    with psycopg.connect(args["conninfo"], autocommit=True) as conn:
        for name, statement, cutoff in args["categories"]:
            c0 = time.monotonic()
            deleted = 0
            select = "SELECT t.id FROM event_logs AS t WHERE " + statement + " LIMIT %(limit)s"
            while True:
                s0 = time.monotonic()
                with conn.transaction():
                    ids = [r[0] for r in conn.execute(select, {"cutoff": _cutoff(cutoff), "limit": size})]
                    if ids:
                        conn.execute("DELETE FROM event_logs WHERE id = ANY(%s)", (ids,))
                out["longest_txn_s"] = max(out["longest_txn_s"], time.monotonic() - s0)
                out["batches"] += 1
                deleted += len(ids)
                if len(ids) < size:
                    break
            out["categories"].append({"category": name, "deleted": deleted,
                                      "seconds": round(time.monotonic() - c0, 3)})
            out["deleted"] += deleted
    out["elapsed_s"] = time.monotonic() - t0
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def run_writer(args):
    """Insert one event every 1/rate seconds until SIGTERM; report per-insert latency."""
    import psycopg
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    rate = float(args["rate"])
    latencies = []
    run_id = args["run_id"]
    body = json.dumps({"__class__": "EventLogEntry", "dagster_event": None, "level": 20,
                       "run_id": run_id, "user_message": "writer line " + "y" * 200})
    with psycopg.connect(args["conninfo"], autocommit=True) as conn:
        print("ready", flush=True)
        for _tick in paced(rate, stop):
            s0 = time.monotonic()
            conn.execute("INSERT INTO event_logs (run_id, event, dagster_event_type, timestamp, step_key)"
                         " VALUES (%s, %s, NULL, now() AT TIME ZONE 'utc', 'writer')", (run_id, body))
            latencies.append((s0, time.monotonic() - s0))
    return {"latencies": latencies}


MODES = {"pgtidy": run_pgtidy, "recipe": run_recipe, "batch": run_batch_loop, "writer": run_writer}

if __name__ == "__main__":
    mode, raw = sys.argv[1], sys.argv[2]
    result = MODES[mode](json.loads(raw))
    sys.stdout.write(json.dumps(result) + "\n")
