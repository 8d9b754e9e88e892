# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rules, the state of a handler, and the walks that turn a rule into statements.

A rule names candidate rows (a table, a time column with a retention cutoff, a predicate) and
the ``Walk`` object that moves through them batch by batch and builds the statements; a walk
never decides when to run them (the scheduler does) nor owns a transaction (the runner does).
A walk keeps what only it needs of a handler in its own typed state (``Walk.start`` sets
``HandlerState.own``) and adds its own keys to the handler's result (``Walk.report``).

- ``KeysetWalk``: candidates in the order of a key past a cursor (the last key passed).
- ``IdWalk``: tables whose integer key grows with time. The id where the cutoff falls is found
  with a binary search of primary-key probes; each batch walks an index range ``id > cursor AND
  id <= upper`` and re-checks the time column on every row, so jitter can only keep a row, never
  delete a newer one. Handlers walking one table by id share a frontier (``shared_frontier``).
- ``IdScan``: the same walk over every id of the table, for a time column that does not follow the
  key (a row's time moves after it is written, as a session's expiry does) and has no index: one
  read of the table through its primary key per run, where windows along the time column would
  read the whole table once per batch.
- ``TimeWalk`` (``timewalk.py``): tables without an increasing key (UUID keys, as in Prefect),
  walked along an indexed time column with the key as tie-breaker (the cursor is a ``(time, key)``
  pair). Such a rule may delete dependent rows in the same transaction (``cascade``), cap its own
  batches (``batch_limit``) and, where no index finds its candidates, examine at most
  ``scan_limit`` rows per statement (a sweep in bounded windows).

The orchestrators' own walks (Dagster's run retirement, Prefect's orphan, level and collection
walks) implement the same interface.

Handlers that touch the same rows declare their order: a rule names in ``after`` the handlers it
waits for, and the scheduler gives it no turn until those are done or have failed. A parameter
whose value is a callable is read again for every statement, so a rule that waits can see what
the handlers before it took (for example the runs whose rows check mode counted as gone), and
check mode predicts what the real run, in the same order, deletes.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

try:
    from psycopg import sql
except ImportError:  # pragma: no cover - the module reports the missing driver
    sql = None

# Exact counts of what is left stop here; past it the planner's estimate is reported.
REMAINING_EXACT_LIMIT = 1_000


@dataclass(frozen=True)
class Rule:
    """Candidate rows: ``time_column < cutoff AND predicate`` in ``table``, walked by ``walk``."""

    name: str
    table: str
    cutoff: datetime.datetime           # None for a rule that has none (its walk decides what goes)
    walk: Walk                          # the object that walks the candidates (see the module docstring)
    predicate: object = None            # psycopg.sql.Composable over alias "t", or None
    params: dict = field(default_factory=dict)
    time_column: str = "timestamp"
    id_column: str = "id"
    description: str = ""
    cascade: tuple = ()                 # ((table, column), ...) deleted with each batch, column = deleted id
    batch_limit: int = 0                # rows per batch for this rule (0: the budget's batch_size)
    scan_limit: int = 0                 # rows examined per statement (0: no window)
    note: str = ""                      # shown in the result, e.g. why a rule sweeps
    after: tuple = ()                   # names of the handlers this one waits for (done or failed)


def rule_params(rule):
    """The rule's statement parameters; a callable value is read now (see the module docstring)."""
    return {key: value() if callable(value) else value for key, value in rule.params.items()}


def epoch_like(cutoff):
    """The time cursor before any row: the earliest datetime, naive or aware like the cutoff."""
    if cutoff.tzinfo is None:
        return datetime.datetime(1, 1, 1)
    return datetime.datetime(1, 1, 1, tzinfo=datetime.timezone.utc)


def _format_cutoff(cutoff):
    if cutoff is None:
        return ""
    if cutoff.tzinfo is not None:
        cutoff = cutoff.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return cutoff.isoformat(sep=" ", timespec="seconds") + " UTC"


