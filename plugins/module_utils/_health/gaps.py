# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a health check could not read, why, and the grant or option that fixes it.

A section the role may not read (``pg_ls_waldir`` without ``pg_monitor``), disk space of a server on
another host, sessions of other roles hidden without ``pg_read_all_stats``: each is one entry of
``incomplete_sections``, reported once in the result, the summary and ``msg``. They are not warnings:
a monitoring role kept small on purpose would otherwise warn on every run, and warnings nobody acts
on teach people to skip the ones that matter.
"""

from __future__ import annotations

import re

from .._common.connection import CONNECTION_ARGUMENT_SPEC
from .._common.errors import classify
from .._engine.errors import SchemaMismatch, message_line
from .._common.units import quoted_name
from .orchestrator import PROFILE_TABLES

ORCHESTRATOR_SECTIONS = tuple(PROFILE_TABLES)
_PLAIN_NAME = re.compile(r"[a-z_][a-z0-9_$]*")


def grant_name(*names):
    """A (qualified) name as a person writes it in a GRANT: quoted_name's quoting, but a part that means the
    same unquoted (lower-case letters, digits, _ and $, not starting with a digit) is left bare."""
    return ".".join(name if _PLAIN_NAME.fullmatch(name) else quoted_name(name) for name in map(str, names))


def gap(section, reason, fix, status="unavailable"):
    return {"section": section, "status": status, "reason": reason, "fix": fix}


def section_gap(section, exc, user, schema, params):
    """The entry for a section that failed with ``exc`` (a database error or a schema mismatch)."""
    reason = message_line(exc)
    orchestrator = section.split(" ")[0] if section.split(" ")[0] in ORCHESTRATOR_SECTIONS else None
    role = grant_name(user)
    kind = classify(exc)[0]
    if isinstance(exc, SchemaMismatch):
        fix = ("set schema to the one holding the %s tables; the preview needs every table and column"
               " %s_prune uses" % (orchestrator or "orchestrator's", orchestrator or "the prune module"))
    elif kind == "insufficient_privilege":
        if orchestrator:
            fix = ("GRANT pg_read_all_data TO %s (PostgreSQL 14+), or GRANT SELECT ON ALL TABLES IN SCHEMA %s TO %s"
                   % (role, grant_name(schema), role))
        else:
            fix = "GRANT pg_monitor TO %s" % role
    elif kind in ("statement_timeout", "query_canceled"):
        fix = ("raise statement_timeout (now %s)%s" % (
            params.get("statement_timeout") or CONNECTION_ARGUMENT_SPEC["statement_timeout"]["default"],
            ", or lower exact_count_limit so large tables are estimated, not counted" if orchestrator else ""))
    elif kind == "lock_timeout":
        fix = "run again; another session held a lock past lock_timeout (now %s)" % (
            params.get("lock_timeout") or CONNECTION_ARGUMENT_SPEC["lock_timeout"]["default"])
    else:
        fix = "see the reason"
    return gap(section, reason, fix)


def disk_gap(disk):
    if not disk or disk.get("available"):
        return None
    return gap("disk", disk["reason"], disk["fix"])


def connections_gap(connections, user):
    """Without pg_read_all_stats a role sees only its own sessions: the others are left out of the counts
    and of the long and idle-in-transaction checks."""
    if not connections or connections.get("sees_all_sessions", True):
        return None
    return gap("connections", "this role sees only its own sessions (%d other backend(s) hidden, with any sessions"
               " of other roles among them): connection counts and the long and idle-in-transaction checks leave"
               " those out" % connections.get("hidden_sessions", 0),
               "GRANT pg_read_all_stats TO %s (pg_monitor includes it)" % grant_name(user),
               status="partial")


def history_gap(path, exc):
    return gap("history", "cannot write %s: %s" % (path, getattr(exc, "strerror", None) or exc),
               "make history_file's directory writable by the user running the check")


def gap_line(entry):
    """One line of ``msg`` per entry: section, status, fix."""
    return "%s %s (fix: %s)" % (entry["section"], entry["status"], entry["fix"])
