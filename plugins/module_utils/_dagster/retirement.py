# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The walk of Dagster run retention: whole old runs retired, with every row they own (see ``runs.py``).

Each batch examines the next runs by id, keeps those whose retiring would change what Dagster
shows or can re-execute (``runs.KEEP_REASONS``), and retires whole re-execution groups in one
transaction. What it did is the handler's own state (``Retirement``), reported in its result.
"""

from __future__ import annotations

import datetime
import json
import zlib
from collections import namedtuple
from dataclasses import dataclass, field

from .._common.tables import table_columns
from .._engine.walks import Walk

try:
    from psycopg import sql
except ImportError:  # pragma: no cover - the module reports the missing driver
    sql = None

RUN_STATUSES = {"success": "SUCCESS", "failure": "FAILURE", "canceled": "CANCELED"}
FINISHED = tuple(RUN_STATUSES.values())
# Runs examined per batch; their evaluation is a handful of set-based, index-driven reads.
SCAN_RUNS = 200
# Check mode and the result list at most this many run ids.
LISTED_RUNS = 1000
FINISHED_BACKFILLS = ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED")
ROOT_TAG = "dagster/root_run_id"
BACKFILL_TAG = "dagster/backfill"
RUNS_RULE = "runs_retired"          # the handler's name
TABLES = ("runs", "run_tags", "event_logs", "asset_event_tags", "asset_check_executions", "snapshots")

# A run past retention as the scan reads it (``past``: past its status's retention).
Candidate = namedtuple("Candidate", "id run_id status job ended past")
# What decides whether a run may go (``backfill``: its backfill's id, from the run or its tag).
RunFacts = namedtuple("RunFacts", "run_id status job id ended past backfill")
# A run retired in a batch, with the snapshots it referred to.
Retired = namedtuple("Retired", "run_id status job snapshot_id plan_snapshot_id")


@dataclass
class KeptRun:
    """The oldest run kept past its retention, and why."""

    run_id: str
    job: str
    status: str
    ended: float
    reasons: list

    def report(self):
        return {"run_id": self.run_id, "job": self.job, "status": self.status,
                "ended": _format_epoch(self.ended), "reasons": self.reasons}


@dataclass
class Retirement:
    """The run-retention handler's own state: what it retired and kept, and its working sets."""

    runs_retired: int = 0
    retired_by_status: dict = field(default_factory=dict)
    retired_by_job: dict = field(default_factory=dict)
    kept_runs: int = 0
    kept_by_reason: dict = field(default_factory=dict)
    oldest_kept: KeptRun = None
    rows_by_table: dict = field(default_factory=lambda: {t: 0 for t in TABLES})
    run_ids: list = field(default_factory=list)
    run_ids_truncated: bool = False
    retired: set = field(default_factory=set)       # run ids retired (counted, in check mode) so far
    snapshots: set = field(default_factory=set)     # snapshot ids the retired runs referred to

    def keep(self, reasons, count=1):
        self.kept_runs += count
        for reason in reasons:
            self.kept_by_reason[reason] = self.kept_by_reason.get(reason, 0) + count

    def report(self):
        return {
            "runs_retired": self.runs_retired, "retired_by_status": self.retired_by_status,
            "retired_by_job": self.retired_by_job, "kept_runs": self.kept_runs, "kept_by_reason": self.kept_by_reason,
            "oldest_kept": self.oldest_kept.report() if self.oldest_kept else None,
            "rows_by_table": self.rows_by_table, "run_ids": self.run_ids, "run_ids_truncated": self.run_ids_truncated,
        }


def _epoch(cutoff):
    return cutoff.replace(tzinfo=datetime.timezone.utc).timestamp()


