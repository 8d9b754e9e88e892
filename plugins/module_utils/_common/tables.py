# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Table facts the prunes read and report: the columns of tables, row counts for the result and the diff."""

from __future__ import annotations

from .connection import sql  # None without psycopg: the module reports it


def table_columns(conn, schema, tables):
    """{table: set of its columns} for those of ``tables`` that ``schema`` has (a missing table is absent)."""
    with conn.cursor() as cur:
        cur.execute("SELECT table_name, column_name FROM information_schema.columns"
                    " WHERE table_schema = %s AND table_name = ANY(%s)", (schema, list(tables)))
        out = {}
        for table, column in cur.fetchall():
            out.setdefault(table, set()).add(column)
    return out


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


# The order privileges are named in, in messages and GRANT statements.
PRIVILEGE_ORDER = ("SELECT", "INSERT", "UPDATE", "DELETE")


def lacking_privileges(conn, schema, wanted):
    """(current role, the (table, privilege) pairs of ``wanted`` that role lacks).

    ``has_table_privilege`` answers for the session's current role (``session_role`` when set), so this
    is what the statements would meet. Tables that do not exist are left out: the work reports those.
    """
    wanted = sorted(set(wanted))
    with conn.cursor() as cur:
        cur.execute("SELECT current_user")
        role = cur.fetchone()[0]
        if not wanted:
            return role, set()
        cur.execute(
            "SELECT w.tbl, w.priv FROM unnest(%s::text[], %s::text[]) AS w(tbl, priv)"
            " JOIN pg_class AS c ON c.relname = w.tbl"
            " AND c.relnamespace = (SELECT n.oid FROM pg_namespace AS n WHERE n.nspname = %s)"
            " WHERE NOT has_table_privilege(c.oid, w.priv)",
            ([t for t, _p in wanted], [p for _t, p in wanted], schema))
        return role, set(cur.fetchall())


def _by_table(missing):
    """[(table, [privileges in PRIVILEGE_ORDER])] of (table, privilege) pairs, tables sorted."""
    tables = {}
    for table, priv in missing:
        tables.setdefault(table, set()).add(priv)
    return [(table, [p for p in PRIVILEGE_ORDER if p in privs]) for table, privs in sorted(tables.items())]


def describe_lacking(conn, schema, role, missing):
    """``permission denied: role "r" lacks UPDATE, DELETE on "s"."t"`` for the (table, privilege) pairs."""
    return "permission denied: role %s lacks %s" % (
        sql.Identifier(role).as_string(conn),
        "; ".join("%s on %s" % (", ".join(privs), sql.Identifier(schema, table).as_string(conn))
                  for table, privs in _by_table(missing)))


def grant_statements(conn, schema, role, missing):
    """One GRANT per table for the (table, privilege) pairs, quoted as executed SQL is."""
    return [sql.SQL("GRANT {privs} ON TABLE {table} TO {role}").format(
        privs=sql.SQL(", ").join(sql.SQL(p) for p in privs),
        table=sql.Identifier(schema, table), role=sql.Identifier(role)).as_string(conn)
        for table, privs in _by_table(missing)]
