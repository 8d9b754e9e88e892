# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Airflow rules: what may go from an Airflow metadata database, and what never may.

- ``dag_runs`` (``runs.py``): finished dag runs past the retention, whole, with every row they own, except
  the runs Airflow still needs (``runs.KEEP_REASONS``).
- ``asset_events``, ``audit_log``, ``jobs``, ``import_errors``: tables whose integer key grows with time, walked
  by id (the engine's ``IdWalk``); asset events only when nothing Airflow reads refers to them any more
  (``asset_event_free``), after the dag runs that consumed them are gone; finished jobs only, and never a job
  a running task or a trigger points at, nor the newest job of each type.
- ``archive_tables`` (``ArchiveTables``): the ``_airflow_deleted__*`` tables ``airflow db clean`` leaves,
  reported, and dropped only when asked.

Airflow stores ``timestamp with time zone``: cutoffs are aware UTC datetimes. The tables and columns of each
tested release (Airflow 3, and 2.11 with its datasets and task instances without an id) are ``schema.py``'s; the
profile reads the release of the database from its schema revision (``AirflowProfile.check_schema``).
"""

from __future__ import annotations

from .._common.errors import InvalidRequest
from .._common.tables import table_columns, table_row_estimates
from .._engine.prune import require_schema, schema_revision
from .._engine.retention import aware_cutoff, check_days, default_of
from .._engine.walks import IdWalk, Rule, Walk
from .families import FAMILY_OPTIONS, FAMILY_TABLES, family_rules
from .options import AIRFLOW_PRUNE_ARGUMENT_SPEC, TESTED_RELEASES, TESTED_REVISIONS
from .runs import RUNS_RULE, UNFINISHED_TI_STATES, DagRunRetention
from .schema import NEWEST, described_tables, release_for

try:
    from psycopg import sql
except ImportError:  # pragma: no cover
    sql = None

ARCHIVE_PREFIX = "_airflow_deleted__"
RETENTION_OPTIONS = ("dag_run_retention_days", "asset_event_retention_days", "log_retention_days",
                     "job_retention_days", "import_error_retention_days") + FAMILY_OPTIONS

ROW_TABLES = ("dag_run", "task_instance", "task_instance_history", "xcom", "rendered_task_instance_fields",
              "asset_event", "log", "job", "import_error") + FAMILY_TABLES


def _whole(name, value, low, high):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRequest("%s must be a whole number between %d and %d, not %r" % (name, low, high, value))
    return value


def validate_options(params):
    """Module options -> a checked plan. Everything is refused here, before the database is touched."""
    spec = AIRFLOW_PRUNE_ARGUMENT_SPEC

    def given(name):
        value = params.get(name)
        return default_of(spec, name) if value is None else value

    plan = {name: check_days(name, given(name)) for name in RETENTION_OPTIONS}
    plan["keep_runs_per_dag"] = _whole("keep_runs_per_dag", given("keep_runs_per_dag"), 1, 100000)
    plan["dag_run_batch_size"] = _whole("dag_run_batch_size", given("dag_run_batch_size"), 1, 10000)
    plan["drop_archive_tables"] = bool(given("drop_archive_tables"))
    return plan


def schema_release(conn, schema):
    """The release (``schema.Release``) whose tables the rules read in ``schema``: the one of its revision, else
    the one its tables and columns look like (a revision outside the tested ones is refused after this, with the
    revision found, unless allow_untested_schema is set)."""
    return release_for(schema_revision(conn, schema), table_columns(conn, schema, described_tables()))


def check_schema(conn, schema, release=NEWEST):
    """Raise SchemaMismatch unless ``schema`` holds the tables and columns the rules use on ``release``."""
    require_schema(conn, schema, release.required_columns(), "Airflow", "Airflow metadata schema",
                   "the Airflow metadata database")


def kept_jobs(conn, schema):
    """Ids of jobs that must stay whatever their age: the newest of each type, and those a task instance
    that is not finished was queued by (the scheduler adopts or resets them by that id) or a trigger is
    assigned to."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL(
            "SELECT DISTINCT ON (job_type) id FROM {job} ORDER BY job_type, latest_heartbeat DESC NULLS LAST, id DESC"
        ).format(job=sql.Identifier(schema, "job")))
        keep = {row[0] for row in cur.fetchall()}
        cur.execute(sql.SQL("SELECT DISTINCT queued_by_job_id FROM {} WHERE state = ANY(%s)"
                            " AND queued_by_job_id IS NOT NULL").format(sql.Identifier(schema, "task_instance")),
                    (list(UNFINISHED_TI_STATES),))
        keep.update(row[0] for row in cur.fetchall())
        cur.execute("SELECT 1 FROM information_schema.columns WHERE table_schema = %s AND table_name = 'trigger'"
                    " AND column_name = 'triggerer_id'", (schema,))
        if cur.fetchone():
            cur.execute(sql.SQL("SELECT DISTINCT triggerer_id FROM {} WHERE triggerer_id IS NOT NULL").format(
                sql.Identifier(schema, "trigger")))
            keep.update(row[0] for row in cur.fetchall())
    return sorted(keep)


