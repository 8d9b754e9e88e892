# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The walk of Airflow dag run retention: whole finished runs deleted with every row they own.

Each batch reads the next dag runs past the retention in id order, keeps those Airflow still needs
(``KEEP_REASONS``), and deletes the others in one transaction: the rows that hang off their task
instances first, then the task instances, the rows that hang off the runs, and the runs, each through an
index, so that no foreign key cascade has to look for rows by a scan. The rows Airflow's own foreign keys
delete with a run or a task instance (ON DELETE CASCADE through an index, read from the catalog) are left to
that cascade: PostgreSQL looks each of them up for it whether or not it is still there, so deleting them first
would look them up twice. On both tested releases every row of a run but its deadlines and partitioned asset
runs (whose links have no index) goes with the run's own row. Every row is counted, in the handler's
``rows_by_table`` and in the run's row budget (the cascaded ones from the transaction's own statistics,
``pg_stat_xact_user_tables``). Check mode counts the same rows with its own reads, in the same batches.

What the rows of a run are, and which columns date and order runs, is the release's (``schema.Release``): Airflow 3
finds the rows of a task instance by its uuid, Airflow 2.11 by its key (dag_id, task_id, run_id, map_index).

A batch takes whole runs only; how many is sized from the rows per run of the batches before it, so that a
batch stays near the row budget's ``batch_size`` (and never above ``dag_run_batch_size`` runs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .._common.tables import table_columns
from .._engine.walks import Walk
from .schema import NEWEST

try:
    from psycopg import sql
except ImportError:  # pragma: no cover - the module reports the missing driver
    sql = None

RUNS_RULE = "dag_runs"
FINISHED_RUN_STATES = ("success", "failed")
# Task instance states of work that is not over (Airflow's State.unfinished); a run holding one is kept even
# when the run itself was marked finished.
UNFINISHED_TI_STATES = ("scheduled", "queued", "running", "restarting", "up_for_retry", "up_for_reschedule",
                        "deferred", "awaiting_input")
# Run types whose newest run the scheduler reads to compute the next one (see ``scheduler_needs``), on every
# tested release.
AUTOMATED_RUN_TYPES = ("scheduled", "backfill")
# Dag runs read per statement when looking for candidates: as many as the batch may take, within these bounds
# (the lower one for the first batch, which takes one run, and for stretches of runs that are kept).
SCAN_RUNS = 500
MIN_SCAN_RUNS = 100
LISTED_RUNS = 1000

KEEP_REASONS = {
    "not_finished": "the run is queued or running",
    "task_unfinished": "a task instance of the run is not finished (queued, running, up for retry, deferred...)",
    "newest_per_dag": "one of the newest runs of its DAG (keep_runs_per_dag), which the grid view shows",
    "scheduler_needs": "the newest scheduled or backfill run of its DAG (the scheduler computes the next run"
                       " from it), or its newest asset- (dataset-) triggered run (the floor of the next one's"
                       " events)",
    "locked": "the run row was locked by Airflow when the batch came to it",
}


@dataclass
class RunProgress:
    """The dag-run handler's own state: what it deleted and kept."""

    runs_deleted: int = 0
    deleted_by_state: dict = field(default_factory=dict)
    deleted_by_dag: dict = field(default_factory=dict)
    kept_runs: int = 0
    kept_by_reason: dict = field(default_factory=dict)
    rows_by_table: dict = field(default_factory=dict)
    run_ids: list = field(default_factory=list)
    run_ids_truncated: bool = False
    rows_per_run: float = 0.0            # rows per run deleted so far (sizes the next batch)

    def keep(self, reasons):
        self.kept_runs += 1
        for reason in reasons:
            self.kept_by_reason[reason] = self.kept_by_reason.get(reason, 0) + 1

    def report(self):
        return {"runs_deleted": self.runs_deleted, "deleted_by_state": self.deleted_by_state,
                "deleted_by_dag": self.deleted_by_dag, "kept_runs": self.kept_runs,
                "kept_by_reason": self.kept_by_reason, "rows_by_table": self.rows_by_table,
                "run_ids": self.run_ids, "run_ids_truncated": self.run_ids_truncated}


