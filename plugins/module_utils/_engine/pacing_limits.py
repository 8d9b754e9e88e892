# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pacing options of a prune (``max_replica_lag``, ``max_lag_wait``, ``ignore_replicas``, ``max_wal_rate``,
``pause_file``): their argument spec, and ``PacingLimits``, the limits of one run read from them and checked.

``Pacer`` (``pacer.py``) enforces these limits between batches; see its module docstring for what each one does.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .._common.errors import InvalidRequest
from .._common.units import human_bytes, parse_bytes, parse_duration

# Defaults, measured (bench/README.md, "Pacing"): see docs/pacing.md for the reasoning. max_replica_lag has
# none in the spec (unset is the default limit, which is not enforced where it cannot be), so its default is
# this constant; the others' live in PACING_ARGUMENT_SPEC.
DEFAULT_MAX_REPLICA_LAG = "256MiB"

PACING_ARGUMENT_SPEC = dict(
    max_replica_lag=dict(type="str"),
    max_lag_wait=dict(type="int", default=300),
    ignore_replicas=dict(type="list", elements="str", default=[]),
    max_wal_rate=dict(type="str", default="8MB"),
    pause_file=dict(type="path"),
)

# Below these a limit is a typo more likely than a wish: a standby is that far behind after any
# ordinary batch, and at that rate one batch would wait minutes.
MIN_REPLICA_LAG_BYTES = 64_000
MIN_REPLICA_LAG_S = 0.1
MAX_REPLICA_LAG_S = 86400.0
MIN_WAL_RATE = 64_000
MAX_LAG_WAIT = 86400


def _default(name):
    return PACING_ARGUMENT_SPEC[name]["default"]


def parse_lag_limit(value):
    """``max_replica_lag`` -> (bytes, seconds); 0 in either means no such limit.

    A size (``256MiB``, ``1GB``, a plain number of bytes), a duration (``30s``, ``500ms``,
    ``2min``, ``1.5h``: units.parse_duration) or both separated by a comma or a space (``256MiB, 30s``):
    the run pauses while any standby is behind by more than any of them. ``0`` turns the check off.
    """
    text = str(value).strip().lower()
    if text in ("0", "off", "none", ""):
        return 0, 0.0
    limit_bytes, limit_s = 0, 0.0
    for token in [t for t in re.split(r"[,\s]+", text) if t]:
        try:
            seconds = parse_duration(token, "max_replica_lag")   # a bare number is a size here, not a duration
        except InvalidRequest:
            seconds = None
        if seconds is not None:
            if limit_s:
                raise InvalidRequest("max_replica_lag names two durations (%r); give at most one size and one"
                                     " duration, such as '256MiB, 30s'" % value)
            limit_s = seconds
            continue
        try:
            size = parse_bytes(token, "max_replica_lag")
        except InvalidRequest:
            raise InvalidRequest("max_replica_lag must be a size ('256MiB'), a duration ('30s', '1.5min', '1d') or"
                                 " both ('256MiB, 30s'), or 0 to turn the check off; not %r" % (value,))
        if limit_bytes:
            raise InvalidRequest("max_replica_lag names two sizes (%r); give at most one size and one"
                                 " duration, such as '256MiB, 30s'" % value)
        limit_bytes = size
    return limit_bytes, limit_s


_DEFAULT_LAG_BYTES, _DEFAULT_LAG_S = parse_lag_limit(DEFAULT_MAX_REPLICA_LAG)


@dataclass(frozen=True)
class PacingLimits:
    """The pacing limits of one run, as the options set them (``Pacer`` enforces them)."""

    max_lag_bytes: int = _DEFAULT_LAG_BYTES
    max_lag_s: float = _DEFAULT_LAG_S
    lag_explicit: bool = False          # set by the user: refused where it cannot be enforced
    max_lag_wait: float = float(_default("max_lag_wait"))
    ignore_replicas: tuple = ()
    max_wal_rate: int = parse_bytes(_default("max_wal_rate"))     # bytes a second; 0: unlimited
    pause_file: str = None

    @classmethod
    def from_params(cls, params):
        """The limits from module parameters; every problem is named at once (InvalidRequest)."""
        raw_lag = params.get("max_replica_lag")
        wait = params.get("max_lag_wait")
        rate = params.get("max_wal_rate")
        problems = []
        lag_bytes, lag_s, wal_rate = 0, 0.0, 0
        try:
            lag_bytes, lag_s = parse_lag_limit(DEFAULT_MAX_REPLICA_LAG if raw_lag is None else raw_lag)
        except InvalidRequest as exc:
            problems.append(exc.message)
        try:
            wal_rate = parse_bytes(_default("max_wal_rate") if rate is None else rate, "max_wal_rate")
        except InvalidRequest as exc:
            problems.append(exc.message)
        limits = cls(max_lag_bytes=lag_bytes, max_lag_s=lag_s, lag_explicit=raw_lag is not None,
                     max_lag_wait=float(_default("max_lag_wait") if wait is None else wait),
                     ignore_replicas=tuple(str(n) for n in (params.get("ignore_replicas") or ())),
                     max_wal_rate=wal_rate, pause_file=params.get("pause_file") or None)
        limits.validate(problems)
        return limits

    @property
    def watches_replicas(self):
        return bool(self.max_lag_bytes or self.max_lag_s)

    def validate(self, problems=None):
        problems = list(problems or ())
        if self.max_lag_bytes and self.max_lag_bytes < MIN_REPLICA_LAG_BYTES:
            problems.append("max_replica_lag of %s is less than any standby is behind after an ordinary batch;"
                            " use at least 64kB (or 0 to turn the check off)" % human_bytes(self.max_lag_bytes))
        if self.max_lag_s and not MIN_REPLICA_LAG_S <= self.max_lag_s <= MAX_REPLICA_LAG_S:
            problems.append("max_replica_lag's duration must be between 100ms and 24h, not %gs" % self.max_lag_s)
        if not 0 <= self.max_lag_wait <= MAX_LAG_WAIT:
            problems.append("max_lag_wait must be between 0 (stop as soon as a standby is too far behind) and"
                            " 86400 seconds, not %r" % self.max_lag_wait)
        if self.max_wal_rate and self.max_wal_rate < MIN_WAL_RATE:
            problems.append("max_wal_rate of %s a second would make one batch wait minutes; use at least 64kB"
                            " (or 0 for no limit)" % human_bytes(self.max_wal_rate))
        if self.pause_file is not None:
            if not os.path.isabs(self.pause_file):
                problems.append("pause_file must be an absolute path, not %r" % self.pause_file)
            elif not os.path.isdir(os.path.dirname(self.pause_file) or "/"):
                problems.append("pause_file's directory %s does not exist, so the file could never be created"
                                " there; create the directory or fix the path" % os.path.dirname(self.pause_file))
        if problems:
            raise InvalidRequest("; ".join(problems), problems=problems)

    def describe(self):
        return {"max_replica_lag_bytes": self.max_lag_bytes, "max_replica_lag_s": self.max_lag_s,
                "max_replica_lag_set": self.lag_explicit, "max_lag_wait": self.max_lag_wait,
                "ignore_replicas": list(self.ignore_replicas), "max_wal_rate": self.max_wal_rate,
                "pause_file": self.pause_file}
