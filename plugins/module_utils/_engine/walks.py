# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rules, the state of a handler, and the walk kinds that turn a rule into statements.

A rule names candidate rows: a table, a time column with a retention cutoff, and a
predicate. A walk kind knows how to move through the candidates batch by batch and builds
the statements for it; it never decides when to run them (the scheduler does) nor owns a
transaction (the runner does).

- ``IdWalk`` (``walk="id"``): tables whose integer key grows with time. The id where the
  cutoff falls is found with a binary search of primary-key probes, and each batch walks an
  index range ``id > cursor AND id <= upper``; the time column is still re-checked on every
  row, so jitter can only make us keep a row, never delete a newer one.
- ``TimeWalk`` (``walk="time"``): tables without an increasing key (UUID primary keys, as in
  Prefect), walked by an indexed time column with the primary key as tie-breaker. Such a rule
  may also delete dependent rows in the same transaction (``cascade``), cap its own batches
  (``batch_limit``), and, where no index can find its candidates, examine at most
  ``scan_limit`` rows per statement (a sweep in bounded windows).

A rule may also bring its own walk (``walk`` set to an object with the ``Walk`` interface),
for deletions whose unit is not a row, such as retiring a whole Dagster run.

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
    """Candidate rows: ``time_column < cutoff AND predicate`` in ``table``, walked by ``id_column``."""

    name: str
    table: str
    cutoff: datetime.datetime
    predicate: object = None            # psycopg.sql.Composable over alias "t", or None
    params: dict = field(default_factory=dict)
    time_column: str = "timestamp"
    id_column: str = "id"
    description: str = ""
    # Additions for tables without an increasing integer key; the defaults keep the id walk.
    walk: object = "id"                 # "id", "time", or a Walk object of the rule's own
    cascade: tuple = ()                 # ((table, column), ...) deleted with each batch, column = deleted id
    batch_limit: int = 0                # rows per batch for this rule (0: the budget's batch_size)
    scan_limit: int = 0                 # "time" walk: rows examined per statement (0: no window)
    note: str = ""                      # shown in the result, e.g. why a rule sweeps
    after: tuple = ()                   # names of the handlers this one waits for (done or failed)

    @property
    def kind(self):
        return self.walk if isinstance(self.walk, str) else getattr(self.walk, "kind", "custom")


def rule_params(rule):
    """The rule's statement parameters; a callable value is read now (see the module docstring)."""
    return {key: value() if callable(value) else value for key, value in rule.params.items()}


def _epoch_like(cutoff):
    """The time cursor before any row: the earliest datetime, naive or aware like the cutoff."""
    if cutoff.tzinfo is None:
        return datetime.datetime(1, 1, 1)
    return datetime.datetime(1, 1, 1, tzinfo=datetime.timezone.utc)


def _format_cutoff(cutoff):
    if cutoff.tzinfo is not None:
        cutoff = cutoff.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return cutoff.isoformat(sep=" ", timespec="seconds") + " UTC"


@dataclass
class HandlerState:
    rule: Rule
    boundary: int = 0
    cursor: object = 0
    deleted: int = 0
    batches: int = 0
    duration_s: float = 0.0
    wal_bytes: int = 0
    longest_batch_s: float = 0.0
    done: bool = False
    failed: bool = False
    error: str = ""
    remaining: int = 0
    remaining_exact: bool = True
    cursor_time: object = None          # "time" walk: the (time, id) keyset cursor
    cursor_key: object = None
    cascaded: dict = field(default_factory=dict)
    scanned: int = 0
    span: int = 0                       # "id" walk: width of the id window the next statement reads
    extra: dict = field(default_factory=dict)   # a custom walk's own result keys
    error_kind: str = ""                # what the failure means (_errors.classify)
    missing_privileges: tuple = ()      # (table, privilege) pairs the role lacks; checked before any batch
    prepared: bool = False              # the walk's plan was read, so what is left can be counted
    scratch: dict = field(default_factory=dict)  # a custom walk's working memory, not in the result

    def __post_init__(self):
        if self.rule.kind == "time":
            self.cursor_time = _epoch_like(self.rule.cutoff)
        for table, _column in self.rule.cascade:
            self.cascaded.setdefault(table, 0)

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
        out.update(self.extra)
        return out


