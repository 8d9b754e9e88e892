# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health facts and red flags of an orchestrator's PostgreSQL database, read-only.

Everything here only reads: catalog and statistics views, bounded counts, the planner's
estimates for huge tables, and the capped delete engine in check mode for what the current
retention would prune. The only files touched are the optional history, report and metrics
files on the host that runs the check.

Each section is gathered on its own: a permission error in one (for example ``pg_ls_waldir``
for a role without ``pg_monitor``) becomes a note, and the other sections are still reported.
"""

from __future__ import annotations

import datetime
import json
import os
import time

from ._batches import Budget, DeleteEngine
from ._connection import connect, redact, server_facts
from ._errors import ConnectionFailed, InvalidRequest, PgtidyError, SchemaMismatch
from ._report import Metrics, write_atomic

try:
    import psycopg
    from psycopg import sql
except ImportError:  # pragma: no cover - the module reports the missing driver
    psycopg = None
    sql = None

HEALTH_ARGUMENT_SPEC = dict(
    schema=dict(type="str", default="public"),
    profile=dict(type="str", default="auto", choices=["auto", "dagster", "prefect", "none"]),
    fail_on_unavailable=dict(type="bool", default=False),
    disk_path=dict(type="path"),
    history_file=dict(type="path"),
    history_days=dict(type="int", default=30),
    top_tables=dict(type="int", default=20),
    top_indexes=dict(type="int", default=20),
    exact_count_limit=dict(type="int", default=1_000_000),
    thresholds=dict(type="dict", default={}),
    dagster_retention=dict(type="dict", default={}),
    prefect_retention=dict(type="dict", default={}),
)

# The guide's thresholds, plus what a job queue's keep-alive table needs.
DEFAULT_THRESHOLDS = {
    "disk_used_warning_percent": 80,
    "disk_used_critical_percent": 90,
    "days_until_full_warning": 30,
    "days_until_full_critical": 7,
    "dead_ratio_warning_percent": 50,
    "dead_ratio_critical_percent": 100,
    "min_dead_tuples": 1000,
    "autovacuum_stale_hours": 24,
    "connections_warning_percent": 80,
    "connections_critical_percent": 90,
    "long_transaction_warning_seconds": 300,
    "long_transaction_critical_seconds": 3600,
    "idle_in_transaction_warning_seconds": 60,
    "xid_age_warning_percent": 50,
    "xid_age_critical_percent": 75,
    "slot_retained_wal_critical_bytes": 1 << 30,
    "hot_table_min_updates": 10000,
    "hot_table_updates_per_row": 10,
    "unused_index_min_bytes": 10 << 20,
}

SEVERITIES = ("critical", "warning", "info")
XID_WRAPAROUND_LIMIT = 2 ** 31 - 1
LOG_LEVEL_NAMES = {"10": "DEBUG", "20": "INFO", "30": "WARNING", "40": "ERROR", "50": "CRITICAL"}

PROFILE_TABLES = {
    "dagster": ("event_logs", "runs", "job_ticks"),
    "prefect": ("flow_run", "log", "events"),
}
BUDGET_KEYS = ("batch_size", "max_rows")
DAGSTER_RETENTION_KEYS = ("log_retention_days", "event_retention_days", "event_types", "prune_superseded_planned",
                          "tick_retention_days") + BUDGET_KEYS
PREFECT_RETENTION_KEYS = ("flow_run_retention_days", "flow_run_batch_size", "event_retention_days",
                          "event_retention_overrides", "log_retention_days", "prune_orphans", "orphan_scan_window",
                          "prune_artifact_collections") + BUDGET_KEYS
LOG_SAMPLE_ROWS = 50_000


# -- options ---------------------------------------------------------------------------------------

def validate_options(params):
    """Check every option before connecting; return the thresholds in force."""
    thresholds = dict(DEFAULT_THRESHOLDS)
    for key, value in (params.get("thresholds") or {}).items():
        if key not in DEFAULT_THRESHOLDS:
            raise InvalidRequest("unknown threshold %r (known: %s)" % (key, ", ".join(sorted(DEFAULT_THRESHOLDS))))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise InvalidRequest("threshold %s must be a number >= 0, not %r" % (key, value))
        thresholds[key] = value
    for name in ("top_tables", "top_indexes", "history_days"):
        value = params.get(name, HEALTH_ARGUMENT_SPEC[name]["default"])
        if value is None or value < 1:
            raise InvalidRequest("%s must be 1 or more" % name)
    if params.get("exact_count_limit", 0) is None or params.get("exact_count_limit", 0) < 0:
        raise InvalidRequest("exact_count_limit must be 0 or more rows")
    for option, known in (("dagster_retention", DAGSTER_RETENTION_KEYS),
                          ("prefect_retention", PREFECT_RETENTION_KEYS)):
        unknown = [k for k in (params.get(option) or {}) if k not in known]
        if unknown:
            raise InvalidRequest("unknown key(s) %s in %s (known: %s)"
                                 % (", ".join(map(str, unknown)), option, ", ".join(known)))
    plans = {name: _retention_plan(_profile(name), params.get("%s_retention" % name) or {})
             for name in ("dagster", "prefect")}
    return thresholds, plans


def _profile(name):
    """The prune profile of an orchestrator: the same option checks and rules its prune module uses."""
    if name == "dagster":
        from ._dagster import DagsterProfile
        return DagsterProfile()
    from ._prefect import PrefectProfile
    return PrefectProfile()


def _retention_plan(profile, retention):
    plan = profile.validate_options(retention)
    budget = Budget.from_params({k: v for k, v in retention.items() if k in BUDGET_KEYS})
    return plan, budget


# -- small helpers ---------------------------------------------------------------------------------

def _iso(value):
    if value is None:
        return None
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    return str(value)


def _num(value):
    if value is None:
        return None
    if isinstance(value, int):
        return value
    value = float(value)
    return int(value) if value.is_integer() else value


def human_bytes(value):
    if value is None:
        return "-"
    value = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1024 or unit == "TB":
            return ("%d %s" % (value, unit)) if unit == "B" else ("%.1f %s" % (value, unit))
        value /= 1024.0
    return "%.1f PB" % value  # pragma: no cover


def human_seconds(value):
    if value is None:
        return "-"
    value = float(value)
    for limit, unit in ((60, "s"), (3600, "min"), (86400, "h")):
        if value < limit:
            return "%.0f %s" % (value / {"s": 1, "min": 60, "h": 3600}[unit], unit)
    return "%.1f d" % (value / 86400)


def _fetchall_dicts(cur, query, params=None):
    cur.execute(query, params)
    names = [d.name for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _reloptions(options):
    out = {}
    for item in options or ():
        key, dummy, value = str(item).partition("=")
        out[key] = value
    return out


class Finding(dict):
    """One red flag: severity, check, object, message and a one-line recommendation."""

    def __init__(self, severity, check, obj, message, recommendation, value=None, threshold=None):
        super().__init__(severity=severity, check=check, object=obj, message=message,
                         recommendation=recommendation, value=value, threshold=threshold)


# -- sections --------------------------------------------------------------------------------------

def database_facts(cur):
    cur.execute("SELECT current_database(), pg_database_size(current_database()),"
                " current_setting('server_version'), current_setting('max_connections')::int,"
                " current_setting('superuser_reserved_connections')::int, current_setting('autovacuum'),"
                " current_setting('autovacuum_vacuum_threshold')::int,"
                " current_setting('autovacuum_vacuum_scale_factor')::float8,"
                " current_setting('autovacuum_freeze_max_age')::bigint,"
                " (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database())")
    row = cur.fetchone()
    return {"name": row[0], "size_bytes": row[1], "server_version": row[2], "max_connections": row[3],
            "superuser_reserved_connections": row[4], "autovacuum": row[5] == "on",
            "autovacuum_vacuum_threshold": row[6], "autovacuum_vacuum_scale_factor": row[7],
            "autovacuum_freeze_max_age": row[8], "stats_reset": _iso(row[9])}


TABLES_SQL = """
SELECT s.schemaname AS schema, s.relname AS name,
       pg_total_relation_size(c.oid) AS total_bytes,
       pg_table_size(c.oid) - COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0) AS table_bytes,
       pg_indexes_size(c.oid) AS index_bytes,
       COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0) AS toast_bytes,
       s.n_live_tup AS live_tuples, s.n_dead_tup AS dead_tuples,
       s.n_tup_ins AS inserts, s.n_tup_upd AS updates, s.n_tup_hot_upd AS hot_updates, s.n_tup_del AS deletes,
       s.n_mod_since_analyze AS modified_since_analyze,
       s.seq_scan, s.seq_tup_read, COALESCE(s.idx_scan, 0) AS idx_scan,
       s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze,
       s.vacuum_count, s.autovacuum_count, c.reloptions
FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
ORDER BY pg_total_relation_size(c.oid) DESC, s.schemaname, s.relname
"""


def table_facts(cur, db):
    tables = []
    for row in _fetchall_dicts(cur, TABLES_SQL):
        live, dead, updates = row["live_tuples"], row["dead_tuples"], row["updates"]
        options = _reloptions(row.pop("reloptions"))
        row["dead_ratio_percent"] = round(100.0 * dead / max(live, 1), 2) if dead else 0.0
        row["hot_update_percent"] = round(100.0 * row["hot_updates"] / updates, 2) if updates else None
        total_scans = row["seq_scan"] + row["idx_scan"]
        row["seq_scan_percent"] = round(100.0 * row["seq_scan"] / total_scans, 2) if total_scans else None
        row["autovacuum_enabled"] = options.get("autovacuum_enabled", "true").lower() not in ("false", "off", "0")
        row["fillfactor"] = int(options.get("fillfactor", 100))
        threshold = int(options.get("autovacuum_vacuum_threshold", db["autovacuum_vacuum_threshold"]))
        scale = float(options.get("autovacuum_vacuum_scale_factor", db["autovacuum_vacuum_scale_factor"]))
        row["autovacuum_trigger_dead_tuples"] = int(threshold + scale * live)
        row["options"] = options
        for key in ("last_vacuum", "last_autovacuum", "last_analyze", "last_autoanalyze"):
            row[key] = _iso(row[key])
        tables.append(row)
    return tables


INDEXES_SQL = """
SELECT s.schemaname AS schema, s.relname AS table, s.indexrelname AS name,
       pg_relation_size(s.indexrelid) AS size_bytes, s.idx_scan AS scans,
       s.idx_tup_read AS tuples_read, s.idx_tup_fetch AS tuples_fetched,
       i.indisunique AS is_unique, i.indisprimary AS is_primary, i.indisvalid AS is_valid
FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
ORDER BY pg_relation_size(s.indexrelid) DESC, s.schemaname, s.indexrelname
"""


def index_facts(cur):
    return _fetchall_dicts(cur, INDEXES_SQL)


def connection_facts(cur, db):
    cur.execute("SELECT COALESCE(state, 'unknown'), count(*) FROM pg_stat_activity"
                " WHERE backend_type = 'client backend' GROUP BY 1 ORDER BY 1")
    by_state = dict(cur.fetchall())
    total = sum(by_state.values())
    facts = {"total": total, "by_state": by_state, "max_connections": db["max_connections"],
             "superuser_reserved": db["superuser_reserved_connections"],
             "used_percent": round(100.0 * total / db["max_connections"], 1)}
    oldest = _fetchall_dicts(cur, """
        SELECT pid, usename AS user, datname AS database, application_name, state,
               client_addr::text AS client_addr,
               EXTRACT(EPOCH FROM clock_timestamp() - xact_start)::float8 AS age_seconds, xact_start
        FROM pg_stat_activity
        WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() AND backend_type = 'client backend'
        ORDER BY xact_start LIMIT 1""")
    facts["oldest_transaction"] = None
    if oldest:
        row = oldest[0]
        row["xact_start"] = _iso(row["xact_start"])
        row["age_seconds"] = round(row["age_seconds"], 1)
        facts["oldest_transaction"] = row
    idle = _fetchall_dicts(cur, """
        SELECT pid, usename AS user, datname AS database, application_name, state,
               client_addr::text AS client_addr,
               EXTRACT(EPOCH FROM clock_timestamp() - state_change)::float8 AS idle_seconds,
               EXTRACT(EPOCH FROM clock_timestamp() - xact_start)::float8 AS transaction_seconds
        FROM pg_stat_activity
        WHERE state LIKE 'idle in transaction%%' AND pid <> pg_backend_pid()
        ORDER BY state_change""")
    for row in idle:
        row["idle_seconds"] = round(row["idle_seconds"], 1)
        row["transaction_seconds"] = round(row["transaction_seconds"] or 0, 1)
    facts["idle_in_transaction"] = idle
    cur.execute("SELECT count(*), min(prepared) FROM pg_prepared_xacts")
    count, oldest_prepared = cur.fetchone()
    facts["prepared_transactions"] = {"count": count, "oldest": _iso(oldest_prepared)}
    return facts


def xid_facts(cur, db):
    cur.execute("SELECT datname, age(datfrozenxid)::bigint, mxid_age(datminmxid)::bigint FROM pg_database"
                " ORDER BY age(datfrozenxid) DESC")
    rows = cur.fetchall()
    worst = rows[0]
    current = next((r for r in rows if r[0] == db["name"]), worst)
    return {
        "max_age": worst[1], "max_age_database": worst[0],
        "database_age": current[1], "multixact_age": max(r[2] for r in rows),
        "wraparound_limit": XID_WRAPAROUND_LIMIT,
        "wraparound_percent": round(100.0 * worst[1] / XID_WRAPAROUND_LIMIT, 6),
        "autovacuum_freeze_max_age": db["autovacuum_freeze_max_age"],
    }


def replication_slot_facts(cur):
    return [
        dict(row, retained_wal_bytes=_num(row["retained_wal_bytes"]), safe_wal_size=_num(row["safe_wal_size"]))
        for row in _fetchall_dicts(cur, """
            SELECT slot_name AS name, slot_type AS type, database, active, wal_status, safe_wal_size,
                   pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                                        ELSE pg_current_wal_lsn() END, restart_lsn) AS retained_wal_bytes
            FROM pg_replication_slots ORDER BY slot_name""")]


def wal_facts(cur):
    cur.execute("SELECT count(*), COALESCE(sum(size), 0)::bigint FROM pg_ls_waldir()")
    files, size = cur.fetchone()
    cur.execute("SELECT current_setting('wal_level'), current_setting('max_wal_size'),"
                " current_setting('max_slot_wal_keep_size')")
    level, max_size, keep = cur.fetchone()
    return {"files": files, "size_bytes": size, "wal_level": level, "max_wal_size": max_size,
            "max_slot_wal_keep_size": keep}


_LOCAL_HOSTS = ("", "localhost", "127.0.0.1", "::1")


def disk_facts(cur, params):
    """Free and used space of the data directory when the server is local, or of ``disk_path``."""
    path = params.get("disk_path")
    source = "disk_path"
    if not path:
        host = params.get("login_unix_socket") or params.get("login_host") or ""
        if not (host.startswith("/") or host in _LOCAL_HOSTS or host.startswith("127.")):
            return {"available": False, "reason": "the server is not on this host (%s); set disk_path to a mount"
                    " of its data directory to measure disk space" % host}
        try:
            cur.execute("SELECT current_setting('data_directory')")
            path = cur.fetchone()[0]
        except psycopg.Error as exc:
            return {"available": False, "reason": "cannot read data_directory (%s); set disk_path"
                    % str(exc).strip().splitlines()[0]}
        source = "data_directory"
        if not os.path.isdir(path):
            return {"available": False, "reason": "data directory %s is not on this host; set disk_path" % path}
    try:
        st = os.statvfs(path)
    except OSError as exc:
        return {"available": False, "reason": "cannot measure %s: %s" % (path, exc.strerror or exc)}
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    free = st.f_bavail * st.f_frsize
    usable = used + free
    return {"available": True, "path": path, "source": source, "total_bytes": st.f_blocks * st.f_frsize,
            "used_bytes": used, "free_bytes": free,
            "used_percent": round(100.0 * used / usable, 2) if usable else None}


# -- orchestrator profiles -------------------------------------------------------------------------

def detect_profile(cur, schema, wanted="auto"):
    cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))
    present = {r[0] for r in cur.fetchall()}
    if wanted not in ("auto", None):
        if wanted == "none":
            return "unknown"
        return wanted
    for name, tables in PROFILE_TABLES.items():
        if all(t in present for t in tables):
            return name
    return "unknown"


def _estimated_rows(cur, schema, table):
    cur.execute("SELECT c.reltuples::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND c.relname = %s", (schema, table))
    row = cur.fetchone()
    return row[0] if row else None


def _table_rows(cur, schema, table, exact_limit):
    """(rows, exact): an exact count when the table is below ``exact_limit`` rows, else the planner's."""
    estimate = _estimated_rows(cur, schema, table)
    if estimate is not None and 0 <= estimate and estimate >= exact_limit:
        return int(estimate), False
    # Never analysed (-1) or small: count, but never past the limit.
    cur.execute(sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} LIMIT %s) AS c").format(
        sql.Identifier(schema, table)), (exact_limit + 1,))
    n = cur.fetchone()[0]
    if n > exact_limit:
        return max(n, int(estimate or 0)), False
    return n, True


def _plan_rows(cur, query, params=None):
    cur.execute(sql.SQL("EXPLAIN (FORMAT JSON) {}").format(query), params)
    return int(cur.fetchone()[0][0]["Plan"]["Plan Rows"])


