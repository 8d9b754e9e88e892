# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a repack run says: the fix of each reason a table was skipped, the run's msg and action_needed, why a table was
left as it is, and the Prometheus gauges of the result."""

from __future__ import annotations

import time

from .._common.report import Metrics
from .._common.units import human_bytes
from .estimate import reclaimable_fraction
from .options import PROFILE_TABLES

SKIP_FIXES = {
    "no_key": "add a primary key or a unique index on NOT NULL columns",
    "lock_timeout": "another session held a conflicting lock for longer than wait_timeout; retry later, raise wait_timeout, or set"
                    " kill_backends: true",
    "invalid_index": "rebuild or drop the invalid index (REINDEX INDEX CONCURRENTLY ... or DROP INDEX ...)",
    "leftovers": "remove the leftovers of an interrupted pg_repack (see leftovers[].fix) or set cleanup_leftovers: true",
    "insufficient_disk": "free disk space, or repack a smaller table first",
    "below_threshold": "none needed: not worth a rewrite now (min_table_size, min_reclaimable_fraction; set both to 0 to force"
                       " one)",
    "interrupted": "pg_repack ran past table_timeout and was interrupted; raise table_timeout",
}
# What each reason a table can end with an empty error means, for the one-line warnings.
REASON_TEXT = {
    "no_key": "no primary key nor unique index on NOT NULL columns", "warning": "pg_repack printed a warning",
    "lock_timeout": "pg_repack gave up waiting for a lock after wait_timeout",
    "leftovers": "leftovers of an interrupted pg_repack are on the table",
}


def outcome_messages(result):
    """(msg, action_needed): one line saying what happened to every table, and one line per thing a person has to act on
    (a run skipped, a table skipped or failed for a reason with a fix, leftovers), which the module shows as warnings:
    Ansible prints those without -v, but neither the msg of an ok task nor anything of a skipped one."""
    if result.get("skipped"):
        return result["skip_reason"], [result["skip_reason"]]
    check = result.get("check_mode")
    tables = result.get("tables") or {}
    parts = []
    if result["repacked"]:
        parts.append("%s (%s %s)" % (_what_was_repacked(result["repacked"], tables, check), "estimated" if check else "reclaimed",
                                     human_bytes(result["reclaimed_bytes"])))
    else:
        parts.append("nothing would be repacked" if check else "nothing repacked")
    unmatched = _nothing_matched(result)
    if unmatched:
        parts[-1] += ": " + unmatched
    for status, label in (("skipped", "skipped"), ("failed", "failed"), ("deferred", "deferred to the next run")):
        named = ["%s (%s)" % (name, t["reason"]) for name, t in tables.items() if t["status"] == status]
        if named:
            parts.append("%s %s" % (label, ", ".join(named)))
    if result.get("candidates_below_threshold"):
        parts.append("%d more below the thresholds" % result["candidates_below_threshold"])
    if result.get("leftovers"):
        parts.append("%d leftovers of an interrupted pg_repack (see leftovers)" % len(result["leftovers"]))
    action = []
    for name, t in tables.items():
        # below_threshold: nobody has to act on it, the table is simply not worth a rewrite now.
        if t["status"] in ("skipped", "failed") and t["reason"] != "below_threshold":
            what = (t.get("error") or REASON_TEXT.get(t["reason"]) or t["reason"]).strip().replace("\n", " / ")
            action.append("%s %s (%s): %s. Fix: %s" % (name, t["status"], t["reason"], what,
                                                       t.get("fix") or "see the output in tables"))
    if unmatched:
        action.append("%s. Fix: check profile and schema (or list tables)" % unmatched)
    for item in result.get("leftovers") or []:
        action.append("leftover of an interrupted pg_repack: %s. Fix: %s (or cleanup_leftovers: true)" % (item["object"], item["fix"]))
    for item in result.get("leftover_cleanup_errors") or []:
        action.append("could not remove %s: %s" % (item["object"], item["error"]))
    return "; ".join(parts), action


def _what_was_repacked(names, tables, check):
    """``repacked public.a, public.b``, and for a table whose indexes alone were rebuilt (mode ``indexes``) that only they
    were, which, and why its heap was left as it is."""
    whole = [n for n in names if (tables.get(n) or {}).get("mode") != "indexes"]
    said = ["%s %s" % ("would repack" if check else "repacked", ", ".join(whole))] if whole else []
    for name in names:
        entry = tables.get(name) or {}
        if entry.get("mode") == "indexes":
            said.append("%s %s (%s), not its heap: %s" % (
                "would rebuild only the indexes of" if check else "rebuilt only the indexes of", name,
                ", ".join(entry.get("rebuild_indexes") or []) or "its indexes",
                entry.get("heap_left") or "its heap was not worth a rewrite"))
    return "; ".join(said)


def _nothing_matched(result):
    """When auto found no table at all to consider: the profile (or schema) matched nothing, which is not the same as every
    table being compact, and usually means a wrong profile or schema."""
    if result.get("selection") != "auto" or result.get("tables_considered", 1):
        return ""
    profile, schema = result.get("profile") or "any", result.get("schema") or "public"
    if profile == "any":
        return "schema %s has no tables" % schema
    return "profile %s matched no table in schema %s (it repacks %s tables: %s)" % (profile, schema, profile.capitalize(),
                                                                                    ", ".join(PROFILE_TABLES[profile]))


def below_detail(plan, facts, entry, fraction):
    """Why a table listed in ``tables`` is below the thresholds, with the figures: its heap's (heap_left), then
    its indexes'."""
    said = heap_left(plan, facts, entry, fraction)
    sized = [i for i in entry.get("indexes", []) if i["bytes"] >= plan.min_index_size]
    if sized:
        said += "; of each index of at least min_index_size at most %.0f%%, below min_index_reclaimable_fraction" % (
            100 * max(reclaimable_fraction(i) for i in sized))
    elif "indexes" in entry or (plan.rebuild_indexes and not plan.indexes_may_qualify(facts)):
        said += "; every index below min_index_size"
    return said