class Walk:
    """What the scheduler and the runner ask of every walk kind.

    ``prepare`` plans the walk (reads only); ``batch`` deletes up to ``limit`` candidates inside
    the runner's transaction and moves the cursor (``upper`` is the shared frontier of an id
    walk, None otherwise); in check mode ``batch`` counts what it would delete instead.
    ``precount`` (check mode) counts candidates up front where a batch cannot count its own
    share; ``remaining`` sets the state's backlog after the run; ``finish`` does what is done
    once per run after the batches.
    """

    kind = "custom"
    shares_frontier = False

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

    def finish(self, conn, state, check_mode):
        """After the schedule: work done once for the whole run (in its own transaction in a real run).

        Returns the rows it deleted (or, in check mode, would delete) beyond the batches' own.
        """
        return 0


class IdWalk(Walk):
    """Integer key ranges below the id where the cutoff falls (see the module docstring)."""

    kind = "id"
    shares_frontier = True

    def candidates_sql(self, rule, lower_param="cursor"):
        cond = sql.SQL("t.{id} > %({lo})s AND t.{id} <= %(boundary)s AND t.{ts} < %(cutoff)s").format(
            id=sql.Identifier(rule.id_column), ts=sql.Identifier(rule.time_column), lo=sql.SQL(lower_param))
        if rule.predicate is not None:
            cond = sql.SQL("{} AND ({})").format(cond, rule.predicate)
        return sql.SQL("SELECT t.{id} FROM {tbl} AS t WHERE {cond}").format(
            id=sql.Identifier(rule.id_column), tbl=self.table(rule), cond=cond)

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
        if state.span <= 0:
            state.span = 4 * limit
        with conn.cursor() as cur:
            while True:
                need = limit - count
                high = min(upper, low + max(1, state.span * need // limit + state.span // 4))
                cur.execute(stmt, self.params(state, cursor=low, boundary=high, limit=limit - count))
                found, last = cur.fetchone()
                count += found
                if last is not None:
                    max_id = last
                if count >= limit or high >= upper:
                    break
                # Width for a full batch at the density just seen; the next window takes its share.
                if found:
                    state.span = max(limit, (high - low) * limit // found + 1)
                else:
                    state.span *= 4
                low = high
        if count < limit:
            # Nothing left at or below ``upper`` (locked rows were skipped): the next batch starts there.
            state.cursor = upper
            state.done = upper >= state.boundary
        elif max_id is not None:
            state.cursor = max_id
            state.done = max_id >= state.boundary
        return count

    def _statement(self, rule, check_mode):
        key = (rule.name, check_mode)
        if key not in self._statements:
            self._statements[key] = self.count_statement(rule) if check_mode else self.batch_statement(rule)
        return self._statements[key]

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


class TimeWalk(IdWalk):
    """The ``(time, id)`` keyset along an indexed time column (see the module docstring)."""

    kind = "time"
    shares_frontier = False

    def params(self, state, **extra):
        p = rule_params(state.rule)
        p.update(cursor=state.cursor, boundary=state.boundary, cutoff=state.rule.cutoff,
                 cursor_time=state.cursor_time, cursor_key=state.cursor_key, scan_limit=state.rule.scan_limit)
        p.update(extra)
        return p

    def time_range(self, rule, lower_param="cursor"):
        """``(time, id) > cursor AND time < cutoff``, written so an index on the time column serves it."""
        if lower_param == "zero":
            return sql.SQL("t.{ts} < %(cutoff)s").format(ts=sql.Identifier(rule.time_column))
        return sql.SQL(
            "t.{ts} >= %(cursor_time)s AND (t.{ts} > %(cursor_time)s OR t.{id} > %(cursor_key)s)"
            " AND t.{ts} < %(cutoff)s").format(ts=sql.Identifier(rule.time_column), id=sql.Identifier(rule.id_column))

    def candidates_sql(self, rule, lower_param="cursor"):
        cond = self.time_range(rule, lower_param)
        if rule.predicate is not None:
            cond = sql.SQL("{} AND ({})").format(cond, rule.predicate)
        return sql.SQL("SELECT t.{id}, t.{ts} FROM {tbl} AS t WHERE {cond}").format(
            id=sql.Identifier(rule.id_column), ts=sql.Identifier(rule.time_column), tbl=self.table(rule), cond=cond)

    def order(self, rule, alias="t", descending=False):
        direction = sql.SQL(" DESC" if descending else "")
        return sql.SQL("{a}.{ts}{d}, {a}.{id}{d}").format(
            a=sql.Identifier(alias), ts=sql.Identifier(rule.time_column), id=sql.Identifier(rule.id_column),
            d=direction)

    def batch_statement(self, rule):
        """One capped DELETE along the (time, id) keyset, with the rule's dependents.

        Returns: deleted count, last deleted (time, id), rows examined, last examined (time, id),
        then one count per cascade table.
        """
        idc, tsc, tbl = sql.Identifier(rule.id_column), sql.Identifier(rule.time_column), self.table(rule)
        parts = []
        if rule.scan_limit:
            pred = rule.predicate if rule.predicate is not None else sql.SQL("true")
            parts.append(sql.SQL(
                "win AS (SELECT t.{id}, t.{ts} FROM {tbl} AS t WHERE {rng}"
                " ORDER BY {order} LIMIT %(scan_limit)s)").format(
                id=idc, ts=tsc, tbl=tbl, rng=self.time_range(rule), order=self.order(rule)))
            parts.append(sql.SQL(
                "batch AS (SELECT t.{id}, t.{ts} FROM {tbl} AS t JOIN win ON win.{id} = t.{id}"
                " WHERE t.{ts} < %(cutoff)s AND ({pred}) ORDER BY {order} LIMIT %(limit)s FOR UPDATE OF t SKIP LOCKED)"
            ).format(id=idc, ts=tsc, tbl=tbl, pred=pred, order=self.order(rule)))
            scanned = sql.SQL("(SELECT count(*) FROM win), (SELECT {ts} FROM win ORDER BY {o} LIMIT 1),"
                              " (SELECT {id} FROM win ORDER BY {o} LIMIT 1)").format(
                ts=tsc, id=idc, o=self.order(rule, "win", descending=True))
        else:
            parts.append(sql.SQL(
                "batch AS ({cands} ORDER BY {order} LIMIT %(limit)s FOR UPDATE OF t SKIP LOCKED)").format(
                cands=self.candidates_sql(rule), order=self.order(rule)))
            scanned = sql.SQL("NULL::bigint, NULL, NULL")
        parts.append(sql.SQL(
            "gone AS (DELETE FROM {tbl} AS d USING batch WHERE d.{id} = batch.{id} RETURNING d.{id}, d.{ts})").format(
            tbl=tbl, id=idc, ts=tsc))
        counts = []
        for n, (dep_table, dep_column) in enumerate(rule.cascade):
            name = sql.Identifier("dep%d" % n)
            parts.append(sql.SQL("{name} AS (DELETE FROM {dep} AS c USING gone WHERE c.{col} = gone.{id} RETURNING 1)")
                         .format(name=name, dep=self.table(rule, dep_table), col=sql.Identifier(dep_column), id=idc))
            counts.append(sql.SQL("(SELECT count(*) FROM {})").format(name))
        last = self.order(rule, "gone", descending=True)
        select = sql.SQL("SELECT (SELECT count(*) FROM gone), (SELECT {ts} FROM gone ORDER BY {o} LIMIT 1),"
                         " (SELECT {id} FROM gone ORDER BY {o} LIMIT 1), {scanned}").format(
            ts=tsc, id=idc, o=last, scanned=scanned)
        if counts:
            select = sql.SQL("{}, {}").format(select, sql.SQL(", ").join(counts))
        return sql.SQL("WITH {} {}").format(sql.SQL(", ").join(parts), select)

    def prepare(self, conn, state, id_ranges):
        """Nothing to plan: the keyset starts before the first row."""

    def _window_count_sql(self, rule):
        """Check mode: one batch of a sweeping rule, read only.

        The same window as ``batch_statement`` (``scan_limit`` rows from the cursor) and the same
        first ``limit`` candidates in it; returns the window's size and last (time, id), then the
        candidates' count and last (time, id).
        """
        idc, tsc = sql.Identifier(rule.id_column), sql.Identifier(rule.time_column)
        pred = rule.predicate if rule.predicate is not None else sql.SQL("true")
        return sql.SQL(
            "WITH win AS (SELECT t.* FROM {tbl} AS t WHERE {rng} ORDER BY {order} LIMIT %(scan_limit)s),"
            " cand AS (SELECT t.{id}, t.{ts} FROM win AS t WHERE t.{ts} < %(cutoff)s AND ({pred})"
            " ORDER BY {order} LIMIT %(limit)s)"
            " SELECT (SELECT count(*) FROM win), (SELECT {ts} FROM win ORDER BY {w} LIMIT 1),"
            " (SELECT {id} FROM win ORDER BY {w} LIMIT 1), (SELECT count(*) FROM cand),"
            " (SELECT {ts} FROM cand ORDER BY {c} LIMIT 1), (SELECT {id} FROM cand ORDER BY {c} LIMIT 1)").format(
            tbl=self.table(rule), rng=self.time_range(rule), order=self.order(rule), id=idc, ts=tsc, pred=pred,
            w=self.order(rule, "win", descending=True), c=self.order(rule, "cand", descending=True))

    def _windows(self, conn, state, limit):
        """Candidates of a sweeping rule from the cursor, counted window by window (reads only)."""
        rule = state.rule
        pred = rule.predicate if rule.predicate is not None else sql.SQL("true")
        query = sql.SQL(
            "SELECT count(*) FILTER (WHERE {pred}), count(*), (array_agg(t.{ts} ORDER BY {o}))[1],"
            " (array_agg(t.{id} ORDER BY {o}))[1]"
            " FROM (SELECT t.* FROM {tbl} AS t WHERE {rng} ORDER BY {order} LIMIT %(scan_limit)s) AS t").format(
            pred=pred, ts=sql.Identifier(rule.time_column), id=sql.Identifier(rule.id_column),
            o=self.order(rule, descending=True), tbl=self.table(rule), rng=self.time_range(rule),
            order=self.order(rule))
        total = 0
        cursor_time, cursor_key = state.cursor_time, state.cursor_key
        with conn.cursor() as cur:
            while True:
                cur.execute(query, self.params(state, cursor_time=cursor_time, cursor_key=cursor_key))
                found, seen, last_time, last_key = cur.fetchone()
                total += found
                if seen < rule.scan_limit or (limit is not None and total >= limit):
                    return total if limit is None else min(total, limit)
                cursor_time, cursor_key = last_time, last_key

    def count_candidates(self, conn, state, limit, lower_from_cursor=True):
        if state.rule.scan_limit and lower_from_cursor:
            return self._windows(conn, state, limit)
        return IdWalk.count_candidates(self, conn, state, limit, lower_from_cursor)

    def precount(self, conn, state, cap):
        return self.count_candidates(conn, state, cap)

    def batch(self, conn, state, limit, upper, check_mode, precounted=None):
        if check_mode:
            return self._count_batch(conn, state, limit, precounted)
        with conn.cursor() as cur:
            cur.execute(self._statement(state.rule, False), self.params(state, limit=limit))
            row = cur.fetchone()
        self._advance(state, row, limit)
        return row[0]

    def _count_batch(self, conn, state, limit, precounted):
        """Check mode: what this batch would delete, without deleting.

        A sweeping rule reads the very window the real batch would read, so its count, the rows
        it examines (``scanned``) and where its cursor goes are those of the real run. Any other
        rule takes its share of the candidates counted up front.
        """
        if not state.rule.scan_limit:
            count = min(limit, (precounted or 0) - state.deleted)
            state.done = count < limit
            return count
        with conn.cursor() as cur:
            cur.execute(self._window_count_sql(state.rule), self.params(state, limit=limit))
            seen, win_time, win_key, count, last_time, last_key = cur.fetchone()
        self._advance(state, (count, last_time, last_key, seen, win_time, win_key), limit)
        return count

    def _advance(self, state, row, limit):
        """After a committed batch: move the keyset cursor and count dependents and examined rows."""
        count, last_time, last_key, seen, win_time, win_key = row[:6]
        for (dep_table, _col), n in zip(state.rule.cascade, row[6:]):
            state.cascaded[dep_table] += n
        if state.rule.scan_limit:
            state.scanned += seen or 0
            if count >= limit and last_time is not None:
                state.cursor_time, state.cursor_key = last_time, last_key
            elif seen:
                state.cursor_time, state.cursor_key = win_time, win_key
            if count < limit and (seen or 0) < state.rule.scan_limit:
                state.done = True
        else:
            if last_time is not None:
                state.cursor_time, state.cursor_key = last_time, last_key
            if count < limit:
                state.done = True

    def remaining(self, conn, state, check_mode, precounted=None):
        if not check_mode:
            return IdWalk.remaining(self, conn, state, check_mode)
        left = (precounted or 0) - state.deleted
        if left > REMAINING_EXACT_LIMIT:
            # From the start of the table: in check mode a sweeping rule's cursor moved with its reads.
            state.remaining = max(REMAINING_EXACT_LIMIT + 1,
                                  self.estimate_candidates(conn, state, "zero") - state.deleted)
            state.remaining_exact = False
        else:
            state.remaining = left

    def count_cascaded(self, conn, state, rows):
        """Check mode: dependents of the first ``rows`` candidates, per cascade table."""
        rule = state.rule
        out = {}
        with conn.cursor() as cur:
            for dep_table, dep_column in rule.cascade:
                if rows <= 0:
                    out[dep_table] = 0
                    continue
                query = sql.SQL(
                    "SELECT count(*) FROM {dep} AS c WHERE c.{col} IN"
                    " (SELECT k.{id} FROM ({cands} ORDER BY {order} LIMIT %(rows)s) AS k)").format(
                    dep=self.table(rule, dep_table), col=sql.Identifier(dep_column),
                    id=sql.Identifier(rule.id_column), cands=self.candidates_sql(rule, "zero"),
                    order=self.order(rule))
                cur.execute(query, self.params(state, rows=rows))
                out[dep_table] = cur.fetchone()[0]
        return out

    def finish(self, conn, state, check_mode):
        if check_mode and state.rule.cascade:
            state.cascaded = self.count_cascaded(conn, state, state.deleted)
        return 0


def walk_for(rule, schema, walks):
    """The walk object of ``rule``: one shared per kind and schema (``walks`` caches them)."""
    if not isinstance(rule.walk, str):
        return rule.walk
    if rule.walk not in ("id", "time"):
        return None
    if rule.walk not in walks:
        walks[rule.walk] = (IdWalk if rule.walk == "id" else TimeWalk)(schema)
    return walks[rule.walk]