@dataclass
class HandlerState:
    """One handler's run: the progress its walk made and what the result reports of it."""

    rule: Rule
    boundary: int = 0                   # id walks: the last id older than the cutoff
    cursor: object = 0                  # where the walk is, in the walk's own terms (an id, a (time, key) pair...)
    deleted: int = 0
    updated: int = 0                    # rows changed in place rather than deleted (the run changed something)
    batches: int = 0
    duration_s: float = 0.0
    wal_bytes: int = 0
    longest_batch_s: float = 0.0
    done: bool = False
    failed: bool = False
    error: str = ""
    remaining: int = 0
    remaining_exact: bool = True
    capped_by: str = ""                 # the limit that left work undone, where no budget of the scheduler did
    cascaded: dict = field(default_factory=dict)
    scanned: int = 0
    error_kind: str = ""                # what the failure means (_errors.classify)
    missing_privileges: tuple = ()      # (table, privilege) pairs the role lacks; checked before any batch
    prepared: bool = False              # the walk's plan was read, so what is left can be counted
    own: object = None                  # the walk's own typed state (``Walk.start``)

    def __post_init__(self):
        for table, _column in self.rule.cascade:
            self.cascaded.setdefault(table, 0)
        self.rule.walk.start(self)

    def result(self):
        status = "failed" if self.failed else "ok"
        capped = (not self.failed) and (not self.done) and bool(self.remaining)
        out = {
            "table": self.rule.table,
            "description": self.rule.description,
            "cutoff": _format_cutoff(self.rule.cutoff),
            "deleted": self.deleted,
            "remaining": self.remaining,
            "remaining_exact": self.remaining_exact,
            "capped": capped,
            "batches": self.batches,
            "duration_s": round(self.duration_s, 3),
            "longest_batch_s": round(self.longest_batch_s, 3),
            "wal_bytes": self.wal_bytes,
            "status": status,
            "error": self.error,
        }
        if self.failed:
            out["error_kind"] = self.error_kind
        if self.missing_privileges:
            out["missing_privileges"] = ["%s on %s" % (priv, table) for table, priv in self.missing_privileges]
        if self.rule.cascade or self.cascaded:
            out["cascaded"] = dict(self.cascaded)
        if self.rule.scan_limit:
            out["scanned"] = self.scanned
        if self.rule.note:
            out["note"] = self.rule.note
        out.update(self.rule.walk.report(self))
        return out


class Walk:
    """What the scheduler and the runner ask of every walk.

    ``start`` sets a new handler's cursor and the walk's own state; ``prepare`` plans the walk
    (reads only); ``batch`` deletes up to ``limit`` candidates inside the runner's transaction and
    moves the cursor (``upper`` is the frontier the walk shares with others, see
    ``shared_frontier``, None otherwise); in check mode ``batch`` counts what it would delete
    instead. ``precount`` (check mode) counts candidates up front where a batch cannot count its
    own share; ``remaining`` sets the state's backlog after the run; ``finish`` does what is done
    once per run after the batches; ``report`` and ``rows_by_table`` say what the handler did.
    """

    # ``finish`` commits its own short transactions (the runner opens none around it).
    finish_owns_transactions = False

    def __init__(self, schema):
        self.schema = schema
        self._statements = {}           # built once per rule and mode, reused by every batch

    def table(self, rule, name=None):
        return sql.Identifier(self.schema, name or rule.table)

    def params(self, state, **extra):
        p = rule_params(state.rule)
        p.update(cursor=state.cursor, boundary=state.boundary, cutoff=state.rule.cutoff)
        p.update(extra)
        return p

    def start(self, state):
        """A new handler: its cursor before any row and the walk's own state (``state.own``)."""

    def shared_frontier(self, rule):
        """The key of the frontier that handlers with the same key sweep together, or None (a cursor of its own)."""
        return None

    def prepare(self, conn, state, id_ranges):
        """Plan the walk; sets ``state.done`` when there is nothing to do."""

    def privileges(self, rule):
        """(table, privilege) pairs the walk's statements need beyond reading: checked before any batch.

        A batch locks its rows (``FOR UPDATE``, which needs UPDATE) before it deletes them; dependents
        deleted with them (``cascade``) need DELETE.
        """
        needs = [(rule.table, "SELECT"), (rule.table, "UPDATE"), (rule.table, "DELETE")]
        for table, _column in rule.cascade:
            needs += [(table, "SELECT"), (table, "DELETE")]
        return needs

    def precount(self, conn, state, cap):
        return None

    def batch(self, conn, state, limit, upper, check_mode, precounted=None):
        raise NotImplementedError

    def remaining(self, conn, state, check_mode, precounted=None):
        raise NotImplementedError

    def finish(self, conn, state, check_mode, budget):
        """After the schedule: work done once for the whole run (in its own transaction in a real run).

        Returns the rows it deleted (or, in check mode, would delete) beyond the batches' own.
        """
        return 0

    def report(self, state):
        """The walk's own keys in the handler's result."""
        return {}

    def rows_by_table(self, state):
        """{table: rows} the handler deleted (or, in check mode, would delete)."""
        return dict(state.cascaded, **{state.rule.table: state.deleted})


