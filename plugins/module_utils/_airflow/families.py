# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Airflow table families beyond dag runs: finished callbacks, unused triggers, unused DAG versions,
expired web sessions, expired task state and orphaned partition log rows.

Each family is a rule of its own with its own retention option. A family whose table (or a column it reads)
is not in the database (an Airflow release without it, or ``session`` when the FAB auth manager is not
installed) becomes a rule that does nothing and says so in its report (``Absent``).

The families that rows of dag runs refer to wait for the ``dag_runs`` handler (``Rule.after``) and treat the
rows of the runs it deleted (in check mode: counted) as gone (``%(counted_runs)s``), so check mode predicts
what the real run deletes. Such rules walk their time column in bounded windows (``Sweep``): their candidates
are counted when their batches run, after ``dag_runs``, never up front.
"""

from __future__ import annotations

import datetime

from .._engine.retention import aware_cutoff
from .._engine.timewalk import TimeWalk
from .._engine.walks import IdScan, IdWalk, KeysetWalk, Rule, Walk
from .runs import RUNS_RULE

try:
    from psycopg import sql
except ImportError:  # pragma: no cover
    sql = None

FAMILY_OPTIONS = ("callback_retention_days", "trigger_retention_days", "dag_version_retention_days",
                  "session_retention_days", "task_state_store_retention_days",
                  "partitioned_asset_key_log_retention_days")
FAMILY_TABLES = ("callback", "trigger", "dag_version", "serialized_dag", "dag_code", "session", "task_state_store",
                 "partitioned_asset_key_log")

# What each family reads; a family whose table or columns are missing is skipped.
FAMILY_COLUMNS = {
    "callbacks": {"callback": ("id", "state", "created_at")},
    "triggers": {"trigger": ("id", "created_date"), "task_instance": ("trigger_id",)},
    "dag_versions": {"dag_version": ("id", "dag_id", "version_number", "created_at"),
                     "serialized_dag": ("id", "dag_version_id"), "dag_code": ("dag_version_id",),
                     "task_instance": ("dag_version_id",)},
    "sessions": {"session": ("id", "expiry")},
    "task_state_store": {"task_state_store": ("id", "dag_run_id", "expires_at")},
    "partitioned_asset_key_log": {"partitioned_asset_key_log": ("id", "asset_partition_dag_run_id", "created_at"),
                                  "asset_partition_dag_run": ("id", "created_dag_run_id")},
}
# Rows examined per statement by the windowed walks (their time column has no index, or they run after dag_runs).
SWEEP_WINDOW = 5000


class Sweep(TimeWalk):
    """A ``(time, id)`` walk in windows of ``scan_limit`` rows whose candidates are counted when its batches run
    (never up front: the handlers it waits for change them), in check mode as in a real run."""

    def precount(self, conn, state, cap):
        return None

    def remaining(self, conn, state, check_mode, precounted=None):
        KeysetWalk.remaining(self, conn, state, check_mode)

    def report(self, state):
        """A rule that deletes dependents with its rows (``cascade``) reports every table's rows, as dag_runs does."""
        return {"rows_by_table": self.rows_by_table(state)} if state.rule.cascade else {}


class Absent(Walk):
    """A family this database has no table for: nothing to walk, and the report says why."""

    def __init__(self, schema, reason):
        super().__init__(schema)
        self.reason = reason

    def privileges(self, rule):
        return []

    def prepare(self, conn, state, id_ranges):
        state.done = True

    def batch(self, conn, state, limit, upper, check_mode, precounted=None):
        return 0

    def remaining(self, conn, state, check_mode, precounted=None):
        state.remaining = 0
        state.remaining_exact = True

    def report(self, state):
        return {"skipped": self.reason}

    def rows_by_table(self, state):
        return {}


def _columns(conn, schema):
    """{table: {column: data_type}} of the tables the families read."""
    also = {"deadline", "deadline_alert", "task_instance_history", "dag_run", "asset_watcher"}
    tables = sorted({t for need in FAMILY_COLUMNS.values() for t in need} | also)
    with conn.cursor() as cur:
        cur.execute("SELECT table_name, column_name, data_type FROM information_schema.columns"
                    " WHERE table_schema = %s AND table_name = ANY(%s)", (schema, tables))
        found = {}
        for table, column, data_type in cur.fetchall():
            found.setdefault(table, {})[column] = data_type
    return found


def _missing(found, name):
    """Why family ``name`` cannot run here ("" when it can)."""
    for table, columns in FAMILY_COLUMNS[name].items():
        if table not in found:
            return "table %s is not in this database" % table
        lacking = [c for c in columns if c not in found[table]]
        if lacking:
            return "table %s has no column %s" % (table, ", ".join(lacking))
    return ""


