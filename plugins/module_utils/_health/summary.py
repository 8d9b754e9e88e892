# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a person reads of a health result: ``msg``, one line, and ``summary_lines``, a fixed-width
table printed at the end of a playbook."""

from __future__ import annotations

from .gaps import gap_line
from .values import human_seconds, qualified_name
from .._common.units import human_bytes


def _table_line(cells, widths):
    return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))


def summary_lines(result, top=10):
    """A fixed-width table a person reads at the end of the playbook."""
    db = result["database"]
    lines = ["pgtidy health: %s (%s profile), PostgreSQL %s%s" % (
        db["name"], result.get("profile", "unknown"), db["server_version"], ", standby" if db.get("in_recovery") else "")]
    disk = result.get("disk") or {}
    parts = ["database %s" % human_bytes(db["size_bytes"])]
    if disk.get("available"):
        parts.append("disk %.0f%% used, %s free" % (disk["used_percent"], human_bytes(disk["free_bytes"])))
    growth = result.get("growth") or {}
    if growth.get("days_until_full") is not None:
        parts.append("full in ~%.0f days" % growth["days_until_full"])
    if growth.get("database_bytes_per_day") is not None:
        parts.append("database grows %s/day" % human_bytes(growth["database_bytes_per_day"]))
    lines.append("  " + " | ".join(parts))
    conns = result.get("connections")
    if conns:
        states = ", ".join("%s %d" % (k, v) for k, v in sorted(conns["by_state"].items()))
        oldest = conns.get("oldest_transaction")
        lines.append("  connections %d/%d (%s) | oldest transaction %s" % (
            conns["total"], conns["max_connections"], states,
            human_seconds(oldest["age_seconds"]) if oldest else "-"))
    xid, wal = result.get("xid"), result.get("wal")
    tail = []
    if xid:
        tail.append("xid age %d (%.1f%% of wraparound)" % (xid["max_age"], xid["wraparound_percent"]))
    if wal:
        tail.append("WAL %s in %d files" % (human_bytes(wal["size_bytes"]), wal["files"]))
    slots = result.get("replication_slots")
    if slots:
        tail.append("%d replication slot(s)" % len(slots))
    if tail:
        lines.append("  " + " | ".join(tail))
    lines.append("")
    widths = (34, 10, 10, 10, 10, 10, 9, 6, 5, 16)  # sizes: up to "1023.9 KiB"
    lines.append(_table_line(("TABLE", "TOTAL", "TABLE", "INDEX", "TOAST", "LIVE", "DEAD", "DEAD%", "HOT%",
                              "LAST VACUUM"), widths))
    for t in (result.get("tables") or [])[:top]:
        last = max([t["last_vacuum"] or "", t["last_autovacuum"] or ""])
        lines.append(_table_line((
            qualified_name(t)[:34], human_bytes(t["total_bytes"], "-"), human_bytes(t["table_bytes"], "-"),
            human_bytes(t["index_bytes"], "-"), human_bytes(t["toast_bytes"], "-"), t["live_tuples"], t["dead_tuples"],
            "%.0f" % t["dead_ratio_percent"], "-" if t["hot_update_percent"] is None else "%.0f" % t["hot_update_percent"],
            last[:16].replace("T", " ") or "never"), widths))
    orch = result.get("orchestrator") or {}
    ev = orch.get("event_logs")
    if ev:
        lines.append("")
        lines.append("event_logs: %d rows (%s)" % (ev["rows"], "exact" if ev["exact"] else "estimated"))
        for etype, info in list(ev["by_event_type"].items())[:12]:
            lines.append("  %-32s %10d  %s .. %s" % (etype, info["rows"], (info["oldest"] or "-")[:16],
                                                     (info["newest"] or "-")[:16]))
        if ev["log_lines_by_level"]:
            lines.append("  log lines by level: " + ", ".join(
                "%s %d" % kv for kv in sorted(ev["log_lines_by_level"].items())))
    ret = orch.get("retention")
    if ret:
        lines.append("retention: the next %s_prune run would delete %d rows%s" % (
            result["profile"], ret["next_run_rows"], " (capped; %d more after it)" % ret["rows_left_after_next_run"]
            if ret["next_run_capped"] else ""))
    drain = orch.get("drain_estimate")
    if drain and drain["backlog_rows"]:
        lines.append("backlog: %d rows past retention (%s)%s" % (
            drain["backlog_rows"], ", ".join("%s %d" % kv for kv in sorted(drain["backlog_by_table"].items())),
            "" if drain["backlog_exact"] else ", partly estimated"))
        if drain["work_seconds"] is not None:
            lines.append("  drains in ~%s of prune work over %d run(s), ~%s of WAL, at the last run's %s rows/s" % (
                human_seconds(drain["work_seconds"]), drain["runs_needed"], human_bytes(drain["wal_bytes"]),
                drain["measured"]["rows_per_s"]))
        else:
            lines.append("  %d run(s) at max_rows; %s" % (drain["runs_needed"], drain["note"]))
    lines.append("")
    counts = result["findings_by_severity"]
    lines.append("FINDINGS: %d critical, %d warning, %d info" % (counts["critical"], counts["warning"], counts["info"]))
    for f in result["findings"]:
        lines.append("  %-8s %-20s %s: %s" % (f["severity"].upper(), f["check"], f["object"], f["message"]))
        lines.append("           -> %s" % f["recommendation"])
    gaps = result.get("incomplete_sections") or []
    if gaps:
        lines.append("")
        lines.append("INCOMPLETE: %d section(s) not read in full" % len(gaps))
        for entry in gaps:
            lines.append("  %-11s %-20s %s" % (entry["status"].upper(), entry["section"], entry["reason"]))
            lines.append("           -> %s" % entry["fix"])
    return lines


def outcome_message(result):
    """One line: the database, the findings by severity, and every section not read in full with its fix."""
    counts = result["findings_by_severity"]
    text = "health of %s: %d critical, %d warning, %d info finding(s)" % (
        result["database"]["name"], counts["critical"], counts["warning"], counts["info"])
    gaps = result.get("incomplete_sections") or []
    if gaps:
        text += "; incomplete: " + "; ".join(gap_line(entry) for entry in gaps)
    return text