class KeysetWalk(Walk):
    """Candidates in the order of a key past the cursor: ``key_range`` bounds them, the rest is shared."""

    def key_columns(self, rule):
        """The columns the candidates are read with (the key)."""
        raise NotImplementedError

    def key_range(self, rule, lower_param="cursor"):
        """SQL over alias ``t``: candidates past the cursor (``lower_param`` "zero": from the start) and the cutoff."""
        raise NotImplementedError

    def candidates_sql(self, rule, lower_param="cursor"):
        cond = self.key_range(rule, lower_param)
        if rule.predicate is not None:
            cond = sql.SQL("{} AND ({})").format(cond, rule.predicate)
        return sql.SQL("SELECT {cols} FROM {tbl} AS t WHERE {cond}").format(
            cols=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in self.key_columns(rule)),
            tbl=self.table(rule), cond=cond)

    def _statement(self, rule, check_mode):
        key = (rule.name, check_mode)
        if key not in self._statements:
            self._statements[key] = self.count_statement(rule) if check_mode else self.batch_statement(rule)
        return self._statements[key]

    def count_statement(self, rule):
        raise NotImplementedError

    def batch_statement(self, rule):
        raise NotImplementedError

    def count_candidates(self, conn, state, limit, lower_from_cursor=True):
        query = sql.SQL("SELECT count(*) FROM ({cands} LIMIT %(count_limit)s) AS c").format(
            cands=self.candidates_sql(state.rule, "cursor" if lower_from_cursor else "zero"))
        with conn.cursor() as cur:
            cur.execute(query, self.params(state, count_limit=limit, zero=0))
            return cur.fetchone()[0]

    def estimate_candidates(self, conn, state, lower_param="cursor"):
        query = sql.SQL("EXPLAIN (FORMAT JSON) {}").format(self.candidates_sql(state.rule, lower_param))
        with conn.cursor() as cur:
            cur.execute(query, self.params(state, zero=0))
            plan = cur.fetchone()[0]
        return int(plan[0]["Plan"]["Plan Rows"])

    def remaining(self, conn, state, check_mode, precounted=None):
        n = self.count_candidates(conn, state, REMAINING_EXACT_LIMIT + 1)
        if n > REMAINING_EXACT_LIMIT:
            state.remaining = max(REMAINING_EXACT_LIMIT + 1, self.estimate_candidates(conn, state))
            state.remaining_exact = False
        else:
            state.remaining = n
            state.remaining_exact = True


@dataclass
class IdWindow:
    """An id walk's own state: the width of the id window its next statement reads."""

    span: int = 0