def _in_column_zone(moment, naive):
    """An aware cutoff as a column compares it: naive UTC for ``timestamp without time zone`` (``naive``)."""
    return moment.astimezone(datetime.timezone.utc).replace(tzinfo=None) if naive else moment


def _referenced_by_run_rows(schema, table, column):
    """SQL over alias ``t``: a row of ``table`` of a remaining run (not one counted as gone) refers to ``t.id``."""
    return sql.SQL(
        "EXISTS (SELECT 1 FROM {tbl} AS x JOIN {runs} AS r ON r.dag_id = x.dag_id AND r.run_id = x.run_id"
        " WHERE x.{col} = t.id AND r.id <> ALL(%(counted_runs)s::int[]))").format(
        tbl=sql.Identifier(schema, table), runs=sql.Identifier(schema, "dag_run"), col=sql.Identifier(column))


def trigger_unused(schema, found):
    """SQL over alias ``t`` (a trigger): nothing Airflow reads refers to it, as ``Trigger.clean_unused`` decides,
    and no earlier try of a remaining task instance either. ``task_instance.trigger_id`` is ``ON DELETE
    CASCADE``: a trigger a task instance refers to must never go."""
    parts = [sql.SQL("NOT {}").format(_referenced_by_run_rows(schema, "task_instance", "trigger_id"))]
    if "trigger_id" in found.get("task_instance_history", {}):
        parts.append(sql.SQL("NOT {}").format(_referenced_by_run_rows(schema, "task_instance_history", "trigger_id")))
    for table in ("asset_watcher", "callback"):
        if "trigger_id" in found.get(table, {}):
            parts.append(sql.SQL("NOT EXISTS (SELECT 1 FROM {} AS w WHERE w.trigger_id = t.id)").format(
                sql.Identifier(schema, table)))
    return sql.SQL(" AND ").join(parts)


def callback_finished(schema, found):
    """SQL over alias ``t`` (a callback): finished (success, failed), and no deadline of a remaining run or of no
    run refers to it (``deadline.callback_id`` is ``ON DELETE CASCADE``: the deadline would go with it)."""
    cond = sql.SQL("t.state IN ('success', 'failed')")
    if {"callback_id", "dagrun_id"} <= set(found.get("deadline", {})):
        cond = sql.SQL("{} AND NOT EXISTS (SELECT 1 FROM {} AS d WHERE d.callback_id = t.id"
                       " AND (d.dagrun_id IS NULL OR d.dagrun_id <> ALL(%(counted_runs)s::int[])))").format(
            cond, sql.Identifier(schema, "deadline"))
    return cond


def dag_version_unused(schema, found):
    """SQL over alias ``t`` (a DAG version): no task instance, earlier try or dag run that stays refers to it
    (``task_instance.dag_version_id`` is ``ON DELETE RESTRICT``; the grid shows each run's version), it is not its
    DAG's newest version by number nor by creation time (the scheduler, the API and the UI read the latest
    serialized DAG), and no deadline alert hangs off its serialized DAG."""
    def t(name):
        return sql.Identifier(schema, name)

    parts = [sql.SQL("NOT {}").format(_referenced_by_run_rows(schema, "task_instance", "dag_version_id"))]
    if "dag_version_id" in found.get("task_instance_history", {}):
        parts.append(sql.SQL("NOT {}").format(
            _referenced_by_run_rows(schema, "task_instance_history", "dag_version_id")))
    if "created_dag_version_id" in found.get("dag_run", {}):
        parts.append(sql.SQL("NOT EXISTS (SELECT 1 FROM {} AS r WHERE r.created_dag_version_id = t.id"
                             " AND r.id <> ALL(%(counted_runs)s::int[]))").format(t("dag_run")))
    parts.append(sql.SQL(
        "EXISTS (SELECT 1 FROM {v} AS n WHERE n.dag_id = t.dag_id AND n.version_number > t.version_number)"
        " AND EXISTS (SELECT 1 FROM {v} AS n WHERE n.dag_id = t.dag_id AND n.created_at > t.created_at)").format(
        v=t("dag_version")))
    if "serialized_dag_id" in found.get("deadline_alert", {}):
        parts.append(sql.SQL("NOT EXISTS (SELECT 1 FROM {s} AS s JOIN {a} AS a ON a.serialized_dag_id = s.id"
                             " WHERE s.dag_version_id = t.id)").format(s=t("serialized_dag"), a=t("deadline_alert")))
    return sql.SQL(" AND ").join(parts)


