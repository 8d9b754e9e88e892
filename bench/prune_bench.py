"""pgtidy dagster_prune against the usual recipes, on copies of the same Dagster database.

A private PostgreSQL (default durability: fsync and synchronous_commit on) gets a Dagster schema
from the real ``dagster instance migrate``; event_logs is filled by SQL to --rows rows with the
event mix, JSON sizes and 180-day time spread of real runs (bench/_prune_data.py). Each method then
prunes its own copy (CREATE DATABASE ... TEMPLATE) of the same data, in the same run:

  pgtidy         dagster_prune core with default settings (run_prune, in a child process), paced
  pgtidy-uncompressed  unpaced, with wal_compression: server (the server's own WAL setting)
  recipe         one unbounded DELETE per category (Dagster's database-tuning clean-up)
  recipe+idx     the same after the two partial indexes that page recommends
  batch200       SELECT id ... LIMIT 200 + DELETE ... WHERE id IN (...) per category (Prefect's vacuum loop)
  pgtidy-walcap  pgtidy with a small max_wal_bytes, to check the WAL budget holds
  pgtidy-unpaced pgtidy without pacing (max_wal_rate 0, max_replica_lag 0): the engine as it was
  pgtidy-rate=X  pgtidy with max_wal_rate X (e.g. pgtidy-rate=4MB); pgtidy-lag=X with max_replica_lag X;
                 any pgtidy method takes more options after slashes: pgtidy-rate=4MB/batch_size=1000

Every method deletes the same rows (the categories and cutoffs of pgtidy's defaults, finished runs
only); the row counts left behind are compared. Measured for each: rows deleted per second, the
longest single transaction, WAL bytes (pg_current_wal_lsn() difference, the writer's own share
subtracted), peak RSS of the pruning process, and p50/p99 latency of a writer inserting events at a
steady rate during the prune against the same writer idle just before. Every method runs --repeat
rounds (default 3, interleaved): rates are medians, bounds the worst round, and the writer's
percentiles come from the latencies of all rounds pooled.

With --standby a streaming hot standby of the bench cluster replays every prune, and the standby's
replay lag (bytes and PostgreSQL's replay_lag) is sampled every 0.1 s during each prune and until it
has caught up again: a second table.

Usage: python bench/prune_bench.py [--rows N] [--repeat N] [--json out.json] [--scaling] [--set OPTION=VALUE]
       [--methods M,M,...] [--standby]
The default (300,000 rows, three rounds) takes about four minutes on two cores. --scaling adds pgtidy on a
1M and a 5M row table pruning the same 200,000 rows, --repeat times each on copies (about 10 more
minutes: most of it is loading and copying).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import psycopg  # noqa: E402

import _prune_data  # noqa: E402
from _bench_common import finish, lsn, machine, median, option_value, percentile, set_options, spawn as _spawn  # noqa: E402
from pgserver import PgServer  # noqa: E402

WORKER = os.path.join(HERE, "_prune_workers.py")
WRITER_RUN = "bench-writer-run"
FINISHED = ("EXISTS (SELECT 1 FROM runs AS r WHERE r.run_id = t.run_id"
            " AND r.status IN ('SUCCESS', 'FAILURE', 'CANCELED'))")
NOISE = ("HANDLED_OUTPUT", "LOADED_INPUT", "ENGINE_EVENT", "STEP_INPUT", "RESOURCE_INIT_STARTED",
         "RESOURCE_INIT_SUCCESS", "STEP_WORKER_STARTING", "STEP_WORKER_STARTED")
# Dagster's database-tuning page (docs.dagster.io/deployment/troubleshooting/database-tuning).
TUNING_INDEXES = (
    "CREATE INDEX idx_clear_event_logs_user_logs ON event_logs ((event::jsonb ->> 'level'), timestamp)"
    " WHERE dagster_event_type IS NULL",
    "CREATE INDEX idx_clear_event_logs_system_events ON event_logs (dagster_event_type, timestamp)"
    " WHERE dagster_event_type IS NOT NULL",
)
RECIPES = ("recipe", "recipe+idx", "batch200")
STANDBY = "bench_standby"
# Pacing the same engine: the options each pgtidy method adds to the defaults (and to --set).
UNPACED = {"max_wal_rate": "0", "max_replica_lag": "0"}
PACED_METHODS = {"pgtidy-unpaced": UNPACED, "pgtidy-uncompressed": UNPACED}
PACED_PREFIXES = {"pgtidy-rate=": "max_wal_rate", "pgtidy-lag=": "max_replica_lag"}
TARGETS = {"vs_recipe": 0.8, "vs_batch200": 3.0, "longest_txn_s": 1.0, "writer_p99_ratio": 2.0,
           "peak_rss_mb": 150.0, "scaling_ratio": 1.3, "wal_rate_ratio": 0.1}


def method_options(method):
    """The dagster_prune options a pgtidy method runs with, beyond the defaults and --set.

    A method may add options of its own after slashes: ``pgtidy-rate=4MB/batch_size=1000``.
    """
    name, *extra = method.split("/")
    options = {}
    if name in PACED_METHODS:
        options.update(PACED_METHODS[name])
    for prefix, option in PACED_PREFIXES.items():
        if name.startswith(prefix):
            options[option] = name[len(prefix):]
    for item in extra:
        key, _sep, value = item.partition("=")
        options[key] = option_value(value)
    return options


def categories(now):
    """The recipes' categories: pgtidy's default retention, written as a person would write them."""
    def cut(days):
        return (now - datetime.timedelta(days=days)).isoformat()
    logs = "t.dagster_event_type IS NULL AND (t.event::jsonb ->> 'level') = '%s' AND t.timestamp < %%(cutoff)s AND "
    noise = ", ".join("'%s'" % t for t in NOISE)
    planned = (
        "t.dagster_event_type = 'ASSET_MATERIALIZATION_PLANNED' AND t.asset_key IS NOT NULL"
        " AND t.timestamp < %(cutoff)s AND " + FINISHED +
        " AND EXISTS (SELECT 1 FROM event_logs AS m WHERE m.asset_key = t.asset_key"
        " AND m.dagster_event_type = 'ASSET_MATERIALIZATION' AND m.partition IS NOT DISTINCT FROM t.partition"
        " AND m.id > t.id)"
        " AND EXISTS (SELECT 1 FROM event_logs AS p WHERE p.asset_key = t.asset_key"
        " AND p.dagster_event_type = 'ASSET_MATERIALIZATION_PLANNED'"
        " AND p.partition IS NOT DISTINCT FROM t.partition AND p.id > t.id)")
    return [
        ("logs_debug", logs % 10 + FINISHED, cut(7)),
        ("logs_info", logs % 20 + FINISHED, cut(30)),
        ("logs_warning", logs % 30 + FINISHED, cut(90)),
        ("noise_events", "t.dagster_event_type IN (%s) AND t.timestamp < %%(cutoff)s AND %s" % (noise, FINISHED),
         cut(30)),
        ("planned_superseded", planned, cut(30)),
    ]


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def spawn(mode, args):
    return _spawn(WORKER, mode, args)


class Bench:
    def __init__(self, opts):
        self.opts = opts
        self.pg = PgServer(settings={"max_connections": "40"})
        self.lock_dir = tempfile.mkdtemp(prefix="pgtidy-bench-lock-")
        self.admin = None
        self.standby = None

    def log(self, msg):
        print(msg, file=sys.stderr, flush=True)

    def params(self, db, **extra):
        p = {"login_host": "127.0.0.1", "login_port": self.pg.port, "login_user": "postgres",
             "login_password": "", "login_db": db, "ssl_mode": "disable",
             "lock_file": os.path.join(self.lock_dir, "pgtidy.lock"), "lock_wait": 5}
        p.update(self.opts.pgtidy_options)
        p.update(extra)
        return p

    def build(self, db, rows):
        _prune_data.migrate(self.pg, db)
        with psycopg.connect(self.pg.dsn(db), autocommit=True) as conn:
            took = _prune_data.fill(conn, rows, log=self.log)
            conn.execute("INSERT INTO runs (run_id, pipeline_name, status, create_timestamp)"
                         " VALUES (%s, 'writer_job', 'STARTED', now() AT TIME ZONE 'utc')", (WRITER_RUN,))
            size = conn.execute("SELECT pg_total_relation_size('event_logs')").fetchone()[0]
        return took, size

    def rows_left(self, db):
        with psycopg.connect(self.pg.dsn(db)) as conn:
            return conn.execute("SELECT count(*) FROM event_logs WHERE run_id IS DISTINCT FROM %s",
                                (WRITER_RUN,)).fetchone()[0]

    def measure(self, method, template):
        """One prune of a fresh copy by ``method``; the row plus the writer's raw idle and busy latencies."""
        db = "m_" + re.sub(r"\W", "_", method)
        self.admin.execute('DROP DATABASE IF EXISTS "%s"' % db)
        self.admin.execute('CREATE DATABASE "%s" TEMPLATE "%s" STRATEGY FILE_COPY' % (db, template))
        extra = {"load_1min": round(os.getloadavg()[0], 2)}
        with psycopg.connect(self.pg.dsn(db), autocommit=True) as conn:
            if method == "recipe+idx":
                t0 = time.monotonic()
                for statement in TUNING_INDEXES:
                    conn.execute(statement)
                conn.execute("ANALYZE event_logs")
                extra["index_build_s"] = round(time.monotonic() - t0, 2)
        self.admin.execute("CHECKPOINT")
        if self.standby:
            self.caught_up()
        writer = spawn("writer", {"conninfo": self.pg.dsn(db), "rate": self.opts.writer_rate, "run_id": WRITER_RUN})
        writer.stdout.readline()
        idle_start, idle_lsn = time.monotonic(), lsn(self.admin)
        time.sleep(self.opts.idle_seconds)
        idle_end, start_lsn = time.monotonic(), lsn(self.admin)
        writer_wal_rate = (start_lsn - idle_lsn) / (idle_end - idle_start)
        if method.startswith("pgtidy"):
            params = self.params(db)
            if method == "pgtidy-walcap":
                params["max_wal_bytes"] = self.opts.wal_cap
            elif method == "pgtidy-uncompressed":
                params["wal_compression"] = "server"
            params.update(method_options(method))
            worker = spawn("pgtidy", {"params": params})
        else:
            args = {"conninfo": self.pg.dsn(db), "categories": categories(utc_now())}
            worker = spawn("recipe" if method.startswith("recipe") else "batch", args)
        sampler = LagSampler(self.pg.dsn("postgres")) if self.standby else None
        t0 = time.monotonic()
        result = finish(worker)
        t1 = time.monotonic()
        end_lsn = lsn(self.admin)
        if sampler:
            extra["standby"] = sampler.stop(end_lsn)
        writer.terminate()
        samples = finish(writer)["latencies"]
        wal = end_lsn - start_lsn
        row = {
            "method": method,
            "deleted": result["deleted"],
            "seconds": round(result["elapsed_s"], 3),
            "rows_per_s": round(result["deleted"] / result["elapsed_s"], 1) if result["elapsed_s"] else None,
            "longest_txn_s": round(result["longest_txn_s"], 3),
            "wal_bytes": int(max(0, wal - writer_wal_rate * (t1 - t0))),
            "wal_bytes_raw": int(wal),
            "peak_rss_mb": round(result["peak_rss_mb"], 1),
            "rows_left": self.rows_left(db),
        }
        row.update(extra)
        for key in ("batches", "capped", "capped_by", "failed_handlers", "handlers", "engine_wal_bytes",
                    "statements", "categories", "wal_compression"):
            if key in result:
                row[key] = result[key]
        row["wal_rate_run"] = round(row["wal_bytes"] / row["seconds"]) if row["seconds"] else None
        pacing = result.get("pacing")
        if pacing:
            row["max_wal_rate"] = pacing["limits"]["max_wal_rate"]
            row["wal_rate_batches"] = pacing["wal_rate_bytes_s"]
            row["wal_rate_peak"] = pacing["wal_rate_peak_bytes_s"]
            row["paused_s"] = pacing["paused_s_total"]
            row["paused_by"] = pacing["paused_s"]
            row["pacing_max_lag_bytes"] = pacing["max_replica_lag_bytes"]
        self.admin.execute('DROP DATABASE "%s" WITH (FORCE)' % db)
        idle = [lat for at, lat in samples if idle_start <= at < idle_end]
        busy = [lat for at, lat in samples if t0 <= at < t1]
        return row, idle, busy

    def scaling(self):
        """pgtidy deleting the same rows from a small and a big table: each size built once, pruned
        --repeat times on fresh copies; the median time counts."""
        out = []
        for rows in self.opts.scaling_rows:
            source = "scale_%d" % rows
            self.log("building %s (%d rows)" % (source, rows))
            self.build(source, rows)
            rounds = []
            for rnd in range(self.opts.repeat):
                db = source + "_copy"
                self.admin.execute('CREATE DATABASE "%s" TEMPLATE "%s" STRATEGY FILE_COPY' % (db, source))
                self.admin.execute("CHECKPOINT")
                # The engine's own cost: unpaced, or the WAL rate would set the time at both sizes.
                result = finish(spawn("pgtidy", {"params": self.params(db, max_rows=self.opts.scaling_delete,
                                                                       **UNPACED)}))
                rounds.append({"deleted": result["deleted"], "seconds": round(result["elapsed_s"], 3),
                               "batch_s": round(sum(h["duration_s"] for h in result["handlers"].values()), 3),
                               "longest_txn_s": result["longest_txn_s"], "peak_rss_mb": round(result["peak_rss_mb"], 1)})
                self.log("  round %d: pruned %d rows in %.1f s" % (rnd + 1, result["deleted"], result["elapsed_s"]))
                self.admin.execute('DROP DATABASE "%s" WITH (FORCE)' % db)
            out.append({"rows": rows, "deleted": median([r["deleted"] for r in rounds]),
                        "seconds": median([r["seconds"] for r in rounds]),
                        "batch_s": median([r["batch_s"] for r in rounds]),
                        "longest_txn_s": max(r["longest_txn_s"] for r in rounds),
                        "peak_rss_mb": max(r["peak_rss_mb"] for r in rounds), "rounds": rounds})
            self.admin.execute('DROP DATABASE "%s" WITH (FORCE)' % source)
        return out

    def run(self):
        self.pg.start()
        try:
            self.admin = psycopg.connect(self.pg.dsn("postgres"), autocommit=True)
            report = {"machine": machine(self.admin), "rows": self.opts.rows, "writer_rate": self.opts.writer_rate,
                      "load_before": os.getloadavg()}
            report["template"] = {"fill_s": 0, "event_logs_bytes": 0}
            if self.opts.methods:
                self.log("building the template (%d rows)" % self.opts.rows)
                took, size = self.build("bench_template", self.opts.rows)
                report["template"] = {"fill_s": round(took, 1), "event_logs_bytes": size}
            if self.opts.standby:
                self.log("starting a streaming standby (pg_basebackup)")
                self.standby = PgServer(settings=dict(self.pg.settings, cluster_name=STANDBY,
                                                      wal_receiver_status_interval="1")).start_standby_of(self.pg)
                report["standby"] = STANDBY
            runs = {method: [] for method in self.opts.methods}
            # Rounds interleave the methods, so a slow spell of the machine falls on all of them.
            for rnd in range(self.opts.repeat):
                for method in self.opts.methods:
                    self.log("measuring %s (round %d of %d)" % (method, rnd + 1, self.opts.repeat))
                    runs[method].append(self.measure(method, "bench_template"))
                    row = runs[method][-1][0]
                    self.log("  %s: %d rows in %.1f s" % (method, row["deleted"], row["seconds"]))
            report["repeat"] = self.opts.repeat
            report["results"] = [combine(runs[method]) for method in self.opts.methods]
            # The writer alone before every prune of the run, pooled: a steadier baseline than one
            # method's few idle seconds when the machine's own latency wanders.
            idle = [lat for method in self.opts.methods for _row, lat_idle, _busy in runs[method] for lat in lat_idle]
            report["writer_idle_pooled"] = {"p50_ms": round(1000 * percentile(idle, 50), 2),
                                            "p99_ms": round(1000 * percentile(idle, 99), 2), "inserts": len(idle)}
            if self.opts.scaling:
                report["scaling"] = self.scaling()
            report["load_after"] = os.getloadavg()
            self.admin.close()
            return report
        finally:
            if self.standby:
                self.standby.stop()
            self.pg.stop()

    def caught_up(self, timeout=600):
        """Wait until the standby replayed everything written so far (before a measurement starts)."""
        target = lsn(self.admin)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = self.admin.execute("SELECT (replay_lsn - '0/0'::pg_lsn)::bigint FROM pg_stat_replication"
                                     " WHERE application_name = %s", (STANDBY,)).fetchone()
            if row and row[0] is not None and row[0] >= target:
                return
            time.sleep(0.2)
        raise RuntimeError("the standby did not catch up within %d s" % timeout)


