"""Steady state: months of a Dagster deployment, pruned every week, three ways.

A private PostgreSQL cluster (the server's default settings, autovacuum on) holds three copies of a
Dagster schema made by the real ``dagster instance migrate``. Each receives the same rows, written by
SQL, of a small deployment simulated day by day (bench/_steady_workload.py: scheduled jobs, a sensor,
a daily-partitioned asset job, checks, backfills, failures and re-executions; the event mix and JSON
sizes of bench/_prune_data.py), with timestamps from --months months ago up to today. After every
simulated week:

  none             nothing is pruned
  noise            dagster_prune with its defaults (log lines, framework noise, ticks per Dagster's retention)
  retention        the same plus run retention: run_retention_days 90 for every final status,
                   keep_runs_per_job 25 (and, with it by default, the ticks whose runs are all retired)
  retention_repack the same plus, every simulated month, the repack module as the timers role runs it
                   (auto, profile any, its defaults): tables, or only their indexes, past 20 % reclaimable

A month's numbers are taken before that month's repack, so they show the database at its largest.

Each prune is the real core (``run_prune(params, DagsterProfile())``), run in this process with the
retention clock set to the end of the simulated week: every ``utc_cutoff`` of the collection's modules
is patched for the call. Nothing calls VACUUM: space comes back only through autovacuum. With
``--autovacuum compressed`` (the default) the cluster runs with ``autovacuum_naptime = 1s`` and, after
each simulated week, the bench waits until autovacuum has nothing left to do by its own thresholds (the
server's defaults), as a real week of wall-clock time would allow; ``--autovacuum server`` keeps the
server's 60 s naptime and does not wait, so autovacuum sees each database about once a minute of the
run's real time (several simulated weeks).

Every simulated month the bench records the database size and, per table, its bytes (heap, indexes,
TOAST), rows, dead rows and vacuum counts; it prints a table, writes them as JSON and draws the sizes.

Usage: python bench/steady_state.py [--months 24] [--events-per-day 3000] [--autovacuum compressed|server]
                                    [--json bench/steady_state.json] [--png bench/steady_state.png]
                                    [--lines KEY,...] [--merge-from EARLIER.json]
--merge-from takes the lines not run this time from an earlier report of the same months, events a day
and seed (the workload is the same row for row), so a change that affects one line re-runs only that one.
The 24-month run of two lines took 76 minutes on two cores shared with other work (bench/README.md); --months 2
--events-per-day 500 takes a few minutes, and --lines runs a subset of the lines.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import importlib
import json
import math
import multiprocessing
import os
import pkgutil
import platform
import shutil
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import psycopg  # noqa: E402

import _prune_data  # noqa: E402
import _steady_load  # noqa: E402
import _steady_workload  # noqa: E402
from _bench_common import collection_on_path  # noqa: E402
from pgserver import PgServer  # noqa: E402

MONTH_DAYS = 365.25 / 12
RUN_RETENTION = {"run_retention_days": {"success": 90, "failure": 90, "canceled": 90}, "keep_runs_per_job": 25}
# The repack module's options as playbooks/repack.yml (the timers role's monthly job) passes them by default.
REPACK_DEFAULTS = {"auto": True, "profile": "any", "schema": "public", "min_table_size": "100MiB",
                   "min_reclaimable_fraction": 0.3, "min_index_reclaimable_fraction": 0.2,
                   "min_index_size": "1MiB", "max_tables": 5, "max_duration": 3600, "wait_timeout": 60,
                   "free_space_check": "auto"}
# (key, label, dagster_prune options or None for no pruning)
LINES = (
    ("none", "no pruning", None),
    ("noise", "noise pruning (defaults)", {}),
    ("retention", "noise + run retention (90 days, 25 runs per job)", RUN_RETENTION),
    ("retention_repack", "the same + the monthly repack", RUN_RETENTION),
)
REPACK_LINES = ("retention_repack",)
RATIO_LINES = ("retention", "retention_repack")
TARGET_RATIO = 1.1
COLLECTION = "ansible_collections.pgtidy.maintenance"
REPACK_BIN = shutil.which("pg_repack") or "/usr/lib/postgresql/15/bin/pg_repack"
SHOWN_TABLES = ("event_logs", "runs", "run_tags", "job_ticks", "asset_event_tags", "asset_check_executions",
                "asset_keys", "snapshots", "bulk_actions", "instigators")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# -- the prune, on simulated time ----------------------------------------------------------------
def load_collection():
    """Import every module of the collection's core, so the clock patch reaches all of them."""
    collection_on_path()
    package = importlib.import_module(COLLECTION + ".plugins.module_utils")
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
    prune = importlib.import_module(COLLECTION + ".plugins.module_utils._engine.prune")
    dagster = importlib.import_module(COLLECTION + ".plugins.module_utils._dagster.rules")
    repack = importlib.import_module(COLLECTION + ".plugins.module_utils._repack.repack")
    return prune.run_prune, dagster.DagsterProfile, repack.run_repack


