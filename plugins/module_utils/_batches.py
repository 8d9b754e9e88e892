# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The capped delete engine.

A rule names candidate rows: a table with a monotonically growing integer key, a time
column with a retention cutoff, and a predicate. A handler runs one rule under the run's
shared budgets. Handlers take turns batch by batch (round robin) so a huge backlog in one
category cannot starve the others, and one failing handler does not stop the rest. Handlers
walking the same table by id also sweep it together: none passes a shared frontier before all
have reached it, so each id window's pages are read once for all of them.

Cost: orchestrator tables rarely index their time column, but their keys grow with time.
The id where the cutoff falls is found with a binary search of primary-key probes, and
each batch then walks an index range ``id > cursor AND id <= boundary``; the time column
is still re-checked on every row, so jitter can only make us keep a row, never delete a
newer one.

Tables without an increasing key (UUID primary keys, as in Prefect) are walked instead by
an indexed time column with the primary key as tie-breaker (``walk="time"``): each batch
reads ``(time, id) > cursor AND time < cutoff`` in index order, so no boundary search is
needed. Such a rule may also delete dependent rows in the same transaction (``cascade``:
tables pointing at the deleted keys through an indexed column), cap its own batches
(``batch_limit``), and, where no index can find its candidates, examine at most
``scan_limit`` rows per statement (a sweep in bounded windows).
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field

from ._connection import is_connection_lost
from ._errors import InvalidRequest, PgtidyError

try:
    import psycopg
    from psycopg import sql
except ImportError:  # pragma: no cover - the module reports the missing driver
    psycopg = None
    sql = None

# Exact counts of what is left stop here; past it the planner's estimate is reported.
REMAINING_EXACT_LIMIT = 1_000

BUDGET_ARGUMENT_SPEC = dict(
    batch_size=dict(type="int", default=5000),
    max_rows=dict(type="int", default=1_000_000),
    max_duration=dict(type="int", default=1800),
    max_wal_bytes=dict(type="str", default="1GiB"),
    batch_pause=dict(type="float", default=0.0),
    wal_compression=dict(type="str", default="auto", choices=["auto", "server", "lz4", "zstd", "pglz"]),
)

_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3, "tb": 1000 ** 4,
          "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4,
          "kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3, "tib": 1024 ** 4}


def parse_bytes(value, name="size"):
    """'1GiB', '500MB', '1048576' -> bytes. 0 means no limit."""
    if isinstance(value, int):
        number, unit = value, ""
    else:
        text = str(value).strip().lower().replace(" ", "")
        digits = text.rstrip("abcdefghijklmnopqrstuvwxyz")
        unit = text[len(digits):]
        try:
            number = float(digits)
        except ValueError:
            raise InvalidRequest("%s must be a size such as '1GiB' or '500MB', not %r" % (name, value))
    if unit not in _UNITS:
        raise InvalidRequest("%s has an unknown unit %r (use B, kB, MB, GB, KiB, MiB, GiB)" % (name, unit))
    result = int(number * _UNITS[unit])
    if result < 0:
        raise InvalidRequest("%s must not be negative" % name)
    return result


