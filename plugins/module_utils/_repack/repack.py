# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One repack run (``run_repack``): choose the tables worth repacking, check each one before touching it,
run pg_repack one table at a time and say exactly what happened to each."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .._common.connection import connect, connection_option, redact, server_facts
from .._common.errors import InvalidRequest, LockBusy, PgtidyError
from .._common.lock import AdvisoryLock, LockFile
from .catalog import (active_repack_sessions, clean_leftovers, current_facts, find_leftovers, free_space,
                      repack_support, resolve_tables)
from .client import check_client, classify_output, repack_invocation, run_pg_repack, table_argv
from .estimate import choose_indexes, estimate_heap, index_filenodes
from .options import Plan, validate_options
from .report import SKIP_FIXES, below_detail, heap_left, outcome_messages


class RepackFailed(PgtidyError):
    """At least one table failed; every other table was still processed and is in the details."""

    kind = "repack_failed"


def _gain(entry):
    """What repacking a table is estimated to give back: the heap's, or the indexes' in mode ``indexes``."""
    indexes = entry.get("mode") == "indexes"
    return entry.get("estimated_rebuild_reclaimable_bytes" if indexes else "estimated_reclaimable_bytes") or 0


@dataclass
class Run:
    """What the steps of one run share: the session, the parameters and their plan, the result being filled,
    pg_repack's command line prefix and environment, and how the estimates are made: with pgstattuple (in
    ``pgstattuple_schema``) or the statistics, and the ``role`` the fixes name."""

    conn: object
    params: dict
    plan: Plan
    check_mode: bool
    log: object
    result: dict = None
    argv: list = None
    env: dict = None
    pgstattuple_schema: str = None
    role: str = None

    def mark(self, entry, status, reason, detail="", fix=""):
        """Give a table its outcome (``error``: the detail), with the fix of the reason unless one is given, and list
        it in the result under its status (``repacked``, ``skipped_tables``, ``failed_tables``, ``deferred_tables``)."""
        name = "%s.%s" % (entry["schema"], entry["table"])
        entry.update(status=status, reason=reason, error=detail, fix=fix or SKIP_FIXES.get(reason, ""))
        self.result["tables"][name] = entry
        listed = self.result[status if status == "repacked" else status + "_tables"]
        if name not in listed:
            listed.append(name)


def run_repack(params, check_mode=False, log=None):
    """One repack run; returns the result dict, raises PgtidyError subclasses to stop early."""
    started = time.monotonic()
    plan = validate_options(params)
    lockfile = LockFile.from_params(params, job="repack")
    with lockfile:
        conn = connect(params)
        try:
            result = _run_locked(Run(conn, params, plan, check_mode, log or (lambda msg: None)))
        finally:
            conn.close()
    result["lock_waited_s"] = lockfile.waited_s
    result["duration_s"] = round(time.monotonic() - started, 3)
    result["msg"], result["action_needed"] = outcome_messages(result)
    if result["failed_tables"]:
        details = dict(result)
        summary = details.pop("msg")
        raise RepackFailed("pg_repack failed on %s; the other tables were processed: %s"
                           % (", ".join(result["failed_tables"]), summary), **details)
    return result


