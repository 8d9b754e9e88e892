# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who goes next: handlers take turns batch by batch under the run's budgets.

Turns go round robin, so a huge backlog in one category cannot starve the others, and one
failing handler does not stop the rest. A handler that declares others it waits for (``Rule.after``)
gets no turn until each of them is done or has failed. Handlers whose walks share a frontier
(``Walk.shared_frontier``: those walking one table by id) sweep it together (``Sweep``): none passes
the frontier before all have reached it, so each id window's pages are read once for all of them.
Before each batch the pacer (``pacer.py``) may hold the turn (a standby behind, the WAL rate, an
operator's pause file) or end the run.
"""

from __future__ import annotations

from .session import is_connection_lost
from .._common.errors import InvalidRequest
from .errors import ConnectionLost

from .._common.connection import psycopg  # None without psycopg: the module reports it


class Scheduler:
    """Runs the handlers' batches through ``runner`` until all are done or a budget is spent.

    ``runner`` (a ``runner.Runner``) owns the transactions (``runner.batch(state, limit, upper)`` returns
    the rows a batch took, its duration and the WAL position after it) and the failure records
    (``runner.fail``); ``meter`` owns the budgets; ``pacer`` (optional) decides when the next
    batch may start (``pacer.wait_turn()``) and books what each wrote (``pacer.after_batch(lsn)``).
    """

    def __init__(self, runner, meter, log=None, pacer=None):
        self.runner = runner
        self.meter = meter
        self.log = log or (lambda msg: None)
        self.pacer = pacer

    def run(self, states):
        """Returns the budget that ended the run early, ``connection_lost``, or None when all are done.

        In check mode the same schedule runs with reads only: each batch counts what the DELETE
        would take, so the prediction follows the real run batch by batch.
        """
        sweep = Sweep(states, self.meter.budget.batch_size)
        order = Order(states)
        while True:
            active = [s for s in states if not s.done and not s.failed]
            if not active:
                return None
            # A waiting handler does not hold its frontier back: it catches up once it may start.
            moving = [s for s in active if not order.waiting(s)]
            sweep.advance(moving)
            ready = [s for s in moving if not sweep.follows(s) or s.cursor < sweep.upper(s)]
            if not ready:       # cannot happen: a handler at its boundary is done; never spin
                self.log("no handler can move on; stopping")
                return None
            for state in ready:
                stop = self.meter.spent()
                if stop:
                    return stop
                if self.pacer is not None:
                    stop = self.pacer.wait_turn()
                    if stop == "connection_lost":
                        self._fail_all(states, "connection lost during the run")
                    if stop:
                        return stop
                limit = self.meter.batch_limit(state.rule)
                upper = sweep.upper(state) if sweep.follows(state) else None
                try:
                    count, elapsed, lsn = self.runner.batch(state, limit, upper)
                except psycopg.Error as exc:
                    self.runner.fail(state, exc)
                    if is_connection_lost(self.runner.conn):
                        self._fail_all(states, "connection lost during the run")
                        return "connection_lost"
                    continue
                state.batches += 1
                state.duration_s += elapsed
                state.longest_batch_s = max(state.longest_batch_s, elapsed)
                state.wal_bytes += self.meter.spend(count, lsn)
                state.deleted += count
                if sweep.follows(state):
                    sweep.record(state, count)
                if self.pacer is not None:
                    self.pacer.after_batch(lsn)

    def _fail_all(self, states, reason):
        for other in states:
            if not other.done and not other.failed:
                self.runner.fail(other, ConnectionLost(reason))


class Order:
    """Which handlers wait for which (``Rule.after``); refuses names that do not exist and cycles."""

    def __init__(self, states):
        self.by_name = {s.rule.name: s for s in states}
        for state in states:
            unknown = [name for name in state.rule.after if name not in self.by_name]
            if unknown:
                raise InvalidRequest("handler %s waits for %s, which this run does not have"
                                     % (state.rule.name, ", ".join(unknown)))
        visiting, seen = set(), set()

        def visit(name, path):
            if name in seen:
                return
            if name in visiting:
                raise InvalidRequest("handlers wait for each other in a cycle: %s" % " -> ".join(path + [name]))
            visiting.add(name)
            for before in self.by_name[name].rule.after:
                visit(before, path + [name])
            visiting.discard(name)
            seen.add(name)

        for name in self.by_name:
            visit(name, [])

    def waiting(self, state):
        """Whether a handler it waits for is still at work."""
        return any(not (self.by_name[name].done or self.by_name[name].failed) for name in state.rule.after)


def frontier_of(state):
    """The key of the frontier the handler's walk shares with others (its table for an id walk), or None."""
    return state.rule.walk.shared_frontier(state.rule)


class Sweep:
    """The frontiers that handlers share (``Walk.shared_frontier``; an id walk's: its table).

    When every handler of a frontier has reached it, the frontier moves on by a width that gives
    the densest handler about one batch per window.
    """

    def __init__(self, states, batch_size):
        self.batch_size = batch_size
        self.frontier = {}
        self.width = {}
        self.window = {}
        for state in states:
            key = frontier_of(state)
            if key is None or state.done or state.failed:
                continue
            self.width[key] = 4 * batch_size
            self.frontier[key] = min(self.frontier.get(key, state.cursor), state.cursor)
            self.window[key] = {}
        for key in self.frontier:
            self.frontier[key] += self.width[key]

    def follows(self, state):
        """Whether the handler moves with a shared frontier."""
        key = frontier_of(state)
        return key is not None and key in self.frontier

    def upper(self, state):
        """How far the handler's next batch may read: its boundary, or its frontier if lower."""
        return min(state.boundary, self.frontier[frontier_of(state)])

    def record(self, state, count):
        seen = self.window[frontier_of(state)]
        seen[state.rule.name] = seen.get(state.rule.name, 0) + count

    def advance(self, active):
        """Every active handler of a frontier has reached it: move the frontier on."""
        for key in self.frontier:
            waiting = [s for s in active if frontier_of(s) == key]
            if not waiting or any(s.cursor < self.upper(s) for s in waiting):
                continue
            densest = max(self.window[key].values() or [0])
            width = self.width[key]
            if densest:
                width = min(4 * width, max(1, width * self.batch_size // densest))
            else:
                width *= 4
            self.width[key] = width
            self.frontier[key] = max(self.frontier[key], min(s.cursor for s in waiting)) + width
            self.window[key] = {}
