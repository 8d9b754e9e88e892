"""Draining a large backlog as the timers role's drain does: run after capped run until nothing is past retention.

A private PostgreSQL (default durability) gets the Dagster schema from the real ``dagster instance migrate`` and
event_logs filled by SQL to --rows rows with the event mix and 180-day spread of real runs (bench/_prune_data.py,
the same seeding as bench/prune_bench.py). The retention is run retention of --retention-days days on every
finished status (``run_retention_days``), so about 90 % of the rows (the runs older than that, and their events)
are past retention with --retention-days 30; every other option keeps dagster_prune's default, budgets and pacing
included (max_rows 1,000,000, max_duration 1,800 s, max_wal_bytes 1 GiB, max_wal_rate, max_replica_lag).

A writer inserts events at a steady rate (bench/_prune_workers.py, as in prune_bench) for --idle-seconds alone,
then during the whole drain. Each run is the real core (``run_prune`` in a process of its own); the next one
starts --interval seconds after the last ended, while the last was capped, as the drain service does (the
role's default interval is 5 minutes; the bench's default 0 measures the work, and the report adds the
interval the role would wait). After the drain: VACUUM (what autovacuum would do), then pg_repack of event_logs
through the collection's repack core (the monthly repack job), and the database size at each step.

Measured: wall time to zero backlog (work, and with the role's interval between runs), rows and WAL per run,
WAL per deleted row, the writer's p50/p99 during the drain against idle, the database size before, after the
drain (and VACUUM), and after the repack; and, from the measured rate and bytes per row, the time to drain a
131 GiB database of the same shape.

Usage: python bench/drain_bench.py [--rows 10000000] [--retention-days 30] [--interval 0] [--json out.json]
       [--set OPTION=VALUE]
The full size (10 million rows, about 14 GB) takes hours to seed and drain on two shared cores;
--rows 300000 --set max_rows=50000 shows the mechanics in a few minutes.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import psycopg  # noqa: E402

from _bench_common import collection_on_path, finish, lsn, machine, percentile, set_options  # noqa: E402
from prune_bench import WRITER_RUN, Bench, spawn  # noqa: E402

TARGET_SIZE = 131 * 2 ** 30          # the database this product grew from
TARGETS = {"drain_hours_131gib": 48.0, "writer_p99_ratio": 2.0}
ROLE_INTERVAL_S = 300                # timers_prune_drain_interval's default


def db_size(admin, db):
    return admin.execute("SELECT pg_database_size(%s)", (db,)).fetchone()[0]


class DrainBench(Bench):
    """prune_bench's cluster, seeding and writer; one database drained run after run."""

    def backlog(self, db):
        collection_on_path()
        from ansible_collections.pgtidy.maintenance.plugins.module_utils._dagster.rules import DagsterProfile
        from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.prune import run_prune
        result = run_prune(self.params(db, max_rows=0), DagsterProfile(), check_mode=True)
        return result["deleted_total"]

    def repack(self, db):
        collection_on_path()
        from ansible_collections.pgtidy.maintenance.plugins.module_utils._repack.repack import run_repack
        with psycopg.connect(self.pg.dsn(db), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_repack")
        params = {k: v for k, v in self.params(db).items() if k in (
            "login_host", "login_port", "login_user", "login_password", "login_db", "ssl_mode", "lock_file",
            "lock_wait")}
        params.update(tables=["event_logs"], repack_command=os.path.join(self.pg.bindir, "pg_repack"),
                      max_duration=0)
        t0 = time.monotonic()
        result = run_repack(params)
        return {"seconds": round(time.monotonic() - t0, 1), "msg": result.get("msg")}

    def run(self):
        self.pg.start()
        db = "drain"
        try:
            self.admin = psycopg.connect(self.pg.dsn("postgres"), autocommit=True)
            report = {"machine": machine(self.admin), "rows": self.opts.rows, "writer_rate": self.opts.writer_rate,
                      "retention_days": self.opts.retention_days, "interval_s": self.opts.interval,
                      "options": self.opts.pgtidy_options, "load_before": os.getloadavg()}
            self.log("seeding %d event_logs rows" % self.opts.rows)
            took, size = self.build(db, self.opts.rows)
            self.admin.execute("CHECKPOINT")
            report["seed"] = {"fill_s": round(took, 1), "event_logs_bytes": size, "database_bytes": db_size(self.admin, db)}
            self.log("seeded in %.0f s: event_logs %.2f GiB, database %.2f GiB" % (
                took, size / 2.0 ** 30, report["seed"]["database_bytes"] / 2.0 ** 30))
            if self.opts.count:
                t0 = time.monotonic()
                report["backlog_before"] = self.backlog(db)
                report["backlog_count_s"] = round(time.monotonic() - t0, 1)
                self.log("backlog: %d rows past retention (%.0f %% of event_logs), counted in %.0f s" % (
                    report["backlog_before"], 100.0 * report["backlog_before"] / self.opts.rows,
                    report["backlog_count_s"]))

            writer = spawn("writer", {"conninfo": self.pg.dsn(db), "rate": self.opts.writer_rate, "run_id": WRITER_RUN})
            writer.stdout.readline()
            idle_start, idle_lsn = time.monotonic(), lsn(self.admin)
            time.sleep(self.opts.idle_seconds)
            idle_end, drain_lsn = time.monotonic(), lsn(self.admin)
            writer_wal_rate = (drain_lsn - idle_lsn) / (idle_end - idle_start)
            runs, busy_spans = [], []
            drain_start = time.monotonic()
            while True:
                start_lsn, r0 = lsn(self.admin), time.monotonic()
                result = finish(spawn("pgtidy", {"params": self.params(db)}))
                r1 = time.monotonic()
                busy_spans.append((r0, r1))
                remaining = sum(h["remaining"] or 0 for h in result["handlers"].values())
                wal = max(0, lsn(self.admin) - start_lsn - writer_wal_rate * (r1 - r0))
                runs.append({"deleted": result["deleted"], "seconds": round(r1 - r0, 1), "wal_bytes": int(wal),
                             "capped_by": result["capped_by"], "remaining": remaining,
                             "longest_txn_s": round(result["longest_txn_s"], 3),
                             "paused_s": (result.get("pacing") or {}).get("paused_s_total")})
                self.log("  run %d: %d rows in %.0f s (%s), %d left, %.0f B of WAL a row" % (
                    len(runs), result["deleted"], r1 - r0, result["capped_by"] or "finished", remaining,
                    wal / max(1, result["deleted"])))
                if result["failed_handlers"]:
                    raise RuntimeError("handlers failed: %s" % result["failed_handlers"])
                if not result["capped"]:
                    break
                if result["deleted"] == 0:
                    raise RuntimeError("a capped run deleted nothing: the drain would stall")
                time.sleep(self.opts.interval)
            drain_s = time.monotonic() - drain_start
            writer.terminate()
            samples = finish(writer)["latencies"]
            idle = [lat for at, lat in samples if idle_start <= at < idle_end]
            busy = [lat for at, lat in samples if any(a <= at < b for a, b in busy_spans)]
            deleted = sum(r["deleted"] for r in runs)
            work_s = sum(r["seconds"] for r in runs)
            wal = sum(r["wal_bytes"] for r in runs)
            report["runs"] = runs
            report["drain"] = {
                "runs": len(runs), "deleted": deleted, "wall_s": round(drain_s, 1), "work_s": round(work_s, 1),
                "wall_with_role_interval_s": round(work_s + (len(runs) - 1) * ROLE_INTERVAL_S, 1),
                "rows_per_s": round(deleted / work_s, 1) if work_s else None,
                "wal_bytes": wal, "wal_bytes_per_row": round(wal / deleted, 1) if deleted else None,
                "backlog_after": self.backlog(db),
            }
            report["writer"] = {
                "idle_p50_ms": round(1000 * percentile(idle, 50), 2), "idle_p99_ms": round(1000 * percentile(idle, 99), 2),
                "busy_p50_ms": round(1000 * percentile(busy, 50), 2), "busy_p99_ms": round(1000 * percentile(busy, 99), 2),
                "idle_inserts": len(idle), "busy_inserts": len(busy)}
            report["writer"]["p99_ratio"] = round(report["writer"]["busy_p99_ms"] / report["writer"]["idle_p99_ms"], 2)
            if not self.opts.count:     # what the drain deleted, and what a count finds left after it
                report["backlog_before"] = deleted + report["drain"]["backlog_after"]
            report["size"] = {"before": report["seed"]["database_bytes"], "after_drain": db_size(self.admin, db)}
            self.admin.execute("CHECKPOINT")
            with psycopg.connect(self.pg.dsn(db), autocommit=True) as conn:
                conn.execute("VACUUM (ANALYZE) event_logs")
                conn.execute("VACUUM (ANALYZE) runs")
            report["size"]["after_vacuum"] = db_size(self.admin, db)
            report["repack"] = self.repack(db)
            report["size"]["after_repack"] = db_size(self.admin, db)
            report["extrapolation"] = extrapolate(report)
            report["load_after"] = os.getloadavg()
            self.admin.close()
            return report
        finally:
            self.pg.stop()


def extrapolate(report):
    """The seed's 131 GiB at the measured pace: rows in proportion to the bytes, 90 % of them past retention."""
    drain = report["drain"]
    bytes_per_row = report["seed"]["database_bytes"] / float(report["rows"])
    rows = TARGET_SIZE / bytes_per_row
    backlog = rows * report["backlog_before"] / float(report["rows"])
    max_rows = report["options"].get("max_rows", 1_000_000) or backlog
    runs = math.ceil(backlog / max_rows)
    work_h = backlog / drain["rows_per_s"] / 3600 if drain["rows_per_s"] else None
    return {"database_bytes": TARGET_SIZE, "bytes_per_row": round(bytes_per_row), "rows": int(rows),
            "backlog_rows": int(backlog), "runs": runs, "work_hours": round(work_h, 1) if work_h else None,
            "hours_with_role_interval": round(work_h + (runs - 1) * ROLE_INTERVAL_S / 3600.0, 1) if work_h else None,
            "wal_bytes": int(backlog * (drain["wal_bytes_per_row"] or 0))}


def table(report):
    d, w, s, x = report["drain"], report["writer"], report["size"], report["extrapolation"]
    gib = 2.0 ** 30
    lines = [
        "| measure | value | target |", "|---|---|---|",
        "| event_logs rows / past retention | %d / %d (%.0f %%) | 90 %% past retention |" % (
            report["rows"], report["backlog_before"], 100.0 * report["backlog_before"] / report["rows"]),
        "| runs to zero backlog | %d (backlog after: %d) | 0 left |" % (d["runs"], d["backlog_after"]),
        "| wall time, runs back to back | %.0f s (%.0f rows/s) | |" % (d["work_s"], d["rows_per_s"] or 0),
        "| wall time with the role's 5 min between runs | %.0f s | |" % d["wall_with_role_interval_s"],
        "| WAL per deleted row | %.0f B (%.2f GiB in all) | |" % (d["wal_bytes_per_row"] or 0, d["wal_bytes"] / gib),
        "| writer p99, idle / during the drain | %.2f / %.2f ms (x%.2f) | <= x%.1f |" % (
            w["idle_p99_ms"], w["busy_p99_ms"], w["p99_ratio"], TARGETS["writer_p99_ratio"]),
        "| database size before / after drain / after VACUUM / after repack | %.2f / %.2f / %.2f / %.2f GiB | |" % (
            s["before"] / gib, s["after_drain"] / gib, s["after_vacuum"] / gib, s["after_repack"] / gib),
        "| 131 GiB of the same shape: backlog, runs | %d rows, %d runs | |" % (x["backlog_rows"], x["runs"]),
        "| 131 GiB: work / with the role's interval | %s h / %s h | <= %.0f h |" % (
            x["work_hours"], x["hours_with_role_interval"], TARGETS["drain_hours_131gib"]),
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="event_logs rows (default 10,000,000)")
    parser.add_argument("--retention-days", type=int, default=30,
                        help="run_retention_days for every finished status (default 30: about 90 %% past retention)")
    parser.add_argument("--interval", type=float, default=0.0, help="seconds between runs (the role waits 300)")
    parser.add_argument("--writer-rate", type=float, default=50.0, help="writer inserts per second (default 50)")
    parser.add_argument("--idle-seconds", type=float, default=20.0, help="writer-only time before the drain")
    parser.add_argument("--set", dest="pgtidy_set", action="append", default=[], metavar="OPTION=VALUE",
                        help="a dagster_prune option instead of its default (repeatable), e.g. --set max_rows=50000")
    parser.add_argument("--no-count", dest="count", action="store_false",
                        help="skip the check-mode count of the backlog before the drain (long on a large table); the"
                             " backlog is then what the drain deleted plus what is left")
    parser.add_argument("--json", help="write the full report to this file")
    opts = parser.parse_args(argv)
    retire = {"run_retention_days": {s: opts.retention_days for s in ("success", "failure", "canceled")}}
    opts.pgtidy_options = set_options(parser, opts.pgtidy_set, retire)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    report = DrainBench(opts).run()
    print("event_logs rows: %d, writer %.0f inserts/s; %s cores, PostgreSQL %s; load %s -> %s" % (
        report["rows"], report["writer_rate"], report["machine"]["nproc"], report["machine"]["postgres"],
        "/".join("%.2f" % v for v in report["load_before"]), "/".join("%.2f" % v for v in report["load_after"])))
    print(table(report))
    if opts.json:
        with open(opts.json, "w") as fh:
            json.dump(report, fh, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
