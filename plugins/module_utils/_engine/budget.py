# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run's budgets: what a prune may spend (rows, time, WAL) and the meter that says when it has.

A backlogged database drains over several runs: each run stops when a budget is spent and
reports ``capped: true`` with the budget that stopped it. How fast it may spend (replica lag,
WAL rate, an operator's pause file) is the pacing's business (``pacing_limits.py`` reads its
options, ``pacer.py`` enforces them); its options travel with the budgets.

Every default is written once, in BUDGET_ARGUMENT_SPEC (and PACING_ARGUMENT_SPEC): ``Budget`` reads its
defaults from there, and the doc fragment (plugins/doc_fragments/_common.py, BUDGET) states the same values,
which tests/unit/test_core.py checks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .._common.errors import InvalidRequest
from .._common.units import parse_bytes
from .pacing_limits import PACING_ARGUMENT_SPEC, PacingLimits

BUDGET_ARGUMENT_SPEC = dict(
    batch_size=dict(type="int", default=5000),
    max_rows=dict(type="int", default=1_000_000),
    max_duration=dict(type="int", default=1800),
    max_wal_bytes=dict(type="str", default="1GiB"),
    batch_pause=dict(type="float", default=0.0),
    wal_compression=dict(type="str", default="auto", choices=["auto", "server", "lz4", "zstd", "pglz"]),
    **PACING_ARGUMENT_SPEC
)


def _default(name):
    return BUDGET_ARGUMENT_SPEC[name]["default"]


@dataclass(frozen=True)
class Budget:
    batch_size: int = _default("batch_size")
    max_rows: int = _default("max_rows")                       # 0: no row budget
    max_duration: float = float(_default("max_duration"))     # seconds; 0: no time budget
    max_wal_bytes: int = parse_bytes(_default("max_wal_bytes"))  # 0: no WAL budget
    batch_pause: float = float(_default("batch_pause"))
    pacing: PacingLimits = field(default_factory=PacingLimits)

    @classmethod
    def from_params(cls, params):
        def param(name):
            value = params.get(name)
            return _default(name) if value is None else value

        budget = cls(batch_size=param("batch_size"),
                     max_rows=param("max_rows"),
                     max_duration=float(param("max_duration")),
                     max_wal_bytes=parse_bytes(param("max_wal_bytes"), "max_wal_bytes"),
                     batch_pause=float(param("batch_pause")),
                     pacing=PacingLimits.from_params(params))
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


class BudgetMeter:
    """What the run has spent so far, against its ``Budget``."""

    def __init__(self, budget, check_mode, wal_start):
        self.budget = budget
        self.check_mode = check_mode
        self.started = time.monotonic()
        self.wal_start = wal_start
        self.wal_now = wal_start
        self.rows = 0

    def rows_left(self):
        """Rows the run may still delete; None without a row budget."""
        if not self.budget.max_rows:
            return None
        return self.budget.max_rows - self.rows

    def batch_limit(self, rule):
        """Rows the next batch of ``rule`` may take."""
        limit = self.budget.batch_size
        if rule.batch_limit:
            limit = min(limit, rule.batch_limit)
        left = self.rows_left()
        if left is not None:
            limit = min(limit, left)
        return limit

    def spend(self, rows, lsn):
        """A batch deleted ``rows`` and the WAL is now at ``lsn``; returns the WAL it wrote."""
        self.rows += rows
        if lsn is None or self.wal_now is None:
            return 0
        written = max(0, lsn - self.wal_now)
        self.wal_now = lsn
        return written

    def spent(self):
        """The budget that ends the run now, or None. Check mode can only predict the row budget."""
        left = self.rows_left()
        if left is not None and left <= 0:
            return "max_rows"
        if self.check_mode:
            return None
        if self.budget.max_duration and time.monotonic() - self.started >= self.budget.max_duration:
            return "max_duration"
        if (self.budget.max_wal_bytes and self.wal_start is not None
                and self.wal_now - self.wal_start >= self.budget.max_wal_bytes):
            return "max_wal_bytes"
        return None

    def deadline(self):
        """When the time budget runs out (``time.monotonic()``), or None without one."""
        if not self.budget.max_duration:
            return None
        return self.started + self.budget.max_duration

    def describe(self):
        b = self.budget
        return {"batch_size": b.batch_size, "max_rows": b.max_rows, "max_duration": b.max_duration,
                "max_wal_bytes": b.max_wal_bytes, "batch_pause": b.batch_pause}