def _run_locked(run):
    conn, plan = run.conn, run.plan
    facts = server_facts(conn)
    result = run.result = {
        "changed": False, "check_mode": run.check_mode, "skipped": False, "skip_reason": "",
        "database": facts["database"], "server_version_num": facts["server_version_num"],
        "tables": {}, "repacked": [], "skipped_tables": [], "failed_tables": [], "deferred_tables": [],
        "reclaimed_bytes": 0, "capped": False, "capped_by": None, "leftovers": [], "leftovers_cleaned": [],
        "candidates_below_threshold": 0, "estimate_method": None, "repack_version": {},
        "selection": "auto" if plan.auto else "tables", "profile": plan.profile, "schema": plan.schema,
        "tables_considered": 0,
    }
    if facts["in_recovery"]:
        result.update(skipped=True, skip_reason="the server is a standby (in recovery); repack the primary")
        return result
    ext, pgstattuple_schema, superuser = repack_support(conn)
    if ext is None:
        result.update(skipped=True, skip_reason="the pg_repack extension is not installed in database %s"
                      " (CREATE EXTENSION pg_repack, as a superuser)" % facts["database"])
        return result
    run.argv, run.env = repack_invocation(run.params, plan, facts["database"])
    result["repack_version"] = check_client(plan, run.env, ext, facts["database"])
    if not (plan.no_superuser_check or superuser):
        raise InvalidRequest("pg_repack needs a superuser; connect as one, or set no_superuser_check: true"
                             " where the role was granted the repack schema (managed services)")
    with AdvisoryLock(conn):
        running = active_repack_sessions(conn)
        if running:
            raise LockBusy("a pg_repack is already running in database %s (backend %s since %s); nothing was"
                           " repacked" % (facts["database"], running[0]["pid"], running[0]["since"]),
                           sessions=running)
        leftovers = find_leftovers(conn)
        if leftovers and plan.cleanup_leftovers and not run.check_mode:
            result["leftovers_cleaned"], result["leftover_cleanup_errors"] = clean_leftovers(conn, leftovers)
            leftovers = find_leftovers(conn)
        elif leftovers and plan.cleanup_leftovers:
            result["leftovers_cleaned"], leftovers = [item["object"] for item in leftovers], []  # predicted
        result["leftovers"] = leftovers
        if plan.estimate_method == "pgstattuple" and not pgstattuple_schema:
            raise InvalidRequest("estimate_method is pgstattuple but the pgstattuple extension is not installed in"
                                 " this database (CREATE EXTENSION pgstattuple), or use estimate_method: statistics")
        run.pgstattuple_schema = None if plan.estimate_method == "statistics" else pgstattuple_schema
        result["estimate_method"] = "pgstattuple" if run.pgstattuple_schema else "statistics"
        run.role = run.params.get("session_role") or connection_option(run.params, "login_user")
        _process(run, _select(run, {item["target_oid"] for item in leftovers}))
    result["changed"] = bool(result["repacked"]) or bool(result["leftovers_cleaned"])
    return result


def _select(run, left_on):
    """Pre-checks and estimates for every table considered; returns the run list, largest gain first."""
    plan, result = run.plan, run.result
    runnable = []
    considered = resolve_tables(run.conn, plan)
    result["tables_considered"] = len(considered)
    for facts in considered:
        entry = {
            "schema": facts["schema"], "table": facts["table"], "status": None, "reason": "", "error": "",
            "fix": "", "size_before": facts["total_bytes"], "size_after": facts["total_bytes"],
            "heap_bytes_before": facts["heap_bytes"], "reclaimed_bytes": 0,
            "estimated_reclaimable_bytes": None, "estimated_reclaimable_fraction": 0.0,
            "estimate_method": None, "statistics": None, "analyzed": False, "duration_s": 0.0, "output": "",
        }
        small = plan.below_table_size(facts)
        if small and not plan.indexes_may_qualify(facts):
            # Too small to matter: its size is exact, so no estimate (no scan, no ANALYZE) is spent on it.
            if plan.auto:
                result["candidates_below_threshold"] += 1
            else:
                run.mark(entry, "skipped", "below_threshold", detail=below_detail(plan, facts, entry, 0.0))
            continue
        facts, problem = estimate_heap(run, facts, entry)
        if problem:
            # Not knowing is not "below threshold": say so, in auto mode too, with what to do about it.
            run.mark(entry, "skipped", *problem)
            continue
        estimate = entry["estimated_reclaimable_bytes"]
        fraction = (float(estimate) / facts["heap_bytes"]) if (estimate is not None and facts["heap_bytes"]) else 0.0
        entry["estimated_reclaimable_fraction"] = round(fraction, 4)
        entry["mode"] = "table"
        if small or (plan.min_reclaimable_fraction and fraction < plan.min_reclaimable_fraction):
            if choose_indexes(run, facts, entry):
                entry["mode"] = "indexes"
                entry["heap_left"] = heap_left(plan, facts, entry, fraction)
            elif plan.auto:
                result["candidates_below_threshold"] += 1
                continue
            else:
                run.mark(entry, "skipped", "below_threshold", detail=below_detail(plan, facts, entry, fraction))
                continue
        result["tables"]["%s.%s" % (facts["schema"], facts["table"])] = entry
        runnable.append((facts, entry))
    runnable.sort(key=lambda pair: (-_gain(pair[1]), pair[0]["schema"], pair[0]["table"]))
    for facts, entry in runnable:
        if facts["oid"] in left_on:
            run.mark(entry, "skipped", "leftovers")
        elif not facts["has_key"]:
            run.mark(entry, "skipped", "no_key")
        elif facts["invalid_indexes"]:
            run.mark(entry, "skipped", "invalid_index", detail="invalid: %s" % ", ".join(facts["invalid_indexes"]))
    return [(facts, entry) for facts, entry in runnable if entry["status"] is None]