def dagster_event_categories(cur, schema, exact_limit):
    """event_logs by event type (LOG = Python log lines) and Python log lines by level."""
    events = sql.Identifier(schema, "event_logs")
    total, exact = _table_rows(cur, schema, "event_logs", exact_limit)
    by_type = {}
    by_level = {}
    if exact:
        cur.execute(sql.SQL("SELECT dagster_event_type, count(*), min(timestamp), max(timestamp) FROM {}"
                            " GROUP BY 1").format(events))
        for etype, n, oldest, newest in cur.fetchall():
            by_type[etype or "LOG"] = {"rows": n, "oldest": _iso(oldest), "newest": _iso(newest)}
        cur.execute(sql.SQL("SELECT event::json ->> 'level', count(*) FROM {} WHERE dagster_event_type IS NULL"
                            " GROUP BY 1").format(events))
        for level, n in cur.fetchall():
            by_level[LOG_LEVEL_NAMES.get(str(level), str(level))] = n
        method = "exact counts; oldest/newest are the row timestamps"
    else:
        # Huge table: distinct types by a loose scan of the (dagster_event_type, id) index, the
        # planner's row estimate per type, oldest/newest from the first and last id of each type.
        cur.execute(sql.SQL("""
            WITH RECURSIVE types(t) AS (
              (SELECT dagster_event_type FROM {ev} WHERE dagster_event_type IS NOT NULL
               ORDER BY dagster_event_type LIMIT 1)
              UNION ALL
              SELECT (SELECT dagster_event_type FROM {ev} WHERE dagster_event_type > types.t
                      ORDER BY dagster_event_type LIMIT 1) FROM types WHERE types.t IS NOT NULL)
            SELECT t FROM types WHERE t IS NOT NULL""").format(ev=events))
        types = [r[0] for r in cur.fetchall()] + [None]
        for etype in types:
            cond = sql.SQL("dagster_event_type IS NULL") if etype is None else sql.SQL("dagster_event_type = %s")
            args = () if etype is None else (etype,)
            ends = []
            for direction in (sql.SQL("ASC"), sql.SQL("DESC")):
                cur.execute(sql.SQL("SELECT timestamp FROM {ev} WHERE {cond}"
                                    " ORDER BY dagster_event_type {d}, id {d} LIMIT 1").format(
                    ev=events, cond=cond, d=direction), args)
                row = cur.fetchone()
                ends.append(row[0] if row else None)
            if ends[0] is None and ends[1] is None:
                continue
            n = _plan_rows(cur, sql.SQL("SELECT 1 FROM {ev} WHERE {cond}").format(ev=events, cond=cond), args)
            by_type[etype or "LOG"] = {"rows": n, "oldest": _iso(ends[0]), "newest": _iso(ends[1])}
        by_level = _sampled_log_levels(cur, events, total, by_type.get("LOG", {}).get("rows", 0))
        method = ("planner estimates per type; oldest/newest are the timestamps of each type's first and last id;"
                  " log levels scaled from a table sample")
    return {"rows": total, "exact": exact, "method": method,
            "by_event_type": dict(sorted(by_type.items(), key=lambda kv: -kv[1]["rows"])),
            "log_lines_by_level": by_level}


def _sampled_log_levels(cur, events, total, log_rows):
    if not total or not log_rows:
        return {}
    percent = min(100.0, 100.0 * LOG_SAMPLE_ROWS / max(total, 1))
    cur.execute(sql.SQL("SELECT event::json ->> 'level', count(*) FROM {} TABLESAMPLE SYSTEM (%s)"
                        " WHERE dagster_event_type IS NULL GROUP BY 1").format(events), (percent,))
    sample = cur.fetchall()
    seen = sum(n for dummy, n in sample)
    if not seen:
        return {}
    return {LOG_LEVEL_NAMES.get(str(level), str(level)): int(round(log_rows * n / seen)) for level, n in sample}


def _grouped(cur, schema, table, column, exact_limit):
    rows, exact = _table_rows(cur, schema, table, exact_limit)
    out = {"rows": rows, "exact": exact}
    if exact:
        cur.execute(sql.SQL("SELECT {c}::text, count(*) FROM {t} GROUP BY 1 ORDER BY 2 DESC").format(
            c=sql.Identifier(column), t=sql.Identifier(schema, table)))
        out["by_" + column] = {str(k): n for k, n in cur.fetchall()}
    return out


def dagster_facts(cur, schema, exact_limit):
    return {"event_logs": dagster_event_categories(cur, schema, exact_limit),
            "runs": _grouped(cur, schema, "runs", "status", exact_limit),
            "job_ticks": _grouped(cur, schema, "job_ticks", "status", exact_limit)}


def predict_retention(conn, schema, profile, plan, budget):
    """What the profile's prune module would delete next: its own check-mode path, without its lock.

    The engine in check mode only counts (index-driven, bounded by ``max_rows``); ``extra_steps`` in
    check mode only predicts (Prefect's artifact collections).
    """
    profile.check_schema(conn, schema)
    rules = profile.build_rules(plan, schema, conn)
    predicted = DeleteEngine(conn, schema, budget, check_mode=True).run(rules)
    profile.extra_steps(conn, schema, plan, True, predicted)
    return {
        "settings": plan,
        "next_run_rows": predicted["deleted_total"],
        "rows_left_after_next_run": predicted["remaining_total"],
        "next_run_capped": predicted["capped"],
        "max_rows_per_run": budget.max_rows,
        "handlers": {name: {"table": h["table"], "description": h["description"], "cutoff": h["cutoff"],
                            "rows": h["deleted"], "remaining": h["remaining"],
                            "remaining_exact": h.get("remaining_exact", True), "status": h["status"],
                            "error": h["error"]}
                     for name, h in predicted["handlers"].items()},
        "method": "%s_prune's own check-mode prediction (bounded counts, capped at max_rows)" % profile.name,
    }


def _columns(cur, schema, table):
    cur.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
                (schema, table))
    return {r[0] for r in cur.fetchall()}


def prefect_facts(cur, schema, exact_limit):
    facts = {}
    for table, column, time_column in (("events", "event", "occurred"), ("log", "level", "timestamp"),
                                       ("flow_run", "state_type", "end_time")):
        cols = _columns(cur, schema, table)
        group = column if column in cols else None
        entry = _grouped(cur, schema, table, group, exact_limit) if group else dict(
            zip(("rows", "exact"), _table_rows(cur, schema, table, exact_limit)))
        if entry["exact"] and time_column in cols:
            cur.execute(sql.SQL("SELECT min({c}), max({c}) FROM {t}").format(
                c=sql.Identifier(time_column), t=sql.Identifier(schema, table)))
            oldest, newest = cur.fetchone()
            entry.update(oldest=_iso(oldest), newest=_iso(newest))
        if "by_level" in entry:
            entry["by_level"] = {LOG_LEVEL_NAMES.get(k, k): v for k, v in entry["by_level"].items()}
        facts[table] = entry
    return facts


# -- disk history ----------------------------------------------------------------------------------