@contextlib.contextmanager
def simulated_clock(now):
    """Retention cutoffs measured from ``now``: patch ``utc_cutoff`` in every loaded module that has it."""
    def utc_cutoff(days, at=None):
        return (at or now) - datetime.timedelta(days=days)

    patched = []
    for name, module in list(sys.modules.items()):
        if name.startswith(COLLECTION + ".") and hasattr(module, "utc_cutoff"):
            patched.append((module, module.utc_cutoff))
            module.utc_cutoff = utc_cutoff
    try:
        yield len(patched)
    finally:
        for module, original in patched:
            module.utc_cutoff = original


# -- days made in a child process, ahead of the loading ------------------------------------------
def _produce(queue, events_per_day, seed, first, days):
    workload = _steady_workload.Workload(events_per_day, seed)
    for n in range(days):
        queue.put(workload.day(first + datetime.timedelta(days=n)))
    queue.put(None)


class SteadyState:
    def __init__(self, opts):
        self.opts = opts
        settings = {"autovacuum_naptime": "1s"} if opts.autovacuum == "compressed" else {}
        self.pg = PgServer(settings=settings)
        self.lock_dir = tempfile.mkdtemp(prefix="pgtidy-steady-lock-")
        self.conns = {}
        self.admin = None
        self.timing = {"generate_wait_s": 0.0, "weeks_s": 0.0, "load_s": 0.0, "prune_s": 0.0, "autovacuum_wait_s": 0.0,
                       "measure_s": 0.0, "repack_s": 0.0}

    def params(self, key, line_options):
        """dagster_prune options of a line: no budget stops a weekly run; a lockfile of its own per line."""
        params = {"login_host": "127.0.0.1", "login_port": self.pg.port, "login_user": "postgres",
                  "login_password": "", "login_db": "steady_" + key, "ssl_mode": "disable",
                  "lock_file": os.path.join(self.lock_dir, "pgtidy-%s.lock" % key), "lock_wait": 5,
                  "max_rows": 0, "max_duration": 0, "max_wal_bytes": 0}
        params.update(line_options)
        return params

    def setup(self, start):
        self.pg.start()
        self.admin = psycopg.connect(self.pg.dsn(), autocommit=True)
        _prune_data.migrate(self.pg, "steady_template")
        workload = _steady_workload.Workload(self.opts.events_per_day, self.opts.seed)
        with psycopg.connect(self.pg.dsn("steady_template"), autocommit=True) as conn:
            _steady_load.prepare(conn, workload.instigator_rows(start))
        for key, _label, _options in LINES:
            self.admin.execute('CREATE DATABASE "steady_%s" TEMPLATE steady_template' % key)
            self.conns[key] = psycopg.connect(self.pg.dsn("steady_" + key), autocommit=True)
            if key in REPACK_LINES:
                self.conns[key].execute("CREATE EXTENSION pg_repack")
        return workload

    def repack_month(self, run_repack):
        """The monthly repack of the lines that have one, as the timers role runs it; returns what it did."""
        done = {}
        for key in self.conns:
            if key not in REPACK_LINES:
                continue
            params = {k: v for k, v in self.params(key, REPACK_DEFAULTS).items()
                      if k not in ("max_rows", "max_wal_bytes")}
            params.update(lock_wait=5, repack_command=REPACK_BIN)
            t0 = time.monotonic()
            try:
                result = run_repack(params)
            except Exception as exc:  # noqa: BLE001 - recorded; next month's repack carries on
                result = {"failed": True, "msg": "%s: %s" % (type(exc).__name__, exc), "tables": {}}
            seconds = time.monotonic() - t0
            self.timing["repack_s"] += seconds
            fields = ("status", "reason", "mode", "reclaimed_bytes", "estimated_reclaimable_fraction",
                      "estimated_index_reclaimable_fraction")
            tables = {name: {f: t.get(f) for f in fields} for name, t in result.get("tables", {}).items()
                      if t.get("status") != "skipped" or t.get("reason") != "below_threshold"}
            done[key] = {"seconds": round(seconds, 1), "msg": result.get("msg", ""),
                         "reclaimed_bytes": result.get("reclaimed_bytes", 0), "tables": tables}
            log("repack %s: %s" % (key, done[key]["msg"]))
        return done

    def line_week(self, key, options, days, run_prune, profile):
        """One line's simulated week: its days written, then (unless it is the line without pruning) a prune.

        The lines run side by side in threads, each on its own connections; the clock is patched around all.
        """
        t0 = time.monotonic()
        for day in days:
            _steady_load.load_day(self.conns[key], day)
        load_s = time.monotonic() - t0
        if options is None:
            return load_s, 0.0, None
        params = self.params(key, options)
        t0 = time.monotonic()
        try:
            result = run_prune(params, profile())
        except Exception as exc:  # noqa: BLE001 - recorded and reported; the next week's prune carries on
            result = {"failed_handlers": ["run: %s: %s" % (type(exc).__name__, exc)], "deleted_total": 0,
                      "handlers": {}}
        return load_s, time.monotonic() - t0, result

    def settle(self):
        """Give autovacuum what a real week gives it: time to act on everything past its thresholds."""
        if self.opts.autovacuum != "compressed":
            return
        t0 = time.monotonic()
        time.sleep(1.5)
        while time.monotonic() - t0 < 60 and _steady_load.autovacuum_pending(self.admin, self.conns.values()):
            time.sleep(0.25)
        self.timing["autovacuum_wait_s"] += time.monotonic() - t0

    def young_rows(self, since):
        """event_logs rows younger than the shortest retention: pruning must not touch them."""
        return {key: conn.execute("SELECT count(*) FROM event_logs WHERE timestamp >= %s", (since,)).fetchone()[0]
                for key, conn in self.conns.items()}

    def record(self, month, sim_now, prunes):
        t0 = time.monotonic()
        entry = {"month": month, "date": sim_now.date().isoformat(), "lines": {}}
        for key, conn in self.conns.items():
            entry["lines"][key] = _steady_load.measure(conn)
            entry["lines"][key]["prune"] = json.loads(json.dumps(prunes[key]))
        young = self.young_rows(sim_now - datetime.timedelta(days=7))
        entry["young_rows"] = young
        entry["young_rows_equal"] = len(set(young.values())) == 1
        self.timing["measure_s"] += time.monotonic() - t0
        sizes = " ".join("%s %.1f MiB" % (key, entry["lines"][key]["database_bytes"] / 2 ** 20) for key in self.conns)
        log("month %2d (%s): %s%s" % (month, entry["date"], sizes,
                                      "" if entry["young_rows_equal"] else "  YOUNG ROWS DIFFER: %s" % young))
        return entry

    def run(self):
        opts = self.opts
        weeks = int(math.ceil(opts.months * MONTH_DAYS / 7))
        today = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        end = datetime.datetime.combine(today.date(), datetime.time())
        start = end - datetime.timedelta(days=7 * weeks)
        run_prune, profile, run_repack = load_collection()
        workload = self.setup(start)
        queue = multiprocessing.get_context("fork").Queue(maxsize=14)
        producer = multiprocessing.get_context("fork").Process(
            target=_produce, args=(queue, opts.events_per_day, opts.seed, start.date(), 7 * weeks), daemon=True)
        producer.start()
        started = time.monotonic()
        blank = {"runs": 0, "seconds": 0.0, "deleted": 0, "longest_s": 0.0, "handlers": {}}
        prunes = {key: json.loads(json.dumps(blank)) for key in self.conns}
        months = [self.record(0, start, prunes)]
        totals = {"runs": 0, "events": 0, "ticks": 0, "snapshots": 0}
        patched = 0
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(LINES))
        try:
            for week in range(weeks):
                days = []
                for unused in range(7):
                    t0 = time.monotonic()
                    day = queue.get()
                    self.timing["generate_wait_s"] += time.monotonic() - t0
                    days.append(day)
                    for k, v in day.counts.items():
                        totals[k] += v
                sim_now = start + datetime.timedelta(days=7 * (week + 1))
                t0 = time.monotonic()
                with simulated_clock(sim_now) as patched:
                    futures = {key: pool.submit(self.line_week, key, options, days, run_prune, profile)
                               for key, _label, options in LINES}
                    outcomes = {key: future.result() for key, future in futures.items()}
                self.timing["weeks_s"] += time.monotonic() - t0
                for key, (load_s, prune_s, result) in outcomes.items():
                    self.timing["load_s"] += load_s
                    if result is None:
                        continue
                    self.timing["prune_s"] += prune_s
                    stats = prunes[key]
                    if result["failed_handlers"]:
                        log("week %d, %s: failed handlers %s" % (week, key, result["failed_handlers"]))
                        stats["failed"] = stats.get("failed", []) + ["week %d: %s" % (week, result["failed_handlers"])]
                    stats["runs"] += 1
                    stats["seconds"] += prune_s
                    stats["deleted"] += result["deleted_total"]
                    stats["longest_s"] = max(stats["longest_s"], prune_s)
                    for name, handler in result["handlers"].items():
                        stats["handlers"][name] = stats["handlers"].get(name, 0) + handler["deleted"]
                self.settle()
                while len(months) <= opts.months and start + datetime.timedelta(days=len(months) * MONTH_DAYS) \
                        <= sim_now + datetime.timedelta(seconds=1):
                    months.append(self.record(len(months), sim_now, prunes))
                    prunes = {key: json.loads(json.dumps(blank)) for key in self.conns}
                    if REPACK_LINES and len(months) > 1:
                        months[-1]["repack"] = self.repack_month(run_repack)
                    if opts.json:
                        with open(opts.json + ".partial", "w") as fh:
                            json.dump({"months": months}, fh)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            producer.kill()
            for conn in self.conns.values():
                conn.close()
            settings = dict(self.admin.execute(
                "SELECT name, setting FROM pg_settings WHERE name LIKE 'autovacuum%%' OR name IN"
                " ('shared_buffers', 'fsync', 'synchronous_commit', 'server_version')").fetchall())
            self.admin.close()
            self.pg.stop()
        elapsed = time.monotonic() - started
        return {
            "months": months,
            "config": {"months": opts.months, "weeks": weeks, "start": start.date().isoformat(),
                       "end": end.date().isoformat(), "events_per_day": opts.events_per_day, "seed": opts.seed,
                       "autovacuum": opts.autovacuum, "lines": {k: {"label": l, "options": o} for k, l, o in LINES},
                       "ingest_every_h": workload.ingest_every_h, "sensor_runs_per_day": workload.sensor_runs_per_day,
                       "events_per_run": workload.per_run, "clock_patched_modules": patched},
            "written": dict(totals, events_per_day=round(totals["events"] / (7.0 * weeks), 1)),
            "server": settings,
            "machine": {"nproc": os.cpu_count(), "platform": platform.platform(),
                        "load_after": list(os.getloadavg())},
            "timing": dict({k: round(v, 1) for k, v in self.timing.items()}, total_s=round(elapsed, 1)),
        }