def _process(run, candidates):
    """Repack the candidates in order within max_tables and max_duration, each only if the disk can take it."""
    plan, result = run.plan, run.result
    started = time.monotonic()
    done = 0
    for facts, entry in candidates:
        capped_by = ("max_tables" if plan.max_tables and done >= plan.max_tables else
                     "max_duration" if plan.max_duration and time.monotonic() - started >= plan.max_duration else None)
        if capped_by:
            run.mark(entry, "deferred", capped_by)
            result["capped"], result["capped_by"] = True, result["capped_by"] or capped_by
            continue
        free, free_source = free_space(run.conn, plan, run.params, facts)
        only_indexes = entry.get("mode") == "indexes"
        needed = int((entry.get("rebuild_index_bytes") if only_indexes else facts["total_bytes"]) * (1 + plan.free_space_margin))
        entry["free_space"] = {"free_bytes": free, "needed_bytes": needed, "source": free_source}
        if free is not None and free < needed:
            run.mark(entry, "skipped", "insufficient_disk", detail="needs %d bytes (%s + %d%% margin), %d free (%s)" % (
                needed, "indexes" if only_indexes else "table + indexes", int(plan.free_space_margin * 100), free,
                free_source))
            continue
        done += 1
        _repack_one(run, facts, entry)


def _repack_one(run, facts, entry):
    """Run pg_repack on one table and read what happened: its output, and whether the table (in mode
    ``indexes``, its indexes) was really rewritten."""
    conn, plan, result, check_mode = run.conn, run.plan, run.result, run.check_mode
    only_indexes = entry.get("mode") == "indexes"
    argv = table_argv(run.argv, plan, facts, entry["rebuild_indexes"] if only_indexes else None, check_mode)
    indexes_before = index_filenodes(conn, facts["oid"]) if only_indexes and not check_mode else None
    entry["command"] = argv
    run.log("pgtidy repack: %s" % " ".join(argv))
    t0 = time.monotonic()
    returncode, output, interrupted = run_pg_repack(argv, run.env, plan.table_timeout)
    entry["duration_s"] = round(time.monotonic() - t0, 3)
    output = redact(output, run.params)
    entry["output"] = output.strip()[-2000:]
    entry["returncode"] = returncode
    if interrupted:
        status, reason = "failed", "interrupted"
        error = "pg_repack ran longer than table_timeout (%ds) and was interrupted" % plan.table_timeout
    else:
        after = None if check_mode else current_facts(conn, facts["oid"])
        rewritten = bool(after) and (index_filenodes(conn, facts["oid"]) != indexes_before if only_indexes
                                     else after["relfilenode"] != facts["relfilenode"])
        status, reason, error = classify_output(returncode, output, rewritten, dry_run=check_mode)
        if after:
            entry["size_after"] = after["total_bytes"]
            entry["reclaimed_bytes"] = facts["total_bytes"] - after["total_bytes"]
    if check_mode and status == "repacked":
        entry["size_after"] = facts["total_bytes"] - _gain(entry)
        entry["reclaimed_bytes"] = _gain(entry)
    run.mark(entry, status, reason, error)
    if status == "repacked":
        result["reclaimed_bytes"] += entry["reclaimed_bytes"]
    elif status == "failed" and not check_mode:
        # A failed or interrupted run may leave objects behind; say so now, with the fix.
        known = {item["object"] for item in result["leftovers"]}
        result["leftovers"] += [item for item in find_leftovers(conn)
                                if item["target_oid"] == facts["oid"] and item["object"] not in known]
