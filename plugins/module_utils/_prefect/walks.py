# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Walks of the Prefect rules whose candidates no time index finds: orphans, logs by level, and
the events handlers' batches.

- ``OrphanSkipWalk``: rows whose flow run is gone. Rows of one flow run share one key in the
  ``flow_run_id`` index (``ix_log__flow_run_id``, ``ix_artifact__flow_run_id``), so the walk
  skips from one distinct flow run id to the next (a recursive CTE: the next id above the
  cursor, ``ORDER BY flow_run_id LIMIT 1``, one index descent each), checks each against
  ``flow_run``'s primary key, and deletes the rows of the missing ones through the same
  index. A run costs one descent and one probe per distinct flow run plus the rows deleted,
  whatever the table's size; Prefect's own orphan vacuum reads every entry of that index
  (``SELECT DISTINCT flow_run_id ... LIMIT 200`` pages), and the time sweep this replaces read
  every row older than the cutoff.
- ``LevelWalk``: logs of one level older than its retention. ``log.level`` is indexed alone
  (``ix_log__level``); its entries of one level are read in heap order, so a batch takes the
  first old enough rows of that level. The entries of rows deleted by earlier batches are
  marked dead by the first scan that meets them and skipped without a heap visit, so the
  work of a run is the rows deleted plus one visit of each row of that level still inside
  its retention; rows of other levels are never read. The logs of the flow runs
  ``old_flow_runs`` deletes are the oldest, at the start of the index, and are not this
  walk's to delete: its rule waits for that handler (``Rule.after``), or every batch would step
  again over them. Where rows inside the retention sit among older ones
  (new rows in the space vacuum freed), every batch steps over them again: an index on
  ``log (level, timestamp)``, if the operator adds one, is walked instead and reads the
  candidates only.
- ``EventsWalk`` and ``TrailingSweep``: events go with their resources (about three per event),
  so an events batch takes as many events as make ``batch_size`` rows with their resources,
  from the tables' row estimates. The sweep for resources whose event is gone runs after the
  events handlers (its rule waits for them, ``Rule.after``): what is left then is an orphan (or
  locked), while reading the resources that are about to go with their events would be wasted
  work. The sweep still steps once over the index entries of the resources they deleted (a heap
  visit each, which marks the entry dead for every later scan), the price of finding every orphan
  in the run that can delete it, so that a re-run has nothing left to do. Where nothing indexes
  ``event_resources.event_id`` (Prefect before that index, 3.4 among them) the events handlers
  delete their events alone and their resources are the sweep's to delete; in check mode, where
  those events are still there, the sweep counts the resources of the events they counted as gone.

Both index walks hold the planner to their indexes (``enable_seqscan`` and ``enable_bitmapscan``
off for the batch's own transaction; the level walk's time test is written so no time index
serves it): on a table whose statistics still count the rows just deleted, or on a small one,
the planner would otherwise read the table from its start, which costs what the walk avoids.