def heap_left(plan, facts, entry, fraction):
    """Why the heap of the table is not rewritten, with the figures: what a person reads in msg when only its
    indexes are rebuilt."""
    if plan.below_table_size(facts):
        said = "its %s (with indexes and TOAST) is below min_table_size %s" % (
            human_bytes(facts["total_bytes"]), human_bytes(plan.min_table_size))
        if entry.get("estimated_reclaimable_bytes"):
            said += ", though an estimated %s (%.0f %%) of its heap is reclaimable" % (
                human_bytes(entry["estimated_reclaimable_bytes"]), fraction * 100)
        return said
    return "an estimated %.0f %% of its heap is reclaimable, below min_reclaimable_fraction %.0f %%" % (
        fraction * 100, plan.min_reclaimable_fraction * 100)


def repack_metrics(result, database, job="repack"):
    """Prometheus gauges for a repack result (successful, skipped or failed)."""
    m, base, now, ok = Metrics(), {"job": job, "database": database}, time.time(), not result.get("failed")
    for name, text, value in (  # a gauge whose value is None is left out
            ("run_success", "1 if the last run succeeded, 0 if it failed.", ok),
            ("run_timestamp_seconds", "Unix time the last run finished.", now),
            ("last_success_timestamp_seconds", "Unix time of the last successful run.",
             now if ok and not result.get("check_mode") else None),
            ("run_duration_seconds", "Duration of the last run.", result.get("duration_s", 0)),
            ("run_capped", "1 if a budget stopped the last run early.", bool(result.get("capped"))),
            ("repack_skipped", "1 if the whole repack run was skipped (no extension, standby).", bool(result.get("skipped"))),
            ("repack_reclaimed_bytes", "Bytes given back to the OS by the last repack run.", result.get("reclaimed_bytes", 0)),
            ("repack_leftovers", "Objects left behind by an interrupted pg_repack, found by the last run.",
             len(result.get("leftovers") or []))):
        m.gauge(name, text, value, **base)
    counts = {"repacked": 0, "skipped": 0, "failed": 0, "deferred": 0}
    for name, table in sorted((result.get("tables") or {}).items()):
        status = table.get("status") or "skipped"
        counts[status] = counts.get(status, 0) + 1
        labels = dict(base, table=name)
        for gauge, text, key in (("reclaimed_bytes", "Bytes reclaimed per table by the last repack run.", "reclaimed_bytes"),
                                 ("size_bytes", "Table size (with indexes and TOAST) after the last repack run.", "size_after"),
                                 ("duration_seconds", "Time pg_repack took per table in the last run.", "duration_s")):
            m.gauge("repack_table_" + gauge, text, table.get(key, 0), **labels)
        m.gauge("repack_table_status", "1 for the status of each table in the last run.", 1,
                status=status, reason=table.get("reason") or "", **labels)
    for status, count in sorted(counts.items()):
        m.gauge("repack_tables", "Tables per status in the last repack run.", count, status=status, **base)
    return m