def asset_event_free(schema, release=NEWEST):
    """SQL over alias ``t`` (an asset event): nothing Airflow reads refers to it any more.

    - no remaining dag run consumed it (``dagrun_asset_event``; the links of the runs this prune deletes, or in
      check mode counts, are treated as gone: ``%(counted_runs)s``);
    - it is not its asset's newest event (the asset's page and asset conditions read the newest);
    - no DAG scheduled on its asset still has it to consume: the scheduler hands an asset-triggered run the
      events newer than the DAG's previous asset-triggered run (``run_after``; on 2.11 a dataset-triggered run's
      ``execution_date``), or every event when there is none;
    - it carries no partition key (the partition log refers to such events without a foreign key) and no
      asset alias link (alias-scheduled DAGs read those).

    On 2.11 the tables are the dataset ones (``dataset_event`` ...), and events have no partition key.
    """
    def t(name):
        return sql.Identifier(schema, name)

    return sql.SQL(
        ("t.partition_key IS NULL AND" if release.partitions else "") +
        " NOT EXISTS (SELECT 1 FROM {links} AS l WHERE l.event_id = t.id"
        "   AND l.dag_run_id <> ALL(%(counted_runs)s::int[]))"
        " AND EXISTS (SELECT 1 FROM {events} AS n WHERE n.{asset} = t.{asset} AND n.timestamp >= t.timestamp"
        "   AND n.id <> t.id AND (n.timestamp > t.timestamp OR n.id > t.id))"
        " AND NOT EXISTS (SELECT 1 FROM {refs} AS s WHERE s.{asset} = t.{asset} AND t.timestamp > coalesce("
        "   (SELECT max(r.{due}) FROM {runs} AS r WHERE r.dag_id = s.dag_id AND r.run_type = {triggered}),"
        "   '-infinity'))"
        " AND NOT EXISTS (SELECT 1 FROM {aliases} AS a WHERE a.event_id = t.id)").format(
        links=t(release.asset_link), events=t(release.asset_event), refs=t(release.asset_schedule),
        runs=t("dag_run"), aliases=t(release.asset_alias_link), asset=sql.Identifier(release.asset_id),
        due=sql.Identifier(release.run_after), triggered=sql.Literal(release.asset_triggered))


class ArchiveTables(Walk):
    """The ``_airflow_deleted__*`` tables of the schema: listed with their rows; dropped when asked.

    A drop removes a whole table at once (no row is deleted, so it spends none of the row budget);
    the handler's ``updated`` counts the tables dropped, so a run that dropped one has changed something.
    """

    def __init__(self, schema, drop):
        super().__init__(schema)
        self.drop = drop

    def start(self, state):
        state.own = {"tables": {}, "dropped": []}

    def privileges(self, rule):
        return []           # dropping needs ownership, which no GRANT gives: a failed drop says so

    def prepare(self, conn, state, id_ranges):
        with conn.cursor() as cur:
            cur.execute("SELECT c.relname, greatest(c.reltuples, 0)::bigint FROM pg_class AS c"
                        " JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE n.nspname = %s"
                        " AND c.relkind = 'r' AND starts_with(c.relname, %s) ORDER BY c.relname",
                        (self.schema, ARCHIVE_PREFIX))
            tables = cur.fetchall()
            for name, estimate in tables:
                if estimate < 100_000:
                    cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(self.schema, name)))
                    estimate = cur.fetchone()[0]
                state.own["tables"][name] = int(estimate)
        state.done = not (self.drop and state.own["tables"])

    def batch(self, conn, state, limit, upper, check_mode, precounted=None):
        """One table per batch: dropped (in check mode, counted as to be dropped)."""
        left = [t for t in sorted(state.own["tables"]) if t not in state.own["dropped"]]
        name = left[0]
        if not check_mode:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(self.schema, name)))
        state.own["dropped"].append(name)
        state.updated += 1
        state.done = len(left) == 1
        return 0

    def remaining(self, conn, state, check_mode, precounted=None):
        state.remaining = 0
        state.remaining_exact = True

    def report(self, state):
        return {"archive_tables": state.own["tables"], "dropped": list(state.own["dropped"]),
                "archive_rows": sum(state.own["tables"].values())}

    def rows_by_table(self, state):
        return {}