class IdWalk(KeysetWalk):
    """Integer key ranges below the id where the cutoff falls (see the module docstring)."""

    def start(self, state):
        state.own = IdWindow()

    def shared_frontier(self, rule):
        return rule.table

    def key_columns(self, rule):
        return (rule.id_column,)

    def key_range(self, rule, lower_param="cursor"):
        return sql.SQL("t.{id} > %({lo})s AND t.{id} <= %(boundary)s AND t.{ts} < %(cutoff)s").format(
            id=sql.Identifier(rule.id_column), ts=sql.Identifier(rule.time_column), lo=sql.SQL(lower_param))

    def count_statement(self, rule):
        """Check mode: what ``batch_statement`` would delete, counted (same candidates, order, limit; no locks)."""
        return sql.SQL("SELECT count(*), max(c.{id}) FROM ({cands} ORDER BY t.{id} LIMIT %(limit)s) AS c").format(
            id=sql.Identifier(rule.id_column), cands=self.candidates_sql(rule))

    def batch_statement(self, rule):
        """One capped DELETE: the next ``limit`` candidates above the cursor, locked rows skipped."""
        return sql.SQL(
            "WITH batch AS ({cands} ORDER BY t.{id} LIMIT %(limit)s FOR UPDATE OF t SKIP LOCKED),"
            " gone AS (DELETE FROM {tbl} AS d USING batch WHERE d.{id} = batch.{id} RETURNING d.{id})"
            " SELECT count(*), max({id}) FROM gone").format(
            cands=self.candidates_sql(rule), id=sql.Identifier(rule.id_column), tbl=self.table(rule))

    def id_range(self, conn, rule):
        """(min, max) of the rule's key column: (None, None) for an empty table."""
        with conn.cursor() as cur:
            cur.execute(sql.SQL("SELECT min({id}), max({id}) FROM {tbl}").format(
                id=sql.Identifier(rule.id_column), tbl=self.table(rule)))
            return cur.fetchone()

    def find_boundary(self, conn, rule, id_range=None):
        """Largest id whose row is older than the cutoff, assuming time grows with id (binary search).

        ``id_range`` is the table's ``id_range(rule)`` when the caller has it already.
        """
        tbl = self.table(rule)
        idc = sql.Identifier(rule.id_column)
        tsc = sql.Identifier(rule.time_column)
        lo, hi = id_range if id_range is not None else self.id_range(conn, rule)
        with conn.cursor() as cur:
            if lo is None:
                return 0
            probe = sql.SQL("SELECT {id}, {ts} FROM {tbl} WHERE {id} >= %s ORDER BY {id} LIMIT 1").format(
                id=idc, ts=tsc, tbl=tbl)

            def first_at_or_after(x):
                cur.execute(probe, (x,))
                return cur.fetchone()

            def is_old(row):
                return row is not None and row[1] is not None and row[1] < rule.cutoff

            cur.execute(sql.SQL("SELECT {ts} FROM {tbl} WHERE {id} = %s").format(id=idc, ts=tsc, tbl=tbl), (hi,))
            last = cur.fetchone()
            if last and last[0] is not None and last[0] < rule.cutoff:
                return hi
            if not is_old(first_at_or_after(lo)):
                return 0
            # The answer is an existing id in [lo, hi - 1]; lo is always an old row.
            hi -= 1
            while lo < hi:
                mid = (lo + hi + 1) // 2
                row = first_at_or_after(mid)
                if row is not None and row[0] <= hi and is_old(row):
                    lo = row[0]
                else:
                    hi = mid - 1
            return lo

    def prepare(self, conn, state, id_ranges):
        rule = state.rule
        key = (rule.table, rule.id_column)
        if key not in id_ranges:
            id_ranges[key] = self.id_range(conn, rule)
        state.boundary = self.find_boundary(conn, rule, id_ranges[key])
        if id_ranges[key][0] is not None:
            state.cursor = id_ranges[key][0] - 1
        state.done = state.cursor >= state.boundary

    def batch(self, conn, state, limit, upper, check_mode, precounted=None):
        """Up to ``limit`` rows in one transaction, read through id windows of adaptive width up to ``upper``.

        Over the whole ``cursor..upper`` range the planner reads every candidate of the
        range (bitmap scan, then sort) or walks the primary key past other types' rows, so a
        batch would cost as much as the backlog. A window a few batches wide keeps each
        statement's reads near the rows it deletes; windows follow each other inside the
        transaction until the batch is full or ``upper`` is reached, so a batch deletes
        exactly what one statement over the whole range would.
        """
        stmt = self._statement(state.rule, check_mode)
        count, max_id, low = 0, None, state.cursor
        if upper is None:
            upper = state.boundary
        window = state.own
        if window.span <= 0:
            window.span = 4 * limit
        with conn.cursor() as cur:
            while True:
                need = limit - count
                high = min(upper, low + max(1, window.span * need // limit + window.span // 4))
                cur.execute(stmt, self.params(state, cursor=low, boundary=high, limit=limit - count))
                found, last = cur.fetchone()
                count += found
                if last is not None:
                    max_id = last
                if count >= limit or high >= upper:
                    break
                # Width for a full batch at the density just seen; the next window takes its share.
                if found:
                    window.span = max(limit, (high - low) * limit // found + 1)
                else:
                    window.span *= 4
                low = high
        if count < limit:
            # Nothing left at or below ``upper`` (locked rows were skipped): the next batch starts there.
            state.cursor = upper
            state.done = upper >= state.boundary
        elif max_id is not None:
            state.cursor = max_id
            state.done = max_id >= state.boundary
        return count


class IdScan(IdWalk):
    """``IdWalk`` up to the table's last id: every row's time is checked, none is assumed from its key."""

    def find_boundary(self, conn, rule, id_range=None):
        lo, hi = id_range if id_range is not None else self.id_range(conn, rule)
        return 0 if lo is None else hi