# -- report ----------------------------------------------------------------------------------------
def mib(n):
    return n / 2.0 ** 20


def at_month(report, month):
    months = report["months"]
    return months[min(month, len(months) - 1)]


def summarise(report):
    last = len(report["months"]) - 1
    marks = sorted({m for m in (6, 12, 24, last) if m <= last})
    summary = {"sizes_mib": {}, "event_logs_rows": {}}
    for key, _label, _options in LINES:
        summary["sizes_mib"][key] = {m: round(mib(at_month(report, m)["lines"][key]["database_bytes"]), 1)
                                     for m in marks}
        summary["event_logs_rows"][key] = {m: at_month(report, m)["lines"][key]["tables"]["event_logs"]["rows"]
                                           for m in marks}
    if last >= 6:
        summary["ratio"] = {}
        summary["growth_by_table"] = {}
        for key in RATIO_LINES:
            ref = at_month(report, 6)["lines"][key]
            end = at_month(report, last)["lines"][key]
            ratio = end["database_bytes"] / float(ref["database_bytes"])
            summary["ratio"][key] = {"from_month": 6, "to_month": last, "ratio": round(ratio, 3),
                                     "target": TARGET_RATIO, "met": ratio <= TARGET_RATIO,
                                     "growth_bytes": end["database_bytes"] - ref["database_bytes"]}
            growth = {}
            for table, stats in end["tables"].items():
                before = ref["tables"].get(table, {"bytes": 0, "rows": 0, "heap": 0, "indexes": 0, "toast": 0})
                if stats["bytes"] != before["bytes"] or stats["rows"] != before["rows"]:
                    growth[table] = {f: stats[f] - before[f] for f in ("bytes", "rows", "heap", "indexes", "toast")}
            summary["growth_by_table"][key] = dict(sorted(growth.items(), key=lambda kv: -kv[1]["bytes"]))
    summary["young_rows_equal"] = all(m["young_rows_equal"] for m in report["months"])
    summary["failed_prunes"] = {key: [f for m in report["months"] for f in m["lines"][key]["prune"].get("failed", [])]
                                for key, _label, _options in LINES}
    return summary


