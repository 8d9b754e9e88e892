# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Typed errors of the pgtidy core. Each carries a message a person can act on; ``classify`` gives any error its
error_kind and fix. The errors only a prune raises are in ``_engine.errors``."""

from __future__ import annotations


class PgtidyError(Exception):
    """Base class: the message is meant for the operator."""

    kind = "error"

    def __init__(self, message, **details):
        super().__init__(message)
        self.message = message
        self.details = details


class ConnectionFailed(PgtidyError):
    kind = "connection_failed"


class InvalidRequest(PgtidyError):
    """Options that would be unsafe or make no sense (protected types, absurd retention)."""

    kind = "invalid_request"


class LockBusy(PgtidyError):
    """Another job holds the lockfile or the database advisory lock."""

    kind = "busy"


class LockFileRefused(PgtidyError):
    """The lockfile or its directory is missing, not what it should be, or open to other users: nothing was
    opened for writing, locked or changed, and the database was not touched."""

    kind = "lock_file_refused"


# What an error from the server means for the operator: its error_kind by SQLSTATE (the exact code, then
# its two-character class), and the fix each kind names.
_SQLSTATE_KINDS = {
    "42501": "insufficient_privilege", "57014": "query_canceled", "55P03": "lock_timeout", "40P01": "deadlock",
    "40001": "serialization_failure", "25006": "read_only", "53100": "disk_full",
    "08": "connection_lost", "53": "server_resources", "42": "schema_mismatch",
}
FIXES = {
    "insufficient_privilege": "grant the login role (or session_role) the privileges named",
    "statement_timeout": "a statement ran longer than statement_timeout: raise statement_timeout or lower batch_size"
                         " so each statement does less, then run again",
    "query_canceled": "a statement was canceled (statement_timeout, or an operator's pg_cancel_backend): run again",
    "lock_timeout": "another session held a lock longer than lock_timeout: run again later or raise lock_timeout",
    "deadlock": "the server broke a deadlock with the application: run again",
    "serialization_failure": "run again",
    "read_only": "the session is read-only (a standby, or default_transaction_read_only): run against the primary"
                 " with a role that may write",
    "disk_full": "the server's disk is full: free space first (deleting rows needs WAL space too)",
    "connection_lost": "the connection to the server was lost: check the server and run again",
    "server_resources": "the server ran out of a resource (memory, connections): run again later",
    "schema_mismatch": "a table, column or function the work needs is missing or different: check that login_db and"
                       " schema point at the orchestrator's schema and its version",
    "internal_error": "this is a defect of pgtidy: report it with the message",
}


def fix_for(kind):
    """The fix an error kind names."""
    return FIXES.get(kind, "see the error message")


def first_line(exc):
    """``TypeName: first line of the message``, or ``TypeName`` alone for an empty message."""
    text = str(exc).strip()
    name = type(exc).__name__
    return "%s: %s" % (name, text.splitlines()[0]) if text else name


def classify(exc):
    """(error_kind, fix) of an exception met while doing the work; ``internal_error`` for anything that is
    neither pgtidy's own error nor a database error."""
    if isinstance(exc, PgtidyError):
        return exc.kind, fix_for(exc.kind)
    state = getattr(exc, "sqlstate", None)
    if state is None and type(exc).__module__.split(".")[0] != "psycopg":
        return "internal_error", fix_for("internal_error")
    if state == "57014" and "statement timeout" in str(exc):
        kind = "statement_timeout"
    elif state is None:
        kind = "connection_lost"        # psycopg's errors without a SQLSTATE are the client's: the session
    else:
        kind = _SQLSTATE_KINDS.get(state) or _SQLSTATE_KINDS.get(state[:2]) or "database_error"
    if kind == "database_error":
        return kind, "the server refused the work (SQLSTATE %s): see the message" % state
    return kind, fix_for(kind)


class ReportFileRefused(PgtidyError, OSError):
    """A report, metrics or history file whose directory does not exist (or is not a directory): pgtidy
    creates no directory for them, so a typo is refused, not written where nothing reads it. Nothing was
    written there. Also an OSError, so code that treats a file it cannot write as a warning still catches it."""

    kind = "report_file_refused"
