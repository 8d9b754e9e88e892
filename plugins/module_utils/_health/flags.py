# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Red flags: the thresholds and the checks that turn gathered health facts into findings, each
with a severity and a one-line recommendation."""

from __future__ import annotations

import datetime
import time

from .values import human_seconds, qualified_name
from .._common.units import human_bytes, quoted_name

# The guide's thresholds, plus what a job queue's keep-alive table needs.
DEFAULT_THRESHOLDS = {
    "disk_used_warning_percent": 80,
    "disk_used_critical_percent": 90,
    "days_until_full_warning": 30,
    "days_until_full_critical": 7,
    # Percent of a table's tuples that are dead (dead / (live + dead)): the guide's "dead above 50 % / 100 %
    # of live" is a third / a half of all tuples.
    "dead_ratio_warning_percent": 33,
    "dead_ratio_critical_percent": 50,
    "min_dead_tuples": 1000,
    "autovacuum_stale_hours": 24,
    "connections_warning_percent": 80,
    "connections_critical_percent": 90,
    "long_transaction_warning_seconds": 300,
    "long_transaction_critical_seconds": 3600,
    "idle_in_transaction_warning_seconds": 60,
    "xid_age_warning_percent": 50,
    "xid_age_critical_percent": 75,
    "slot_retained_wal_critical_bytes": 1 << 30,
    "hot_table_min_updates": 10000,
    "hot_table_updates_per_row": 10,
    "unused_index_min_bytes": 10 << 20,
}

SEVERITIES = ("critical", "warning", "info")


class Finding(dict):
    """One red flag: severity, check, object, message and a one-line recommendation."""

    def __init__(self, severity, check, obj, message, recommendation, value=None, threshold=None):
        super().__init__(severity=severity, check=check, object=obj, message=message,
                         recommendation=recommendation, value=value, threshold=threshold)


def find_red_flags(result, t):
    """Red flags with a severity and one line of advice, from the facts already gathered."""
    out = []
    disk = result.get("disk") or {}
    if disk.get("available") and disk.get("used_percent") is not None:
        pct = disk["used_percent"]
        if pct > t["disk_used_warning_percent"]:
            sev = "critical" if pct > t["disk_used_critical_percent"] else "warning"
            out.append(Finding(sev, "disk_used", disk["path"], "disk %.1f%% used (%s free)"
                               % (pct, human_bytes(disk["free_bytes"])),
                               "prune old orchestrator data, repack bloated tables or grow the volume",
                               pct, t["disk_used_warning_percent"]))
    days = (result.get("growth") or {}).get("days_until_full")
    if days is not None and days < t["days_until_full_warning"]:
        sev = "critical" if days < t["days_until_full_critical"] else "warning"
        out.append(Finding(sev, "disk_days_until_full", disk.get("path"),
                           "disk full in about %.1f days at the recent growth rate" % days,
                           "shorten retention or grow the volume before it fills", days,
                           t["days_until_full_warning"]))
    db = result.get("database") or {}
    if db and not db.get("autovacuum"):
        out.append(Finding("warning", "autovacuum_off", db.get("name"), "autovacuum is off for the whole server",
                           "turn autovacuum on; without it dead tuples and transaction-ID age only grow",
                           False, True))
    stale_before = time.time() - t["autovacuum_stale_hours"] * 3600
    for table in result.get("_all_tables", []):
        name = qualified_name(table)
        shown = quoted_name(table["schema"], table["name"])  # in SQL: as the executed SQL quotes it
        dead, ratio = table["dead_tuples"], table["dead_ratio_percent"]
        if dead >= t["min_dead_tuples"] and ratio > t["dead_ratio_warning_percent"]:
            sev = "critical" if ratio > t["dead_ratio_critical_percent"] else "warning"
            out.append(Finding(sev, "dead_tuples", name, "%d dead tuples, %.0f%% of the table's %d (%d live)"
                               % (dead, ratio, dead + table["live_tuples"], table["live_tuples"]),
                               "VACUUM (ANALYZE) %s; if it stays bloated, repack it (pg_repack) instead of"
                               " VACUUM FULL" % shown, ratio, t["dead_ratio_warning_percent"]))
        if not table["autovacuum_enabled"]:
            out.append(Finding("warning" if dead >= t["min_dead_tuples"] else "info", "autovacuum_disabled", name,
                               "autovacuum is disabled on this table (%d dead tuples)" % dead,
                               "ALTER TABLE %s RESET (autovacuum_enabled)" % shown, False, True))
        elif db.get("autovacuum") and dead >= max(table["autovacuum_trigger_dead_tuples"], t["min_dead_tuples"]):
            last = max([_parse_ts(table["last_vacuum"]), _parse_ts(table["last_autovacuum"])], default=None,
                       key=lambda v: v or 0)
            if not last or last < stale_before:
                since = "never" if not last else "%s ago" % human_seconds(time.time() - last)
                out.append(Finding("warning", "autovacuum_stale", name,
                                   "autovacuum due (%d dead tuples > trigger %d) but last vacuum %s"
                                   % (dead, table["autovacuum_trigger_dead_tuples"], since),
                                   "look for long transactions or slots holding back vacuum, and lower"
                                   " autovacuum_vacuum_scale_factor on %s" % shown,
                                   dead, table["autovacuum_trigger_dead_tuples"]))
        updates, live = table["updates"], table["live_tuples"]
        if updates >= t["hot_table_min_updates"] and updates >= t["hot_table_updates_per_row"] * max(live, 1):
            hot = table["hot_update_percent"] or 0.0
            advice = []
            if table["fillfactor"] >= 100 or hot < 90:
                advice.append("ALTER TABLE %s SET (fillfactor = 70)" % shown)
            if "autovacuum_vacuum_scale_factor" not in table["options"]:
                advice.append("ALTER TABLE %s SET (autovacuum_vacuum_scale_factor = 0.01,"
                              " autovacuum_vacuum_threshold = 1000)" % shown)
            advice.append("keep updated columns out of indexes so updates stay HOT")
            sev = "warning" if hot < 50 or ratio > 16.7 else "info"  # dead above 20 % of live rows
            out.append(Finding(sev, "hot_update_table", name,
                               "%d updates on %d live rows (%.0f per row), %.0f%% HOT, fillfactor %d"
                               % (updates, live, updates / max(live, 1), hot, table["fillfactor"]),
                               "; ".join(advice), updates, t["hot_table_min_updates"]))
    for index in result.get("_all_indexes", []):
        if index["scans"] == 0 and index["size_bytes"] >= t["unused_index_min_bytes"] \
                and not index["is_unique"] and not index["is_primary"]:
            out.append(Finding("info", "unused_index", "%s.%s" % (index["schema"], index["name"]),
                               "index on %s has %s and no scans since the statistics were reset"
                               % (index["table"], human_bytes(index["size_bytes"])),
                               "check replicas' usage, then DROP INDEX CONCURRENTLY %s if nothing needs it"
                               % quoted_name(index["schema"], index["name"]),
                               index["size_bytes"], t["unused_index_min_bytes"]))
        if not index["is_valid"]:
            out.append(Finding("warning", "invalid_index", "%s.%s" % (index["schema"], index["name"]),
                               "index is invalid (an interrupted CREATE INDEX CONCURRENTLY or repack)",
                               "DROP INDEX CONCURRENTLY %s and create it again"
                               % quoted_name(index["schema"], index["name"]), False, True))
    conns = result.get("connections") or {}
    if conns:
        pct = conns["used_percent"]
        if pct >= t["connections_warning_percent"]:
            sev = "critical" if pct >= t["connections_critical_percent"] else "warning"
            out.append(Finding(sev, "connections", db.get("name"), "%d of %d connections in use (%.0f%%)"
                               % (conns["total"], conns["max_connections"], pct),
                               "put a pooler (PgBouncer) in front and look for idle connection leaks",
                               pct, t["connections_warning_percent"]))
        oldest = conns.get("oldest_transaction")
        if oldest and oldest["age_seconds"] >= t["long_transaction_warning_seconds"]:
            sev = "critical" if oldest["age_seconds"] >= t["long_transaction_critical_seconds"] else "warning"
            out.append(Finding(sev, "long_transaction", "pid %d" % oldest["pid"],
                               "transaction open for %s (%s, %s, state %s)"
                               % (human_seconds(oldest["age_seconds"]), oldest["user"], oldest["application_name"]
                                  or "no application_name", oldest["state"]),
                               "it holds back vacuum everywhere: finish it or SELECT pg_terminate_backend(%d)"
                               % oldest["pid"], oldest["age_seconds"], t["long_transaction_warning_seconds"]))
        stuck = [s for s in conns.get("idle_in_transaction", [])
                 if s["idle_seconds"] >= t["idle_in_transaction_warning_seconds"]]
        if stuck:
            first = stuck[0]
            out.append(Finding("warning", "idle_in_transaction", "pid %d" % first["pid"],
                               "%d session(s) idle in transaction, the longest for %s (%s, %s)"
                               % (len(stuck), human_seconds(first["idle_seconds"]), first["user"],
                                  first["application_name"] or "no application_name"),
                               "fix the client that leaves transactions open, set"
                               " idle_in_transaction_session_timeout, or SELECT pg_terminate_backend(%d)"
                               % first["pid"], first["idle_seconds"], t["idle_in_transaction_warning_seconds"]))
        prepared = conns.get("prepared_transactions") or {}
        if prepared.get("count"):
            out.append(Finding("warning", "prepared_transactions", db.get("name"),
                               "%d prepared transaction(s), oldest from %s" % (prepared["count"], prepared["oldest"]),
                               "COMMIT PREPARED or ROLLBACK PREPARED them; they hold back vacuum",
                               prepared["count"], 0))
    xid = result.get("xid") or {}
    # Thresholds against the exact age, not the rounded percent shown (a young cluster rounds to 0).
    xid_percent = 100.0 * xid["max_age"] / xid["wraparound_limit"] if xid else 0.0
    if xid and xid_percent >= t["xid_age_warning_percent"]:
        sev = "critical" if xid_percent >= t["xid_age_critical_percent"] else "warning"
        out.append(Finding(sev, "xid_wraparound", xid["max_age_database"],
                           "transaction-ID age %d is %.1f%% of the wraparound limit"
                           % (xid["max_age"], xid["wraparound_percent"]),
                           "find what blocks freezing (long transactions, slots, prepared transactions) and"
                           " VACUUM (FREEZE) the oldest tables", xid["wraparound_percent"],
                           t["xid_age_warning_percent"]))
    for slot in result.get("replication_slots") or []:
        retained = slot["retained_wal_bytes"] or 0
        if slot["wal_status"] == "lost":
            out.append(Finding("warning", "replication_slot_lost", slot["name"],
                               "replication slot has lost required WAL; its consumer cannot resume",
                               "SELECT pg_drop_replication_slot('%s') and re-create the replica" % slot["name"],
                               retained, None))
        elif not slot["active"] or retained >= t["slot_retained_wal_critical_bytes"]:
            sev = "critical" if retained >= t["slot_retained_wal_critical_bytes"] else "warning"
            out.append(Finding(sev, "replication_slot", slot["name"], "%s replication slot holds %s of WAL"
                               % ("inactive" if not slot["active"] else "lagging", human_bytes(retained)),
                               "reconnect its consumer, or SELECT pg_drop_replication_slot('%s') if it is gone"
                               % slot["name"], retained, t["slot_retained_wal_critical_bytes"]))
    order = {s: i for i, s in enumerate(SEVERITIES)}
    out.sort(key=lambda f: (order[f["severity"]], f["check"], str(f["object"])))
    return out


def _parse_ts(text):
    if not text:
        return None
    return datetime.datetime.fromisoformat(text).timestamp()
