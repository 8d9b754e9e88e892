# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Table facts both orchestrators' prunes report: row counts for the result and the diff."""

from __future__ import annotations

try:
    from psycopg import sql
except ImportError:  # pragma: no cover - the module reports the missing driver
    sql = None


def table_row_estimates(conn, schema, tables=("event_logs", "job_ticks")):
    """Row counts per table for the diff: exact below 100,000 rows, the planner's estimate above."""
    out = {}
    with conn.cursor() as cur:
        for table in tables:
            cur.execute("SELECT c.reltuples::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                        " WHERE n.nspname = %s AND c.relname = %s", (schema, table))
            row = cur.fetchone()
            estimate = row[0] if row else 0
            if estimate < 100_000:
                cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table)))
                estimate = cur.fetchone()[0]
            out[table] = int(estimate)
    return out