def table(report):
    keys = [k for k, _l, _o in LINES]
    lines = ["| month | date | " + " | ".join("%s MiB" % k for k in keys) + " | " +
             " | ".join("%s event_logs rows" % k for k in keys) + " | " +
             " | ".join("%s runs" % k for k in keys) + " |",
             "|---" * (2 + 3 * len(keys)) + "|"]
    for entry in report["months"]:
        row = [str(entry["month"]), entry["date"]]
        row += ["%.1f" % mib(entry["lines"][k]["database_bytes"]) for k in keys]
        row += [str(entry["lines"][k]["tables"]["event_logs"]["rows"]) for k in keys]
        row += [str(entry["lines"][k]["tables"]["runs"]["rows"]) for k in keys]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def table_breakdown(report, key, month):
    entry = at_month(report, month)["lines"][key]
    lines = ["| table | MiB | heap MiB | index MiB | TOAST MiB | rows | dead rows | autovacuums |",
             "|---|---|---|---|---|---|---|---|"]
    for name in sorted(entry["tables"], key=lambda t: -entry["tables"][t]["bytes"]):
        t = entry["tables"][name]
        if name not in SHOWN_TABLES and t["rows"] == 0:
            continue
        lines.append("| %s | %.2f | %.2f | %.2f | %.2f | %d | %s | %s |" % (
            name, mib(t["bytes"]), mib(t["heap"]), mib(t["indexes"]), mib(t["toast"]), t["rows"], t["dead"],
            t["autovacuums"]))
    return "\n".join(lines)