def load_history(path):
    try:
        with open(path) as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        return []
    return [s for s in data.get("samples", []) if isinstance(s, dict) and "ts" in s] if isinstance(data, dict) else []


def update_history(path, sample, keep_days, now=None):
    now = now or time.time()
    samples = [s for s in load_history(path) if s["ts"] >= now - keep_days * 86400]
    samples.append(sample)
    samples = samples[-2000:]
    write_atomic(path, json.dumps({"version": 1, "samples": samples}, indent=1) + "\n", mode=0o600)
    return samples


def growth_per_day(samples, key, window_days=7.0):
    """Least-squares slope of ``key`` over the samples of the last ``window_days`` (bytes per day)."""
    points = [(s["ts"], s[key]) for s in samples if s.get(key) is not None]
    if not points:
        return None
    newest = max(t for t, dummy in points)
    points = [(t, v) for t, v in points if t >= newest - window_days * 86400]
    if len(points) < 2 or points[-1][0] - points[0][0] < 3600:
        return None
    n = len(points)
    mean_t = sum(t for t, dummy in points) / n
    mean_v = sum(v for dummy, v in points) / n
    var = sum((t - mean_t) ** 2 for t, dummy in points)
    if not var:
        return None
    slope = sum((t - mean_t) * (v - mean_v) for t, v in points) / var
    return slope * 86400


def growth_facts(samples, disk):
    out = {"samples": len(samples), "database_bytes_per_day": None, "disk_bytes_per_day": None,
           "days_until_full": None}
    if len(samples) < 2:
        out["reason"] = "fewer than two samples in the history file"
        return out
    out["database_bytes_per_day"] = _round(growth_per_day(samples, "database_bytes"))
    disk_rate = growth_per_day(samples, "disk_used_bytes")
    out["disk_bytes_per_day"] = _round(disk_rate)
    if disk_rate is None:
        out["reason"] = "the history covers less than an hour of the last week"
    elif disk_rate <= 0:
        out["reason"] = "disk usage is not growing"
    elif disk.get("available"):
        out["days_until_full"] = round(disk["free_bytes"] / disk_rate, 1)
    return out


def _round(value):
    return None if value is None else round(value, 1)


# -- findings --------------------------------------------------------------------------------------

def _qualified(table):
    return "%s.%s" % (table["schema"], table["name"])


