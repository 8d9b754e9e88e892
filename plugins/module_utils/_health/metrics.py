# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus textfile metrics of a health result, also for an unavailable or failed run."""

from __future__ import annotations

import time

from .flags import SEVERITIES
from .._common.report import Metrics


def health_metrics(result, job="health_info", database=None):
    """Prometheus textfile metrics for a health result (also for an unavailable or failed run)."""
    database = database or (result.get("database") or {}).get("name") or "postgres"
    m = Metrics()
    base = {"job": job, "database": database}
    up = bool(result.get("available")) and not result.get("failed")
    m.gauge("health_up", "1 if the database answered the health check.", up, **base)
    now = time.time()
    m.gauge("run_timestamp_seconds", "Unix time the last run finished.", now, **base)
    if up:
        m.gauge("last_success_timestamp_seconds", "Unix time of the last successful run.", now, **base)
    m.gauge("run_duration_seconds", "Duration of the last run.", result.get("duration_s", 0), **base)
    for severity in SEVERITIES:
        m.gauge("health_findings", "Red flags found by the last health check, by severity.",
                (result.get("findings_by_severity") or {}).get(severity, 0), severity=severity, **base)
    if not up:
        return m
    db = result["database"]
    m.gauge("health_incomplete_sections", "Sections the last health check could not read in full"
            " (the report's incomplete_sections says why and what fixes it).",
            len(result.get("incomplete_sections") or []), **base)
    m.gauge("database_size_bytes", "Size of the database on disk.", db["size_bytes"], **base)
    for t in result.get("tables") or []:
        labels = dict(base, schema=t["schema"], table=t["name"])
        for part in ("total", "table", "index", "toast"):
            m.gauge("table_size_bytes", "Table size by part (total, table, index, toast).",
                    t["%s_bytes" % part], part=part, **labels)
        m.gauge("table_live_tuples", "Live tuples (statistics).", t["live_tuples"], **labels)
        m.gauge("table_dead_tuples", "Dead tuples (statistics).", t["dead_tuples"], **labels)
        m.gauge("table_dead_ratio", "Dead tuples as a fraction of all the table's tuples, dead / (live + dead), 0 to 1.",
                t["dead_ratio_percent"] / 100.0, **labels)
    conns = result.get("connections")
    if conns:
        for state, n in conns["by_state"].items():
            m.gauge("connections", "Client connections by state.", n, state=state, **base)
        m.gauge("connections_max", "max_connections of the server.", conns["max_connections"], **base)
        oldest = conns.get("oldest_transaction")
        m.gauge("oldest_transaction_seconds", "Age of the oldest open transaction.",
                oldest["age_seconds"] if oldest else 0, **base)
        m.gauge("idle_in_transaction_sessions", "Sessions idle in transaction.",
                len(conns["idle_in_transaction"]), **base)
    xid = result.get("xid")
    if xid:
        m.gauge("xid_age", "Oldest transaction-ID age of any database.", xid["max_age"], **base)
        m.gauge("xid_wraparound_ratio", "Transaction-ID age as a fraction of the wraparound limit.",
                xid["wraparound_percent"] / 100.0, **base)
    for slot in result.get("replication_slots") or []:
        m.gauge("replication_slot_retained_wal_bytes", "WAL a replication slot keeps.",
                slot["retained_wal_bytes"] or 0, slot=slot["name"], active=str(bool(slot["active"])).lower(), **base)
    wal = result.get("wal")
    if wal:
        m.gauge("wal_size_bytes", "Size of pg_wal.", wal["size_bytes"], **base)
    disk = result.get("disk") or {}
    if disk.get("available"):
        for key in ("total", "used", "free"):
            m.gauge("disk_%s_bytes" % key, "Filesystem of the data directory: %s bytes." % key,
                    disk["%s_bytes" % key], path=disk["path"], **base)
    growth = result.get("growth") or {}
    if growth.get("days_until_full") is not None:
        m.gauge("disk_days_until_full", "Days until the disk is full at the recent growth rate.",
                growth["days_until_full"], **base)
    orch = result.get("orchestrator") or {}
    ev = orch.get("event_logs")
    if ev:
        for etype, info in ev["by_event_type"].items():
            m.gauge("orchestrator_rows", "Rows of the orchestrator's heavy tables by category.", info["rows"],
                    profile=result["profile"], table="event_logs", category=etype, **base)
    for table in ("runs", "job_ticks", "events", "log", "flow_run"):
        entry = orch.get(table)
        if entry:
            m.gauge("orchestrator_table_rows", "Rows of the orchestrator's tables.", entry["rows"],
                    profile=result["profile"], table=table, **base)
    drain = orch.get("drain_estimate") or {}
    for table, rows in sorted((drain.get("backlog_by_table") or {}).items()):
        m.gauge("drain_backlog_rows", "Rows the current retention would prune, by table (the drain's backlog).",
                rows, profile=result["profile"], table=table, **base)
    if drain:
        m.gauge("drain_runs_needed", "Prune runs the backlog needs at the row budget (max_rows).",
                drain["runs_needed"], profile=result["profile"], **base)
        # Absent without a measured pace: no series rather than a guess.
        m.gauge("drain_estimate_seconds", "Seconds of prune work the backlog takes at the last run's measured pace.",
                drain["work_seconds"], profile=result["profile"], **base)
    ret = orch.get("retention") or {}
    for name, handler in (ret.get("handlers") or {}).items():
        # A handler whose backlog could not be counted has no sample (an absent series, not a 0).
        backlog = None if handler["remaining"] is None else handler["rows"] + handler["remaining"]
        m.gauge("retention_backlog_rows", "Rows the current retention would prune, by handler.",
                backlog, profile=result["profile"], handler=name, **base)
    return m
