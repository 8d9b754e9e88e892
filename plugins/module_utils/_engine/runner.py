# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The capped delete engine's runner (``Runner``): it owns the transactions.

The engine is split along its seams:

- ``walks.py`` (and ``timewalk.py``): rules, handler state, and the walks that build each batch's
  statements, keep their own state and say what their handler did;
- ``budget.py``: the run's budgets and the meter that says when one is spent;
- ``scheduler.py``: whose turn it is (round robin, ``Rule.after``, the shared frontiers);
- ``pacer.py``: when the next batch may start (replica lag, WAL rate, an operator's pause file);
- here: one transaction per batch, failure records, the backlog left, the walks' ``finish``, and the
  run's result, totalled over the handlers.

Handlers are independent: one failing does not stop the others, and the caller fails only
after all ran. Before any batch, every handler's privileges are checked (``Walk.privileges``), in
check mode too: a handler whose role may not delete its rows fails there, with the GRANT that fixes
it, instead of counting rows it could never delete. Every batch is one short transaction; an interrupted
run loses nothing it was not meant to delete and the next run carries on.
"""

from __future__ import annotations

import time

from .budget import BudgetMeter
from .._common.errors import InvalidRequest, classify, first_line
from .errors import ConnectionLost
from .pacer import Pacer
from .replication import ReplicationProbe
from .scheduler import Scheduler
from .._common.tables import describe_lacking, grant_statements, lacking_privileges
from .session import is_connection_lost, lsn_to_int
from .walks import REMAINING_EXACT_LIMIT, HandlerState, Walk

from .._common.connection import psycopg  # None without psycopg: the module reports it


class Runner:
    """Runs a list of rules: plans each handler, checks privileges, schedules the batches, totals the result."""

    def __init__(self, conn, schema, budget, check_mode=False, log=None, check_privileges=True):
        """``check_privileges=False`` counts as if the role may delete (a preview read by another role)."""
        self.conn = conn
        self.check_privileges = check_privileges
        self.schema = schema
        self.budget = budget
        self.check_mode = check_mode
        self.log = log or (lambda msg: None)
        self._precounts = {}
        self.states = []

    @staticmethod
    def walk(state):
        return state.rule.walk

    def rows_by_table(self):
        """{table: rows} the run deleted (in check mode: would delete), over every handler."""
        out = {}
        for state in self.states:
            for table, rows in self.walk(state).rows_by_table(state).items():
                out[table] = out.get(table, 0) + rows
        return out

    def changed_in_place(self):
        """Whether a handler changed rows without deleting them (for example re-pointed a collection)."""
        return any(state.updated for state in self.states)

    def run(self, rules):
        started = time.monotonic()
        pacer = Pacer(self.budget.pacing, ReplicationProbe(self.conn), check_mode=self.check_mode,
                      batch_pause=0.0 if self.check_mode else self.budget.batch_pause, log=self.log,
                      wal_budget=self.budget.max_wal_bytes)
        # Before anything is read for the rules: a limit that cannot be enforced is refused here.
        pacer.start()
        states = []
        id_ranges = {}     # one min/max per table, for every handler walking it
        for rule in rules:
            if not isinstance(rule.walk, Walk):
                raise InvalidRequest("rule %s: its walk %r is not a Walk" % (rule.name, rule.walk))
            state = HandlerState(rule)
            walk = self.walk(state)
            try:
                walk.prepare(self.conn, state, id_ranges)
                state.prepared = True
            except psycopg.Error as exc:
                self.fail(state, exc)
            states.append(state)
        self.states = states
        grants = self._check_privileges(states) if self.check_privileges else []
        wal_start = None if self.check_mode else self._wal_lsn()
        if self.check_mode:
            self._precount(states)
        meter = BudgetMeter(self.budget, self.check_mode, wal_start)
        pacer.deadline = meter.deadline()
        capped_by = Scheduler(self, meter, self.log, pacer=pacer).run(states)
        for state in states:
            if state.done and not state.failed:
                continue
            if is_connection_lost(self.conn) or not state.prepared:
                state.remaining, state.remaining_exact = None, False      # nobody could look
                continue
            try:
                if state.failed:
                    # What is still past retention, as a real run's backlog is counted: never 0 for not looking.
                    self.walk(state).remaining(self.conn, state, False)
                else:
                    self.walk(state).remaining(self.conn, state, self.check_mode,
                                               self._precounts.get(state.rule.name))
            except psycopg.Error as exc:
                if not state.failed:
                    self.fail(state, exc)
                state.remaining, state.remaining_exact = None, False
        for state in states:
            walk = self.walk(state)
            if state.failed:
                continue
            if is_connection_lost(self.conn):
                if walk.finish_owns_transactions:       # its work was still to do: it did not happen
                    self.fail(state, ConnectionLost("connection lost during the run"))
                    state.remaining, state.remaining_exact = None, False
                continue
            try:
                if self.check_mode or walk.finish_owns_transactions:
                    state.deleted += walk.finish(self.conn, state, self.check_mode, self.budget)
                else:
                    with self.conn.transaction():
                        state.deleted += walk.finish(self.conn, state, False, self.budget)
            except psycopg.Error as exc:
                self.fail(state, exc)
        total_wal = 0 if self.check_mode else self._safe_wal_since(wal_start)
        handlers = {s.rule.name: s.result() for s in states}
        capped = any(h["capped"] for h in handlers.values())
        # A handler whose own limit left work (not the scheduler's budgets) names it.
        capped_by = capped_by or next((s.capped_by for s in states if s.capped_by), None)
        unknown = [s.rule.name for s in states if s.remaining is None]
        return {
            "handlers": handlers,
            "deleted_total": sum(s.deleted + sum(s.cascaded.values()) for s in states),
            "remaining_total": None if unknown else sum(s.remaining for s in states),
            "remaining_unknown": unknown,
            "capped": capped,
            "capped_by": capped_by if capped else None,
            "failed_handlers": [s.rule.name for s in states if s.failed],
            "grants_needed": grants,
            "duration_s": round(time.monotonic() - started, 3),
            "wal_bytes": total_wal,
            "budget": meter.describe(),
            "pacing": pacer.report(),
        }

    def batch(self, state, limit, upper):
        """One batch of ``state``'s walk: its own transaction in a real run, reads only in check mode.

        Returns the rows it took, its duration and the WAL position after it (None in check mode).
        """
        walk = self.walk(state)
        precounted = self._precounts.get(state.rule.name)
        if self.check_mode:
            return walk.batch(self.conn, state, limit, upper, True, precounted), 0.0, None
        t0 = time.monotonic()
        with self.conn.transaction():
            count = walk.batch(self.conn, state, limit, upper, False, precounted)
        elapsed = time.monotonic() - t0
        return count, elapsed, self._wal_lsn()

    def fail(self, state, exc):
        state.failed = True
        state.error = first_line(exc)
        state.error_kind = classify(exc)[0]
        self.log("handler %s failed: %s" % (state.rule.name, state.error))

    def _check_privileges(self, states):
        """Fail the handlers whose role lacks a privilege their statements need; returns the GRANTs that fix it."""
        needs = {s.rule.name: self.walk(s).privileges(s.rule) for s in states if not s.failed}
        role, lacking = lacking_privileges(self.conn, self.schema, {p for pairs in needs.values() for p in pairs})
        everything_missing = set()
        for state in states:
            missing = tuple(pair for pair in needs.get(state.rule.name, ()) if pair in lacking)
            if not missing:
                continue
            state.failed = True
            state.missing_privileges = missing
            state.error_kind = "insufficient_privilege"
            state.error = "InsufficientPrivilege: " + describe_lacking(self.conn, self.schema, role, missing)
            self.log("handler %s failed: %s" % (state.rule.name, state.error))
            everything_missing.update(missing)
        return grant_statements(self.conn, self.schema, role, everything_missing)

    def _precount(self, states):
        """Check mode: candidates counted up front where a batch cannot count its own (bounded, index-driven)."""
        cap = None
        if self.budget.max_rows:
            cap = self.budget.max_rows + REMAINING_EXACT_LIMIT + 1
        for state in states:
            if state.failed:
                continue
            try:
                count = self.walk(state).precount(self.conn, state, cap)
            except psycopg.Error as exc:
                self.fail(state, exc)
                continue
            if count is not None:
                self._precounts[state.rule.name] = count

    def _wal_lsn(self):
        """Current WAL position as an integer (None on a standby, where nothing can be deleted anyway)."""
        with self.conn.cursor() as cur:
            cur.execute("SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END")
            return lsn_to_int(cur.fetchone()[0])

    def _safe_wal_since(self, start):
        if start is None or is_connection_lost(self.conn):
            return 0
        try:
            return max(0, self._wal_lsn() - start)
        except psycopg.Error:
            return 0