def find_red_flags(result, t):
    """Red flags with a severity and one line of advice, from the facts already gathered."""
    out = []
    disk = result.get("disk") or {}
    if disk.get("available") and disk.get("used_percent") is not None:
        pct = disk["used_percent"]
        if pct > t["disk_used_warning_percent"]:
            sev = "critical" if pct > t["disk_used_critical_percent"] else "warning"
            out.append(Finding(sev, "disk_used", disk["path"], "disk %.1f%% used (%s free)"
                               % (pct, human_bytes(disk["free_bytes"])),
                               "prune old orchestrator data, repack bloated tables or grow the volume",
                               pct, t["disk_used_warning_percent"]))
    days = (result.get("growth") or {}).get("days_until_full")
    if days is not None and days < t["days_until_full_warning"]:
        sev = "critical" if days < t["days_until_full_critical"] else "warning"
        out.append(Finding(sev, "disk_days_until_full", disk.get("path"),
                           "disk full in about %.1f days at the recent growth rate" % days,
                           "shorten retention or grow the volume before it fills", days,
                           t["days_until_full_warning"]))
    db = result.get("database") or {}
    if db and not db.get("autovacuum"):
        out.append(Finding("warning", "autovacuum_off", db.get("name"), "autovacuum is off for the whole server",
                           "turn autovacuum on; without it dead tuples and transaction-ID age only grow",
                           False, True))
    stale_before = time.time() - t["autovacuum_stale_hours"] * 3600
    for table in result.get("_all_tables", []):
        name = _qualified(table)
        dead, ratio = table["dead_tuples"], table["dead_ratio_percent"]
        if dead >= t["min_dead_tuples"] and ratio > t["dead_ratio_warning_percent"]:
            sev = "critical" if ratio > t["dead_ratio_critical_percent"] else "warning"
            out.append(Finding(sev, "dead_tuples", name, "%d dead tuples, %.0f%% of %d live"
                               % (dead, ratio, table["live_tuples"]),
                               "VACUUM (ANALYZE) %s; if it stays bloated, repack it (pg_repack) instead of"
                               " VACUUM FULL" % name, ratio, t["dead_ratio_warning_percent"]))
        if not table["autovacuum_enabled"]:
            out.append(Finding("warning" if dead >= t["min_dead_tuples"] else "info", "autovacuum_disabled", name,
                               "autovacuum is disabled on this table (%d dead tuples)" % dead,
                               "ALTER TABLE %s RESET (autovacuum_enabled)" % name, False, True))
        elif db.get("autovacuum") and dead >= max(table["autovacuum_trigger_dead_tuples"], t["min_dead_tuples"]):
            last = max([_parse_ts(table["last_vacuum"]), _parse_ts(table["last_autovacuum"])], default=None,
                       key=lambda v: v or 0)
            if not last or last < stale_before:
                since = "never" if not last else "%s ago" % human_seconds(time.time() - last)
                out.append(Finding("warning", "autovacuum_stale", name,
                                   "autovacuum due (%d dead tuples > trigger %d) but last vacuum %s"
                                   % (dead, table["autovacuum_trigger_dead_tuples"], since),
                                   "look for long transactions or slots holding back vacuum, and lower"
                                   " autovacuum_vacuum_scale_factor on %s" % name,
                                   dead, table["autovacuum_trigger_dead_tuples"]))
        updates, live = table["updates"], table["live_tuples"]
        if updates >= t["hot_table_min_updates"] and updates >= t["hot_table_updates_per_row"] * max(live, 1):
            hot = table["hot_update_percent"] or 0.0
            advice = []
            if table["fillfactor"] >= 100 or hot < 90:
                advice.append("ALTER TABLE %s SET (fillfactor = 70)" % name)
            if "autovacuum_vacuum_scale_factor" not in table["options"]:
                advice.append("SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000)")
            advice.append("keep updated columns out of indexes so updates stay HOT")
            sev = "warning" if hot < 50 or ratio > 20 else "info"
            out.append(Finding(sev, "hot_update_table", name,
                               "%d updates on %d live rows (%.0f per row), %.0f%% HOT, fillfactor %d"
                               % (updates, live, updates / max(live, 1), hot, table["fillfactor"]),
                               "; ".join(advice), updates, t["hot_table_min_updates"]))
    for index in result.get("_all_indexes", []):
        if index["scans"] == 0 and index["size_bytes"] >= t["unused_index_min_bytes"] \
                and not index["is_unique"] and not index["is_primary"]:
            out.append(Finding("info", "unused_index", "%s.%s" % (index["schema"], index["name"]),
                               "index on %s has %s and no scans since the statistics were reset"
                               % (index["table"], human_bytes(index["size_bytes"])),
                               "check replicas' usage, then DROP INDEX CONCURRENTLY if nothing needs it",
                               index["size_bytes"], t["unused_index_min_bytes"]))
        if not index["is_valid"]:
            out.append(Finding("warning", "invalid_index", "%s.%s" % (index["schema"], index["name"]),
                               "index is invalid (an interrupted CREATE INDEX CONCURRENTLY or repack)",
                               "DROP INDEX CONCURRENTLY it and create it again", False, True))
    conns = result.get("connections") or {}
    if conns:
        pct = conns["used_percent"]
        if pct >= t["connections_warning_percent"]:
            sev = "critical" if pct >= t["connections_critical_percent"] else "warning"
            out.append(Finding(sev, "connections", db.get("name"), "%d of %d connections in use (%.0f%%)"
                               % (conns["total"], conns["max_connections"], pct),
                               "put a pooler (PgBouncer) in front and look for idle connection leaks",
                               pct, t["connections_warning_percent"]))
        oldest = conns.get("oldest_transaction")
        if oldest and oldest["age_seconds"] >= t["long_transaction_warning_seconds"]:
            sev = "critical" if oldest["age_seconds"] >= t["long_transaction_critical_seconds"] else "warning"
            out.append(Finding(sev, "long_transaction", "pid %d" % oldest["pid"],
                               "transaction open for %s (%s, %s, state %s)"
                               % (human_seconds(oldest["age_seconds"]), oldest["user"], oldest["application_name"]
                                  or "no application_name", oldest["state"]),
                               "it holds back vacuum everywhere: finish it or SELECT pg_terminate_backend(%d)"
                               % oldest["pid"], oldest["age_seconds"], t["long_transaction_warning_seconds"]))
        stuck = [s for s in conns.get("idle_in_transaction", [])
                 if s["idle_seconds"] >= t["idle_in_transaction_warning_seconds"]]
        if stuck:
            first = stuck[0]
            out.append(Finding("warning", "idle_in_transaction", "pid %d" % first["pid"],
                               "%d session(s) idle in transaction, the longest for %s (%s, %s)"
                               % (len(stuck), human_seconds(first["idle_seconds"]), first["user"],
                                  first["application_name"] or "no application_name"),
                               "fix the client that leaves transactions open, set"
                               " idle_in_transaction_session_timeout, or SELECT pg_terminate_backend(%d)"
                               % first["pid"], first["idle_seconds"], t["idle_in_transaction_warning_seconds"]))
        prepared = conns.get("prepared_transactions") or {}
        if prepared.get("count"):
            out.append(Finding("warning", "prepared_transactions", db.get("name"),
                               "%d prepared transaction(s), oldest from %s" % (prepared["count"], prepared["oldest"]),
                               "COMMIT PREPARED or ROLLBACK PREPARED them; they hold back vacuum",
                               prepared["count"], 0))
    xid = result.get("xid") or {}
    # Thresholds against the exact age, not the rounded percent shown (a young cluster rounds to 0).
    xid_percent = 100.0 * xid["max_age"] / xid["wraparound_limit"] if xid else 0.0
    if xid and xid_percent >= t["xid_age_warning_percent"]:
        sev = "critical" if xid_percent >= t["xid_age_critical_percent"] else "warning"
        out.append(Finding(sev, "xid_wraparound", xid["max_age_database"],
                           "transaction-ID age %d is %.1f%% of the wraparound limit"
                           % (xid["max_age"], xid["wraparound_percent"]),
                           "find what blocks freezing (long transactions, slots, prepared transactions) and"
                           " VACUUM (FREEZE) the oldest tables", xid["wraparound_percent"],
                           t["xid_age_warning_percent"]))
    for slot in result.get("replication_slots") or []:
        retained = slot["retained_wal_bytes"] or 0
        if slot["wal_status"] == "lost":
            out.append(Finding("warning", "replication_slot_lost", slot["name"],
                               "replication slot has lost required WAL; its consumer cannot resume",
                               "SELECT pg_drop_replication_slot('%s') and re-create the replica" % slot["name"],
                               retained, None))
        elif not slot["active"] or retained >= t["slot_retained_wal_critical_bytes"]:
            sev = "critical" if retained >= t["slot_retained_wal_critical_bytes"] else "warning"
            out.append(Finding(sev, "replication_slot", slot["name"], "%s replication slot holds %s of WAL"
                               % ("inactive" if not slot["active"] else "lagging", human_bytes(retained)),
                               "reconnect its consumer, or SELECT pg_drop_replication_slot('%s') if it is gone"
                               % slot["name"], retained, t["slot_retained_wal_critical_bytes"]))
    order = {s: i for i, s in enumerate(SEVERITIES)}
    out.sort(key=lambda f: (order[f["severity"]], f["check"], str(f["object"])))
    return out


def _parse_ts(text):
    if not text:
        return None
    return datetime.datetime.fromisoformat(text).timestamp()


# -- the run ---------------------------------------------------------------------------------------

def _section(result, name, fn, *args):
    """Run one section; a database error becomes a note and a null section."""
    try:
        return fn(*args)
    except (psycopg.Error, SchemaMismatch) as exc:
        text = getattr(exc, "message", None) or str(exc).strip().splitlines()[0]
        result["notes"].append("%s: %s" % (name, text))
        return None