def draw(report, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    months = [m["month"] for m in report["months"]]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    styles = {"none": ("tab:red", "-"), "noise": ("tab:orange", "-"), "retention": ("tab:blue", "-"),
              "retention_repack": ("tab:green", "--")}
    for key, label, _options in LINES:
        color, style = styles[key]
        sizes = [mib(m["lines"][key]["database_bytes"]) for m in report["months"]]
        rows = [m["lines"][key]["tables"]["event_logs"]["rows"] / 1000.0 for m in report["months"]]
        axes[0].plot(months, sizes, style, color=color, marker=".", label=label)
        axes[1].plot(months, rows, style, color=color, marker=".", label=label)
    if len(months) > 6 and "retention" in report["months"][6]["lines"]:
        ref = mib(report["months"][6]["lines"]["retention"]["database_bytes"])
        axes[0].axhline(ref * TARGET_RATIO, color="tab:blue", linestyle=":", linewidth=1,
                        label="target: %.1f x month 6 of run retention" % TARGET_RATIO)
    axes[0].set_title("Database size")
    axes[0].set_ylabel("MiB")
    axes[1].set_title("event_logs rows")
    axes[1].set_ylabel("thousands of rows")
    # What the retention line is made of, table by table.
    stacked = RATIO_LINES[0] if RATIO_LINES else LINES[-1][0]
    entries = [m["lines"][stacked]["tables"] for m in report["months"]]
    last = entries[-1]
    big = sorted(last, key=lambda t: -last[t]["bytes"])[:6]
    stacks = [[mib(e.get(t, {"bytes": 0})["bytes"]) for e in entries] for t in big]
    rest = [mib(report["months"][i]["lines"][stacked]["database_bytes"]) - sum(s[i] for s in stacks)
            for i in range(len(entries))]
    axes[2].stackplot(months, *stacks, rest, labels=big + ["catalogs and other tables"], alpha=0.85)
    axes[2].set_title("%s: size by table" % dict((k, l) for k, l, _o in LINES)[stacked].split(" (")[0])
    axes[2].set_ylabel("MiB")
    for ax in axes:
        ax.set_xlabel("simulated month")
        ax.grid(True, alpha=0.3)
        ax.set_xlim(0, months[-1])
        ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=8, loc="upper left")
    axes[1].legend(fontsize=8, loc="upper left")
    axes[2].legend(fontsize=7, loc="upper left")
    cfg = report["config"]
    fig.suptitle("Dagster metadata database over %d simulated months (%s events a day, weekly prune,"
                 " autovacuum %s)" % (cfg["months"], "{:,}".format(int(report["written"]["events_per_day"])),
                                      "only"), fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def merge_lines(report, path, all_lines, all_ratio):
    """Add to ``report`` the lines of an earlier report that this run did not run; returns the lines now in it."""
    with open(path) as fh:
        earlier = json.load(fh)
    same = ("months", "events_per_day", "seed", "autovacuum")
    if any(earlier["config"].get(k) != report["config"].get(k) for k in same) \
            or len(earlier["months"]) != len(report["months"]):
        raise SystemExit("%s is not a report of the same simulation (%s)" % (path, ", ".join(same)))
    ran = set(report["months"][0]["lines"])
    taken = [k for k, _l, _o in all_lines if k not in ran and k in earlier["months"][0]["lines"]]
    for mine, theirs in zip(report["months"], earlier["months"]):
        for key in taken:
            mine["lines"][key] = theirs["lines"][key]
    report["config"]["merged"] = {"from": os.path.basename(path), "lines": taken,
                                  "run": earlier.get("machine", {}), "timing": earlier.get("timing", {})}
    present = ran | set(taken)
    return (tuple(line for line in all_lines if line[0] in present),
            tuple(k for k in all_ratio if k in present))


def main(argv=None):
    global LINES, RATIO_LINES
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--months", type=int, default=24, help="simulated months (default 24)")
    parser.add_argument("--events-per-day", type=int, default=3000, help="event_logs rows a day (default 3000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--autovacuum", choices=("compressed", "server"), default="compressed",
                        help="compressed: naptime 1s and a wait after each simulated week (default);"
                             " server: the server's naptime, no wait")
    parser.add_argument("--json", default=os.path.join(HERE, "steady_state.json"), help="write the report here")
    parser.add_argument("--png", default=os.path.join(HERE, "steady_state.png"), help="draw the sizes here")
    parser.add_argument("--no-png", action="store_true", help="do not draw (matplotlib not needed)")
    parser.add_argument("--lines", help="comma-separated subset of the lines (default all: %s)"
                        % ",".join(k for k, _l, _o in LINES))
    parser.add_argument("--merge-from", help="take the lines not run now from this earlier report (same months,"
                                             " events a day and seed)")
    opts = parser.parse_args(argv)
    all_lines, all_ratio = LINES, RATIO_LINES
    if opts.lines:
        chosen = [k.strip() for k in opts.lines.split(",") if k.strip()]
        unknown = [k for k in chosen if k not in {key for key, _l, _o in LINES}]
        if unknown or not chosen:
            parser.error("unknown line(s) %s" % ", ".join(unknown))
        LINES = tuple(line for line in LINES if line[0] in chosen)
        RATIO_LINES = tuple(k for k in RATIO_LINES if k in chosen)
    # Stopped with SIGTERM (kill, timeout): unwind, so the private cluster is stopped and removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    report = SteadyState(opts).run()
    if opts.merge_from:
        LINES, RATIO_LINES = merge_lines(report, opts.merge_from, all_lines, all_ratio)
    report["summary"] = summarise(report)
    if opts.json:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(opts.json + ".partial")
        with open(opts.json, "w") as fh:
            json.dump(report, fh, indent=1, sort_keys=True)
            fh.write("\n")
    if not opts.no_png and opts.png:
        draw(report, opts.png)
    summary = report["summary"]
    print("written: %(runs)d runs, %(events)d events (%(events_per_day)s a day), %(ticks)d ticks,"
          " %(snapshots)d snapshots" % report["written"])
    print("timing: %s" % ", ".join("%s %s" % kv for kv in report["timing"].items()))
    print(table(report))
    print()
    last = len(report["months"]) - 1
    for key in RATIO_LINES:
        print("%s, month %d:" % (key, last))
        print(table_breakdown(report, key, last))
        print()
    for key, _label, _options in LINES:
        sizes = ", ".join("%s: %s" % kv for kv in summary["sizes_mib"][key].items())
        print("%-15s size MiB at months %s" % (key, sizes))
    for key, r in summary.get("ratio", {}).items():
        print("%s: month %d / month %d = %.3f (target <= %.1f): %s"
              % (key, r["to_month"], r["from_month"], r["ratio"], r["target"], "met" if r["met"] else "NOT MET"))
        print("  growth from month 6 by table: %s" % ", ".join(
            "%s %+.1f MiB (rows %+d)" % (t, mib(g["bytes"]), g["rows"])
            for t, g in summary["growth_by_table"][key].items()))
    if not summary["young_rows_equal"]:
        print("ERROR: rows younger than 7 days differ between the lines: the retention clock leaked")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
