# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What only the prune does with its session: compress the WAL it writes, read WAL positions, and tell a
lost connection from a failed statement. (Opening the session is ``_common.connection``'s, for every module.)"""

from __future__ import annotations

from .._common.connection import psycopg
from .._common.errors import ConnectionFailed, InvalidRequest
from .errors import message_line

# What ``wal_compression: auto`` asks for, best first; pglz is left out (it costs more time than it saves).
AUTO_WAL_COMPRESSION = ("lz4", "zstd")


def set_wal_compression(conn, requested):
    """Compress the full-page images of this session's WAL; return what was used and why.

    A delete pass over old rows is the first change of most pages since the last checkpoint, so
    its WAL is mostly 8 kB page images; compressed they are about a quarter of that. The setting
    is per session (superuser, or ``GRANT SET ON PARAMETER wal_compression`` on PostgreSQL 15+).
    ``auto`` tries lz4 then zstd when the server does not compress already and keeps the server's
    setting when neither may be set; an explicit method that cannot be set is an error, raised
    before anything is deleted.
    """
    with conn.cursor() as cur:
        cur.execute("SELECT current_setting('wal_compression')")
        server = cur.fetchone()[0]
    out = {"requested": requested, "server": server, "used": server, "note": ""}
    if requested == "server":
        return out
    if requested == "auto":
        if server not in ("off", "false", "no", "0"):
            out["note"] = "the server already compresses WAL"
            return out
        candidates = AUTO_WAL_COMPRESSION
    else:
        candidates = (requested,)
    reasons = []
    for method in candidates:
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT set_config('wal_compression', %s, false)", (method,))
        except psycopg.Error as exc:
            reason = message_line(exc)
            if is_connection_lost(conn):
                raise ConnectionFailed("the connection was lost while preparing the session (%s);"
                                       " nothing was deleted" % reason)
            reasons.append("%s: %s" % (method, reason))
            continue
        out["used"] = method
        return out
    if requested != "auto":
        raise InvalidRequest("wal_compression=%s cannot be set for this session (%s); use auto or server,"
                             " or GRANT SET ON PARAMETER wal_compression to the login role" % (requested, "; ".join(reasons)))
    out["note"] = "left at the server's setting: " + "; ".join(reasons)
    return out


def is_connection_lost(conn):
    return conn is None or conn.closed or conn.broken


def lsn_to_int(text):
    """A WAL position ('16/B374D848') as a number of bytes, to subtract one from another; None stays None."""
    if text is None:
        return None
    high, low = str(text).split("/")
    return (int(high, 16) << 32) + int(low, 16)