def unavailable_result(exc, params):
    return {"changed": False, "available": False, "reason": redact(exc.message, params),
            "database": None, "findings": [dict(Finding("critical", "unavailable", params.get("login_db") or "postgres",
                                                        redact(exc.message, params),
                                                        "check that the server runs and that host, port and"
                                                        " credentials are right"))],
            "findings_by_severity": {"critical": 1, "warning": 0, "info": 0},
            "summary_lines": ["pgtidy health: database %s is UNAVAILABLE" % (params.get("login_db") or "postgres"),
                              "  " + redact(exc.message, params)]}


def run_health(params, check_mode=False):
    """Return the health result; never writes to the database."""
    started = time.monotonic()
    thresholds, plans = validate_options(params)
    try:
        conn = connect(params)
    except ConnectionFailed as exc:
        if params.get("fail_on_unavailable"):
            raise
        result = unavailable_result(exc, params)
        result.update(check_mode=check_mode, duration_s=round(time.monotonic() - started, 3))
        return result
    schema = params.get("schema") or "public"
    exact_limit = params.get("exact_count_limit", 1_000_000)
    result = {"changed": False, "available": True, "check_mode": check_mode, "notes": [], "schema": schema}
    try:
        facts = server_facts(conn)
        with conn.cursor() as cur:
            db = database_facts(cur)
            db["in_recovery"] = facts["in_recovery"]
            db["server_version_num"] = facts["server_version_num"]
            result["database"] = db
            tables = _section(result, "tables", table_facts, cur, db) or []
            indexes = _section(result, "indexes", index_facts, cur) or []
            result["_all_tables"], result["_all_indexes"] = tables, indexes
            result["table_count"] = len(tables)
            result["tables"] = tables[:params.get("top_tables", 20)]
            result["indexes"] = indexes[:params.get("top_indexes", 20)]
            result["connections"] = _section(result, "connections", connection_facts, cur, db)
            result["xid"] = _section(result, "xid", xid_facts, cur, db)
            result["replication_slots"] = _section(result, "replication_slots", replication_slot_facts, cur)
            result["wal"] = _section(result, "wal", wal_facts, cur)
            result["disk"] = disk_facts(cur, params)
            profile = detect_profile(cur, schema, params.get("profile") or "auto")
            result["profile"] = profile
            result["orchestrator"] = None
            if profile in plans:
                facts_of = dagster_facts if profile == "dagster" else prefect_facts
                orchestrator = _section(result, profile, facts_of, cur, schema, exact_limit) or {}
                plan, budget = plans[profile]
                orchestrator["retention"] = _section(result, "%s retention" % profile, predict_retention,
                                                     conn, schema, _profile(profile), plan, budget)
                result["orchestrator"] = orchestrator
    finally:
        conn.close()
    disk = result["disk"]
    samples = []
    if params.get("history_file"):
        sample = {"ts": time.time(), "database_bytes": db["size_bytes"],
                  "disk_used_bytes": disk.get("used_bytes"), "disk_free_bytes": disk.get("free_bytes")}
        try:
            samples = update_history(params["history_file"], sample, params.get("history_days", 30))
        except OSError as exc:
            result["notes"].append("history_file: %s" % exc)
            samples = load_history(params["history_file"]) + [sample]
    result["growth"] = growth_facts(samples, disk) if params.get("history_file") else None
    findings = find_red_flags(result, thresholds)
    del result["_all_tables"], result["_all_indexes"]
    result["findings"] = [dict(f) for f in findings]
    result["findings_by_severity"] = {s: sum(1 for f in findings if f["severity"] == s) for s in SEVERITIES}
    result["thresholds"] = thresholds
    result["duration_s"] = round(time.monotonic() - started, 3)
    result["summary_lines"] = summary_lines(result)
    return result


# -- the human summary -----------------------------------------------------------------------------

def _table_line(cells, widths):
    return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))


def summary_lines(result, top=10):
    """A fixed-width table a person reads at the end of the playbook."""
    db = result["database"]
    lines = ["pgtidy health: %s (%s profile), PostgreSQL %s%s" % (
        db["name"], result.get("profile", "unknown"), db["server_version"], ", standby" if db.get("in_recovery") else "")]
    disk = result.get("disk") or {}
    parts = ["database %s" % human_bytes(db["size_bytes"])]
    if disk.get("available"):
        parts.append("disk %.0f%% used, %s free" % (disk["used_percent"], human_bytes(disk["free_bytes"])))
    growth = result.get("growth") or {}
    if growth.get("days_until_full") is not None:
        parts.append("full in ~%.0f days" % growth["days_until_full"])
    if growth.get("database_bytes_per_day") is not None:
        parts.append("database grows %s/day" % human_bytes(growth["database_bytes_per_day"]))
    lines.append("  " + " | ".join(parts))
    conns = result.get("connections")
    if conns:
        states = ", ".join("%s %d" % (k, v) for k, v in sorted(conns["by_state"].items()))
        oldest = conns.get("oldest_transaction")
        lines.append("  connections %d/%d (%s) | oldest transaction %s" % (
            conns["total"], conns["max_connections"], states,
            human_seconds(oldest["age_seconds"]) if oldest else "-"))
    xid, wal = result.get("xid"), result.get("wal")
    tail = []
    if xid:
        tail.append("xid age %d (%.1f%% of wraparound)" % (xid["max_age"], xid["wraparound_percent"]))
    if wal:
        tail.append("WAL %s in %d files" % (human_bytes(wal["size_bytes"]), wal["files"]))
    slots = result.get("replication_slots")
    if slots:
        tail.append("%d replication slot(s)" % len(slots))
    if tail:
        lines.append("  " + " | ".join(tail))
    lines.append("")
    widths = (34, 9, 9, 9, 9, 10, 9, 6, 5, 16)
    lines.append(_table_line(("TABLE", "TOTAL", "TABLE", "INDEX", "TOAST", "LIVE", "DEAD", "DEAD%", "HOT%",
                              "LAST VACUUM"), widths))
    for t in (result.get("tables") or [])[:top]:
        last = max([t["last_vacuum"] or "", t["last_autovacuum"] or ""])
        lines.append(_table_line((
            _qualified(t)[:34], human_bytes(t["total_bytes"]), human_bytes(t["table_bytes"]),
            human_bytes(t["index_bytes"]), human_bytes(t["toast_bytes"]), t["live_tuples"], t["dead_tuples"],
            "%.0f" % t["dead_ratio_percent"], "-" if t["hot_update_percent"] is None else "%.0f" % t["hot_update_percent"],
            last[:16].replace("T", " ") or "never"), widths))
    orch = result.get("orchestrator") or {}
    ev = orch.get("event_logs")
    if ev:
        lines.append("")
        lines.append("event_logs: %d rows (%s)" % (ev["rows"], "exact" if ev["exact"] else "estimated"))
        for etype, info in list(ev["by_event_type"].items())[:12]:
            lines.append("  %-32s %10d  %s .. %s" % (etype, info["rows"], (info["oldest"] or "-")[:16],
                                                     (info["newest"] or "-")[:16]))
        if ev["log_lines_by_level"]:
            lines.append("  log lines by level: " + ", ".join(
                "%s %d" % kv for kv in sorted(ev["log_lines_by_level"].items())))
    ret = orch.get("retention")
    if ret:
        lines.append("retention: the next %s_prune run would delete %d rows%s" % (
            result["profile"], ret["next_run_rows"], " (capped; %d more after it)" % ret["rows_left_after_next_run"]
            if ret["next_run_capped"] else ""))
    lines.append("")
    counts = result["findings_by_severity"]
    lines.append("FINDINGS: %d critical, %d warning, %d info" % (counts["critical"], counts["warning"], counts["info"]))
    for f in result["findings"]:
        lines.append("  %-8s %-20s %s: %s" % (f["severity"].upper(), f["check"], f["object"], f["message"]))
        lines.append("           -> %s" % f["recommendation"])
    for note in result.get("notes") or []:
        lines.append("  note: %s" % note)
    return lines


