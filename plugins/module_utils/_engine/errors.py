# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The errors only a prune raises (its orchestrators' schema checks too). The rest of pgtidy's errors, and
``classify``, which names every error_kind and its fix, are in ``_common.errors``."""

from __future__ import annotations

from .._common.errors import PgtidyError


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