class LagSampler:
    """The standby's replay lag seen from the primary every 0.1 s, from the start of a prune until the
    standby has replayed everything the prune wrote."""

    def __init__(self, conninfo):
        self.conn = psycopg.connect(conninfo, autocommit=True)
        self.samples = []           # (t, lag bytes, replay_lag s)
        self.target = None
        self.t0 = time.monotonic()
        self.ended = None
        self.caught = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            now = time.monotonic()
            row = self.conn.execute(
                "SELECT (pg_current_wal_lsn() - replay_lsn)::bigint, extract(epoch FROM replay_lag)::float8,"
                " (replay_lsn - '0/0'::pg_lsn)::bigint FROM pg_stat_replication WHERE application_name = %s",
                (STANDBY,)).fetchone()
            if row and row[0] is not None:
                self.samples.append((now - self.t0, int(row[0]), row[1]))
                if self.target is not None and row[2] >= self.target:
                    self.caught = now
                    return
            if self.target is not None and now - self.ended > 600:
                return
            time.sleep(0.1)

    def stop(self, end_lsn):
        """The prune ended with the WAL at ``end_lsn``: sample until the standby has replayed it."""
        self.ended = time.monotonic()
        self.target = end_lsn
        self.thread.join()
        self.conn.close()
        during = [s for s in self.samples if s[0] <= self.ended - self.t0] or self.samples
        lags = [s[1] for s in during]
        times = [s[2] for s in during if s[2] is not None]
        return {"lag_max_bytes": max(lags) if lags else None,
                "lag_p50_bytes": percentile(lags, 50), "lag_p99_bytes": percentile(lags, 99),
                "replay_lag_max_s": round(max(times), 2) if times else None,
                "catch_up_s": None if self.caught is None else round(self.caught - self.ended, 2),
                "samples": len(during)}


