# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The orchestrator profile of a database (Dagster, Prefect, Airflow or unknown) and its heavy tables by
category, with exact counts below a row limit and the planner's estimates above it."""

from __future__ import annotations

from .values import iso_or_none

try:
    from psycopg import sql
except ImportError:  # pragma: no cover - the module reports the missing driver
    sql = None

LOG_LEVEL_NAMES = {"10": "DEBUG", "20": "INFO", "30": "WARNING", "40": "ERROR", "50": "CRITICAL"}

PROFILE_TABLES = {
    "dagster": ("event_logs", "runs", "job_ticks"),
    "prefect": ("flow_run", "log", "events"),
    "airflow": ("dag_run", "task_instance", "xcom"),
}
LOG_SAMPLE_ROWS = 50_000


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
            by_type[etype or "LOG"] = {"rows": n, "oldest": iso_or_none(oldest), "newest": iso_or_none(newest)}
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
            by_type[etype or "LOG"] = {"rows": n, "oldest": iso_or_none(ends[0]), "newest": iso_or_none(ends[1])}
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
            entry.update(oldest=iso_or_none(oldest), newest=iso_or_none(newest))
        if "by_level" in entry:
            entry["by_level"] = {LOG_LEVEL_NAMES.get(k, k): v for k, v in entry["by_level"].items()}
        facts[table] = entry
    return facts


def airflow_facts(cur, schema, exact_limit):
    """Dag runs and task instances by state, the audit log and jobs: the tables airflow_prune works on."""
    facts = {"dag_run": _grouped(cur, schema, "dag_run", "state", exact_limit),
             "task_instance": _grouped(cur, schema, "task_instance", "state", exact_limit),
             "xcom": dict(zip(("rows", "exact"), _table_rows(cur, schema, "xcom", exact_limit))),
             "job": _grouped(cur, schema, "job", "state", exact_limit)}
    facts["log"] = dict(zip(("rows", "exact"), _table_rows(cur, schema, "log", exact_limit)))
    return facts


# The facts section of each orchestrator health_info recognises.
ORCHESTRATOR_FACTS = {"dagster": dagster_facts, "prefect": prefect_facts, "airflow": airflow_facts}