def partition_log_orphan(schema):
    """SQL over alias ``t`` (a partitioned asset key log row): its partitioned asset run is gone (or is one of
    the runs' rows counted as gone). Airflow reads these rows only through that run; the scheduler deletes them
    with it, but not when the run went another way."""
    return sql.SQL(
        "NOT EXISTS (SELECT 1 FROM {} AS a WHERE a.id = t.asset_partition_dag_run_id"
        " AND (a.created_dag_run_id IS NULL OR a.created_dag_run_id <> ALL(%(counted_runs)s::int[])))").format(
        sql.Identifier(schema, "asset_partition_dag_run"))


def family_rules(plan, schema, conn, rules, now=None):
    """The families' rules, given the rules built so far (``dag_runs`` among them when it runs)."""
    found = _columns(conn, schema)
    runs_rule = next((r for r in rules if r.name == RUNS_RULE), None)
    counted = runs_rule.walk.counted_runs if runs_rule else list
    after_runs = (RUNS_RULE,) if runs_rule else ()
    out = []

    def add(name, table, option, build):
        days = plan.get(option)
        if days is None:
            return
        reason = _missing(found, name)
        if reason:
            out.append(Rule(name=name, table=table, cutoff=None, walk=Absent(schema, reason),
                            description="skipped: %s (%s keeps nothing from it)" % (reason, option)))
        else:
            out.append(build(days))

    add("triggers", "trigger", "trigger_retention_days", lambda days: Rule(
        name="triggers", table="trigger", cutoff=aware_cutoff(days, now), walk=IdWalk(schema),
        time_column="created_date", predicate=trigger_unused(schema, found), params={"counted_runs": counted},
        after=after_runs,
        description="triggers created more than %d days ago that no task instance, earlier try, asset watcher or"
                    " callback refers to (the triggerer deletes those itself while it runs)" % days))
    after_triggers = after_runs + tuple(r.name for r in out if r.name == "triggers" and not isinstance(r.walk, Absent))
    add("callbacks", "callback", "callback_retention_days", lambda days: Rule(
        name="callbacks", table="callback", cutoff=aware_cutoff(days, now),
        walk=Sweep(schema), time_column="created_at", predicate=callback_finished(schema, found),
        params={"counted_runs": counted}, scan_limit=SWEEP_WINDOW, after=after_triggers,
        description="finished callbacks (success, failed) created more than %d days ago that no deadline of a"
                    " remaining run refers to" % days,
        note="callback.created_at has no index: each batch reads a window of the table in its order"))
    add("dag_versions", "dag_version", "dag_version_retention_days", lambda days: Rule(
        name="dag_versions", table="dag_version", cutoff=aware_cutoff(days, now), walk=Sweep(schema),
        time_column="created_at", predicate=dag_version_unused(schema, found), params={"counted_runs": counted},
        cascade=(("serialized_dag", "dag_version_id"), ("dag_code", "dag_version_id")),
        scan_limit=SWEEP_WINDOW, after=after_runs,
        description="DAG versions created more than %d days ago, with their serialized DAG and DAG code, that no"
                    " remaining dag run, task instance or earlier try refers to, except each DAG's newest version"
                    % days,
        note="dag_version.created_at and task_instance_history.dag_version_id have no index: each batch reads a"
             " window of dag_version and the earlier tries (task_instance_history) once"))
    naive = found.get("session", {}).get("expiry") == "timestamp without time zone"
    add("sessions", "session", "session_retention_days", lambda days: Rule(
        name="sessions", table="session", cutoff=_in_column_zone(aware_cutoff(days, now), naive),
        walk=IdScan(schema), time_column="expiry",
        description="web server sessions that expired more than %d days ago (an expired session signs no one"
                    " in)" % days,
        note="session.expiry has no index and moves while a session is used: the walk reads the table once"
             " through its primary key, checking every row's expiry"))
    add("task_state_store", "task_state_store", "task_state_store_retention_days", lambda days: Rule(
        name="task_state_store", table="task_state_store", cutoff=aware_cutoff(days, now), walk=Sweep(schema),
        time_column="expires_at", predicate=sql.SQL("t.dag_run_id <> ALL(%(counted_runs)s::int[])"),
        params={"counted_runs": counted}, scan_limit=SWEEP_WINDOW, after=after_runs,
        description="task state rows whose expires_at passed more than %d days ago (airflow state-store clean"
                    " deletes the same rows; rows without expires_at never expire)" % days))
    add("partitioned_asset_key_log", "partitioned_asset_key_log", "partitioned_asset_key_log_retention_days",
        lambda days: Rule(
            name="partitioned_asset_key_log", table="partitioned_asset_key_log", cutoff=aware_cutoff(days, now),
            walk=IdWalk(schema), time_column="created_at", predicate=partition_log_orphan(schema),
            params={"counted_runs": counted}, after=after_runs,
            description="partitioned asset key log rows older than %d days whose partitioned asset run is gone"
                        % days))
    return out