All delete only inside the runner's transaction, skip rows the application has locked, and in
check mode count with the same reads what the real run would delete.
"""

from __future__ import annotations

import contextlib
import uuid

from .._engine.timewalk import TimeWalk
from .._engine.walks import REMAINING_EXACT_LIMIT, Walk

try:
    from psycopg import pq, sql
except ImportError:  # pragma: no cover - the module reports the missing driver
    pq = sql = None

LOWEST_UUID = uuid.UUID(int=0)
# A capped run counts what it left: at most this many pages of flow run ids beyond the cursor are walked for it.
REMAINING_SCAN_PAGES = 2


@contextlib.contextmanager
def held_to_indexes(conn):
    """A transaction (the runner's, or one of its own in check mode) whose plans use indexes only.

    The planner would read a whole table where its statistics still count the rows just deleted,
    or where a table is small; these walks are only cheap through their index.
    """
    if conn.info.transaction_status == pq.TransactionStatus.INTRANS:
        scope = contextlib.nullcontext()
    else:
        scope = conn.transaction()
    with scope:
        with conn.cursor() as cur:
            cur.execute("SELECT set_config('enable_seqscan', 'off', true),"
                        " set_config('enable_bitmapscan', 'off', true)")
            yield cur


class OrphanSkipWalk(Walk):
    """Rows of ``rule.table`` whose ``column`` names a ``parent`` row that no longer exists.

    The cursor is a ``(lo, after)`` pair: every id below ``lo`` is done; rows of ``lo`` itself up to
    the row ``after`` are done (``after`` None: all of them, so the next page starts above ``lo``).
    """

    def __init__(self, schema, page, column="flow_run_id", parent="flow_run"):
        super().__init__(schema)
        self.page = page                # distinct ids examined per statement
        self.column = column
        self.parent = parent
        self._statements = {}

    # -- statements ---------------------------------------------------------------------
    def _ids_sql(self, rule, inclusive):
        """The next ``page`` distinct values of the column from ``%(lo)s``: one index descent each."""
        col, tbl = sql.Identifier(self.column), self.table(rule)
        return sql.SQL(
            "ids(fid, n) AS ("
            " SELECT (SELECT t.{col} FROM {tbl} AS t WHERE t.{col} {op} %(lo)s ORDER BY t.{col} LIMIT 1), 1"
            " UNION ALL"
            " SELECT (SELECT t.{col} FROM {tbl} AS t WHERE t.{col} > ids.fid ORDER BY t.{col} LIMIT 1), ids.n + 1"
            " FROM ids WHERE ids.fid IS NOT NULL AND ids.n < %(page)s),"
            " seen AS MATERIALIZED (SELECT fid, n FROM ids WHERE fid IS NOT NULL),"
            " orphans AS MATERIALIZED (SELECT s.fid FROM seen AS s"
            "  WHERE NOT EXISTS (SELECT 1 FROM {parent} AS p WHERE p.id = s.fid))").format(
            col=col, tbl=tbl, op=sql.SQL(">=" if inclusive else ">"), parent=self.table(rule, self.parent))

    def _candidates_sql(self, rule):
        """Rows of the orphaned ids past the cutoff and past the (id, row) cursor, in index order."""
        col, ts = sql.Identifier(self.column), sql.Identifier(rule.time_column)
        return sql.SQL(
            "SELECT t.{id}, t.{col} FROM {tbl} AS t WHERE t.{col} = ANY (ARRAY(SELECT fid FROM orphans))"
            " AND t.{ts} < %(cutoff)s AND (t.{col}, t.{id}) > (%(lo)s, %(after)s)"
            " ORDER BY t.{col}, t.{id} LIMIT %(limit)s").format(
            id=sql.Identifier(rule.id_column), col=col, tbl=self.table(rule), ts=ts)

    def statement(self, rule, inclusive, check_mode):
        """One batch: returns rows taken, ids examined, the last id examined, the last row taken (id, row)."""
        key = (rule.name, inclusive, check_mode)
        if key in self._statements:
            return self._statements[key]
        col, idc = sql.Identifier(self.column), sql.Identifier(rule.id_column)
        if check_mode:
            taken = sql.SQL("batch AS MATERIALIZED ({cands})").format(cands=self._candidates_sql(rule))
            source = sql.Identifier("batch")
        else:
            taken = sql.SQL(
                "batch AS ({cands} FOR UPDATE OF t SKIP LOCKED),"
                " gone AS (DELETE FROM {tbl} AS d USING batch WHERE d.{id} = batch.{id} RETURNING d.{id}, d.{col})"
            ).format(cands=self._candidates_sql(rule), tbl=self.table(rule), id=idc, col=col)
            source = sql.Identifier("gone")
        stmt = sql.SQL(
            "WITH RECURSIVE {ids}, {taken}"
            " SELECT (SELECT count(*) FROM {src}), (SELECT count(*) FROM seen),"
            " (SELECT fid FROM seen ORDER BY n DESC LIMIT 1),"
            " (SELECT g.{col} FROM {src} AS g ORDER BY g.{col} DESC, g.{id} DESC LIMIT 1),"
            " (SELECT g.{id} FROM {src} AS g ORDER BY g.{col} DESC, g.{id} DESC LIMIT 1)").format(
            ids=self._ids_sql(rule, inclusive), taken=taken, src=source, col=col, id=idc)
        self._statements[key] = stmt
        return stmt

    # -- the walk -----------------------------------------------------------------------------
    def start(self, state):
        state.cursor = (LOWEST_UUID, LOWEST_UUID)

    def _params(self, state, limit):
        lo, after = state.cursor
        return self.params(state, lo=lo, after=after if after is not None else LOWEST_UUID, limit=limit,
                           page=self.page)

    def batch(self, conn, state, limit, upper, check_mode, precounted=None):
        inclusive = state.cursor[1] is not None
        with held_to_indexes(conn) as cur:
            cur.execute(self.statement(state.rule, inclusive, check_mode), self._params(state, limit))
            taken, seen, last_seen, last_col, last_id = cur.fetchone()
        state.scanned += seen
        if taken >= limit:
            # Rows of ``last_col`` may be left beyond ``last_id``: the next batch starts inside it.
            state.cursor = (last_col, last_id)
        elif seen:
            state.cursor = (last_seen, None)
            state.done = seen < self.page
        else:
            state.done = True
        return taken

    def remaining(self, conn, state, check_mode, precounted=None):
        """Rows of orphaned ids beyond the cursor: exact up to REMAINING_EXACT_LIMIT rows."""
        lo, after = state.cursor
        left, walked = 0, 0
        with held_to_indexes(conn) as cur:
            while walked < REMAINING_SCAN_PAGES * self.page:
                inclusive = after is not None
                cur.execute(self.statement(state.rule, inclusive, True), self.params(
                    state, lo=lo, after=after or LOWEST_UUID,
                    limit=REMAINING_EXACT_LIMIT + 1 - left, page=self.page))
                taken, seen, last_seen, last_col, last_id = cur.fetchone()
                left += taken
                walked += seen
                if left > REMAINING_EXACT_LIMIT:
                    state.remaining, state.remaining_exact = left, False
                    return
                if seen < self.page or not seen:
                    state.remaining, state.remaining_exact = left, True
                    return
                lo, after = last_seen, None
        state.remaining, state.remaining_exact = max(left, 1), False


class LevelWalk(Walk):
    """Rows of ``rule.table`` with ``level`` = ``%(level)s`` older than the cutoff, through the level index."""

    def __init__(self, schema, column="level"):
        super().__init__(schema)
        self.column = column
        self._statements = {}

    def _candidates_sql(self, rule):
        pred = rule.predicate if rule.predicate is not None else sql.SQL("true")
        # ``IS TRUE`` keeps the time test out of the index conditions: only the level index can serve the scan.
        return sql.SQL(
            "SELECT t.{id} FROM {tbl} AS t WHERE t.{col} = %(level)s AND (t.{ts} < %(cutoff)s) IS TRUE"
            " AND ({pred}) LIMIT %(limit)s").format(
            id=sql.Identifier(rule.id_column), tbl=self.table(rule), col=sql.Identifier(self.column),
            ts=sql.Identifier(rule.time_column), pred=pred)

    def statement(self, rule, check_mode):
        key = (rule.name, check_mode)
        if key not in self._statements:
            if check_mode:
                stmt = sql.SQL("SELECT count(*) FROM ({}) AS c").format(self._candidates_sql(rule))
            else:
                stmt = sql.SQL(
                    "WITH batch AS ({cands} FOR UPDATE OF t SKIP LOCKED),"
                    " gone AS (DELETE FROM {tbl} AS d USING batch WHERE d.{id} = batch.{id} RETURNING 1)"
                    " SELECT count(*) FROM gone").format(
                    cands=self._candidates_sql(rule), tbl=self.table(rule), id=sql.Identifier(rule.id_column))
            self._statements[key] = stmt
        return self._statements[key]

    def _count(self, conn, state, limit):
        with held_to_indexes(conn) as cur:
            cur.execute(self.statement(state.rule, True), self.params(state, limit=limit))
            return cur.fetchone()[0]

    def precount(self, conn, state, cap):
        """Check mode: the candidates, counted once (bounded by ``cap``); batches take their share."""
        return self._count(conn, state, cap if cap is not None else 2 ** 62)

    def batch(self, conn, state, limit, upper, check_mode, precounted=None):
        if check_mode:
            count = max(0, min(limit, (precounted or 0) - state.deleted))
            state.done = count < limit
            return count
        with held_to_indexes(conn) as cur:
            cur.execute(self.statement(state.rule, False), self.params(state, limit=limit))
            count = cur.fetchone()[0]
        state.done = count < limit
        return count

    def remaining(self, conn, state, check_mode, precounted=None):
        if check_mode:
            left = (precounted or 0) - state.deleted
            exact = precounted is None or left <= REMAINING_EXACT_LIMIT
        else:
            left = self._count(conn, state, REMAINING_EXACT_LIMIT + 1)
            exact = left <= REMAINING_EXACT_LIMIT
        state.remaining, state.remaining_exact = max(0, left), exact


class EventsWalk(TimeWalk):
    """The time walk of an events rule: batches sized with their dependents.

    In check mode it remembers how many candidates each handler counted as gone and whether that was all of
    them (``counted_all``, ``counted_first``), for the resources sweep that trails the handlers where they
    leave their resources to it. In a real run it remembers nothing: the rows a handler took are gone.
    """

    def __init__(self, schema):
        super().__init__(schema)
        self.share = {}                 # rule name -> own rows per row deleted with dependents
        self.counted = {}               # check mode: rule name -> (candidates counted as gone, all of them)

    def counted_all(self, name):
        """Whether handler ``name`` counted every one of its candidates as gone (check mode)."""
        return self.counted.get(name, (0, False))[1]

    def counted_first(self, name):
        """How many of its first candidates (in the walk's order) handler ``name`` counted as gone, where it did
        not count them all (check mode; a real batch deletes the first candidates, in that order)."""
        rows, everything = self.counted.get(name, (0, False))
        return 0 if everything else rows

    def prepare(self, conn, state, id_ranges):
        tables = [state.rule.table] + [t for t, _c in state.rule.cascade]
        with conn.cursor() as cur:
            cur.execute("SELECT c.relname, greatest(c.reltuples, 0) FROM pg_class AS c JOIN pg_namespace AS n"
                        " ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = ANY(%s)",
                        (self.schema, tables))
            rows = dict(cur.fetchall())
        own = rows.get(state.rule.table) or 0
        dependents = sum(rows.get(t) or 0 for t in tables[1:])
        self.share[state.rule.name] = own / (own + dependents) if own else 1.0

    def batch(self, conn, state, limit, upper, check_mode, precounted=None):
        count = TimeWalk.batch(self, conn, state, self.scaled(state, limit), upper, check_mode, precounted)
        if check_mode:
            self.counted[state.rule.name] = (state.deleted + count, state.done)
        return count

    def scaled(self, state, limit):
        return max(1, min(limit, int(limit * self.share.get(state.rule.name, 1.0))))


class TrailingSweep(TimeWalk):
    """A sweeping time rule that runs after the handlers whose leftovers it finds (see the module docstring).

    Its rule waits for them (``Rule.after``). In check mode every batch reads its own window, as in
    the real run, and what is left is counted from where it stopped. Where the handlers before it
    leave the dependents of the rows they delete to it (no index to delete them with), the rule's
    predicate treats the rows those handlers counted as gone as gone (``EventsWalk.counted_all`` and
    ``counted_first``, read per statement), so that check mode counts what the real run, behind them,
    finds: what it deletes and, where a budget stopped the run first, what it leaves.
    """

    def precount(self, conn, state, cap):
        """Check mode: nothing up front; every batch reads its own window, as in the real run."""
        return None

    def remaining(self, conn, state, check_mode, precounted=None):
        n = self.count_candidates(conn, state, REMAINING_EXACT_LIMIT + 1)
        state.remaining = n
        state.remaining_exact = n <= REMAINING_EXACT_LIMIT
