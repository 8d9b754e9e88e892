# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health facts and red flags of an orchestrator's PostgreSQL database, read-only: one run.

Everything here only reads: catalog and statistics views, bounded counts, the planner's
estimates for huge tables, and the capped delete engine in check mode for what the current
retention would prune. The only files touched are the optional history, report and metrics
files on the host that runs the check.

Each section is gathered on its own: a permission error in one (for example ``pg_ls_waldir``
for a role without ``pg_monitor``) leaves it null with an entry in ``incomplete_sections`` (the
reason and the grant or option that fixes it), and the other sections are still reported.

The sections live beside this file: ``server`` (database, tables, indexes, connections,
transaction IDs, slots, WAL), ``disk`` (disk space and its growth), ``orchestrator``
(profile and categories), ``retention`` (the prune preview), ``flags`` (red flags),
``gaps`` (what could not be read, and the fix), ``summary`` and
``metrics`` (what people and Prometheus read).
"""

from __future__ import annotations

import time

from .._common.connection import connect, redact, server_facts
from .._common.errors import ConnectionFailed, PgtidyError
from .._engine.errors import SchemaMismatch
from .disk import disk_facts, growth_facts, load_history, update_history
from .flags import SEVERITIES, Finding, find_red_flags
from .gaps import connections_gap, disk_gap, history_gap, section_gap
from .metrics import health_metrics
from .options import HEALTH_ARGUMENT_SPEC, validate_options
from .orchestrator import ORCHESTRATOR_FACTS, detect_profile
from .._engine.prune import revision_facts
from .retention import predict_retention, prune_profile
from .drain import drain_estimate, read_measurement
from .server import (connection_facts, database_facts, index_facts, replication_slot_facts, table_facts,
                     wal_facts, xid_facts)
from .summary import outcome_message, summary_lines
from .._common.report import check_output_files

from .._common.connection import psycopg  # None without psycopg: the module reports it


def unavailable_result(exc, params):
    database = params.get("login_db") or "postgres"
    reason = redact(exc.message, params)
    fix = "check that the server runs and that host, port and credentials are right"
    return {"changed": False, "available": False, "reason": reason, "database": None,
            "msg": "database %s is unavailable: %s" % (database, reason),
            "findings": [dict(Finding("critical", "unavailable", database, reason, fix))],
            "findings_by_severity": {"critical": 1, "warning": 0, "info": 0},
            "summary_lines": ["pgtidy health: database %s is UNAVAILABLE" % database,
                              "  " + " ".join(reason.split()), "  -> " + fix]}


def run_health(params, check_mode=False):
    """Return the health result; never writes to the database.

    A server that cannot be reached is a result too (``available`` false, with the reason, the
    summary and the metrics' facts); with ``fail_on_unavailable`` (the default) it is marked
    ``failed`` with ``error_kind``, for main() to fail after the report and metrics are written.
    """
    started = time.monotonic()
    thresholds, plans = validate_options(params)
    check_output_files(params)  # a report, metrics or history file nobody would read: refused before connecting
    try:
        conn = connect(params)
    except ConnectionFailed as exc:
        result = unavailable_result(exc, params)
        result.update(check_mode=check_mode, duration_s=round(time.monotonic() - started, 3))
        if params.get("fail_on_unavailable", HEALTH_ARGUMENT_SPEC["fail_on_unavailable"]["default"]):
            result.update(failed=True, error_kind=exc.kind)
        return result
    schema = params.get("schema") or "public"
    exact_limit = params.get("exact_count_limit", 1_000_000)
    gaps = []
    result = {"changed": False, "available": True, "check_mode": check_mode, "schema": schema,
              "incomplete_sections": gaps}

    def section(name, fn, *args):
        """One section; a database error (or a schema the preview cannot read) leaves it null and a gap."""
        try:
            return fn(*args)
        except (psycopg.Error, SchemaMismatch) as exc:
            gaps.append(section_gap(name, exc, db["user"], schema, params))
            return None

    try:
        facts = server_facts(conn)
        with conn.cursor() as cur:
            db = database_facts(cur)
            db["in_recovery"] = facts["in_recovery"]
            db["server_version_num"] = facts["server_version_num"]
            result["database"] = db
            tables = section("tables", table_facts, cur, db) or []
            indexes = section("indexes", index_facts, cur) or []
            result["_all_tables"], result["_all_indexes"] = tables, indexes
            result["table_count"] = len(tables)
            result["tables"] = tables[:params.get("top_tables", 20)]
            result["indexes"] = indexes[:params.get("top_indexes", 20)]
            result["connections"] = section("connections", connection_facts, cur, db)
            result["xid"] = section("xid", xid_facts, cur, db)
            result["replication_slots"] = section("replication_slots", replication_slot_facts, cur)
            result["wal"] = section("wal", wal_facts, cur)
            result["disk"] = disk_facts(cur, params, db["user"])
            profile = detect_profile(cur, schema, params.get("profile") or "auto")
            result["profile"] = profile
            result["orchestrator"] = None
            if profile in plans:
                orchestrator = section(profile, ORCHESTRATOR_FACTS[profile], cur, schema, exact_limit) or {}
                plan, budget = plans[profile]
                orchestrator["schema_revision"] = section("%s schema revision" % profile, revision_facts,
                                                          conn, schema, prune_profile(profile))
                orchestrator["retention"] = section("%s retention" % profile, predict_retention,
                                                    conn, schema, prune_profile(profile), plan, budget)
                if orchestrator["retention"] is not None:
                    measurement, note = read_measurement(params.get("prune_report_file"))
                    orchestrator["drain_estimate"] = drain_estimate(orchestrator["retention"], measurement, note)
                result["orchestrator"] = orchestrator
    finally:
        conn.close()
    gaps.extend(g for g in (connections_gap(result["connections"], db["user"]), disk_gap(result["disk"])) if g)
    disk = result["disk"]
    samples = []
    if params.get("history_file"):
        sample = {"ts": time.time(), "database_bytes": db["size_bytes"],
                  "disk_used_bytes": disk.get("used_bytes"), "disk_free_bytes": disk.get("free_bytes")}
        try:
            samples = update_history(params["history_file"], sample, params.get("history_days", 30))
        except OSError as exc:
            gaps.append(history_gap(params["history_file"], exc))
            samples = load_history(params["history_file"]) + [sample]
    result["growth"] = growth_facts(samples, disk) if params.get("history_file") else None
    findings = find_red_flags(result, thresholds)
    del result["_all_tables"], result["_all_indexes"]
    result["findings"] = [dict(f) for f in findings]
    result["findings_by_severity"] = {s: sum(1 for f in findings if f["severity"] == s) for s in SEVERITIES}
    result["thresholds"] = thresholds
    result["duration_s"] = round(time.monotonic() - started, 3)
    result["msg"] = outcome_message(result)
    result["summary_lines"] = summary_lines(result)
    return result


__all__ = ["HEALTH_ARGUMENT_SPEC", "run_health", "health_metrics", "summary_lines", "validate_options",
           "PgtidyError"]