@dataclass(frozen=True)
class Budget:
    batch_size: int = 5000
    max_rows: int = 1_000_000       # 0: no row budget
    max_duration: float = 1800.0    # seconds; 0: no time budget
    max_wal_bytes: int = 1 << 30    # 0: no WAL budget
    batch_pause: float = 0.0

    @classmethod
    def from_params(cls, params):
        budget = cls(batch_size=params.get("batch_size", 5000),
                     max_rows=params.get("max_rows", 1_000_000),
                     max_duration=float(params.get("max_duration", 1800)),
                     max_wal_bytes=parse_bytes(params.get("max_wal_bytes", "1GiB"), "max_wal_bytes"),
                     batch_pause=float(params.get("batch_pause") or 0.0))
        budget.validate()
        return budget

    def validate(self):
        if not 1 <= self.batch_size <= 100_000:
            raise InvalidRequest("batch_size must be between 1 and 100000 rows per transaction, not %r"
                                 % self.batch_size)
        if self.max_rows < 0:
            raise InvalidRequest("max_rows must be 0 (no limit) or a positive number of rows")
        if self.max_duration < 0:
            raise InvalidRequest("max_duration must be 0 (no limit) or a positive number of seconds")
        if not 0 <= self.batch_pause <= 60:
            raise InvalidRequest("batch_pause must be between 0 and 60 seconds")


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
    walk: str = "id"                    # "id": integer key ranges; "time": (time_column, id_column) keyset
    cascade: tuple = ()                 # ((table, column), ...) deleted with each batch, column = deleted id
    batch_limit: int = 0                # rows per batch for this rule (0: the budget's batch_size)
    scan_limit: int = 0                 # "time" walk: rows examined per statement (0: no window)
    note: str = ""                      # shown in the result, e.g. why a rule sweeps


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
    cursor: int = 0
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

    def __post_init__(self):
        if self.rule.walk == "time":
            self.cursor_time = _epoch_like(self.rule.cutoff)
        for table, _column in self.rule.cascade:
            self.cascaded.setdefault(table, 0)

    def result(self):
        status = "failed" if self.failed else "ok"
        capped = (not self.failed) and (not self.done) and self.remaining > 0
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
        if self.rule.cascade:
            out["cascaded"] = dict(self.cascaded)
        if self.rule.scan_limit:
            out["scanned"] = self.scanned
        if self.rule.note:
            out["note"] = self.rule.note
        return out


