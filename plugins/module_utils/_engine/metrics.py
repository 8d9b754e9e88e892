# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus metrics of a prune run: the run, each handler, and how the run paced itself."""

from __future__ import annotations

import time

from .._common.report import Metrics


def prune_metrics(result, job, database, more=None):
    """Metrics for a prune result (dagster_prune / prefect_prune).

    ``more(metrics, result, labels)``, the profile's ``metrics`` when it has one, adds the samples of
    what its own handlers report (Dagster's run retention: the runs retired and kept).
    """
    m = Metrics()
    base = {"job": job, "database": database}
    ok = not result.get("failed")
    m.gauge("run_success", "1 if the last run succeeded, 0 if it failed.", ok, **base)
    m.gauge("run_timestamp_seconds", "Unix time the last run finished.", time.time(), **base)
    if ok and not result.get("check_mode"):
        m.gauge("last_success_timestamp_seconds", "Unix time of the last successful run.", time.time(), **base)
    m.gauge("run_duration_seconds", "Duration of the last run.", result.get("duration_s", 0), **base)
    m.gauge("run_capped", "1 if a budget stopped the last run early.", bool(result.get("capped")), **base)
    m.gauge("run_wal_bytes", "WAL written during the last run.", result.get("wal_bytes", 0), **base)
    for name, handler in sorted((result.get("handlers") or {}).items()):
        labels = dict(base, handler=name, table=handler.get("table", ""))
        m.gauge("rows_pruned", "Rows deleted (or, in check mode, that would be) by handler in the last run.",
                handler.get("deleted", 0), **labels)
        m.gauge("rows_remaining", "Estimated rows still past retention after the last run.",
                handler.get("remaining", 0), **labels)
        m.gauge("handler_duration_seconds", "Time spent by handler in the last run.",
                handler.get("duration_s", 0), **labels)
        m.gauge("handler_failed", "1 if the handler failed in the last run.",
                handler.get("status") == "failed", **labels)
    backlog_metrics(m, result, base)
    pacing_metrics(m, result, base)
    if more is not None:
        more(m, result, base)
    return m


def measured_rate(result):
    """The pace a real run measured: rows deleted per second of the run (its pauses for the WAL rate, replica lag
    and the pause file included, the wait for the lockfile not) and WAL bytes per deleted row; None when it
    deleted nothing or only counted.
    """
    rows = result.get("deleted_total") or 0
    seconds = (result.get("duration_s") or 0) - (result.get("lock_waited_s") or 0)
    if result.get("check_mode") or result.get("failed") or rows <= 0 or seconds <= 0:
        return None
    return {"rows": rows, "seconds": seconds, "rows_per_s": round(rows / seconds, 1),
            "wal_bytes_per_row": round((result.get("wal_bytes") or 0) / rows, 1)}


def sum_by_table(handlers, rows_of):
    """({table: rows_of(handler) summed over its handlers}, [names of the handlers that could not count their
    rows past retention, left out of the sums]) -- the backlog of a run's or a preview's handlers."""
    totals, unknown = {}, []
    for name, handler in sorted(handlers.items()):
        if handler.get("remaining") is None:
            unknown.append(name)
            continue
        table = handler.get("table") or ""
        totals[table] = totals.get(table, 0) + rows_of(handler)
    return totals, unknown


def backlog_by_table(result):
    """{table: rows still past retention} summed over the handlers; a table with a handler that could not count
    is left out (an absent series, not a 0)."""
    handlers = result.get("handlers") or {}
    totals, unknown = sum_by_table(handlers, lambda handler: handler["remaining"])
    partial = {handlers[name].get("table") or "" for name in unknown}
    return {table: rows for table, rows in totals.items() if table not in partial}


def backlog_metrics(m, result, base):
    """The backlog a dashboard watches fall during a drain, and the pace the run measured."""
    for table, rows in sorted(backlog_by_table(result).items()):
        m.gauge("prune_backlog_rows", "Rows still past retention after the last run, by table.", rows,
                table=table, **base)
    rate = measured_rate(result)
    if rate:
        m.gauge("prune_rate_rows_per_second", "Rows the last run deleted per second, its pacing pauses included.",
                rate["rows_per_s"], **base)
        m.gauge("prune_wal_bytes_per_row", "WAL the last run wrote per deleted row.", rate["wal_bytes_per_row"],
                **base)


def pacing_metrics(m, result, base):
    """How the run paced itself: time paused by reason, the highest replica lag seen, the WAL rate reached."""
    if result.get("capped") and result.get("capped_by"):
        m.gauge("run_capped_by", "1 for the budget or pacing limit that stopped the last run early.", 1,
                reason=result["capped_by"], **base)
    pacing = result.get("pacing")
    if not pacing:
        return
    for reason, seconds in sorted((pacing.get("paused_s") or {}).items()):
        m.gauge("paused_seconds", "Seconds the last run paused between batches, by reason.", seconds,
                reason=reason, **base)
    if pacing.get("replicas_visible") is not None:
        m.gauge("replica_lag_visible", "1 if the login role could see every standby's position in the last run"
                " (0: replica lag was not watched).", bool(pacing["replicas_visible"]), **base)
    m.gauge("replica_lag_max_bytes", "Highest replica lag in bytes seen before a batch of the last run.",
            pacing.get("max_replica_lag_bytes"), **base)
    m.gauge("replica_lag_max_seconds", "Highest replica lag in seconds (write/flush/replay lag) seen in the last run.",
            pacing.get("max_replica_lag_s"), **base)
    limits = pacing.get("limits") or {}
    m.gauge("replica_lag_limit_bytes", "max_replica_lag in bytes (0: none).", limits.get("max_replica_lag_bytes"),
            **base)
    m.gauge("wal_rate_limit_bytes_per_second", "max_wal_rate (0: unlimited).", limits.get("max_wal_rate"), **base)
    m.gauge("wal_rate_bytes_per_second", "WAL the last run's batches wrote per second of their span, pauses included.",
            pacing.get("wal_rate_bytes_s"), **base)
    m.gauge("wal_rate_peak_bytes_per_second", "Highest WAL rate of the last run over any 5 seconds.",
            pacing.get("wal_rate_peak_bytes_s"), **base)
    for slot in pacing.get("inactive_slots") or ():
        m.gauge("inactive_slot_retained_wal_bytes", "WAL kept on disk by a replication slot that is not active,"
                " seen before the last run.", slot.get("retained_bytes"), slot=slot.get("slot_name") or "", **base)