class RunRetirement(Walk):
    """Walks ``runs`` by id; each batch retires whole re-execution groups in one transaction."""

    def __init__(self, schema, cutoffs, keep_per_job):
        super().__init__(schema)
        self.cutoffs = cutoffs                  # status -> naive UTC cutoff
        self.keep_per_job = keep_per_job
        self.columns = {}
        self.lineage_seen = 0          # runs.id up to which run bodies were read for re-executions
        self.body_root = {}            # run_id -> root run_id, from run bodies
        self.body_members = {}         # root run_id -> run_ids naming it, from run bodies
        self.counted = set()           # check mode: runs counted as retired, still in the database
        self._counted_list = []        # the same, sorted, as a statement parameter (rebuilt when it grows)

    # -- planning -----------------------------------------------------------------
    def start(self, state):
        state.own = Retirement()
        self.counted = set()
        self._counted_list = []

    def report(self, state):
        return state.own.report()

    def rows_by_table(self, state):
        return dict(state.own.rows_by_table)

    def prepare(self, conn, state, id_ranges):
        self.columns = table_columns(conn, self.schema, ("runs", "asset_check_executions", "concurrency_slots",
                                                         "pending_steps", "asset_event_tags", "snapshots",
                                                         "bulk_actions", "asset_keys"))
        state.cursor = 0

    def counted_not_deleted(self):
        """Runs this run retires whose rows are still there: in check mode every run it counted, in a real
        run none (their rows are gone). The handlers that wait for this one leave these runs' rows alone, so
        that check mode counts each row once, as the real run deletes it once."""
        if len(self.counted) != len(self._counted_list):   # the set only grows: same size, same ids
            self._counted_list = sorted(self.counted)
        return self._counted_list

    def _t(self, name):
        return sql.Identifier(self.schema, name)

    def _has(self, table, column=None):
        cols = self.columns.get(table)
        return cols is not None and (column is None or column in cols)

    def _end_sql(self):
        return sql.SQL("coalesce(r.end_time, extract(epoch FROM r.update_timestamp))")

    def _past_retention_sql(self):
        parts = [sql.SQL("(r.status = {} AND {} < {})").format(
            sql.Literal(status), self._end_sql(), sql.Literal(_epoch(cutoff)))
            for status, cutoff in sorted(self.cutoffs.items())]
        return sql.SQL(" OR ").join(parts)

    def _candidates(self, cur, cursor):
        """The next runs past their status's retention, in id order, and where the scan got to."""
        cur.execute(sql.SQL(
            "SELECT r.id, r.run_id, r.status, r.pipeline_name, {end}, ({past})"
            " FROM {runs} AS r WHERE r.id > %s ORDER BY r.id LIMIT %s").format(
            end=self._end_sql(), past=self._past_retention_sql(), runs=self._t("runs")), (cursor, SCAN_RUNS))
        rows = [Candidate(*row) for row in cur.fetchall()]
        last = rows[-1].id if rows else None
        return [r for r in rows if r.past], last, len(rows) < SCAN_RUNS

    def _refresh_lineage(self, cur):
        """Re-executions recorded in the run bodies (``root_run_id`` / ``parent_run_id``) since the last look.

        A re-execution started through the UI also carries the ``dagster/root_run_id`` tag, one started in
        process (``execute_job`` with ``ReexecutionOptions``) only its run body; both make a group. Only runs
        newer than the last look are read, and only those whose body names a root.
        """
        cur.execute(sql.SQL("SELECT coalesce(max(id), 0) FROM {}").format(self._t("runs")))
        newest = cur.fetchone()[0]
        cur.execute(sql.SQL(
            "SELECT r.run_id, r.run_body FROM {} AS r WHERE r.id > %s AND r.id <= %s"
            " AND (r.run_body LIKE '%%\"root_run_id\": \"%%' OR r.run_body LIKE '%%\"root_run_id\":\"%%'"
            " OR r.run_body LIKE '%%\"parent_run_id\": \"%%' OR r.run_body LIKE '%%\"parent_run_id\":\"%%')"
        ).format(self._t("runs")), (self.lineage_seen, newest))
        for run_id, body in cur.fetchall():
            try:
                data = json.loads(body)
            except ValueError:
                continue
            root = data.get("root_run_id") or data.get("parent_run_id") if isinstance(data, dict) else None
            if root and root != run_id:
                self.body_root[run_id] = root
                self.body_members.setdefault(root, set()).add(run_id)
        self.lineage_seen = max(self.lineage_seen, newest)

    def _groups(self, cur, run_ids):
        """run_id -> root, and root -> its member run_ids (the runs sharing a root, by tag or by run body)."""
        self._refresh_lineage(cur)
        cur.execute(sql.SQL(
            "SELECT r.run_id, t.value FROM {runs} AS r LEFT JOIN {tags} AS t"
            " ON t.run_id = r.run_id AND t.key = %s WHERE r.run_id = ANY(%s)").format(
            runs=self._t("runs"), tags=self._t("run_tags")), (ROOT_TAG, list(run_ids)))
        root_of = {run_id: tag or self.body_root.get(run_id, run_id) for run_id, tag in cur.fetchall()}
        roots = sorted(set(root_of.values()))
        cur.execute(sql.SQL(
            "SELECT g.root, m.run_id FROM unnest(%s::text[]) AS g(root) CROSS JOIN LATERAL ("
            " SELECT r.run_id FROM {runs} AS r WHERE r.run_id = g.root"
            " UNION SELECT t.run_id FROM {tags} AS t WHERE t.key = %s AND t.value = g.root) AS m").format(
            runs=self._t("runs"), tags=self._t("run_tags")), (roots, ROOT_TAG))
        members = {root: set() for root in roots}
        for root, run_id in cur.fetchall():
            members[root].add(run_id)
        for root in roots:
            members[root] |= self.body_members.get(root, set())
        return root_of, members

    def _reasons(self, cur, run_ids):
        """run_id -> the reasons that keep it (empty: it may go)."""
        ids = sorted(run_ids)
        reasons = {r: set() for r in ids}
        backfill = sql.SQL("r.backfill_id") if self._has("runs", "backfill_id") else sql.SQL("NULL")
        cur.execute(sql.SQL(
            "SELECT r.run_id, r.status, r.pipeline_name, r.id, {end}, ({past}),"
            " coalesce({backfill}, (SELECT t.value FROM {tags} AS t WHERE t.run_id = r.run_id AND t.key = %s LIMIT 1))"
            " FROM {runs} AS r WHERE r.run_id = ANY(%s)").format(
            end=self._end_sql(), past=self._past_retention_sql(), backfill=backfill, tags=self._t("run_tags"),
            runs=self._t("runs")), (BACKFILL_TAG, ids))
        facts = {row[0]: RunFacts(*row) for row in cur.fetchall()}
        for run_id in ids:
            run = facts.get(run_id)
            if run is None:
                continue        # gone meanwhile (deleted by Dagster): nothing of it to keep
            if run.status not in FINISHED:
                reasons[run_id].add("not_finished")
            elif run.status not in self.cutoffs:
                reasons[run_id].add("status_kept")
            elif not run.past:
                reasons[run_id].add("within_retention")
        jobs = sorted({run.job for run in facts.values() if run.job is not None})
        if jobs:
            cur.execute(sql.SQL(
                "SELECT j.name, (SELECT r.id FROM {runs} AS r WHERE r.pipeline_name = j.name AND r.status = ANY(%s)"
                " ORDER BY r.id DESC OFFSET %s LIMIT 1) FROM unnest(%s::text[]) AS j(name)").format(
                runs=self._t("runs")), (list(FINISHED), self.keep_per_job - 1, jobs))
            threshold = dict(cur.fetchall())
            for run_id, run in facts.items():
                limit = threshold.get(run.job)
                if run.status in FINISHED and (limit is None or run.id >= limit):
                    reasons[run_id].add("newest_per_job")
        backfills = sorted({run.backfill for run in facts.values() if run.backfill})
        if backfills and self._has("bulk_actions"):
            cur.execute(sql.SQL("SELECT key, status FROM {} WHERE key = ANY(%s)").format(self._t("bulk_actions")),
                        (backfills,))
            open_backfills = {k for k, status in cur.fetchall() if status not in FINISHED_BACKFILLS}
            for run_id, run in facts.items():
                if run.backfill in open_backfills:
                    reasons[run_id].add("backfill_in_progress")
        self._asset_reasons(cur, ids, reasons)
        for table in ("concurrency_slots", "pending_steps"):
            if self._has(table, "run_id"):
                cur.execute(sql.SQL("SELECT DISTINCT run_id FROM {} WHERE run_id = ANY(%s)").format(self._t(table)),
                            (ids,))
                for (run_id,) in cur.fetchall():
                    reasons[run_id].add("concurrency_slots")
        if self._has("asset_keys", "last_run_id"):
            cur.execute(sql.SQL("SELECT DISTINCT last_run_id FROM {} WHERE last_run_id = ANY(%s)").format(
                self._t("asset_keys")), (ids,))
            for (run_id,) in cur.fetchall():
                reasons[run_id].add("asset_last_run")
        return reasons

    def _asset_reasons(self, cur, ids, reasons):
        events = self._t("event_logs")
        # The newest event of its type for its asset and partition: split on NULL so the
        # (asset_key, type, partition, id) and (asset_key, type, id) indexes find the next one directly.
        cur.execute(sql.SQL(
            "SELECT DISTINCT e.run_id, CASE WHEN e.dagster_event_type = 'ASSET_MATERIALIZATION_PLANNED'"
            " AND e.partition IS NULL AND EXISTS (SELECT 1 FROM {ev} AS p WHERE p.asset_key = e.asset_key"
            "   AND p.partition IS NOT NULL) THEN 'ranged_plan' ELSE 'latest_asset_event' END"
            " FROM {ev} AS e WHERE e.run_id = ANY(%s) AND e.asset_key IS NOT NULL AND ("
            " (e.dagster_event_type = 'ASSET_MATERIALIZATION_PLANNED' AND e.partition IS NULL"
            "  AND EXISTS (SELECT 1 FROM {ev} AS p WHERE p.asset_key = e.asset_key AND p.partition IS NOT NULL))"
            " OR NOT CASE WHEN e.partition IS NULL"
            "  THEN EXISTS (SELECT 1 FROM {ev} AS n WHERE n.asset_key = e.asset_key"
            "   AND n.dagster_event_type = e.dagster_event_type AND n.partition IS NULL AND n.id > e.id)"
            "  ELSE EXISTS (SELECT 1 FROM {ev} AS n WHERE n.asset_key = e.asset_key"
            "   AND n.dagster_event_type = e.dagster_event_type AND n.partition = e.partition AND n.id > e.id) END)"
        ).format(ev=events), (ids,))
        for run_id, reason in cur.fetchall():
            reasons[run_id].add(reason)
        if not self._has("asset_check_executions", "run_id"):
            return
        checks = self._t("asset_check_executions")
        cur.execute(sql.SQL(
            "SELECT DISTINCT c.run_id FROM {checks} AS c WHERE c.asset_key = ANY({keys}) AND c.run_id = ANY(%s)"
            " AND NOT EXISTS (SELECT 1 FROM {checks} AS n WHERE n.asset_key = c.asset_key"
            "  AND n.check_name = c.check_name AND n.partition IS NOT DISTINCT FROM c.partition AND n.id > c.id)"
        ).format(checks=checks, keys=self._asset_keys_sql()), (ids, ids))
        for (run_id,) in cur.fetchall():
            reasons[run_id].add("latest_check_execution")

    def _asset_keys_sql(self):
        """The asset keys of the runs ``%s`` (their events name every asset and check they touched)."""
        return sql.SQL("ARRAY(SELECT DISTINCT k.asset_key FROM {} AS k WHERE k.run_id = ANY(%s)"
                       " AND k.asset_key IS NOT NULL)").format(self._t("event_logs"))

    # -- one batch ----------------------------------------------------------------------
    def batch(self, conn, state, limit, upper, check_mode, precounted=None):
        """Retire whole groups of runs, up to about ``limit`` rows (a group is never split)."""
        retired = state.own.retired
        with conn.cursor() as cur:
            candidates, last_id, exhausted = self._candidates(cur, state.cursor)
            candidates = [c for c in candidates if c.run_id not in retired]
            if not candidates:
                state.cursor = last_id if last_id is not None else state.cursor
                state.done = exhausted
                return 0
            root_of, members = self._groups(cur, [c.run_id for c in candidates])
            everyone = set(root_of) | {m for ms in members.values() for m in ms}
            reasons = self._reasons(cur, everyone - retired)
            take, taken_rows, group_of = [], 0, {}
            stopped_at = None
            for cand in candidates:
                run_id = cand.run_id
                if run_id in retired or run_id in group_of:
                    continue
                root = root_of.get(run_id, run_id)
                group = sorted(members.get(root, {run_id}) - retired) or [run_id]
                blocked = {m for m in group if reasons.get(m)}
                if blocked:
                    own = set(reasons.get(run_id) or ())
                    own.discard("within_retention")
                    if blocked - {run_id} or not own:
                        own.add("not_finished" if any("not_finished" in reasons.get(m, ()) for m in blocked)
                                else "reexecution_group")
                    self._kept(state.own, cand, own)
                    continue
                if take and taken_rows >= limit:
                    stopped_at = cand.id
                    break
                rows = self._count_rows(cur, group)
                take.append(group)
                taken_rows += rows
                for m in group:
                    group_of[m] = root
            if take and not check_mode:
                take = self._lock(cur, state, take, members, root_of)
            deleted = self._retire(cur, state, take, check_mode) if take else 0
        if stopped_at is not None:
            state.cursor = stopped_at - 1
        else:
            state.cursor = last_id
            state.done = exhausted
        return deleted

    @staticmethod
    def _kept(progress, cand, reasons):
        progress.keep(reasons)
        oldest = progress.oldest_kept
        if oldest is None or (cand.ended or 0) < (oldest.ended or 0):
            progress.oldest_kept = KeptRun(cand.run_id, cand.job, cand.status, cand.ended, sorted(reasons))

    def _count_rows(self, cur, group):
        cur.execute(sql.SQL("SELECT (SELECT count(*) FROM {ev} WHERE run_id = ANY(%s))"
                            " + (SELECT count(*) FROM {tags} WHERE run_id = ANY(%s))").format(
            ev=self._t("event_logs"), tags=self._t("run_tags")), (group, group))
        return cur.fetchone()[0] + len(group)

    def _lock(self, cur, state, take, members, root_of):
        """Lock the runs rows (rows the application holds are skipped) and re-read the groups."""
        wanted = [m for group in take for m in group]
        cur.execute(sql.SQL("SELECT run_id FROM {} WHERE run_id = ANY(%s) FOR UPDATE SKIP LOCKED").format(
            self._t("runs")), (wanted,))
        locked = {r[0] for r in cur.fetchall()}
        _root_of, now_members = self._groups(cur, wanted)
        kept = []
        for group in take:
            root = root_of.get(group[0], group[0])
            if not set(group) <= locked or now_members.get(root, set(group)) - set(group) - state.own.retired:
                state.own.keep(("locked",), len(group))
                continue
            kept.append(group)
        return kept

    def _retire(self, cur, state, take, check_mode):
        """Delete (or, in check mode, count) every row of the runs in ``take``; returns the rows."""
        run_ids = [m for group in take for m in group]
        counts = {}
        ev, keys = self._t("event_logs"), self._asset_keys_sql()
        if self._has("asset_event_tags", "event_id"):
            counts["asset_event_tags"] = self._rows(cur, check_mode, "asset_event_tags", sql.SQL(
                "event_id IN (SELECT e.id FROM {} AS e WHERE e.run_id = ANY(%s) AND e.asset_key IS NOT NULL)")
                .format(ev), (run_ids,))
        if self._has("asset_check_executions", "run_id"):
            counts["asset_check_executions"] = self._rows(
                cur, check_mode, "asset_check_executions",
                sql.SQL("asset_key = ANY({}) AND run_id = ANY(%s)").format(keys), (run_ids, run_ids))
        counts["event_logs"] = self._rows(cur, check_mode, "event_logs", sql.SQL("run_id = ANY(%s)"), (run_ids,))
        counts["run_tags"] = self._rows(cur, check_mode, "run_tags", sql.SQL("run_id = ANY(%s)"), (run_ids,))
        ep = sql.SQL("CASE WHEN run_body LIKE '{%%' THEN run_body::json ->> 'execution_plan_snapshot_id' END")
        if check_mode:
            cur.execute(sql.SQL("SELECT run_id, status, pipeline_name, snapshot_id, {} FROM {}"
                                " WHERE run_id = ANY(%s)").format(ep, self._t("runs")), (run_ids,))
        else:
            cur.execute(sql.SQL("DELETE FROM {} WHERE run_id = ANY(%s)"
                                " RETURNING run_id, status, pipeline_name, snapshot_id, {}").format(
                self._t("runs"), ep), (run_ids,))
        gone = [Retired(*row) for row in cur.fetchall()]
        counts["runs"] = len(gone)
        progress = state.own
        for run in gone:
            progress.retired.add(run.run_id)
            if check_mode:
                self.counted.add(run.run_id)
            progress.snapshots.update(s for s in (run.snapshot_id, run.plan_snapshot_id) if s)
            progress.runs_retired += 1
            progress.retired_by_status[run.status] = progress.retired_by_status.get(run.status, 0) + 1
            progress.retired_by_job[run.job] = progress.retired_by_job.get(run.job, 0) + 1
            if len(progress.run_ids) < LISTED_RUNS:
                progress.run_ids.append(run.run_id)
            else:
                progress.run_ids_truncated = True
        for table, n in counts.items():
            progress.rows_by_table[table] += n
        return sum(counts.values())

    def _rows(self, cur, check_mode, table, where, params):
        verb = "SELECT count(*) FROM {} WHERE {}" if check_mode else \
            "WITH gone AS (DELETE FROM {} WHERE {} RETURNING 1) SELECT count(*) FROM gone"
        cur.execute(sql.SQL(verb).format(self._t(table), where), params)
        return cur.fetchone()[0]

    # -- after the schedule --------------------------------------------------------------
    def finish(self, conn, state, check_mode, budget):
        """Snapshots the retired runs referred to that nothing left refers to (Dagster never collects them)."""
        candidates = sorted(state.own.snapshots)
        if not candidates or not self._has("snapshots"):
            return 0
        retired = sorted(state.own.retired)
        with conn.cursor() as cur:
            # One pass over the runs that stay: their job snapshot, execution plan snapshot, and the
            # lineage (parent job snapshot) of their job snapshots.
            cur.execute(sql.SQL(
                "SELECT DISTINCT r.snapshot_id, CASE WHEN r.run_body LIKE '{{%%'"
                " THEN r.run_body::json ->> 'execution_plan_snapshot_id' END"
                " FROM {runs} AS r WHERE r.run_id <> ALL(%s)").format(runs=self._t("runs")), (retired,))
            used, job_snapshots = set(), set()
            for snap, plan in cur.fetchall():
                used.update(s for s in (snap, plan) if s)
                if snap:
                    job_snapshots.add(snap)
            free = [s for s in candidates if s not in used]
            if free and job_snapshots:
                cur.execute(sql.SQL("SELECT snapshot_body FROM {} WHERE snapshot_id = ANY(%s)").format(
                    self._t("snapshots")), (sorted(job_snapshots),))
                for (body,) in cur.fetchall():
                    text = _snapshot_text(body)
                    free = [s for s in free if text is not None and s not in text]
            if not free:
                return 0
            n = self._rows(cur, check_mode, "snapshots", sql.SQL(
                "snapshot_id = ANY(%s) AND snapshot_type IN ('PIPELINE', 'EXECUTION_PLAN')"
                " AND NOT EXISTS (SELECT 1 FROM {} AS r WHERE r.snapshot_id = {}.snapshot_id"
                " AND r.run_id <> ALL(%s))").format(self._t("runs"), sql.Identifier("snapshots")),
                (free, retired))
        state.own.rows_by_table["snapshots"] += n
        return n

    def privileges(self, rule):
        """Every table a retired run's rows are deleted from; ``runs`` rows are locked first (UPDATE)."""
        needs = [("runs", "SELECT"), ("runs", "UPDATE"), ("runs", "DELETE")]
        for table in TABLES:
            if table != "runs":
                needs += [(table, "SELECT"), (table, "DELETE")]
        return needs

    def remaining(self, conn, state, check_mode, precounted=None):
        """Runs past retention beyond the cursor: an upper bound (some of them will be kept)."""
        with conn.cursor() as cur:
            cur.execute(sql.SQL("SELECT count(*) FROM {} AS r WHERE r.id > %s AND ({})").format(
                self._t("runs"), self._past_retention_sql()), (state.cursor,))
            state.remaining = cur.fetchone()[0]
        state.remaining_exact = False


def _snapshot_text(body):
    """A stored snapshot as text (Dagster stores zlib-compressed JSON); None if it cannot be read."""
    if body is None:
        return None
    data = bytes(body)
    try:
        return zlib.decompress(data).decode("utf-8", "replace")
    except zlib.error:
        return data.decode("utf-8", "replace")


def _format_epoch(value):
    if value is None:
        return None
    return datetime.datetime.fromtimestamp(value, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def run_retention_metrics(m, result, base):
    """Samples of the run-retention handler's result: the runs retired and those kept past retention, by reason."""
    runs = (result.get("handlers") or {}).get(RUNS_RULE)
    if not runs:
        return
    m.gauge("runs_retired", "Whole runs retired (or, in check mode, that would be) in the last run.",
            runs.get("runs_retired", 0), **base)
    for reason, count in sorted((runs.get("kept_by_reason") or {}).items()):
        m.gauge("runs_kept_past_retention", "Runs past their retention kept in the last run, by reason.",
                count, reason=reason, **base)
