# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One prune run, whatever the orchestrator: lockfile, connection, schema check, advisory
lock, the capped delete engine, and a result record.

A profile (Dagster's, Prefect's) supplies ``name``, ``validate_options(params)`` (the plan),
``check_schema(conn, schema)``, ``table_rows(conn, schema)``, ``build_rules(plan, schema, conn)`` and
``extra_steps(conn, schema, plan, check_mode, result)`` (what it reports beyond the handlers; it
deletes nothing: every deletion is a handler's, so the engine totals it), and may supply
``metrics(m, result, labels)`` (``metrics.prune_metrics``'s samples of what its own handlers report)."""

from __future__ import annotations

import time

from .runner import Runner
from .budget import Budget
from .._common.connection import connect, duration_setting, server_facts, sql
from .._common.errors import fix_for
from .._common.lock import AdvisoryLock, LockFile
from .._common.tables import table_columns
from .errors import SchemaMismatch, StandbyServer, UntestedSchema
from .session import set_wal_compression

PRUNE_ARGUMENT_SPEC = dict(
    schema=dict(type="str", default="public"),
    allow_untested_schema=dict(type="bool", default=False),
)


def schema_revision(conn, schema):
    """The orchestrator's schema revision (``alembic_version.version_num``), or None without that table.

    Dagster and Prefect both migrate their schema with Alembic, which keeps the revision in this table.
    """
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = %s AND c.relname = 'alembic_version'", (schema,))
        if cur.fetchone() is None:
            return None
        cur.execute(sql.SQL("SELECT string_agg(version_num, ',' ORDER BY version_num) FROM {}").format(
            sql.Identifier(schema, "alembic_version")))
        return cur.fetchone()[0]


def revision_facts(conn, schema, profile):
    """The schema's revision, whether the prune module was tested on it (it refuses others), and the releases."""
    revision = schema_revision(conn, schema)
    return {"revision": revision, "tested": revision in profile.tested_revisions,
            "tested_releases": profile.tested_releases}


def check_revision(conn, schema, profile, allow_untested):
    """(revision, tested): refuses a revision outside the profile's tested ones unless ``allow_untested``.

    A schema the collection was not tested on may hold tables or columns whose meaning changed; the
    refusal comes before the advisory lock and before any row is read for the rules.
    """
    facts = revision_facts(conn, schema, profile)
    revision, tested = facts["revision"], facts["tested"]
    if not tested and not allow_untested:
        raise UntestedSchema(
            "schema %s is at %s revision %s, which this collection was not tested on (tested: %s, revisions %s);"
            " nothing was touched. Use a pgtidy release that supports it, or set allow_untested_schema: true to"
            " accept the risk" % (sql.Identifier(schema).as_string(conn), profile.product,
                                  revision or "unknown (no alembic_version table)", profile.tested_releases,
                                  ", ".join(profile.tested_revisions)),
            schema_revision=revision, tested_releases=profile.tested_releases)
    return revision, tested


def require_schema(conn, schema, required_columns, product, what, where):
    """Raise SchemaMismatch unless ``schema`` holds every table and column in ``required_columns``.

    ``product`` names the orchestrator ("Dagster"), ``what`` its schema ("Dagster metadata schema") and
    ``where`` what the user should point login_db/schema at.
    """
    present = table_columns(conn, schema, required_columns)
    missing_tables = [t for t in required_columns if t not in present]
    if len(missing_tables) == len(required_columns):
        raise SchemaMismatch("schema %r of this database is not a %s (no %s tables);"
                             " nothing was touched. Set login_db/schema to %s."
                             % (schema, what, ", ".join(required_columns), where))
    if missing_tables:
        raise SchemaMismatch("schema %r looks like a partial %s schema: missing table(s) %s;"
                             " nothing was touched" % (schema, product, ", ".join(missing_tables)))
    missing = ["%s.%s" % (t, c) for t, cols in required_columns.items() for c in cols if c not in present[t]]
    if missing:
        raise SchemaMismatch("schema %r is not a %s schema this version understands: missing column(s) %s;"
                             " nothing was touched" % (schema, product, ", ".join(missing)))


def run_prune(params, profile, check_mode=False, log=None):
    """Return the result dict; raise PgtidyError subclasses for anything that stops the run early.

    Order matters: every option is validated before the lockfile is taken and before the
    database is touched, so a bad request changes nothing.
    """
    started = time.monotonic()
    schema = params.get("schema") or "public"
    plan = profile.validate_options(params)
    budget = Budget.from_params(params)
    for name in ("lock_timeout", "statement_timeout"):     # refused here, not after the lockfile was taken
        if params.get(name) is not None:
            duration_setting(name, params[name])
    lockfile = LockFile.from_params(params, job="%s_prune" % profile.name)
    with lockfile:
        conn = connect(params)
        try:
            facts = server_facts(conn)
            profile.check_schema(conn, schema)
            revision, tested = check_revision(conn, schema, profile, params.get("allow_untested_schema"))
            if facts["in_recovery"]:
                raise StandbyServer("the server is a standby (in recovery): prune the primary instead")
            with AdvisoryLock(conn):
                before = profile.table_rows(conn, schema)
                rules = profile.build_rules(plan, schema, conn)
                # Also in check mode: a session setting writes nothing, and the prediction shows what a run uses.
                compression = set_wal_compression(conn, params.get("wal_compression") or "auto")
                runner = Runner(conn, schema, budget, check_mode=check_mode, log=log)
                result = runner.run(rules)
                changed = result["deleted_total"] > 0 or runner.changed_in_place()
                result["wal_compression"] = compression
                profile.extra_steps(conn, schema, plan, check_mode, result)
                if check_mode:
                    after = dict(before)
                    for table, rows in runner.rows_by_table().items():
                        if table in after:
                            after[table] = after[table] - rows
                elif conn.closed or conn.broken:
                    after = dict(before)
                else:
                    after = profile.table_rows(conn, schema)
        finally:
            conn.close()
    result.update({
        "changed": changed,
        "check_mode": check_mode,
        "database": facts["database"],
        "schema": schema,
        "profile": profile.name,
        "server_version_num": facts["server_version_num"],
        "schema_revision": revision,
        "schema_tested": tested,
        "rows_before": before,
        "rows_after": after,
        "lock_waited_s": lockfile.waited_s,
        "duration_s": round(time.monotonic() - started, 3),
        "retention": plan,
    })
    result.update(outcome(result))
    return result


def outcome(result):
    """The run's one-line ``msg``, and when any handler failed: ``failed``, ``error_kind`` and the fix.

    A run in which a handler failed fails as a whole, after every other handler ran, so that a timer
    that runs it goes red while the database grows. The kind is the handlers' common one; a missing
    privilege wins (its fix, the GRANTs, is known exactly), several different ones are ``handler_failed``.
    """
    where = "%s.%s" % (result["database"], result["schema"])
    verb = "Would delete" if result["check_mode"] else "Deleted"
    summary = "%s %d rows from %s in %.1f s" % (verb, result["deleted_total"], where, result["duration_s"])
    left = result.get("remaining_total")
    if left is None:
        summary += "; rows still past retention unknown for %s" % ", ".join(result.get("remaining_unknown") or ())
    elif left:
        summary += "; %d rows still past retention%s" % (
            left, " (stopped by %s: the next run continues)" % result["capped_by"] if result.get("capped_by") else "")
    else:
        summary += "; nothing left past retention"
    if result.get("schema_tested") is False:
        summary += "; schema revision %s is not one this collection was tested on (allow_untested_schema)" % (
            result.get("schema_revision") or "unknown")
    failed = result.get("failed_handlers") or []
    if not failed:
        return {"msg": summary}
    handlers = result["handlers"]
    kinds = sorted({handlers.get(name, {}).get("error_kind") or "handler_failed" for name in failed})
    if "insufficient_privilege" in kinds:
        kind = "insufficient_privilege"
    elif len(kinds) == 1:
        kind = kinds[0]
    else:
        kind = "handler_failed"
    first = handlers.get(failed[0], {}).get("error") or "failed"
    if kind == "insufficient_privilege" and result.get("grants_needed"):
        fix = "run as a role that may delete these rows, for example: %s" % "; ".join(result["grants_needed"])
    else:
        fix = fix_for(kind)
    msg = "%d of %d handlers failed (%s): %s. Fix: %s. %s" % (
        len(failed), len(handlers), ", ".join(failed), first, fix, summary)
    return {"msg": msg, "failed": True, "error_kind": kind, "fix": fix}
