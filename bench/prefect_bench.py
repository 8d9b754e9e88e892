"""pgtidy prefect_prune against Prefect 3.8's own database vacuum, on copies of the same Prefect database.

A private PostgreSQL (default durability) gets Prefect's schema from the real ``prefect server database
upgrade``; a real Prefect server runs a dozen flow runs (bench/_prefect_history.py), and their rows are
copied by SQL (bench/_prefect_data.py) to --flow-runs flow runs spread over 180 days: with the default
50,000, about 1.1M logs, 1M events and 2.8M event resources (the real server writes 2.8 resources per
event), 200,000 task runs, 600,000 task run states and 60,000 artifacts; 1 % of the flow runs are then
deleted the way the API deletes them, leaving their logs and artifacts behind. Each method prunes its own
copy (CREATE DATABASE ... TEMPLATE) with the same retention (Prefect's defaults with the flow run vacuum
on: flow runs 90 days, events 7 days, heartbeats 7 days, orphans, stale artifact collections):

  prefect   Prefect 3.8's db_vacuum task functions, called in-process in the order its services schedule
            them (vacuum_old_flow_runs, vacuum_orphaned_logs, vacuum_orphaned_artifacts,
            vacuum_stale_artifact_collections, vacuum_events_with_retention_overrides, vacuum_old_events),
            batch size 200, in the interpreter of --prefect-python
  pgtidy    prefect_prune's core (run_prune) with its defaults and no budget caps (max_wal_rate 8MB a second)
  pgtidy-unpaced  the same with max_wal_rate 0: the engine's own speed (also the phases, levels and scaling runs)

while a writer adds a log line and an event with two resources 25 times a second. Measured for each:
rows deleted (PostgreSQL's n_tup_del over the Prefect tables, so cascades count the same for both) and
compared (rows and a checksum of ids left per table), rows per second, the longest transaction, WAL (the
writer's own rate subtracted), peak memory of the pruning process, the writer's p50/p99 against the same
writer idle, rows examined (rows read by sequential scans plus index entries read) per row deleted, and
then a re-run of the same method on the clean copy: its time and rows examined. A second pgtidy copy is
pruned in phases (flow runs, orphans, collections, events) to give rows examined per handler group next to
Prefect's per function. --levels adds pgtidy with log retention by level (DEBUG 7 days, INFO 30 days) and
its re-run, --scaling pgtidy deleting the same rows from a database of a fifth of --flow-runs and from one
five times its size whose extra flow runs are all inside the retention.

Usage: python bench/prefect_bench.py [--flow-runs N] [--repeat N] [--levels] [--scaling] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import psycopg  # noqa: E402

import _prefect_data  # noqa: E402
from _bench_common import finish, lsn, machine, median, percentile, spawn as _spawn  # noqa: E402
from pgserver import PgServer  # noqa: E402

WORKER = os.path.join(HERE, "_prefect_workers.py")
RETENTION = {"flow_run_retention_days": 90, "event_retention_days": 7,
             "event_retention_overrides": {"prefect.flow-run.heartbeat": 7}}
UNCAPPED = {"max_rows": 0, "max_duration": 0, "max_wal_bytes": "0"}
LEVELS = {"debug": 7, "info": 30}
TARGETS = {"vs_prefect": 1.5, "longest_txn_s": 1.0, "rerun_s": 2.0, "scaling_ratio": 1.3}
# What is left, per table, excluding the writer's rows: a count and an order-free checksum of the ids.
LEFT_SQL = {
    "flow_run": "SELECT count(*), coalesce(sum(hashtext(id::text)::bigint), 0) FROM flow_run WHERE id <> %(w)s",
    "flow_run_state": "SELECT count(*), coalesce(sum(hashtext(id::text)::bigint), 0) FROM flow_run_state",
    "task_run": "SELECT count(*), coalesce(sum(hashtext(id::text)::bigint), 0) FROM task_run",
    "task_run_state": "SELECT count(*), coalesce(sum(hashtext(id::text)::bigint), 0) FROM task_run_state",
    "log": "SELECT count(*), coalesce(sum(hashtext(id::text)::bigint), 0) FROM log"
           " WHERE flow_run_id IS DISTINCT FROM %(w)s",
    "artifact": "SELECT count(*), coalesce(sum(hashtext(id::text)::bigint), 0) FROM artifact",
    "artifact_collection": "SELECT count(*), coalesce(sum(hashtext(key || latest_id::text)::bigint), 0)"
                           " FROM artifact_collection",
    "events": "SELECT count(*), coalesce(sum(hashtext(id::text)::bigint), 0) FROM events WHERE event <> %(e)s",
    "event_resources": "SELECT count(*), coalesce(sum(hashtext(id::text)::bigint), 0) FROM event_resources"
                       " WHERE resource_id NOT LIKE 'bench.writer%%'",
}


# The engine's own cost, without the default max_wal_rate: the unpaced method, the phases, log retention by
# level and the scaling runs (paced, a run's time follows its WAL at the default rate, not its reads).
UNPACED = {"max_wal_rate": 0}
UNPACED_METHODS = ("pgtidy-unpaced", "pgtidy-phased", "pgtidy-levels")


def spawn(mode, args, python=None):
    return _spawn(WORKER, mode, args, python)


def default_prefect_python():
    configured = os.environ.get("PGTIDY_PREFECT_PYTHON")
    if configured:
        return configured
    return os.path.join(ROOT, ".venv-prefect", "bin", "python")


class Bench:
    def __init__(self, opts):
        self.opts = opts
        self.pg = PgServer(settings={"max_connections": "40"})
        self.scratch = tempfile.mkdtemp(prefix="pgtidy-prefect-bench-")
        self.admin = None

    def log(self, msg):
        print(msg, file=sys.stderr, flush=True)

    # -- methods ----------------------------------------------------------------------------------
    def pgtidy_params(self, db, **extra):
        p = {"login_host": "127.0.0.1", "login_port": self.pg.port, "login_user": "postgres",
             "login_password": "", "login_db": db, "ssl_mode": "disable",
             "lock_file": os.path.join(self.scratch, "pgtidy.lock"), "lock_wait": 5}
        p.update(RETENTION)
        p.update(UNCAPPED)
        p.update(extra)
        return p

    def prefect_env(self, db):
        return {"PREFECT_HOME": os.path.join(self.scratch, "prefect-home"),
                "PREFECT_API_DATABASE_CONNECTION_URL": self.pg.url(db, "postgresql+asyncpg"),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_LOGGING_LEVEL": "WARNING",
                "PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD": str(RETENTION["flow_run_retention_days"] * 86400),
                "PREFECT_SERVER_SERVICES_DB_VACUUM_BATCH_SIZE": "200",
                "PREFECT_SERVER_EVENTS_RETENTION_PERIOD": "P%dD" % RETENTION["event_retention_days"],
                "PREFECT_SERVER_SERVICES_DB_VACUUM_EVENT_RETENTION_OVERRIDES": json.dumps(
                    {k: v * 86400 for k, v in RETENTION["event_retention_overrides"].items()})}

    def start_prune(self, method, db, **extra):
        if method in UNPACED_METHODS:
            extra = dict(UNPACED, **extra)
        if method == "prefect":
            return spawn("prefect", {"env": self.prefect_env(db)}, self.opts.prefect_python)
        return spawn("pgtidy", {"conninfo": self.pg.dsn(db), "params": self.pgtidy_params(db, **extra),
                                "phased": method == "pgtidy-phased"})

    # -- database ---------------------------------------------------------------------------------
    def copy(self, db, template):
        self.admin.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % db)
        self.admin.execute('CREATE DATABASE "%s" TEMPLATE "%s" STRATEGY FILE_COPY' % (db, template))

    def drop(self, db):
        self.admin.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % db)

    def build(self, db, flow_runs, history="prefect_history", **fill):
        self.copy(db, history)
        with psycopg.connect(self.pg.dsn(db), autocommit=True) as conn:
            took, copies = _prefect_data.fill(conn, flow_runs, log=self.log, **fill)
            orphaned = _prefect_data.make_orphans(conn)
            _prefect_data.finish(conn)
            sizes = _prefect_data.sizes(conn)
        self.log("  %s: %s" % (db, ", ".join("%s %d" % (t, s["rows"]) for t, s in sizes.items())))
        return {"fill_s": round(took, 1), "copies": copies, "orphaned_flow_runs": orphaned, "tables": sizes,
                "bytes": sum(s["bytes"] for s in sizes.values())}

    def left(self, db):
        with psycopg.connect(self.pg.dsn(db)) as conn:
            out = {}
            for table, query in LEFT_SQL.items():
                count, checksum = conn.execute(query, {"w": _prefect_data.WRITER_FLOW_RUN,
                                                       "e": _prefect_data.WRITER_EVENT}).fetchone()
                out[table] = [count, int(checksum)]
            return out

    def stats(self, db, settle=2.0):
        time.sleep(settle)
        import _prefect_workers
        with psycopg.connect(self.pg.dsn(db), autocommit=True) as conn:
            return _prefect_workers.stats(conn)

    # -- one measurement ----------------------------------------------------------------------------
    def measure(self, method, template, rerun=True, **extra):
        """Prune a fresh copy by ``method`` while the writer writes; then the same method again, alone."""
        import _prefect_workers
        db = "m_" + method.replace("-", "_")
        self.copy(db, template)
        self.admin.execute("CHECKPOINT")
        writer = spawn("writer", {"conninfo": self.pg.dsn(db), "rate": self.opts.writer_rate,
                                  "flow_run_id": _prefect_data.WRITER_FLOW_RUN})
        writer.stdout.readline()
        idle_start, idle_lsn = time.monotonic(), lsn(self.admin)
        time.sleep(self.opts.idle_seconds)
        idle_end, start_lsn = time.monotonic(), lsn(self.admin)
        writer_wal_rate = (start_lsn - idle_lsn) / (idle_end - idle_start)
        before = self.stats(db, settle=0)
        worker = self.start_prune(method, db, **extra)
        t0 = time.monotonic()
        result = finish(worker)
        t1 = time.monotonic()
        end_lsn = lsn(self.admin)
        writer.terminate()
        samples = finish(writer)["latencies"]
        after = self.stats(db)
        work = _prefect_workers._delta(before, after)
        seconds = result["elapsed_s"]
        row = {
            "method": method,
            "deleted": work["deleted"],
            "deleted_reported": result["deleted"],
            "examined": work["examined"],
            "examined_per_deleted": round(work["examined"] / work["deleted"], 2) if work["deleted"] else None,
            "tables": work["tables"],
            "seconds": round(seconds, 2),
            "wall_s": round(t1 - t0, 2),
            "rows_per_s": round(work["deleted"] / seconds, 1) if seconds else None,
            "longest_txn_s": round(result["longest_txn_s"], 3),
            "transactions": result.get("batches"),
            "wal_bytes": int(max(0, (end_lsn - start_lsn) - writer_wal_rate * (t1 - t0))),
            "peak_rss_mb": round(result["peak_rss_mb"], 1),
            "phases": result.get("phases"),
            "handlers": result.get("handlers"),
            "failed_handlers": result.get("failed_handlers"),
        }
        idle = [lat for at, lat in samples if idle_start <= at < idle_end]
        busy = [lat for at, lat in samples if t0 <= at < t1]
        row.update({
            "writer_idle_p50_ms": round(1000 * percentile(idle, 50), 2) if idle else None,
            "writer_idle_p99_ms": round(1000 * percentile(idle, 99), 2) if idle else None,
            "writer_p50_ms": round(1000 * percentile(busy, 50), 2) if busy else None,
            "writer_p99_ms": round(1000 * percentile(busy, 99), 2) if busy else None,
        })
        row["left"] = self.left(db)
        if rerun:
            # Right after the prune, the indexes still hold the entries of the rows just deleted; a weekly
            # re-run finds them vacuumed (autovacuum runs after deletes this size). Both are measured.
            row["rerun"] = self.rerun(method, db, extra)
            with psycopg.connect(self.pg.dsn(db), autocommit=True) as conn:
                for table in _prefect_data.TABLES + ("artifact_collection",):
                    conn.execute("VACUUM (ANALYZE) %s" % table)
            row["rerun_vacuumed"] = self.rerun(method, db, extra)
        self.drop(db)
        return row

    def rerun(self, method, db, extra):
        """The same method again on the pruned copy, alone: its time and what it examined."""
        import _prefect_workers
        self.admin.execute("CHECKPOINT")
        before = self.stats(db)
        again = finish(self.start_prune(method, db, **extra))
        work = _prefect_workers._delta(before, self.stats(db))
        out = {"seconds": round(again["elapsed_s"], 2), "deleted": work["deleted"], "examined": work["examined"],
               "tables": work["tables"], "longest_txn_s": again["longest_txn_s"], "handlers": again.get("handlers"),
               "phases": again.get("phases")}
        with psycopg.connect(self.pg.dsn(db)) as conn:
            out["distinct_flow_runs_in_log"], out["log_rows"] = conn.execute(
                "SELECT count(DISTINCT flow_run_id), count(*) FROM log").fetchone()
        return out

    def scaling(self):
        """pgtidy pruning the same rows from a database and from one five times its size.

        Both are built with the same anchor time: the larger one has the same copies plus four times as many
        inside every retention, so the rows past retention (ids included) are the same.
        """
        small = max(1000, self.opts.flow_runs // 5)
        anchor = self.admin.execute("SELECT now()").fetchone()[0]
        sizes = {}
        for name, recent in (("scale_1x", 0), ("scale_5x", 4 * small)):
            self.log("building %s (%d flow runs)" % (name, small + recent))
            sizes[name] = self.build(name, small, recent_flow_runs=recent, anchor=anchor)
        out = []
        for name in ("scale_1x", "scale_5x"):
            rounds = []
            for rnd in range(self.opts.repeat):
                db = "scale_copy"
                self.copy(db, name)
                self.admin.execute("CHECKPOINT")
                result = finish(spawn("pgtidy", {"conninfo": self.pg.dsn(db), "params": self.pgtidy_params(db, **UNPACED)}))
                rounds.append({"deleted": result["deleted"], "seconds": round(result["elapsed_s"], 2),
                               "longest_txn_s": result["longest_txn_s"],
                               "handlers": {k: (h["deleted"], h.get("duration_s")) for k, h in result["handlers"].items()}})
                self.log("  %s round %d: %d rows in %.1f s" % (name, rnd + 1, result["deleted"], result["elapsed_s"]))
                self.drop(db)
            out.append({"database": name, "flow_runs": sizes[name]["tables"]["flow_run"]["rows"],
                        "bytes": sizes[name]["bytes"], "deleted": median([r["deleted"] for r in rounds]),
                        "seconds": median([r["seconds"] for r in rounds]),
                        "longest_txn_s": max(r["longest_txn_s"] for r in rounds), "rounds": rounds})
            self.drop(name)
        return out

    def run(self):
        self.pg.start()
        try:
            self.admin = psycopg.connect(self.pg.dsn("postgres"), autocommit=True)
            report = {"machine": machine(self.admin), "flow_runs": self.opts.flow_runs,
                      "writer_rate": self.opts.writer_rate, "load_before": os.getloadavg(),
                      "retention": RETENTION}
            self.log("recording a real Prefect history")
            _prefect_data.record_history(self.pg, "prefect_history", self.opts.prefect_python, log=self.log)
            with psycopg.connect(self.pg.dsn("prefect_history"), autocommit=True) as conn:
                report["template_flow_runs"] = _prefect_data.capture(conn)
            self.log("building bench_template (%d flow runs)" % self.opts.flow_runs)
            report["database"] = self.build("bench_template", self.opts.flow_runs)
            methods = ["prefect", "pgtidy", "pgtidy-unpaced"]
            runs = {m: [] for m in methods}
            for rnd in range(self.opts.repeat):
                for method in methods:
                    self.log("measuring %s (round %d of %d)" % (method, rnd + 1, self.opts.repeat))
                    runs[method].append(self.measure(method, "bench_template"))
                    row = runs[method][-1]
                    self.log("  %s: %d rows in %.1f s, longest transaction %.2f s; re-run %.2f s, after VACUUM %.2f s"
                             % (method, row["deleted"], row["seconds"], row["longest_txn_s"], row["rerun"]["seconds"],
                                row["rerun_vacuumed"]["seconds"]))
            report["repeat"] = self.opts.repeat
            report["results"] = [combine(runs[m]) for m in methods]
            if self.opts.phased:
                self.log("measuring pgtidy in phases (rows examined per handler group)")
                report["phased"] = self.measure("pgtidy-phased", "bench_template", rerun=False)
            if self.opts.levels:
                self.log("measuring pgtidy with log retention by level")
                report["levels"] = self.measure("pgtidy-levels", "bench_template", log_retention_days=LEVELS)
            if self.opts.scaling:
                report["scaling"] = self.scaling()
            report["load_after"] = os.getloadavg()
            self.admin.close()
            return report
        finally:
            self.pg.stop()


def combine(rows):
    """One row per method from its rounds: medians of times and rates, the worst bounds."""
    out = dict(rows[len(rows) // 2])
    for key in ("seconds", "rows_per_s", "wal_bytes"):
        out[key] = median([r[key] for r in rows])
    for key in ("longest_txn_s", "peak_rss_mb"):
        out[key] = max(r[key] for r in rows)
    for key in ("rerun", "rerun_vacuumed"):
        out[key] = dict(out[key], seconds=median([r[key]["seconds"] for r in rows]))
    out["rounds"] = [{k: r[k] for k in ("deleted", "seconds", "rows_per_s", "longest_txn_s", "wal_bytes")}
                     for r in rows]
    return out


def analyse(report):
    """The targets, as a list of (name, value, target, met)."""
    by = {r["method"]: r for r in report["results"]}
    pg, pf = by["pgtidy"], by["prefect"]
    checks = []
    for name in [m for m in by if m != "prefect"]:
        same = by[name]["left"] == pf["left"]
        differing = sorted(t for t in by[name]["left"] if by[name]["left"][t] != pf["left"][t])
        checks.append(("same rows left as prefect (count and id checksum per table): %s" % name,
                       "yes" if same else ", ".join(differing), "yes", same))
    for name in [m for m in by if m != "prefect"]:
        ratio = by[name]["rows_per_s"] / pf["rows_per_s"] if pf["rows_per_s"] else None
        checks.append(("throughput %s/prefect" % name, round(ratio, 2) if ratio else None,
                       ">= %s" % TARGETS["vs_prefect"], ratio is not None and ratio >= TARGETS["vs_prefect"]))
        checks.append(("longest transaction %s (s)" % name, by[name]["longest_txn_s"], "<= 1.0",
                       by[name]["longest_txn_s"] <= TARGETS["longest_txn_s"]))
    checks.append(("longest transaction prefect (s)", pf["longest_txn_s"], "-", None))
    levels = report.get("levels")
    if levels:
        checks.append(("longest transaction pgtidy with log retention by level (s)", levels["longest_txn_s"],
                       "<= 1.0", levels["longest_txn_s"] <= TARGETS["longest_txn_s"]))
        checks.append(("re-run after VACUUM with log retention by level (s)", levels["rerun_vacuumed"]["seconds"],
                       "<= %s" % TARGETS["rerun_s"], levels["rerun_vacuumed"]["seconds"] <= TARGETS["rerun_s"]))
    for key, when in (("rerun_vacuumed", "after VACUUM"), ("rerun", "right after the prune")):
        rerun = pg[key]
        distinct, rows = rerun["distinct_flow_runs_in_log"], rerun["log_rows"]
        walked = (rerun["handlers"].get("orphaned_logs") or {}).get("scanned")
        checks.append(("re-run %s: flow run ids the orphaned_logs walk examined (distinct in log %d, log rows %d)"
                       % (when, distinct, rows), walked, "<= %d" % distinct, walked is not None and walked <= distinct))
        log = rerun["tables"].get("log", {})
        # Tables under 100,000 rows are also counted exactly for the result's rows_before / rows_after.
        checks.append(("re-run %s: log index entries read, log rows read by sequential scans" % when,
                       "%d, %d" % (log.get("index_entries", 0), log.get("seq_rows", 0)),
                       "O(flow runs): <= %d, 0" % (2 * distinct + 100) if rows >= 100_000 else "-",
                       (log.get("index_entries", 0) <= 2 * distinct + 100 and not log.get("seq_rows"))
                       if rows >= 100_000 else None))
        checks.append(("re-run %s: pgtidy (s)" % when, rerun["seconds"], "<= %s" % TARGETS["rerun_s"],
                       rerun["seconds"] <= TARGETS["rerun_s"]))
        checks.append(("re-run %s: prefect (s)" % when, pf[key]["seconds"], "-", None))
        checks.append(("re-run %s: rows examined pgtidy / prefect" % when,
                       "%d / %d" % (rerun["examined"], pf[key]["examined"]), "-", None))
    for row in report["results"]:
        if row["writer_p99_ms"] and row["writer_idle_p99_ms"]:
            checks.append(("writer p99 pruning/idle (%s)" % row["method"],
                           round(row["writer_p99_ms"] / row["writer_idle_p99_ms"], 2), "-", None))
    if report.get("scaling"):
        small, big = report["scaling"][0], report["scaling"][-1]
        ratio = big["seconds"] / small["seconds"] if small["seconds"] else None
        checks.append(("scaling: same rows from a 5x database (%d / %d rows deleted), time 5x/1x"
                       % (big["deleted"], small["deleted"]), round(ratio, 2) if ratio else None,
                       "<= %s" % TARGETS["scaling_ratio"], ratio is not None and ratio <= TARGETS["scaling_ratio"]))
    return checks


COLUMNS = (("method", "method", "%s"), ("deleted", "rows", "%d"), ("seconds", "s", "%.1f"),
           ("rows_per_s", "rows/s", "%.0f"), ("longest_txn_s", "longest txn s", "%.3f"),
           ("transactions", "txns", "%d"), ("wal_bytes", "WAL MB", None), ("peak_rss_mb", "peak RSS MB", "%.1f"),
           ("writer_idle_p50_ms", "idle p50 ms", "%.2f"), ("writer_idle_p99_ms", "idle p99 ms", "%.2f"),
           ("writer_p50_ms", "p50 ms", "%.2f"), ("writer_p99_ms", "p99 ms", "%.2f"),
           ("examined_per_deleted", "examined/deleted", "%.2f"), ("rerun_s", "re-run s", "%.2f"),
           ("rerun_examined", "re-run examined", "%d"), ("rerun_vacuumed_s", "re-run after VACUUM s", "%.2f"),
           ("rerun_vacuumed_examined", "re-run after VACUUM examined", "%d"))


def _cells(row):
    cells = []
    for key, _title, fmt in COLUMNS:
        value = row.get(key)
        if key.startswith("rerun"):
            which, _sep, field = key.rpartition("_")
            value = (row.get(which) or {}).get({"s": "seconds"}.get(field, field))
        if value is None:
            cells.append("-")
        elif key == "wal_bytes":
            cells.append("%.1f" % (value / 1e6))
        else:
            cells.append(fmt % value)
    return cells


PHASE_GROUPS = (("flow runs", ("vacuum_old_flow_runs",)), ("orphans", ("vacuum_orphaned_logs", "vacuum_orphaned_artifacts")),
                ("collections", ("vacuum_stale_artifact_collections",)),
                ("events", ("vacuum_events_with_retention_overrides", "vacuum_old_events")))


def table(report):
    lines = ["| " + " | ".join(c[1] for c in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    rows = list(report["results"]) + [report[k] for k in ("levels",) if report.get(k)]
    for r in rows:
        lines.append("| " + " | ".join(_cells(r)) + " |")
    lines += ["", "| check | measured | target | met |", "|---|---|---|---|"]
    for name, value, target, met in report["checks"]:
        lines.append("| %s | %s | %s | %s |" % (name, value, target, "-" if met is None else ("yes" if met else "NO")))
    pf = {p["phase"]: p for p in next(r for r in report["results"] if r["method"] == "prefect")["phases"]}
    lines += ["", "| handler group | prefect: function | deleted | examined | examined/deleted | s | longest txn s |"
              " pgtidy: deleted | examined | examined/deleted | s | longest txn s |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    ours = {p["phase"]: p for p in (report.get("phased") or {}).get("phases") or []}
    for group, functions in PHASE_GROUPS:
        mine = ours.get(group)
        for n, fn in enumerate(functions):
            p = pf.get(fn, {})
            cells = [group if n == 0 else "", fn, p.get("deleted"), p.get("examined"),
                     round(p["examined"] / p["deleted"], 2) if p.get("deleted") else "-", p.get("seconds"),
                     p.get("longest_txn_s")]
            if n == 0 and mine:
                cells += [mine["deleted"], mine["examined"],
                          round(mine["examined"] / mine["deleted"], 2) if mine["deleted"] else "-",
                          mine["seconds"], mine["longest_txn_s"]]
            else:
                cells += [""] * 5
            lines.append("| " + " | ".join("-" if c is None else str(c) for c in cells) + " |")
    pg = next(r for r in report["results"] if r["method"] == "pgtidy")
    lines += ["", "| pgtidy handler | deleted | cascaded | scanned | batches | s | longest txn s |"
              " re-run after VACUUM: scanned | s |", "|---|---|---|---|---|---|---|---|---|"]
    rerun = (pg.get("rerun_vacuumed") or {}).get("handlers") or {}
    extra = (report.get("levels") or {}).get("handlers") or {}
    extra_rerun = ((report.get("levels") or {}).get("rerun_vacuumed") or {}).get("handlers") or {}
    for name, h in list(pg["handlers"].items()) + [(k, v) for k, v in extra.items() if k.startswith("logs_")]:
        again = rerun.get(name) or extra_rerun.get(name) or {}
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, h.get("deleted"), sum((h.get("cascaded") or {}).values()) if h.get("cascaded") else "-",
            h.get("scanned", "-"), h.get("batches"), h.get("duration_s"), h.get("longest_batch_s"),
            again.get("scanned", "-"), again.get("duration_s", "-")))
    if report.get("scaling"):
        lines += ["", "| database | flow runs | size GB | deleted | s (median) | rounds s | longest txn s |",
                  "|---|---|---|---|---|---|---|"]
        for s in report["scaling"]:
            lines.append("| %s | %d | %s | %d | %.2f | %s | %.3f |" % (
                s["database"], s["flow_runs"], "%.1f" % (s["bytes"] / 1e9) if s.get("bytes") else "-", s["deleted"],
                s["seconds"], " / ".join("%.2f" % r["seconds"] for r in s["rounds"]), s["longest_txn_s"]))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--flow-runs", type=int, default=50_000,
                        help="flow runs in the database (default 50000: about 1.1M logs and 1M events)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of each method on fresh copies (default 1)")
    parser.add_argument("--writer-rate", type=float, default=25.0, help="writer transactions per second")
    parser.add_argument("--idle-seconds", type=float, default=6.0, help="writer-only time before each prune")
    parser.add_argument("--prefect-python", default=default_prefect_python(),
                        help="an interpreter with tests/requirements-prefect.txt installed")
    parser.add_argument("--no-phased", dest="phased", action="store_false",
                        help="skip the pgtidy run in phases (rows examined per handler group)")
    parser.add_argument("--levels", action="store_true", help="also pgtidy with log retention by level")
    parser.add_argument("--scaling", action="store_true",
                        help="also pgtidy pruning the same rows from a database of --flow-runs/5 flow runs and one"
                             " five times its size (the extra runs inside every retention)")
    parser.add_argument("--json", help="write the full report to this file")
    opts = parser.parse_args(argv)
    if not os.path.exists(opts.prefect_python):
        parser.error("no Prefect interpreter at %s: create .venv-prefect (tests/requirements-prefect.txt) or set"
                     " PGTIDY_PREFECT_PYTHON" % opts.prefect_python)
    # Stopped with SIGTERM (kill, timeout): unwind, so the private cluster is stopped and removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    report = Bench(opts).run()
    report["checks"] = analyse(report)
    db = report["database"]
    print("%d flow runs (%d copies of %d real ones), %s; %.1f GB; writer %.0f transactions/s; %s cores, %s GiB RAM,"
          " PostgreSQL %s; load %s -> %s" % (
              report["flow_runs"], db["copies"], report["template_flow_runs"],
              ", ".join("%s %d" % (t, s["rows"]) for t, s in db["tables"].items()), db["bytes"] / 1e9,
              report["writer_rate"], report["machine"]["nproc"], report["machine"]["ram_gib"],
              report["machine"]["postgres"], "/".join("%.2f" % x for x in report["load_before"]),
              "/".join("%.2f" % x for x in report["load_after"])))
    print(table(report))
    if opts.json:
        with open(opts.json, "w") as fh:
            json.dump(report, fh, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