class DagRunRetention(Walk):
    """Walks ``dag_run`` by id; each batch deletes whole finished runs past the retention in one transaction."""

    def __init__(self, schema, keep_per_dag, max_runs, release=NEWEST):
        super().__init__(schema)
        self.release = release
        self.keep_per_dag = keep_per_dag
        self.max_runs = max_runs
        self.columns = {}
        self.protected = {}             # dag_run.id -> reasons it is kept whatever its age (read in ``prepare``)
        self.cascading = set()          # tables PostgreSQL deletes from with a run's rows (indexed cascades)
        self.counted = []               # dag_run.id of every run deleted (in check mode: counted) so far

    def start(self, state):
        state.own = RunProgress(rows_by_table={t: 0 for t in self.release.run_tables})
        self.counted = []

    def counted_runs(self):
        """The runs this prune deleted (in check mode: counted as deleted). The handlers that wait for this one
        treat the rows of these runs as gone, so that check mode predicts what the real run deletes."""
        return list(self.counted)

    def report(self, state):
        return state.own.report()

    def rows_by_table(self, state):
        return {t: n for t, n in state.own.rows_by_table.items() if t in self.columns}

    def _t(self, name):
        return sql.Identifier(self.schema, name)

    def has(self, table, column=None):
        cols = self.columns.get(table)
        return cols is not None and (column is None or column in cols)

    def privileges(self, rule):
        needs = [("dag_run", "SELECT"), ("dag_run", "UPDATE"), ("dag_run", "DELETE")]
        for table in self.release.run_tables:
            if table != "dag_run" and table in self.columns:
                needs += [(table, "SELECT"), (table, "DELETE")]
        return needs

    # -- planning --------------------------------------------------------------------
    def prepare(self, conn, state, id_ranges):
        self.columns = table_columns(conn, self.schema, self.release.run_tables)
        with conn.cursor() as cur:
            self.protected = self._protected(cur)
            self.cascading = self._cascading(cur)
        state.cursor = 0

    def _cascading(self, cur):
        """The tables of a run (``Release.run_tables``) whose rows PostgreSQL deletes with the rows above them: a
        foreign key ON DELETE CASCADE to dag_run, or to a table that has one (task_instance to dag_run, xcom to
        task_instance, hitl_detail_history through task_instance_history...), whose columns lead an index of the
        child, so that PostgreSQL finds the rows through it. A real batch leaves these to the cascade of the
        deepest table it deletes explicitly: the run itself when its task instances go with it, else the task
        instances. A table whose cascade would have to scan is deleted by its own statement first, and so is every
        table when the server does not count the rows a transaction deletes (``track_counts`` off): the cascaded
        rows are counted from those statistics."""
        cur.execute("SELECT current_setting('track_counts')::bool")
        if not cur.fetchone()[0]:
            return set()
        cur.execute("SELECT c.relname, p.relname FROM pg_constraint AS k JOIN pg_class AS c ON c.oid = k.conrelid"
                    " JOIN pg_class AS p ON p.oid = k.confrelid JOIN pg_namespace AS n ON n.oid = c.relnamespace"
                    " WHERE k.contype = 'f' AND k.confdeltype = 'c' AND n.nspname = %s"
                    " AND p.relnamespace = n.oid AND EXISTS (SELECT 1 FROM pg_index AS i WHERE i.indrelid = k.conrelid"
                    "   AND (string_to_array(i.indkey::text, ' ')::int2[])[1:cardinality(k.conkey)] @> k.conkey)",
                    (self.schema,))
        links = cur.fetchall()
        root = "dag_run" if ("task_instance", "dag_run") in links else "task_instance"
        reached, frontier = set(), {root}
        while frontier:
            frontier = {child for child, parent in links if parent in frontier and child not in reached}
            reached |= frontier
        return {t for t in self.release.run_tables if t in reached and t != "dag_run"}

    def _deleted_in_transaction(self, cur, tables):
        """Rows this transaction has deleted so far from ``tables`` (cascades included)."""
        cur.execute("SELECT relname, n_tup_del FROM pg_stat_xact_user_tables WHERE schemaname = %s"
                    " AND relname = ANY(%s)", (self.schema, list(tables)))
        return dict(cur.fetchall())

    def _protected(self, cur):
        """dag_run.id -> reasons, for the runs kept whatever their age (read once per run of the module).

        Runs created after this read are newer than every run it names, so they can only add runs to keep:
        the newest runs read here stay among the newest.
        """
        runs = self._t("dag_run")
        rel = self.release
        due, logical = sql.Identifier(rel.run_after), sql.Identifier(rel.logical_date)
        out = {}
        cur.execute(sql.SQL(
            "SELECT id FROM (SELECT r.id,"
            " row_number() OVER (PARTITION BY r.dag_id ORDER BY r.{due} DESC, r.id DESC) AS n"
            " FROM {runs} AS r) AS ranked WHERE n <= %s").format(runs=runs, due=due), (self.keep_per_dag,))
        for (run,) in cur.fetchall():
            out.setdefault(run, set()).add("newest_per_dag")
        # What the DAG processor and the scheduler read (_get_latest_runs_stmt: Airflow 3's
        # airflow/dag_processing/collection.py, 2.11's DagModel in airflow/models/dag.py): the run of the newest
        # logical (execution) date among scheduled and backfill runs.
        cur.execute(sql.SQL(
            "SELECT r.id FROM {runs} AS r JOIN (SELECT dag_id, max({logical}) AS newest FROM {runs}"
            " WHERE run_type = ANY(%s) GROUP BY dag_id) AS m ON m.dag_id = r.dag_id AND r.{logical} = m.newest"
        ).format(runs=runs, logical=logical), (list(AUTOMATED_RUN_TYPES),))
        needed = [row[0] for row in cur.fetchall()]
        if rel.partitions and self.has("dag_run", "partition_key"):
            # Partitioned DAGs: the newest partitioned run (_get_latest_runs_stmt_partitioned).
            cur.execute(sql.SQL(
                "SELECT DISTINCT ON (dag_id) id FROM {} WHERE run_type = ANY(%s) AND partition_key IS NOT NULL"
                " ORDER BY dag_id, partition_date IS NULL, partition_date DESC, run_after DESC").format(runs),
                (list(AUTOMATED_RUN_TYPES),))
            needed += [row[0] for row in cur.fetchall()]
        # Asset-triggered DAGs: the previous asset-triggered run's run_after (2.11: a dataset-triggered run's
        # execution_date) floors the next run's events.
        cur.execute(sql.SQL(
            "SELECT DISTINCT ON (dag_id) id FROM {runs} WHERE run_type = %s"
            " ORDER BY dag_id, {due} DESC, id DESC").format(runs=runs, due=due), (rel.asset_triggered,))
        needed += [row[0] for row in cur.fetchall()]
        for run in needed:
            out.setdefault(run, set()).add("scheduler_needs")
        return out

    # -- one batch -------------------------------------------------------------------
    def _candidates(self, cur, state, scan, lock):
        """The next ``scan`` runs past the retention in id order (finished or not), each with whether a task instance
        of it is unfinished and whether it is locked for this batch; and whether the table ends there.

        With ``lock`` (a real batch) the same statement locks every finished candidate without an unfinished task
        instance, ``FOR UPDATE SKIP LOCKED``: a run Airflow holds is not waited for, and one Airflow changed since
        the statement began is locked only if it is still finished (PostgreSQL re-checks the locked row). Reading
        and locking at one snapshot, no task instance can have become unfinished in between. The batch takes some
        of these; the others are released with it. Check mode reads the same candidates without locking them."""
        params = {"cursor": state.cursor, "cutoff": state.rule.cutoff, "unfinished": list(UNFINISHED_TI_STATES),
                  "finished": list(FINISHED_RUN_STATES), "scan": scan}
        query = sql.SQL(
            "SELECT r.id, r.dag_id, r.run_id, r.state,"
            " EXISTS (SELECT 1 FROM {ti} AS ti WHERE ti.dag_id = r.dag_id AND ti.run_id = r.run_id"
            "   AND ti.state = ANY(%(unfinished)s)) AS busy"
            " FROM {runs} AS r WHERE r.id > %(cursor)s AND coalesce(r.end_date, r.{due}) < %(cutoff)s"
            " ORDER BY r.id LIMIT %(scan)s").format(ti=self._t("task_instance"), runs=self._t("dag_run"),
                                                    due=sql.Identifier(self.release.run_after))
        if lock:
            query = sql.SQL(
                "WITH c AS ({candidates}),"
                " l AS (SELECT r.id FROM {runs} AS r WHERE r.id IN (SELECT c.id FROM c WHERE c.state = ANY(%(finished)s)"
                "   AND NOT c.busy) AND r.state = ANY(%(finished)s) FOR UPDATE OF r SKIP LOCKED)"
                " SELECT c.*, l.id IS NOT NULL FROM c LEFT JOIN l ON l.id = c.id ORDER BY c.id").format(
                candidates=query, runs=self._t("dag_run"))
        else:
            query = sql.SQL("SELECT *, true FROM ({}) AS c ORDER BY c.id").format(query)
        cur.execute(query, params)
        rows = cur.fetchall()
        return rows, len(rows) < scan

    def _runs_for(self, state, limit):
        """Runs this batch may take: about ``limit`` rows at the rows per run seen so far, at most max_runs."""
        per_run = state.own.rows_per_run
        if per_run <= 0:
            return 1
        return max(1, min(self.max_runs, int(limit // per_run)))

    def batch(self, conn, state, limit, upper, check_mode, precounted=None):
        progress = state.own
        want = self._runs_for(state, limit)
        take, taken, last_seen = [], 0, None
        with conn.cursor() as cur:
            # Not many more than the batch may take: each candidate costs a probe of its task instances.
            rows, exhausted = self._candidates(cur, state, min(SCAN_RUNS, max(want, MIN_SCAN_RUNS)), not check_mode)
            for run_id, dag_id, run_name, run_state, unfinished_tis, locked in rows:
                if taken >= want:
                    exhausted = False
                    break
                last_seen = run_id
                reasons = set(self.protected.get(run_id, ()))
                if run_state not in FINISHED_RUN_STATES:
                    reasons.add("not_finished")
                elif unfinished_tis:
                    reasons.add("task_unfinished")
                if reasons:
                    progress.keep(sorted(reasons))
                    continue
                # A run Airflow holds counts as taken (check mode, which locks nothing, takes it) but stays.
                taken += 1
                if locked:
                    take.append((run_id, dag_id, run_name, run_state))
                else:
                    progress.keep(["locked"])
            deleted = self._delete(cur, progress, take, check_mode) if take else 0
        if last_seen is not None:
            state.cursor = last_seen
        state.done = exhausted
        return deleted

    def _rows(self, cur, check_mode, table, where, params):
        verb = "SELECT count(*) FROM {} AS d WHERE {}" if check_mode else \
            "WITH gone AS (DELETE FROM {} AS d WHERE {} RETURNING 1) SELECT count(*) FROM gone"
        cur.execute(sql.SQL(verb).format(self._t(table), where), params)
        return cur.fetchone()[0]

    def _delete(self, cur, progress, take, check_mode):
        """Delete (or, in check mode, count) every row of the runs in ``take``; returns the rows."""
        ids = [t[0] for t in take]
        dag_ids = [t[1] for t in take]
        run_names = [t[2] for t in take]
        pairs = sql.SQL("(d.dag_id, d.run_id) IN (SELECT * FROM unnest(%(dag_ids)s::text[], %(run_ids)s::text[]))")
        params = {"ids": ids, "dag_ids": dag_ids, "run_ids": run_names}
        # In check mode every table is counted by its own read; a real batch lets the cascades delete these.
        cascaded = [] if check_mode else [t for t in self.release.run_tables if t in self.cascading and self.has(t)]
        explicit_ti = [(t, how, column) for t, how, column in self.release.ti_children
                       if self.has(t) and t not in cascaded]
        if "task_instance" not in cascaded or any(how in ("ti_id", "ti_key") for _t, how, _c in explicit_ti):
            ti_id = sql.SQL("d.id") if self.release.ti_id else sql.SQL("NULL::uuid")
            cur.execute(sql.SQL("SELECT {}, d.dag_id, d.task_id, d.run_id, d.map_index FROM {} AS d WHERE {}").format(
                ti_id, self._t("task_instance"), pairs), params)
            tis = cur.fetchall()
            params.update(ti_ids=[t[0] for t in tis], ti_dags=[t[1] for t in tis], ti_tasks=[t[2] for t in tis],
                          ti_runs=[t[3] for t in tis], ti_maps=[t[4] for t in tis])
        ti_key = sql.SQL("(d.dag_id, d.task_id, d.run_id, d.map_index) IN (SELECT * FROM unnest("
                         "%(ti_dags)s::text[], %(ti_tasks)s::text[], %(ti_runs)s::text[], %(ti_maps)s::int[]))")
        counts = {}
        # Before any delete of the batch: every row it removes from these tables, whichever way, is counted once.
        before = self._deleted_in_transaction(cur, cascaded) if cascaded else {}
        for table, how, column in explicit_ti:
            if how == "ti_id":
                where = sql.SQL("d.{} = ANY(%(ti_ids)s::uuid[])").format(sql.Identifier(column))
            elif how == "run_id":
                where = sql.SQL("d.{} = ANY(%(ids)s)").format(sql.Identifier(column))
            elif how == "ti_key":
                where = ti_key
            elif how == "run_pair":
                where = pairs
            else:       # tih: rows of the task instance history of these runs
                if not self.has("task_instance_history"):
                    continue
                where = sql.SQL("d.{} IN (SELECT h.task_instance_id FROM {} AS h WHERE (h.dag_id, h.run_id) IN"
                                " (SELECT * FROM unnest(%(dag_ids)s::text[], %(run_ids)s::text[])))").format(
                    sql.Identifier(column), self._t("task_instance_history"))
            counts[table] = self._rows(cur, check_mode, table, where, params)
        if "task_instance" not in cascaded:
            counts["task_instance"] = self._rows(cur, check_mode, "task_instance", sql.SQL(
                "d.id = ANY(%(ti_ids)s::uuid[])") if self.release.ti_id else ti_key, params)
        for table, column in self.release.run_children:
            if self.has(table, column) and table not in cascaded:
                counts[table] = self._rows(cur, check_mode, table,
                                           sql.SQL("d.{} = ANY(%(ids)s)").format(sql.Identifier(column)), params)
        counts["dag_run"] = self._rows(cur, check_mode, "dag_run", sql.SQL("d.id = ANY(%(ids)s)"), params)
        if cascaded:
            after = self._deleted_in_transaction(cur, cascaded)
            counts.update({t: after.get(t, 0) - before.get(t, 0) for t in cascaded})
        total = sum(counts.values())
        for table, n in counts.items():
            progress.rows_by_table[table] = progress.rows_by_table.get(table, 0) + n
        runs_before = progress.runs_deleted
        for run_id, dag_id, run_name, run_state in take:
            self.counted.append(run_id)
            progress.runs_deleted += 1
            progress.deleted_by_state[run_state] = progress.deleted_by_state.get(run_state, 0) + 1
            progress.deleted_by_dag[dag_id] = progress.deleted_by_dag.get(dag_id, 0) + 1
            if len(progress.run_ids) < LISTED_RUNS:
                progress.run_ids.append("%s/%s" % (dag_id, run_name))
            else:
                progress.run_ids_truncated = True
        done_rows = sum(progress.rows_by_table.values())
        progress.rows_per_run = done_rows / float(progress.runs_deleted) if progress.runs_deleted > runs_before else \
            progress.rows_per_run
        return total

    def remaining(self, conn, state, check_mode, precounted=None):
        """Runs past retention beyond the cursor: an upper bound (some of them will be kept)."""
        with conn.cursor() as cur:
            query = sql.SQL("SELECT count(*) FROM {} AS r WHERE r.id > %s AND r.state = ANY(%s)"
                            " AND coalesce(r.end_date, r.{}) < %s").format(
                self._t("dag_run"), sql.Identifier(self.release.run_after))
            cur.execute(query, (state.cursor, list(FINISHED_RUN_STATES), state.rule.cutoff))
            state.remaining = cur.fetchone()[0]
        state.remaining_exact = False