# -- metrics ---------------------------------------------------------------------------------------

def health_metrics(result, job="health_info", database=None):
    """Prometheus textfile metrics for a health result (also for an unavailable or failed run)."""
    database = database or (result.get("database") or {}).get("name") or "postgres"
    m = Metrics()
    base = {"job": job, "database": database}
    up = bool(result.get("available")) and not result.get("failed")
    m.gauge("health_up", "1 if the database answered the health check.", up, **base)
    now = time.time()
    m.gauge("run_timestamp_seconds", "Unix time the last run finished.", now, **base)
    if up:
        m.gauge("last_success_timestamp_seconds", "Unix time of the last successful run.", now, **base)
    m.gauge("run_duration_seconds", "Duration of the last run.", result.get("duration_s", 0), **base)
    for severity in SEVERITIES:
        m.gauge("health_findings", "Red flags found by the last health check, by severity.",
                (result.get("findings_by_severity") or {}).get(severity, 0), severity=severity, **base)
    if not up:
        return m
    db = result["database"]
    m.gauge("database_size_bytes", "Size of the database on disk.", db["size_bytes"], **base)
    for t in result.get("tables") or []:
        labels = dict(base, schema=t["schema"], table=t["name"])
        for part in ("total", "table", "index", "toast"):
            m.gauge("table_size_bytes", "Table size by part (total, table, index, toast).",
                    t["%s_bytes" % part], part=part, **labels)
        m.gauge("table_live_tuples", "Live tuples (statistics).", t["live_tuples"], **labels)
        m.gauge("table_dead_tuples", "Dead tuples (statistics).", t["dead_tuples"], **labels)
        m.gauge("table_dead_ratio", "Dead tuples per live tuple.", t["dead_ratio_percent"] / 100.0, **labels)
    conns = result.get("connections")
    if conns:
        for state, n in conns["by_state"].items():
            m.gauge("connections", "Client connections by state.", n, state=state, **base)
        m.gauge("connections_max", "max_connections of the server.", conns["max_connections"], **base)
        oldest = conns.get("oldest_transaction")
        m.gauge("oldest_transaction_seconds", "Age of the oldest open transaction.",
                oldest["age_seconds"] if oldest else 0, **base)
        m.gauge("idle_in_transaction_sessions", "Sessions idle in transaction.",
                len(conns["idle_in_transaction"]), **base)
    xid = result.get("xid")
    if xid:
        m.gauge("xid_age", "Oldest transaction-ID age of any database.", xid["max_age"], **base)
        m.gauge("xid_wraparound_ratio", "Transaction-ID age as a fraction of the wraparound limit.",
                xid["wraparound_percent"] / 100.0, **base)
    for slot in result.get("replication_slots") or []:
        m.gauge("replication_slot_retained_wal_bytes", "WAL a replication slot keeps.",
                slot["retained_wal_bytes"] or 0, slot=slot["name"], active=str(bool(slot["active"])).lower(), **base)
    wal = result.get("wal")
    if wal:
        m.gauge("wal_size_bytes", "Size of pg_wal.", wal["size_bytes"], **base)
    disk = result.get("disk") or {}
    if disk.get("available"):
        for key in ("total", "used", "free"):
            m.gauge("disk_%s_bytes" % key, "Filesystem of the data directory: %s bytes." % key,
                    disk["%s_bytes" % key], path=disk["path"], **base)
    growth = result.get("growth") or {}
    if growth.get("days_until_full") is not None:
        m.gauge("disk_days_until_full", "Days until the disk is full at the recent growth rate.",
                growth["days_until_full"], **base)
    orch = result.get("orchestrator") or {}
    ev = orch.get("event_logs")
    if ev:
        for etype, info in ev["by_event_type"].items():
            m.gauge("orchestrator_rows", "Rows of the orchestrator's heavy tables by category.", info["rows"],
                    profile=result["profile"], table="event_logs", category=etype, **base)
    for table in ("runs", "job_ticks", "events", "log", "flow_run"):
        entry = orch.get(table)
        if entry:
            m.gauge("orchestrator_table_rows", "Rows of the orchestrator's tables.", entry["rows"],
                    profile=result["profile"], table=table, **base)
    ret = orch.get("retention") or {}
    for name, handler in (ret.get("handlers") or {}).items():
        m.gauge("retention_backlog_rows", "Rows the current retention would prune, by handler.",
                handler["rows"] + handler["remaining"], profile=result["profile"], handler=name, **base)
    return m


__all__ = ["HEALTH_ARGUMENT_SPEC", "DEFAULT_THRESHOLDS", "run_health", "health_metrics", "summary_lines",
           "validate_options", "find_red_flags", "growth_per_day", "PgtidyError"]