class DeleteEngine:
    def __init__(self, conn, schema, budget, check_mode=False, log=None):
        self.conn = conn
        self.schema = schema
        self.budget = budget
        self.check_mode = check_mode
        self.log = log or (lambda msg: None)

    # -- SQL pieces ------------------------------------------------------------
    def _table(self, rule):
        return sql.Identifier(self.schema, rule.table)

    def _candidates_sql(self, rule, lower_param="cursor"):
        if rule.walk == "time":
            return self._time_candidates_sql(rule, lower_param)
        cond = sql.SQL("t.{id} > %({lo})s AND t.{id} <= %(boundary)s AND t.{ts} < %(cutoff)s").format(
            id=sql.Identifier(rule.id_column), ts=sql.Identifier(rule.time_column), lo=sql.SQL(lower_param))
        if rule.predicate is not None:
            cond = sql.SQL("{} AND ({})").format(cond, rule.predicate)
        return sql.SQL("SELECT t.{id} FROM {tbl} AS t WHERE {cond}").format(
            id=sql.Identifier(rule.id_column), tbl=self._table(rule), cond=cond)

    def _time_range(self, rule, lower_param="cursor"):
        """``(time, id) > cursor AND time < cutoff``, written so an index on the time column serves it."""
        if lower_param == "zero":
            return sql.SQL("t.{ts} < %(cutoff)s").format(ts=sql.Identifier(rule.time_column))
        return sql.SQL(
            "t.{ts} >= %(cursor_time)s AND (t.{ts} > %(cursor_time)s OR t.{id} > %(cursor_key)s)"
            " AND t.{ts} < %(cutoff)s").format(ts=sql.Identifier(rule.time_column), id=sql.Identifier(rule.id_column))

    def _time_candidates_sql(self, rule, lower_param="cursor"):
        cond = self._time_range(rule, lower_param)
        if rule.predicate is not None:
            cond = sql.SQL("{} AND ({})").format(cond, rule.predicate)
        return sql.SQL("SELECT t.{id}, t.{ts} FROM {tbl} AS t WHERE {cond}").format(
            id=sql.Identifier(rule.id_column), ts=sql.Identifier(rule.time_column), tbl=self._table(rule), cond=cond)

    def _time_order(self, rule, alias="t", descending=False):
        direction = sql.SQL(" DESC" if descending else "")
        return sql.SQL("{a}.{ts}{d}, {a}.{id}{d}").format(
            a=sql.Identifier(alias), ts=sql.Identifier(rule.time_column), id=sql.Identifier(rule.id_column),
            d=direction)

    def time_batch_statement(self, rule):
        """One capped DELETE along the (time, id) keyset, with the rule's dependents.

        Returns: deleted count, last deleted (time, id), rows examined, last examined (time, id),
        then one count per cascade table.
        """
        idc, tsc, tbl = sql.Identifier(rule.id_column), sql.Identifier(rule.time_column), self._table(rule)
        parts = []
        if rule.scan_limit:
            pred = rule.predicate if rule.predicate is not None else sql.SQL("true")
            parts.append(sql.SQL(
                "win AS (SELECT t.{id}, t.{ts} FROM {tbl} AS t WHERE {rng}"
                " ORDER BY {order} LIMIT %(scan_limit)s)").format(
                id=idc, ts=tsc, tbl=tbl, rng=self._time_range(rule), order=self._time_order(rule)))
            parts.append(sql.SQL(
                "batch AS (SELECT t.{id}, t.{ts} FROM {tbl} AS t JOIN win ON win.{id} = t.{id}"
                " WHERE t.{ts} < %(cutoff)s AND ({pred}) ORDER BY {order} LIMIT %(limit)s FOR UPDATE OF t SKIP LOCKED)"
            ).format(id=idc, ts=tsc, tbl=tbl, pred=pred, order=self._time_order(rule)))
            scanned = sql.SQL("(SELECT count(*) FROM win), (SELECT {ts} FROM win ORDER BY {o} LIMIT 1),"
                              " (SELECT {id} FROM win ORDER BY {o} LIMIT 1)").format(
                ts=tsc, id=idc, o=self._time_order(rule, "win", descending=True))
        else:
            parts.append(sql.SQL(
                "batch AS ({cands} ORDER BY {order} LIMIT %(limit)s FOR UPDATE OF t SKIP LOCKED)").format(
                cands=self._time_candidates_sql(rule), order=self._time_order(rule)))
            scanned = sql.SQL("NULL::bigint, NULL, NULL")
        parts.append(sql.SQL(
            "gone AS (DELETE FROM {tbl} AS d USING batch WHERE d.{id} = batch.{id} RETURNING d.{id}, d.{ts})").format(
            tbl=tbl, id=idc, ts=tsc))
        counts = []
        for n, (dep_table, dep_column) in enumerate(rule.cascade):
            name = sql.Identifier("dep%d" % n)
            parts.append(sql.SQL("{name} AS (DELETE FROM {dep} AS c USING gone WHERE c.{col} = gone.{id} RETURNING 1)")
                         .format(name=name, dep=sql.Identifier(self.schema, dep_table),
                                 col=sql.Identifier(dep_column), id=idc))
            counts.append(sql.SQL("(SELECT count(*) FROM {})").format(name))
        last = self._time_order(rule, "gone", descending=True)
        select = sql.SQL("SELECT (SELECT count(*) FROM gone), (SELECT {ts} FROM gone ORDER BY {o} LIMIT 1),"
                         " (SELECT {id} FROM gone ORDER BY {o} LIMIT 1), {scanned}").format(
            ts=tsc, id=idc, o=last, scanned=scanned)
        if counts:
            select = sql.SQL("{}, {}").format(select, sql.SQL(", ").join(counts))
        return sql.SQL("WITH {} {}").format(sql.SQL(", ").join(parts), select)

    def _count_windowed(self, state, limit):
        """Candidates of a sweeping rule, counted window by window from the cursor (reads only)."""
        rule = state.rule
        pred = rule.predicate if rule.predicate is not None else sql.SQL("true")
        query = sql.SQL(
            "SELECT count(*) FILTER (WHERE {pred}), count(*), (array_agg(t.{ts} ORDER BY {o}))[1],"
            " (array_agg(t.{id} ORDER BY {o}))[1]"
            " FROM (SELECT t.* FROM {tbl} AS t WHERE {rng} ORDER BY {order} LIMIT %(scan_limit)s) AS t").format(
            pred=pred, ts=sql.Identifier(rule.time_column), id=sql.Identifier(rule.id_column),
            o=self._time_order(rule, descending=True), tbl=self._table(rule), rng=self._time_range(rule),
            order=self._time_order(rule))
        total = 0
        cursor_time, cursor_key = state.cursor_time, state.cursor_key
        with self.conn.cursor() as cur:
            while True:
                cur.execute(query, self._params(state, cursor_time=cursor_time, cursor_key=cursor_key))
                found, seen, last_time, last_key = cur.fetchone()
                total += found
                if seen < rule.scan_limit or (limit is not None and total >= limit):
                    return total if limit is None else min(total, limit)
                cursor_time, cursor_key = last_time, last_key

    def count_cascaded(self, state, rows):
        """Check mode: dependents of the first ``rows`` candidates, per cascade table."""
        rule = state.rule
        out = {}
        with self.conn.cursor() as cur:
            for dep_table, dep_column in rule.cascade:
                if rows <= 0:
                    out[dep_table] = 0
                    continue
                query = sql.SQL(
                    "SELECT count(*) FROM {dep} AS c WHERE c.{col} IN"
                    " (SELECT k.{id} FROM ({cands} ORDER BY {order} LIMIT %(rows)s) AS k)").format(
                    dep=sql.Identifier(self.schema, dep_table), col=sql.Identifier(dep_column),
                    id=sql.Identifier(rule.id_column), cands=self._time_candidates_sql(rule),
                    order=self._time_order(rule))
                cur.execute(query, self._params(state, rows=rows))
                out[dep_table] = cur.fetchone()[0]
        return out

    def count_statement(self, rule):
        """Check mode: what ``batch_statement`` would delete, counted (same candidates, order, limit; no locks)."""
        return sql.SQL("SELECT count(*), max(c.{id}) FROM ({cands} ORDER BY t.{id} LIMIT %(limit)s) AS c").format(
            id=sql.Identifier(rule.id_column), cands=self._candidates_sql(rule))

    def batch_statement(self, rule):
        """One capped DELETE: the next ``limit`` candidates above the cursor, locked rows skipped."""
        return sql.SQL(
            "WITH batch AS ({cands} ORDER BY t.{id} LIMIT %(limit)s FOR UPDATE OF t SKIP LOCKED),"
            " gone AS (DELETE FROM {tbl} AS d USING batch WHERE d.{id} = batch.{id} RETURNING d.{id})"
            " SELECT count(*), max({id}) FROM gone").format(
            cands=self._candidates_sql(rule), id=sql.Identifier(rule.id_column), tbl=self._table(rule))

    def _params(self, state, **extra):
        p = dict(state.rule.params)
        p.update(cursor=state.cursor, boundary=state.boundary, cutoff=state.rule.cutoff)
        if state.rule.walk == "time":
            p.update(cursor_time=state.cursor_time, cursor_key=state.cursor_key, scan_limit=state.rule.scan_limit)
        p.update(extra)
        return p

    # -- planning --------------------------------------------------------------
    def id_range(self, rule):
        """(min, max) of the rule's key column: (None, None) for an empty table."""
        with self.conn.cursor() as cur:
            cur.execute(sql.SQL("SELECT min({id}), max({id}) FROM {tbl}").format(
                id=sql.Identifier(rule.id_column), tbl=self._table(rule)))
            return cur.fetchone()

    def find_boundary(self, rule, id_range=None):
        """Largest id whose row is older than the cutoff, assuming time grows with id (binary search).

        ``id_range`` is the table's ``id_range(rule)`` when the caller has it already.
        """
        tbl = self._table(rule)
        idc = sql.Identifier(rule.id_column)
        tsc = sql.Identifier(rule.time_column)
        lo, hi = id_range if id_range is not None else self.id_range(rule)
        with self.conn.cursor() as cur:
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

    def count_candidates(self, state, limit, lower_from_cursor=True):
        if state.rule.walk == "time" and state.rule.scan_limit and lower_from_cursor:
            return self._count_windowed(state, limit)
        query = sql.SQL("SELECT count(*) FROM ({cands} LIMIT %(count_limit)s) AS c").format(
            cands=self._candidates_sql(state.rule, "cursor" if lower_from_cursor else "zero"))
        with self.conn.cursor() as cur:
            cur.execute(query, self._params(state, count_limit=limit, zero=0))
            return cur.fetchone()[0]

    def estimate_candidates(self, state):
        query = sql.SQL("EXPLAIN (FORMAT JSON) {}").format(self._candidates_sql(state.rule))
        with self.conn.cursor() as cur:
            cur.execute(query, self._params(state))
            plan = cur.fetchone()[0]
        return int(plan[0]["Plan"]["Plan Rows"])

    def measure_remaining(self, state):
        n = self.count_candidates(state, REMAINING_EXACT_LIMIT + 1)
        if n > REMAINING_EXACT_LIMIT:
            state.remaining = max(REMAINING_EXACT_LIMIT + 1, self.estimate_candidates(state))
            state.remaining_exact = False
        else:
            state.remaining = n
            state.remaining_exact = True

    def _wal_lsn(self):
        """Current WAL position as an integer (None on a standby, where nothing can be deleted anyway)."""
        with self.conn.cursor() as cur:
            cur.execute("SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END")
            return lsn_to_int(cur.fetchone()[0])

    # -- running ---------------------------------------------------------------
    def run(self, rules):
        started = time.monotonic()
        states = []
        id_ranges = {}     # one min/max per table, for every handler walking it
        for rule in rules:
            state = HandlerState(rule)
            if rule.walk not in ("id", "time"):
                raise InvalidRequest("rule %s: unknown walk %r" % (rule.name, rule.walk))
            if rule.walk == "time":
                states.append(state)
                continue
            try:
                key = (rule.table, rule.id_column)
                if key not in id_ranges:
                    id_ranges[key] = self.id_range(rule)
                state.boundary = self.find_boundary(rule, id_ranges[key])
                if id_ranges[key][0] is not None:
                    state.cursor = id_ranges[key][0] - 1
                state.done = state.cursor >= state.boundary
            except psycopg.Error as exc:
                self._fail(state, exc)
            states.append(state)
        wal_start = None if self.check_mode else self._wal_lsn()
        counts = self._count_time_rules(states) if self.check_mode else {}
        capped_by = self._schedule(states, started, wal_start, counts)
        for state in states:
            if state.failed or state.done or is_connection_lost(self.conn):
                continue
            try:
                if self.check_mode and state.rule.walk == "time":
                    self._predict_remaining(state, counts[state.rule.name] - state.deleted)
                else:
                    self.measure_remaining(state)
            except psycopg.Error as exc:
                self._fail(state, exc)
        if self.check_mode:
            for state in states:
                if state.rule.cascade and not state.failed:
                    try:
                        state.cascaded = self.count_cascaded(state, state.deleted)
                    except psycopg.Error as exc:
                        self._fail(state, exc)
        total_wal = 0 if self.check_mode else self._safe_wal_since(wal_start)
        handlers = {s.rule.name: s.result() for s in states}
        return {
            "handlers": handlers,
            "deleted_total": sum(s.deleted + sum(s.cascaded.values()) for s in states),
            "remaining_total": sum(s.remaining for s in states),
            "capped": any(h["capped"] for h in handlers.values()),
            "capped_by": capped_by if any(h["capped"] for h in handlers.values()) else None,
            "failed_handlers": [s.rule.name for s in states if s.failed],
            "duration_s": round(time.monotonic() - started, 3),
            "wal_bytes": total_wal,
            "budget": {"batch_size": self.budget.batch_size, "max_rows": self.budget.max_rows,
                       "max_duration": self.budget.max_duration, "max_wal_bytes": self.budget.max_wal_bytes,
                       "batch_pause": self.budget.batch_pause},
        }

    def _safe_wal_since(self, start):
        if start is None or is_connection_lost(self.conn):
            return 0
        try:
            return max(0, self._wal_lsn() - start)
        except psycopg.Error:
            return 0

    def _fail(self, state, exc):
        state.failed = True
        state.error = "%s: %s" % (type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc).strip() else "")
        self.log("handler %s failed: %s" % (state.rule.name, state.error))

    def _rows_left(self, deleted_so_far):
        if not self.budget.max_rows:
            return None
        return self.budget.max_rows - deleted_so_far

    def _budget_stop(self, total, started, wal_start, wal_now):
        """The budget that ends the run now, or None. Check mode can only predict the row budget."""
        left = self._rows_left(total)
        if left is not None and left <= 0:
            return "max_rows"
        if self.check_mode:
            return None
        if self.budget.max_duration and time.monotonic() - started >= self.budget.max_duration:
            return "max_duration"
        if self.budget.max_wal_bytes and wal_start is not None and wal_now - wal_start >= self.budget.max_wal_bytes:
            return "max_wal_bytes"
        return None

    def _schedule(self, states, started, wal_start, counts):
        """Handlers take turns, one batch each, until all are done or a budget ends the run.

        Id-walking handlers of one table also move through it together: none goes past a shared
        frontier until every one has reached it, so the pages of the current id window are read
        into shared buffers once and each handler's batch finds them there, instead of every
        handler reading the whole old part of the table on its own. The frontier then advances by
        a width that gives the densest handler about one batch per window.

        In check mode the same schedule runs with reads only: an id batch counts what the DELETE
        would take (same candidates, order and limit), a time batch takes its share of the
        candidates counted up front, so the prediction follows the real run batch by batch.
        """
        total = 0
        wal_now = wal_start
        statements = {}
        sweep = _Sweep(states, self.budget.batch_size)
        while True:
            active = [s for s in states if not s.done and not s.failed]
            if not active:
                return None
            sweep.advance(active)
            ready = [s for s in active if s.rule.walk == "time" or s.cursor < sweep.upper(s)]
            if not ready:       # cannot happen: a handler at its boundary is done; never spin
                self.log("no handler can move on; stopping")
                return None
            for state in ready:
                stop = self._budget_stop(total, started, wal_start, wal_now)
                if stop:
                    return stop
                limit = self._batch_limit(state.rule, self._rows_left(total))
                if self.check_mode and state.rule.walk == "time":
                    count = min(limit, counts.get(state.rule.name, 0) - state.deleted)
                    state.batches += 1
                    state.deleted += count
                    total += count
                    state.done = count < limit
                    continue
                key = state.rule.name
                if key not in statements:
                    statements[key] = self._statement(state.rule)
                upper = sweep.upper(state) if state.rule.walk == "id" else None
                t0 = time.monotonic()
                try:
                    if self.check_mode:
                        count, max_id = self._id_batch(state, statements[key], limit, upper)
                        lsn = None
                    else:
                        with self.conn.transaction():
                            if state.rule.walk == "time":
                                with self.conn.cursor() as cur:
                                    cur.execute(statements[key], self._params(state, limit=limit))
                                    row = cur.fetchone()
                            else:
                                count, max_id = self._id_batch(state, statements[key], limit, upper)
                        if state.rule.walk == "time":
                            count = row[0]
                            self._advance_time_cursor(state, row, limit)
                        lsn = self._wal_lsn()
                except psycopg.Error as exc:
                    self._fail(state, exc)
                    if is_connection_lost(self.conn):
                        for other in states:
                            if not other.done and not other.failed:
                                self._fail(other, PgtidyError("connection lost during the run"))
                        return "connection_lost"
                    continue
                elapsed = 0.0 if self.check_mode else time.monotonic() - t0
                state.batches += 1
                state.duration_s += elapsed
                state.longest_batch_s = max(state.longest_batch_s, elapsed)
                if lsn is not None and wal_now is not None:
                    state.wal_bytes += max(0, lsn - wal_now)
                    wal_now = lsn
                state.deleted += count
                total += count
                if state.rule.walk == "id":
                    sweep.record(state, count)
                    if count < limit:
                        # Nothing left at or below ``upper`` (locked rows were skipped): the next batch starts there.
                        state.cursor = upper
                        state.done = upper >= state.boundary
                    elif max_id is not None:
                        state.cursor = max_id
                        state.done = max_id >= state.boundary
                elif count < limit and not state.rule.scan_limit:
                    state.done = True
                if self.budget.batch_pause and not self.check_mode:
                    time.sleep(self.budget.batch_pause)

    def _statement(self, rule):
        if rule.walk == "time":
            return self.time_batch_statement(rule)
        if self.check_mode:
            return self.count_statement(rule)
        return self.batch_statement(rule)

    def _id_batch(self, state, stmt, limit, upper):
        """Up to ``limit`` rows in one transaction, read through id windows of adaptive width up to ``upper``.

        Over the whole ``cursor..upper`` range the planner reads every candidate of the
        range (bitmap scan, then sort) or walks the primary key past other types' rows, so a
        batch would cost as much as the backlog. A window a few batches wide keeps each
        statement's reads near the rows it deletes; windows follow each other inside the
        transaction until the batch is full or ``upper`` is reached, so a batch deletes
        exactly what one statement over the whole range would.
        """
        count, max_id, low = 0, None, state.cursor
        if state.span <= 0:
            state.span = 4 * limit
        with self.conn.cursor() as cur:
            while True:
                need = limit - count
                high = min(upper, low + max(1, state.span * need // limit + state.span // 4))
                cur.execute(stmt, self._params(state, cursor=low, boundary=high, limit=limit - count))
                found, last = cur.fetchone()
                count += found
                if last is not None:
                    max_id = last
                if count >= limit or high >= upper:
                    return count, max_id
                # Width for a full batch at the density just seen; the next window takes its share.
                if found:
                    state.span = max(limit, (high - low) * limit // found + 1)
                else:
                    state.span *= 4
                low = high

    def _batch_limit(self, rule, rows_left):
        limit = self.budget.batch_size
        if rule.batch_limit:
            limit = min(limit, rule.batch_limit)
        if rows_left is not None:
            limit = min(limit, rows_left)
        return limit

    def _advance_time_cursor(self, state, row, limit):
        """After a committed "time" batch: move the keyset cursor and count dependents and examined rows."""
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
        elif last_time is not None:
            state.cursor_time, state.cursor_key = last_time, last_key

    def _count_time_rules(self, states):
        """Check mode: candidates of each time-walking rule, counted up front (index-driven, bounded)."""
        cap = None
        if self.budget.max_rows:
            cap = self.budget.max_rows + REMAINING_EXACT_LIMIT + 1
        counts = {}
        for state in states:
            if state.failed or state.rule.walk != "time":
                continue
            try:
                counts[state.rule.name] = self.count_candidates(state, cap)
            except psycopg.Error as exc:
                self._fail(state, exc)
        return counts

    def _predict_remaining(self, state, remaining):
        if remaining > REMAINING_EXACT_LIMIT:
            state.remaining = max(REMAINING_EXACT_LIMIT + 1, self.estimate_candidates(state) - state.deleted)
            state.remaining_exact = False
        else:
            state.remaining = remaining


class _Sweep:
    """The frontier that id-walking handlers of one table share (see ``DeleteEngine._schedule``)."""

    def __init__(self, states, batch_size):
        self.batch_size = batch_size
        self.frontier = {}
        self.width = {}
        self.window = {}
        for state in states:
            if state.rule.walk != "id" or state.done or state.failed:
                continue
            table = state.rule.table
            self.width[table] = 4 * batch_size
            self.frontier[table] = min(self.frontier.get(table, state.cursor), state.cursor)
            self.window[table] = {}
        for table in self.frontier:
            self.frontier[table] += self.width[table]

    def upper(self, state):
        """How far the handler's next batch may read: its boundary, or its table's frontier if lower."""
        return min(state.boundary, self.frontier[state.rule.table])

    def record(self, state, count):
        seen = self.window[state.rule.table]
        seen[state.rule.name] = seen.get(state.rule.name, 0) + count

    def advance(self, active):
        """Every active id handler of a table has reached its frontier: move the frontier on."""
        for table in self.frontier:
            waiting = [s for s in active if s.rule.walk == "id" and s.rule.table == table]
            if not waiting or any(s.cursor < self.upper(s) for s in waiting):
                continue
            densest = max(self.window[table].values() or [0])
            width = self.width[table]
            if densest:
                width = min(4 * width, max(1, width * self.batch_size // densest))
            else:
                width *= 4
            self.width[table] = width
            self.frontier[table] = max(self.frontier[table], min(s.cursor for s in waiting)) + width
            self.window[table] = {}


def lsn_to_int(text):
    if text is None:
        return None
    high, low = str(text).split("/")
    return (int(high, 16) << 32) + int(low, 16)


def utc_cutoff(days, now=None):
    """Naive UTC datetime ``days`` ago (orchestrators store naive UTC timestamps)."""
    now = now or datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return now - datetime.timedelta(days=days)
