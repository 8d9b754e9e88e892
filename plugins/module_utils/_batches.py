# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The capped delete engine.

A rule names candidate rows: a table with a monotonically growing integer key, a time
column with a retention cutoff, and a predicate. A handler runs one rule under the run's
shared budgets. Handlers take turns batch by batch (round robin) so a huge backlog in one
category cannot starve the others, and one failing handler does not stop the rest.

Cost: orchestrator tables rarely index their time column, but their keys grow with time.
The id where the cutoff falls is found with a binary search of primary-key probes, and
each batch then walks an index range ``id > cursor AND id <= boundary``; the time column
is still re-checked on every row, so jitter can only make us keep a row, never delete a
newer one.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field

from ._errors import InvalidRequest, PgtidyError

try:
    import psycopg
    from psycopg import sql
except ImportError:  # pragma: no cover - the module reports the missing driver
    psycopg = None
    sql = None

# Exact counts of what is left stop here; past it the planner's estimate is reported.
REMAINING_EXACT_LIMIT = 100_000

BUDGET_ARGUMENT_SPEC = dict(
    batch_size=dict(type="int", default=5000),
    max_rows=dict(type="int", default=1_000_000),
    max_duration=dict(type="int", default=1800),
    max_wal_bytes=dict(type="str", default="1GiB"),
    batch_pause=dict(type="float", default=0.0),
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

    def result(self):
        status = "failed" if self.failed else "ok"
        capped = (not self.failed) and (not self.done) and self.remaining > 0
        return {
            "table": self.rule.table,
            "description": self.rule.description,
            "cutoff": self.rule.cutoff.isoformat(sep=" ", timespec="seconds") + " UTC",
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
        cond = sql.SQL("t.{id} > %({lo})s AND t.{id} <= %(boundary)s AND t.{ts} < %(cutoff)s").format(
            id=sql.Identifier(rule.id_column), ts=sql.Identifier(rule.time_column), lo=sql.SQL(lower_param))
        if rule.predicate is not None:
            cond = sql.SQL("{} AND ({})").format(cond, rule.predicate)
        return sql.SQL("SELECT t.{id} FROM {tbl} AS t WHERE {cond}").format(
            id=sql.Identifier(rule.id_column), tbl=self._table(rule), cond=cond)

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
        p.update(extra)
        return p

    # -- planning --------------------------------------------------------------
    def find_boundary(self, rule):
        """Largest id whose row is older than the cutoff, assuming time grows with id (binary search)."""
        tbl = self._table(rule)
        idc = sql.Identifier(rule.id_column)
        tsc = sql.Identifier(rule.time_column)
        with self.conn.cursor() as cur:
            cur.execute(sql.SQL("SELECT min({id}), max({id}) FROM {tbl}").format(id=idc, tbl=tbl))
            lo, hi = cur.fetchone()
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
        for rule in rules:
            state = HandlerState(rule)
            try:
                state.boundary = self.find_boundary(rule)
            except psycopg.Error as exc:
                self._fail(state, exc)
            states.append(state)
        wal_start = None if self.check_mode else self._wal_lsn()
        capped_by = None
        if self.check_mode:
            self._predict(states)
        else:
            capped_by = self._delete_round_robin(states, started, wal_start)
        for state in states:
            if not state.failed and not state.done and not self.check_mode and not is_connection_lost(self.conn):
                try:
                    self.measure_remaining(state)
                except psycopg.Error as exc:
                    self._fail(state, exc)
        total_wal = 0 if self.check_mode else self._safe_wal_since(wal_start)
        handlers = {s.rule.name: s.result() for s in states}
        return {
            "handlers": handlers,
            "deleted_total": sum(s.deleted for s in states),
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

    def _delete_round_robin(self, states, started, wal_start):
        total = 0
        wal_now = wal_start
        statements = {}
        while True:
            active = [s for s in states if not s.done and not s.failed]
            if not active:
                return None
            for state in active:
                left = self._rows_left(total)
                if left is not None and left <= 0:
                    return "max_rows"
                if self.budget.max_duration and time.monotonic() - started >= self.budget.max_duration:
                    return "max_duration"
                if self.budget.max_wal_bytes and wal_start is not None \
                        and wal_now - wal_start >= self.budget.max_wal_bytes:
                    return "max_wal_bytes"
                limit = self.budget.batch_size if left is None else min(self.budget.batch_size, left)
                stmt = statements.setdefault(state.rule.name, self.batch_statement(state.rule))
                t0 = time.monotonic()
                try:
                    with self.conn.transaction():
                        with self.conn.cursor() as cur:
                            cur.execute(stmt, self._params(state, limit=limit))
                            count, max_id = cur.fetchone()
                    lsn = self._wal_lsn()
                except psycopg.Error as exc:
                    self._fail(state, exc)
                    if is_connection_lost(self.conn):
                        for other in states:
                            if not other.done and not other.failed:
                                self._fail(other, PgtidyError("connection lost during the run"))
                        return "connection_lost"
                    continue
                elapsed = time.monotonic() - t0
                state.batches += 1
                state.duration_s += elapsed
                state.longest_batch_s = max(state.longest_batch_s, elapsed)
                if lsn is not None and wal_now is not None:
                    state.wal_bytes += max(0, lsn - wal_now)
                    wal_now = lsn
                state.deleted += count
                total += count
                if max_id is not None:
                    state.cursor = max_id
                if count < limit:
                    state.done = True
                if self.budget.batch_pause:
                    time.sleep(self.budget.batch_pause)

    def _predict(self, states):
        """Check mode: count candidates (index-driven, bounded) and replay the round robin on counts."""
        cap = None
        if self.budget.max_rows:
            cap = self.budget.max_rows + REMAINING_EXACT_LIMIT + 1
        counts = {}
        for state in states:
            if state.failed:
                continue
            try:
                if cap is None:
                    counts[state.rule.name] = self.count_candidates(state, None)
                else:
                    counts[state.rule.name] = self.count_candidates(state, cap)
            except psycopg.Error as exc:
                self._fail(state, exc)
        left = dict(counts)
        total = 0
        budget_hit = False
        while not budget_hit:
            active = [s for s in states if not s.done and not s.failed]
            if not active:
                break
            for state in active:
                rows_left = self._rows_left(total)
                if rows_left is not None and rows_left <= 0:
                    budget_hit = True
                    break
                limit = self.budget.batch_size if rows_left is None else min(self.budget.batch_size, rows_left)
                take = min(limit, left[state.rule.name])
                left[state.rule.name] -= take
                state.deleted += take
                state.batches += 1
                total += take
                if take < limit:
                    state.done = True
        for state in states:
            if state.failed or state.done:
                continue
            remaining = left[state.rule.name]
            if remaining > REMAINING_EXACT_LIMIT:
                state.remaining = max(REMAINING_EXACT_LIMIT + 1, self.estimate_candidates(state) - state.deleted)
                state.remaining_exact = False
            else:
                state.remaining = remaining


def lsn_to_int(text):
    if text is None:
        return None
    high, low = str(text).split("/")
    return (int(high, 16) << 32) + int(low, 16)


def is_connection_lost(conn):
    return conn is None or conn.closed or conn.broken


def utc_cutoff(days, now=None):
    """Naive UTC datetime ``days`` ago (orchestrators store naive UTC timestamps)."""
    now = now or datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return now - datetime.timedelta(days=days)