def build_rules(plan, schema, conn, now=None, release=NEWEST):
    """The handlers of one run, on the tables of ``release``."""
    rules = []
    days = plan["dag_run_retention_days"]
    if days is not None:
        rules.append(Rule(
            name=RUNS_RULE, table="dag_run", cutoff=aware_cutoff(days, now),
            walk=DagRunRetention(schema, plan["keep_runs_per_dag"], plan["dag_run_batch_size"], release),
            time_column="end_date",
            description="finished dag runs (success, failed) that ended more than %d days ago, with their task"
                        " instances, tries, XComs, rendered fields, task maps, notes and asset event links; except"
                        " the newest %d runs of each DAG, the runs the scheduler reads to compute the next one,"
                        " and runs with a task instance that is not finished" % (days, plan["keep_runs_per_dag"]),
            note=release.unindexed))
    walk = IdWalk(schema)
    days = plan["asset_event_retention_days"]
    if days is not None:
        runs = rules[0].walk.counted_runs if rules else list
        rules.append(Rule(
            name="asset_events", table=release.asset_event, cutoff=aware_cutoff(days, now), walk=IdWalk(schema),
            time_column="timestamp", predicate=asset_event_free(schema, release), params={"counted_runs": runs},
            after=(RUNS_RULE,) if rules else (),
            description="asset events older than %d days that no remaining dag run consumed, except each asset's"
                        " newest event, events a DAG scheduled on the asset has not consumed yet, partitioned"
                        " events and events of an asset alias" % days))
    days = plan["log_retention_days"]
    if days is not None:
        rules.append(Rule(name="audit_log", table="log", cutoff=aware_cutoff(days, now), walk=walk,
                          time_column="dttm",
                          description="audit log entries (the UI's Audit Log) older than %d days" % days))
    days = plan["job_retention_days"]
    if days is not None:
        rules.append(Rule(
            name="jobs", table="job", cutoff=aware_cutoff(days, now), walk=walk, time_column="latest_heartbeat",
            predicate=sql.SQL("t.state IN ('success', 'failed') AND t.id <> ALL(%(kept_jobs)s)"),
            params={"kept_jobs": kept_jobs(conn, schema)},
            description="finished (success, failed) scheduler, triggerer and DAG processor jobs whose last"
                        " heartbeat is more than %d days old, except the newest job of each type and jobs a task"
                        " instance that is not finished or a trigger points at" % days))
    days = plan["import_error_retention_days"]
    if days is not None:
        rules.append(Rule(name="import_errors", table="import_error", cutoff=aware_cutoff(days, now), walk=walk,
                          time_column="timestamp",
                          description="import errors the DAG processor has not written again for %d days (it"
                                      " rewrites the errors of every file it still parses)" % days))
    rules += family_rules(plan, schema, conn, rules, now)
    rules.append(Rule(name="archive_tables", table="_airflow_deleted__*", cutoff=None,
                      walk=ArchiveTables(schema, plan["drop_archive_tables"]),
                      description="archive tables left by airflow db clean (%s)" % (
                          "dropped" if plan["drop_archive_tables"] else "reported; drop_archive_tables drops them")))
    return rules


class AirflowProfile:
    name = "airflow"
    product = "Airflow"
    tested_releases = TESTED_RELEASES
    tested_revisions = TESTED_REVISIONS

    def __init__(self, now=None):
        self.now = now
        self.release = NEWEST           # the database's, once check_schema read it
        self.run_rows = False           # whether the run deletes dag runs (their tables are counted then)

    @property
    def row_tables(self):
        tables = tuple(self.release.table(t) for t in ROW_TABLES)
        runs = tuple(t for t in self.release.run_tables if t not in tables) if self.run_rows else ()
        return tables + runs

    def validate_options(self, params):
        plan = validate_options(params)
        self.run_rows = bool(plan["dag_run_retention_days"])
        return plan

    def check_schema(self, conn, schema):
        self.release = schema_release(conn, schema)
        check_schema(conn, schema, self.release)

    def build_rules(self, plan, schema, conn):
        # Every statement is short, but the planner may price the candidate reads high enough to compile
        # them with JIT, which takes longer than running them.
        with conn.cursor() as cur:
            cur.execute("SELECT set_config('jit', 'off', false)")
        return build_rules(plan, schema, conn, self.now, self.release)

    def table_rows(self, conn, schema):
        """Rows of the tables the run may delete from (those of this Airflow release)."""
        with conn.cursor() as cur:
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
                        " AND table_name = ANY(%s)", (schema, list(self.row_tables)))
            present = {row[0] for row in cur.fetchall()}
        return table_row_estimates(conn, schema, [t for t in self.row_tables if t in present])

    def extra_steps(self, conn, schema, plan, check_mode, result):
        """Nothing beyond the handlers: the archive tables are one (``ArchiveTables``)."""