def combine(measurements):
    """One row per method from its rounds: medians of the rates, the worst longest transaction and
    peak memory, and the writer's percentiles over the latencies of all rounds pooled (one round
    gives a few hundred samples, too few for a steady p99)."""
    rows = [row for row, _idle, _busy in measurements]
    idle = [lat for _row, lat_idle, _busy in measurements for lat in lat_idle]
    busy = [lat for _row, _idle, lat_busy in measurements for lat in lat_busy]
    out = dict(rows[len(rows) // 2])        # the middle round's details (handlers, statements)
    for key in ("seconds", "rows_per_s", "wal_bytes", "wal_bytes_raw", "wal_rate_run", "wal_rate_batches",
                "paused_s"):
        values = [r[key] for r in rows if r.get(key) is not None]
        if values:
            out[key] = median(values)
    for key in ("longest_txn_s", "peak_rss_mb", "engine_wal_bytes", "wal_rate_peak"):     # bounds: the worst round
        values = [r[key] for r in rows if r.get(key) is not None]
        if values:
            out[key] = max(values)
    out["deleted"] = median([r["deleted"] for r in rows])
    out["rows_left"] = max(r["rows_left"] for r in rows)
    lag = [r["standby"] for r in rows if r.get("standby")]
    if lag:
        out["standby"] = {
            "lag_max_bytes": max(x["lag_max_bytes"] or 0 for x in lag),
            "lag_p50_bytes": median([x["lag_p50_bytes"] or 0 for x in lag]),
            "lag_p99_bytes": max(x["lag_p99_bytes"] or 0 for x in lag),
            "replay_lag_max_s": max([x["replay_lag_max_s"] for x in lag if x["replay_lag_max_s"] is not None] or [0]),
            "catch_up_s": max([x["catch_up_s"] for x in lag if x["catch_up_s"] is not None] or [0]),
        }
    out["rounds"] = [{k: r.get(k) for k in ("deleted", "seconds", "rows_per_s", "longest_txn_s", "wal_bytes")}
                     for r in rows]
    out.update({
        "writer_idle_p50_ms": round(1000 * percentile(idle, 50), 2) if idle else None,
        "writer_idle_p99_ms": round(1000 * percentile(idle, 99), 2) if idle else None,
        "writer_p50_ms": round(1000 * percentile(busy, 50), 2) if busy else None,
        "writer_p99_ms": round(1000 * percentile(busy, 99), 2) if busy else None,
        "writer_p90_ms": round(1000 * percentile(busy, 90), 2) if busy else None,
        "writer_idle_inserts": len(idle),
        "writer_inserts": len(busy),
    })
    return out


def analyse(report):
    """Ratios pgtidy / recipe and the targets, as a list of (name, value, target, met)."""
    by = {r["method"]: r for r in report["results"]}
    checks = []
    pg = by.get("pgtidy")
    if pg:
        for other, target in (("recipe", TARGETS["vs_recipe"]), ("batch200", TARGETS["vs_batch200"]),
                              ("recipe+idx", None)):
            if other in by and by[other]["rows_per_s"]:
                ratio = pg["rows_per_s"] / by[other]["rows_per_s"]
                checks.append(("throughput pgtidy/%s" % other, round(ratio, 2),
                               ">= %s" % target if target else "-", ratio >= target if target else None))
        checks.append(("longest transaction pgtidy (s)", pg["longest_txn_s"], "<= 1.0",
                       pg["longest_txn_s"] <= TARGETS["longest_txn_s"]))
        if pg["writer_p99_ms"] and pg["writer_idle_p99_ms"]:
            ratio = pg["writer_p99_ms"] / pg["writer_idle_p99_ms"]
            checks.append(("writer p99 pruning/idle (pgtidy)", round(ratio, 2), "<= 2.0",
                           ratio <= TARGETS["writer_p99_ratio"]))
        # The same engine with the server's WAL settings, and every method's writer p99, for comparison.
        plain = by.get("pgtidy-uncompressed")
        if plain and plain["rows_per_s"]:
            for other in ("recipe", "batch200"):
                if other in by and by[other]["rows_per_s"]:
                    checks.append(("throughput pgtidy-uncompressed/%s" % other,
                                   round(plain["rows_per_s"] / by[other]["rows_per_s"], 2), "-", None))
        for row in report["results"]:
            if row["method"] != "pgtidy" and row["writer_p99_ms"] and row["writer_idle_p99_ms"]:
                checks.append(("writer p99 pruning/idle (%s)" % row["method"],
                               round(row["writer_p99_ms"] / row["writer_idle_p99_ms"], 2), "-", None))
        checks.append(("peak RSS pgtidy (MB)", pg["peak_rss_mb"], "<= 150", pg["peak_rss_mb"] <= TARGETS["peak_rss_mb"]))
        # pgtidy works below the id where each cutoff falls and re-checks the time, so rows of the jitter
        # window just above that id wait for the next run; it must never delete a row a recipe keeps.
        left = {r["method"]: r["rows_left"] for r in report["results"] if r["method"] in ("pgtidy",) + RECIPES}
        recipes = [n for m, n in left.items() if not m.startswith("pgtidy")]
        if recipes and "pgtidy" in left:
            name = "rows pgtidy keeps beyond the recipes (boundary jitter)"
            extra = left["pgtidy"] - max(recipes)
            jitter = max(10, pg["deleted"] // 1000)
            if pg.get("capped"):
                # A budget stopped the run (the default 1 GiB max_wal_bytes is reached on about 1M-row
                # copies): what is left is the next run's; throughput is per row deleted, so it still compares.
                checks.append((name, extra, "not comparable: capped by %s" % pg.get("capped_by"), None))
            else:
                checks.append((name, extra, "0 .. %d" % jitter, 0 <= extra <= jitter))
    pooled = (report.get("writer_idle_pooled") or {}).get("p99_ms")
    if pooled:
        for row in report["results"]:
            if row["writer_p99_ms"]:
                met = None
                if row["method"] == "pgtidy":
                    met = row["writer_p99_ms"] / pooled <= TARGETS["writer_p99_ratio"]
                checks.append(("writer p99 pruning / pooled idle p99 %.2f ms (%s)" % (pooled, row["method"]),
                               round(row["writer_p99_ms"] / pooled, 2), "<= 2.0" if met is not None else "-", met))
    batch = by.get("batch200")
    for row in report["results"]:
        method = row["method"]
        if not method.startswith("pgtidy"):
            continue
        if method != "pgtidy" and batch and batch["rows_per_s"] and row["rows_per_s"]:
            checks.append(("throughput %s/batch200" % method, round(row["rows_per_s"] / batch["rows_per_s"], 2),
                           "-", None))
        limit = row.get("max_wal_rate")
        if limit and row.get("wal_rate_batches"):
            # The pacing's own measure, over the span of its batches (pauses included).
            ratio = row["wal_rate_batches"] / float(limit)
            checks.append(("WAL rate over the batches / max_wal_rate (%s)" % method, round(ratio, 3),
                           "0.9 .. 1.1", abs(ratio - 1) <= TARGETS["wal_rate_ratio"]))
            if row.get("wal_rate_run"):
                checks.append(("WAL rate over the whole run / max_wal_rate (%s)" % method,
                               round(row["wal_rate_run"] / float(limit), 3), "-", None))
    cap = by.get("pgtidy-walcap")
    if cap:
        per_batch = max([h["wal_bytes"] / h["batches"] for h in cap["handlers"].values() if h["batches"]] or [0])
        limit = report["wal_cap_bytes"] + per_batch
        checks.append(("WAL with max_wal_bytes=%s (engine, bytes)" % report["wal_cap"], cap["engine_wal_bytes"],
                       "<= %d" % limit, cap["engine_wal_bytes"] <= limit))
    if report.get("scaling") and len(report["scaling"]) >= 2:
        small, big = report["scaling"][0], report["scaling"][-1]
        ratio = big["seconds"] / small["seconds"]
        checks.append(("scaling %dM/%dM same rows deleted (time)" % (big["rows"] // 10 ** 6, small["rows"] // 10 ** 6),
                       round(ratio, 2), "<= 1.3", ratio <= TARGETS["scaling_ratio"]))
    return checks


COLUMNS = (("method", "method", "%s"), ("deleted", "rows", "%d"), ("seconds", "s", "%.1f"),
           ("rows_per_s", "rows/s", "%.0f"), ("longest_txn_s", "longest txn s", "%.3f"),
           ("wal_bytes", "WAL MB", None), ("peak_rss_mb", "peak RSS MB", "%.1f"),
           ("writer_idle_p50_ms", "idle p50 ms", "%.2f"), ("writer_idle_p99_ms", "idle p99 ms", "%.2f"),
           ("writer_p50_ms", "p50 ms", "%.2f"), ("writer_p90_ms", "p90 ms", "%.2f"), ("writer_p99_ms", "p99 ms", "%.2f"),
           ("wal_rate_run", "WAL MB/s", None), ("wal_rate_batches", "batches WAL MB/s", None),
           ("paused_s", "paused s", "%.1f"),
           ("capped_by", "capped by", "%s"), ("wal_compression", "WAL compression", "%s"))


def table(report):
    lines = ["| " + " | ".join(c[1] for c in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in report["results"]:
        cells = []
        for key, _title, fmt in COLUMNS:
            value = r.get(key)
            if key == "wal_compression":
                value = (value or {}).get("used")
            if value is None:
                cells.append("-")
            elif key in ("wal_bytes", "wal_rate_run", "wal_rate_batches"):
                cells.append("%.1f" % (value / 1e6))
            else:
                cells.append(fmt % value)
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("| check | measured | target | met |")
    lines.append("|---|---|---|---|")
    for name, value, target, met in report["checks"]:
        lines.append("| %s | %s | %s | %s |" % (name, value, target, "-" if met is None else ("yes" if met else "NO")))
    if any(r.get("standby") for r in report["results"]):
        lines.append("")
        lines.append("| method | rows | s | replay lag max MB | p50 MB | p99 MB | replay_lag max s |"
                     " catch-up after the prune s | paused for lag s |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for r in report["results"]:
            lag = r.get("standby")
            if not lag:
                continue
            lines.append("| %s | %d | %.1f | %.1f | %.1f | %.1f | %.2f | %.2f | %s |" % (
                r["method"], r["deleted"], r["seconds"], lag["lag_max_bytes"] / 1e6, lag["lag_p50_bytes"] / 1e6,
                lag["lag_p99_bytes"] / 1e6, lag["replay_lag_max_s"], lag["catch_up_s"],
                "%.1f" % r["paused_by"]["replica_lag"] if r.get("paused_by") else "-"))
    if report.get("scaling"):
        lines.append("")
        lines.append("| table rows | deleted | s (median) | batches s | rounds s | longest txn s | peak RSS MB |")
        lines.append("|---|---|---|---|---|---|---|")
        for s in report["scaling"]:
            lines.append("| %d | %d | %.2f | %.2f | %s | %.3f | %.1f |" % (
                s["rows"], s["deleted"], s["seconds"], s["batch_s"], " / ".join("%.2f" % r["seconds"] for r in s["rounds"]),
                s["longest_txn_s"], s["peak_rss_mb"]))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--rows", type=int, default=300_000, help="event_logs rows in the copies (default 300000)")
    parser.add_argument("--json", help="write the full report to this file")
    parser.add_argument("--writer-rate", type=float, default=50.0, help="writer inserts per second (default 50)")
    parser.add_argument("--idle-seconds", type=float, default=6.0, help="writer-only time before each prune")
    parser.add_argument("--wal-cap", default="16MiB", help="max_wal_bytes of the pgtidy-walcap run")
    parser.add_argument("--set", dest="pgtidy_set", action="append", default=[], metavar="OPTION=VALUE",
                        help="a dagster_prune option for the pgtidy runs instead of its default (repeatable),"
                             " e.g. --set batch_size=1000 --set batch_pause=0.05")
    parser.add_argument("--methods", default="pgtidy,pgtidy-unpaced,pgtidy-rate=4MB,pgtidy-rate=16MB,"
                                             "pgtidy-uncompressed,recipe,recipe+idx,batch200,pgtidy-walcap")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of every method on fresh copies (default 3): medians, pooled writer latencies")
    parser.add_argument("--scaling", action="store_true", help="also prune the same rows from a 1M and a 5M table")
    parser.add_argument("--standby", action="store_true",
                        help="replay every prune on a streaming standby and sample its replay lag (a second table)")
    parser.add_argument("--scaling-rows", default="1000000,5000000")
    parser.add_argument("--scaling-delete", type=int, default=200_000)
    opts = parser.parse_args(argv)
    opts.methods = [m.strip() for m in opts.methods.split(",") if m.strip()]
    opts.scaling_rows = [int(x) for x in opts.scaling_rows.split(",")]
    opts.pgtidy_options = set_options(parser, opts.pgtidy_set)
    # Stopped with SIGTERM (kill, timeout): unwind, so the private cluster is stopped and removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    report = Bench(opts).run()
    report["wal_cap"] = opts.wal_cap
    report["pgtidy_options"] = opts.pgtidy_options
    report["wal_cap_bytes"] = _wal_cap_bytes(opts.wal_cap)
    report["checks"] = analyse(report)
    text = table(report)
    print("event_logs rows: %d (%.0f MB), writer %.0f inserts/s; %s cores, %s GiB RAM, PostgreSQL %s; load %s -> %s"
          % (report["rows"], report["template"]["event_logs_bytes"] / 1e6, report["writer_rate"],
             report["machine"]["nproc"], report["machine"]["ram_gib"], report["machine"]["postgres"],
             "/".join("%.2f" % x for x in report["load_before"]), "/".join("%.2f" % x for x in report["load_after"])))
    print(text)
    if opts.json:
        with open(opts.json, "w") as fh:
            json.dump(report, fh, indent=2, default=str)
    return 0


def _wal_cap_bytes(text):
    units = {"kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3, "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3, "b": 1}
    lowered = text.strip().lower()
    for unit in sorted(units, key=len, reverse=True):
        if lowered.endswith(unit):
            return int(float(lowered[:-len(unit)]) * units[unit])
    return int(lowered)


if __name__ == "__main__":
    sys.exit(main())
