# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health facts and red flags of an orchestrator's PostgreSQL database, read-only: one run.

Everything here only reads: catalog and statistics views, bounded counts, the planner's
estimates for huge tables, and the capped delete engine in check mode for what the current
retention would prune. The only files touched are the optional history, report and metrics
files on the host that runs the check.

Each section is gathered on its own: a permission error in one (for example ``pg_ls_waldir``
for a role without ``pg_monitor``) becomes a note, and the other sections are still reported.

The sections live beside this file: ``_health_server`` (database, tables, indexes, connections,
transaction IDs, slots, WAL), ``_health_disk`` (disk space and its growth), ``_health_orchestrator``
(profile and categories), ``_health_retention`` (the prune preview), ``_health_flags`` (red flags),
``_health_summary`` and ``_health_metrics`` (what people and Prometheus read).
"""

from __future__ import annotations

import time

from ._connection import connect, redact, server_facts
from ._errors import ConnectionFailed, PgtidyError, SchemaMismatch
from ._health_disk import disk_facts, growth_facts, load_history, update_history
from ._health_flags import SEVERITIES, Finding, find_red_flags
from ._health_metrics import health_metrics
from ._health_options import HEALTH_ARGUMENT_SPEC, validate_options
from ._health_orchestrator import dagster_facts, detect_profile, prefect_facts
from ._health_retention import predict_retention, prune_profile
from ._health_server import (connection_facts, database_facts, index_facts, replication_slot_facts, table_facts,
                             wal_facts, xid_facts)
from ._health_summary import summary_lines

try:
    import psycopg
except ImportError:  # pragma: no cover - the module reports the missing driver
    psycopg = None


def _section(result, name, fn, *args):
    """Run one section; a database error becomes a note and a null section."""
    try:
        return fn(*args)
    except (psycopg.Error, SchemaMismatch) as exc:
        text = getattr(exc, "message", None) or str(exc).strip().splitlines()[0]
        result["notes"].append("%s: %s" % (name, text))
        return None


def unavailable_result(exc, params):
    return {"changed": False, "available": False, "reason": redact(exc.message, params),
            "database": None, "findings": [dict(Finding("critical", "unavailable", params.get("login_db") or "postgres",
                                                        redact(exc.message, params),
                                                        "check that the server runs and that host, port and"
                                                        " credentials are right"))],
            "findings_by_severity": {"critical": 1, "warning": 0, "info": 0},
            "summary_lines": ["pgtidy health: database %s is UNAVAILABLE" % (params.get("login_db") or "postgres"),
                              "  " + redact(exc.message, params)]}


def run_health(params, check_mode=False):
    """Return the health result; never writes to the database."""
    started = time.monotonic()
    thresholds, plans = validate_options(params)
    try:
        conn = connect(params)
    except ConnectionFailed as exc:
        if params.get("fail_on_unavailable"):
            raise
        result = unavailable_result(exc, params)
        result.update(check_mode=check_mode, duration_s=round(time.monotonic() - started, 3))
        return result
    schema = params.get("schema") or "public"
    exact_limit = params.get("exact_count_limit", 1_000_000)
    result = {"changed": False, "available": True, "check_mode": check_mode, "notes": [], "schema": schema}
    try:
        facts = server_facts(conn)
        with conn.cursor() as cur:
            db = database_facts(cur)
            db["in_recovery"] = facts["in_recovery"]
            db["server_version_num"] = facts["server_version_num"]
            result["database"] = db
            tables = _section(result, "tables", table_facts, cur, db) or []
            indexes = _section(result, "indexes", index_facts, cur) or []
            result["_all_tables"], result["_all_indexes"] = tables, indexes
            result["table_count"] = len(tables)
            result["tables"] = tables[:params.get("top_tables", 20)]
            result["indexes"] = indexes[:params.get("top_indexes", 20)]
            result["connections"] = _section(result, "connections", connection_facts, cur, db)
            result["xid"] = _section(result, "xid", xid_facts, cur, db)
            result["replication_slots"] = _section(result, "replication_slots", replication_slot_facts, cur)
            result["wal"] = _section(result, "wal", wal_facts, cur)
            result["disk"] = disk_facts(cur, params)
            profile = detect_profile(cur, schema, params.get("profile") or "auto")
            result["profile"] = profile
            result["orchestrator"] = None
            if profile in plans:
                facts_of = dagster_facts if profile == "dagster" else prefect_facts
                orchestrator = _section(result, profile, facts_of, cur, schema, exact_limit) or {}
                plan, budget = plans[profile]
                orchestrator["retention"] = _section(result, "%s retention" % profile, predict_retention,
                                                     conn, schema, prune_profile(profile), plan, budget)
                result["orchestrator"] = orchestrator
    finally:
        conn.close()
    disk = result["disk"]
    samples = []
    if params.get("history_file"):
        sample = {"ts": time.time(), "database_bytes": db["size_bytes"],
                  "disk_used_bytes": disk.get("used_bytes"), "disk_free_bytes": disk.get("free_bytes")}
        try:
            samples = update_history(params["history_file"], sample, params.get("history_days", 30))
        except OSError as exc:
            result["notes"].append("history_file: %s" % exc)
            samples = load_history(params["history_file"]) + [sample]
    result["growth"] = growth_facts(samples, disk) if params.get("history_file") else None
    findings = find_red_flags(result, thresholds)
    del result["_all_tables"], result["_all_indexes"]
    result["findings"] = [dict(f) for f in findings]
    result["findings_by_severity"] = {s: sum(1 for f in findings if f["severity"] == s) for s in SEVERITIES}
    result["thresholds"] = thresholds
    result["duration_s"] = round(time.monotonic() - started, 3)
    result["summary_lines"] = summary_lines(result)
    return result


__all__ = ["HEALTH_ARGUMENT_SPEC", "run_health", "health_metrics", "summary_lines", "validate_options",
           "PgtidyError"]
