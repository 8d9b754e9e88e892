# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Typed errors of the pgtidy core. Each carries a message a person can act on."""

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


class SchemaMismatch(PgtidyError):
    """The database is not the orchestrator schema the module expects; nothing was touched."""

    kind = "schema_mismatch"


class InvalidRequest(PgtidyError):
    """Options that would be unsafe or make no sense (protected types, absurd retention)."""

    kind = "invalid_request"


class StandbyServer(PgtidyError):
    """The server is a standby (in recovery): nothing can be deleted there; run against the primary."""

    kind = "standby"


class LockBusy(PgtidyError):
    """Another job holds the lockfile or the database advisory lock."""

    kind = "busy"


class LockFileRefused(PgtidyError):
    """The lockfile or its directory is missing, not what it should be, or open to other users: nothing was
    opened for writing, locked or changed, and the database was not touched."""

    kind = "lock_file_refused"


def first_line(exc):
    """``TypeName: first line of the message``, or ``TypeName`` alone for an empty message."""
    text = str(exc).strip()
    name = type(exc).__name__
    return "%s: %s" % (name, text.splitlines()[0]) if text else name
