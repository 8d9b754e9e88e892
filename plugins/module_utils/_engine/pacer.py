# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pacer: before each batch the prune looks at the rest of the system and waits its turn.

Three signals, each a reason to pause between batches (never inside a transaction):

- ``replica_lag``: a connected standby (or logical walsender) is further behind than
  ``max_replica_lag``, in bytes (``pg_current_wal_lsn() - replay_lsn``, known for every
  standby that reports its position) and/or in seconds (the largest of ``write_lag``,
  ``flush_lag`` and ``replay_lag``, which PostgreSQL leaves NULL when a standby is idle and
  caught up). A standby that stays behind for ``max_lag_wait`` seconds ends the run with
  ``capped_by: replica_lag``, naming it.
- ``wal_rate``: the WAL the prune's transactions write is spread to at most ``max_wal_rate``
  bytes a second. Each batch's WAL is due at the rate from when the batch began; the next
  batch waits until all but ``RATE_BURST_S`` seconds of it are paid. Over any span of ``T``
  seconds the run writes at most ``rate * (T + RATE_BURST_S)`` plus one batch, and a long
  pause earns no more credit than that.
- ``pause_file``: while the file exists the run pauses (an operator's throttle, as gh-ost's
  flag file). It is only ever looked at with ``lstat``: never opened, never followed.

The limits come from ``PacingLimits`` (``pacing_limits.py``, the options). The pacer reads the server
through a ``ReplicationProbe`` (``replication.py``) and keeps time through ``clock`` and ``sleep``, so its
decisions can be tested without a server or real waiting. ``Pacer.report()`` is the result's ``pacing``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from .._common.errors import InvalidRequest, first_line
from .._common.units import human_bytes

from .._common.connection import psycopg  # None without psycopg: the module reports it

# How often a pause looks again, and the span the peak WAL rate is measured over.
POLL_S = 0.5
RATE_WINDOW_S = 5.0
# WAL-rate credit a batch slower than the rate leaves for the next ones, in seconds of the rate: without
# it every slow batch (reading more than it deletes) would be time lost to the rate for good. A quarter of a
# second: with one second, a run of a few seconds came to 1.15x its rate (bench/README.md, Pacing).
RATE_BURST_S = 0.25
REASONS = ("replica_lag", "wal_rate", "pause_file", "batch_pause")


