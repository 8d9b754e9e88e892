# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The errors only a prune raises (its orchestrators' schema checks too), and ``message_line``, how a prune's
notes and a health check's sections quote an error. The rest of pgtidy's errors, and ``classify``, which
names every error_kind and its fix, are in ``_common.errors``."""

from __future__ import annotations

from .._common.errors import PgtidyError, first_line


class SchemaMismatch(PgtidyError):
    """The database is not the orchestrator schema the module expects; nothing was touched."""

    kind = "schema_mismatch"


class UntestedSchema(PgtidyError):
    """The orchestrator's schema revision is not one this collection was tested on; nothing was touched."""

    kind = "untested_schema"


class StandbyServer(PgtidyError):
    """The server is a standby (in recovery): nothing can be deleted there; run against the primary."""

    kind = "standby"


class ConnectionLost(PgtidyError):
    """The session ended during the run: what was committed stays, the rest is for the next run."""

    kind = "connection_lost"


def message_line(exc):
    """The first line of an error's message (pgtidy's ``message``, else the server's text), without the type
    name; the type name alone (first_line) when the message is empty."""
    text = (getattr(exc, "message", None) or str(exc)).strip()
    return text.splitlines()[0] if text else first_line(exc)