def pause_file_present(path):
    """Whether ``path`` exists: ``lstat`` only (a link counts as present and is never followed)."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True     # cannot tell (permissions): the safe answer is to pause
    return True


@dataclass
class _LagSeen:
    max_bytes: int = None
    max_s: float = None
    standby: dict = field(default_factory=dict)


class Pacer:
    """Decides, before each batch, whether the run goes on, waits, or stops (see the module docstring).

    ``wait_turn()`` returns None when the batch may start, or the reason the run stops:
    ``replica_lag``, ``pause_file`` (the file was still there when ``max_duration`` ran out) or
    ``max_duration`` (a WAL-rate pause would outlast it); ``connection_lost`` if the server went away.
    ``after_batch(lsn)`` records what the batch wrote. ``report()`` is the result's ``pacing``.
    ``limits`` is the run's ``PacingLimits``, ``probe`` its ``ReplicationProbe`` (or a test's stand-in).
    """

    def __init__(self, limits, probe, check_mode=False, deadline=None, batch_pause=0.0, log=None,
                 clock=time.monotonic, sleep=time.sleep, exists=pause_file_present, wal_budget=0):
        self.limits = limits
        self.probe = probe
        self.check_mode = check_mode
        self.deadline = deadline
        self.batch_pause = batch_pause
        self.log = log or (lambda msg: None)
        self.clock = clock
        self.sleep = sleep
        self.exists = exists
        self.wal_budget = wal_budget
        self.paused_s = {reason: 0.0 for reason in REASONS}
        self.pauses = {reason: 0 for reason in REASONS}
        self.stopped_by = None
        self.stop_reason = ""
        self.warnings = []
        self.notes = []
        self.visible = None
        self.invisible_standbys = set()
        self.standbys = {}
        self.lag = _LagSeen()
        self.inactive_slots = []
        self.pause_file_at_start = None
        self.batch_start_lsn = None
        self.due = None                 # wal_rate: when the WAL written so far is paid for at the rate
        self.batch_started = None
        self.batch_wal = 0
        self.largest_batch_wal = 0
        self.first_start = None
        self.last_end = None
        self.samples = []               # (batch end, WAL of all batches so far) for the peak rate
        self.peak_rate = None
        self._probing = limits.watches_replicas or bool(limits.max_wal_rate)

    # -- before the first batch -------------------------------------------------------------
    def start(self):
        """Look once before anything is deleted: standbys, inactive slots, the pause file.

        Raises InvalidRequest when ``max_replica_lag`` was set explicitly but the role cannot see
        the standbys' positions: a limit that cannot be enforced is refused, not ignored.
        """
        p = self.limits
        if p.pause_file:
            self.pause_file_at_start = self.exists(p.pause_file)
        try:
            self.batch_start_lsn, standbys = self.probe.read()
            self.inactive_slots = self.probe.inactive_slots()
        except psycopg.Error as exc:
            self.notes.append("could not read pg_stat_replication / pg_replication_slots (%s); replica lag"
                              " is not watched" % first_line(exc))
            self._probing = bool(p.max_wal_rate)
            self.visible = False
            return
        self._observe(standbys)
        hidden = [s for s in standbys if not s.visible]
        self.visible = not hidden
        if hidden and p.watches_replicas:
            names = ", ".join(sorted({s.name or "?" for s in hidden}))
            fix = ("GRANT pg_monitor (or pg_read_all_stats) TO the login role, or run as a role that has it")
            if p.lag_explicit:
                raise InvalidRequest(
                    "max_replica_lag is set, but the login role cannot see how far behind %d standby(s) (%s) are:"
                    " pg_stat_replication shows their positions only to superusers and members of"
                    " pg_read_all_stats. %s; or set max_replica_lag: 0 to prune without watching them."
                    % (len(hidden), names, fix))
            self.warnings.append(
                "replica lag is not watched: the login role cannot see the positions of %d standby(s) (%s) in"
                " pg_stat_replication; %s." % (len(hidden), names, fix))
        limit = p.max_lag_bytes
        for slot in self.inactive_slots:
            if limit and slot["retained_bytes"] > limit:
                text = ("replication slot %r (%s) is not active and holds %s of WAL, more than max_replica_lag %s;"
                        " this run adds its own WAL to what the slot keeps on disk"
                        % (slot["slot_name"], slot["slot_type"], human_bytes(slot["retained_bytes"]),
                           human_bytes(limit)))
                if slot["safe_wal_size"] is not None and self.wal_budget and slot["safe_wal_size"] < self.wal_budget:
                    text += (" and the slot is lost (wal_status 'lost') after %s more WAL, less than max_wal_bytes"
                             % human_bytes(slot["safe_wal_size"]))
                self.warnings.append(text + ". Drop the slot if nothing will use it again.")
        if p.pause_file and self.pause_file_at_start:
            self.notes.append("pause_file %s exists%s" % (
                p.pause_file, ": check mode does not wait" if self.check_mode else ": the run waits until it is gone"))

    # -- before each batch ------------------------------------------------------------------
    def wait_turn(self):
        if self.check_mode:
            return None
        p = self.limits
        lag_since = None
        current = None
        while True:
            now = self.clock()
            why, hint, detail = None, POLL_S, ""
            if p.pause_file and self.exists(p.pause_file):
                why, detail = "pause_file", "%s exists" % p.pause_file
            elif self._probing:
                try:
                    lsn, standbys = self.probe.read()
                except psycopg.Error as exc:
                    if _lost(self.probe):
                        self._end_pause(current, now)
                        return "connection_lost"
                    self._note_once("could not read pg_stat_replication during the run (%s); the batch went"
                                    " ahead without it" % first_line(exc))
                    lsn, standbys = None, []
                self.batch_start_lsn = lsn
                self._observe(standbys)
                behind = self._behind(standbys) if p.watches_replicas else None
                if behind:
                    lag_since = now if lag_since is None else lag_since
                    why, detail = "replica_lag", self._lag_text(behind)
                    if now - lag_since >= p.max_lag_wait:
                        self._end_pause(current, now)
                        return self._stop("replica_lag", "standby %s stayed %s for %.1f s (max_lag_wait %g s);"
                                          " the next run continues" % (behind.label, detail, now - lag_since,
                                                                       p.max_lag_wait))
                    if self.deadline is not None and now >= self.deadline:
                        self._end_pause(current, now)
                        return self._stop("replica_lag", "standby %s was %s when max_duration ran out"
                                          % (behind.label, detail))
                else:
                    lag_since = None
                    start_at = None if self.due is None else self.due - RATE_BURST_S
                    if start_at is not None and now < start_at:
                        why, hint = "wal_rate", start_at - now
                        detail = "%s a second" % human_bytes(p.max_wal_rate)
                        if self.deadline is not None and start_at >= self.deadline:
                            self._end_pause(current, now)
                            return "max_duration"
            if why is None:
                self._end_pause(current, now)
                self.batch_started = now
                if self.first_start is None:
                    self.first_start = now
                return None
            if why == "pause_file" and self.deadline is not None and now >= self.deadline:
                self._end_pause(current, now)
                return self._stop("pause_file", "pause_file %s was still there when max_duration ran out"
                                  % p.pause_file)
            if why != current:
                self._end_pause(current, now)
                current = why
                self.pauses[why] += 1
                if why != "wal_rate":
                    self.log("pausing: %s (%s)" % (why, detail))
            wait = min(hint, POLL_S) if why != "wal_rate" else hint
            if self.deadline is not None:
                wait = min(wait, max(0.0, self.deadline - now))
            self.sleep(max(0.0, wait))
            self.paused_s[why] += self.clock() - now

    def _end_pause(self, current, now):
        if current and current != "wal_rate":
            self.log("resuming after %s pause" % current)

    def _stop(self, reason, text):
        self.stopped_by = reason
        self.stop_reason = text
        self.log("stopping: " + text)
        return reason

    # -- after each batch -------------------------------------------------------------------
    def after_batch(self, lsn):
        """The batch is committed and the WAL is at ``lsn``: book its WAL, pace the next one."""
        if self.check_mode:
            return
        now = self.clock()
        self.last_end = now
        if lsn is not None and self.batch_start_lsn is not None:
            wrote = max(0, lsn - self.batch_start_lsn)
            self.batch_wal += wrote
            self.largest_batch_wal = max(self.largest_batch_wal, wrote)
            self.samples.append((now, self.batch_wal))
            while len(self.samples) > 2 and now - self.samples[1][0] >= RATE_WINDOW_S:
                self.samples.pop(0)
            first_t, first_w = self.samples[0]
            if now - first_t >= RATE_WINDOW_S:
                rate = (self.batch_wal - first_w) / (now - first_t)
                self.peak_rate = rate if self.peak_rate is None else max(self.peak_rate, rate)
            if self.limits.max_wal_rate and self.batch_started is not None:
                # The generic cell rate algorithm: the WAL is due at the rate from when it started
                # being written; the next batch may start up to RATE_BURST_S before it is all paid.
                self.due = max(self.due or 0.0, self.batch_started) + wrote / float(self.limits.max_wal_rate)
        # Without a probe before each batch, the next batch starts where this one ended.
        self.batch_start_lsn = None if self._probing else lsn
        if self.batch_pause:
            t0 = self.clock()
            self.pauses["batch_pause"] += 1
            self.sleep(self.batch_pause)
            self.paused_s["batch_pause"] += self.clock() - t0

    # -- what was seen ----------------------------------------------------------------------
    def _observe(self, standbys):
        for s in standbys:
            if not s.visible:
                if s.pid not in self.invisible_standbys and self.visible:
                    self._note_once("a standby (%s) connected during the run whose position the login role"
                                    " cannot see" % (s.name or "?"))
                self.invisible_standbys.add(s.pid)
                continue
            key = "%s@%s" % (s.name, s.client)
            seen = self.standbys.setdefault(key, dict(s.describe(), max_lag_bytes=None, max_lag_s=None,
                                                      ignored=s.name in self.limits.ignore_replicas))
            seen.update(s.describe())
            if s.lag_bytes is not None:
                seen["max_lag_bytes"] = max(seen["max_lag_bytes"] or 0, s.lag_bytes)
            if s.lag_s is not None:
                seen["max_lag_s"] = max(seen["max_lag_s"] or 0.0, s.lag_s)
            if seen["ignored"]:
                continue
            if s.lag_bytes is not None and (self.lag.max_bytes is None or s.lag_bytes > self.lag.max_bytes):
                self.lag.max_bytes = s.lag_bytes
                self.lag.standby = {"application_name": s.name, "client": s.client}
            if s.lag_s is not None and (self.lag.max_s is None or s.lag_s > self.lag.max_s):
                self.lag.max_s = s.lag_s

    def _behind(self, standbys):
        """The standby furthest over a limit, or None."""
        p = self.limits
        worst, worst_score = None, 0.0
        for s in standbys:
            if not s.visible or s.name in p.ignore_replicas:
                continue
            score = 0.0
            if p.max_lag_bytes and s.lag_bytes is not None and s.lag_bytes > p.max_lag_bytes:
                score = max(score, s.lag_bytes / float(p.max_lag_bytes))
            if p.max_lag_s and s.lag_s is not None and s.lag_s > p.max_lag_s:
                score = max(score, s.lag_s / p.max_lag_s)
            if score > worst_score:
                worst, worst_score = s, score
        return worst

    def _lag_text(self, s):
        p = self.limits
        parts = []
        if s.lag_bytes is not None:
            parts.append("%s behind" % human_bytes(s.lag_bytes))
        if s.lag_s is not None:
            parts.append("%.1f s behind" % s.lag_s)
        limits = []
        if p.max_lag_bytes:
            limits.append(human_bytes(p.max_lag_bytes))
        if p.max_lag_s:
            limits.append("%g s" % p.max_lag_s)
        return "%s, over max_replica_lag %s" % (" and ".join(parts) or "behind", " / ".join(limits))

    def _note_once(self, text):
        if text not in self.notes:
            self.notes.append(text)

    def report(self):
        p = self.limits
        span = None
        if self.first_start is not None and self.last_end is not None:
            span = self.last_end - self.first_start
        average = round(self.batch_wal / span) if span and span > 0 and self.batch_wal else None
        if self.visible is None:
            visible = None
        else:
            visible = bool(self.visible) and not self.invisible_standbys
        return {
            "limits": p.describe(),
            "paused_s": {k: round(v, 3) for k, v in self.paused_s.items()},
            "paused_s_total": round(sum(self.paused_s.values()), 3),
            "pauses": dict(self.pauses),
            "stopped_by": self.stopped_by,
            "stop_reason": self.stop_reason,
            "replicas_visible": visible,
            "replicas_watched": bool(p.watches_replicas and visible),
            "standbys": sorted(self.standbys.values(), key=lambda s: (s["application_name"] or "", s["client"])),
            "max_replica_lag_bytes": self.lag.max_bytes,
            "max_replica_lag_s": self.lag.max_s,
            "max_replica_lag_standby": self.lag.standby or None,
            "inactive_slots": self.inactive_slots,
            "pause_file_present_at_start": self.pause_file_at_start,
            "wal_rate_bytes_s": average,
            "wal_rate_peak_bytes_s": None if self.peak_rate is None else round(self.peak_rate),
            "batch_wal_bytes": self.batch_wal,
            "largest_batch_wal_bytes": self.largest_batch_wal,
            "batches_span_s": None if span is None else round(span, 3),
            "warnings": list(self.warnings),
            "notes": list(self.notes),
        }


def _lost(probe):
    conn = getattr(probe, "conn", None)
    return conn is not None and (conn.closed or conn.broken)
