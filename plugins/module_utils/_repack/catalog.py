# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the database and the host say before a repack: extensions and the superuser, pg_repack sessions running,
leftovers of an interrupted pg_repack, the facts of each table considered, and the free disk."""

from __future__ import annotations

import os

from .._common.connection import is_local_host
from .._common.errors import InvalidRequest
from .._common.units import quoted_name
from .options import PROFILE_TABLES, repack_host

_TABLE_FACTS_SQL = """
SELECT c.oid, n.nspname, c.relname, c.relkind, c.relpages, c.reltuples, c.relfilenode,
       pg_relation_size(c.oid) AS heap_bytes, pg_total_relation_size(c.oid) AS total_bytes,
       COALESCE((SELECT substring(o from '^fillfactor=([0-9]+)$')::int
                 FROM unnest(c.reloptions) o WHERE o LIKE 'fillfactor=%%'), 100) AS fillfactor,
       (SELECT count(*) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
         AS ncols, st.nstats, st.data_width, st.has_nulls,
       EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = c.oid AND x.indisvalid AND x.indisunique
               AND x.indpred IS NULL AND x.indexprs IS NULL
               AND (x.indisprimary OR NOT EXISTS (
                     SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                     AND a.attnum = ANY (x.indkey) AND NOT a.attnotnull))) AS has_key,
       ARRAY(SELECT i.relname::text FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
             WHERE x.indrelid = c.oid AND NOT x.indisvalid AND i.relname !~ '^index_[0-9]+$'
             ORDER BY 1) AS invalid_indexes,
       CASE WHEN c.reltablespace = 0 THEN '' ELSE pg_tablespace_location(c.reltablespace) END AS tablespace_path,
       COALESCE(pg_stat_get_mod_since_analyze(c.oid), 0) AS mod_since_analyze
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL (SELECT count(*) AS nstats, COALESCE(sum(s.avg_width * (1 - s.null_frac)), 0) AS data_width,
                           bool_or(s.null_frac > 0) AS has_nulls
                    FROM pg_stats s WHERE s.schemaname = n.nspname AND s.tablename = c.relname AND NOT s.inherited) st
"""
_FACT_KEYS = ("oid", "schema", "table", "relkind", "relpages", "reltuples", "relfilenode", "heap_bytes",
              "total_bytes", "fillfactor", "ncols", "nstats", "data_width", "has_nulls", "has_key",
              "invalid_indexes", "tablespace_path", "mod_since_analyze")

# Leftovers of an interrupted pg_repack: its log/copy tables in the ``repack`` schema, the trigger on the user
# table, and invalid ``index_<oid>`` indexes of an index-only repack. Columns: kind, object, target oid, schema,
# table, whether the table exists, the trigger's or index's name.
_LEFTOVERS_SQL = """
SELECT 'work_table', 'repack.' || c.relname, substring(c.relname from '^(?:log|table)_([0-9]+)$')::oid,
       tn.nspname, t.relname, t.oid IS NOT NULL, NULL, 1, c.relname::text COLLATE "C", ''::text COLLATE "C"
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class t ON t.oid = substring(c.relname from '^(?:log|table)_([0-9]+)$')::oid
LEFT JOIN pg_namespace tn ON tn.oid = t.relnamespace
WHERE n.nspname = 'repack' AND c.relkind = 'r' AND c.relname ~ '^(log|table)_[0-9]+$'
UNION ALL
SELECT 'trigger', tg.tgname || ' on ' || n.nspname || '.' || c.relname, c.oid, n.nspname, c.relname, true,
       tg.tgname, 2, n.nspname::text COLLATE "C", c.relname::text COLLATE "C"
FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE tg.tgname ~ 'repack_trigger$' AND NOT tg.tgisinternal
UNION ALL
SELECT 'invalid_index', n.nspname || '.' || i.relname, t.oid, n.nspname, t.relname, true, i.relname, 3,
       n.nspname::text COLLATE "C", i.relname::text COLLATE "C"
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = i.relnamespace
WHERE NOT x.indisvalid AND i.relname ~ '^index_[0-9]+$' AND n.nspname <> 'repack'
ORDER BY 8, 9, 10
"""


def repack_support(conn):
    """(version of the pg_repack extension, schema of the pgstattuple extension, whether the role is a superuser);
    None for an extension that is not installed."""
    with conn.cursor() as cur:
        cur.execute("SELECT (SELECT extversion FROM pg_extension WHERE extname = 'pg_repack'),"
                    " (SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pgstattuple'),"
                    " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)")
        version, pgstattuple, superuser = cur.fetchone()
    return version, pgstattuple, bool(superuser)


def active_repack_sessions(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT pid, backend_start::text FROM pg_stat_activity WHERE application_name = 'pg_repack'"
                    " AND datname = current_database() AND pid <> pg_backend_pid()")
        return [{"pid": r[0], "since": r[1]} for r in cur.fetchall()]


def find_leftovers(conn):
    """The leftovers of interrupted pg_repack runs (see _LEFTOVERS_SQL), each with its fix."""
    found = []
    with conn.cursor() as cur:
        cur.execute(_LEFTOVERS_SQL)
        for row in cur.fetchall():
            kind, obj, oid, schema, table, exists, name = row[:7]
            item = {"kind": kind, "object": obj}
            if name:
                item["index" if kind == "invalid_index" else "trigger"] = name
            item.update(target_oid=int(oid), schema=schema, table=table, target_exists=bool(exists))
            item["fix"] = leftover_fix(item)
            found.append(item)
    return found


def leftover_fix(item):
    """The statement that removes one leftover: what a person is told to run, and what cleanup_leftovers runs."""
    if item["kind"] == "invalid_index":
        return "DROP INDEX CONCURRENTLY IF EXISTS %s" % quoted_name(item["schema"], item["index"])
    if item["target_exists"]:
        # repack_drop(oid, 4) is pg_repack's own cleanup: log table, pk type, trigger, copy table.
        return "SELECT repack.repack_drop(%d, 4)" % item["target_oid"]
    return "DROP TABLE IF EXISTS %s CASCADE" % quoted_name("repack", item["object"].split(".", 1)[1])


def clean_leftovers(conn, leftovers):
    """Run each leftover's fix (once: the objects of one table share it); return (cleaned, errors)."""
    cleaned, errors, done = [], [], set()
    for item in leftovers:
        try:
            if item["fix"] not in done:
                with conn.cursor() as cur:
                    cur.execute(item["fix"])
                done.add(item["fix"])
            cleaned.append(item["object"])
        except Exception as exc:  # a lock timeout on one table must not stop the others
            errors.append({"object": item["object"], "error": str(exc).strip()})
    return cleaned, errors


def table_facts(conn, where, args):
    """Facts (dicts with the keys _FACT_KEYS) of the tables ``where`` selects."""
    with conn.cursor() as cur:
        cur.execute(_TABLE_FACTS_SQL + where, args)
        return [dict(zip(_FACT_KEYS, row)) for row in cur.fetchall()]


def current_facts(conn, oid):
    rows = table_facts(conn, " WHERE c.oid = %s", (oid,))
    return rows[0] if rows else None


def resolve_tables(conn, plan):
    """Facts of the tables to consider: the explicit list (each must exist) or the profile's tables."""
    if not plan.tables:
        where = " WHERE n.nspname = %s AND c.relkind = 'r'"
        if plan.profile == "any":
            return table_facts(conn, where + " ORDER BY c.relname", (plan.schema,))
        return table_facts(conn, where + " AND c.relname = ANY(%s) ORDER BY c.relname",
                           (plan.schema, list(PROFILE_TABLES[plan.profile])))
    result = []
    for name in plan.tables:
        schema, dummy, table = name.rpartition(".")
        schema = schema or plan.schema
        rows = table_facts(conn, " WHERE n.nspname = %s AND c.relname = %s", (schema, table))
        qualified = "%s.%s" % (schema, table)
        if not rows:
            raise InvalidRequest("table %s does not exist in this database; nothing was repacked" % qualified, table=qualified)
        if rows[0]["relkind"] not in ("r", "m"):
            raise InvalidRequest("%s is not a plain table (relkind %s); pg_repack cannot repack it" % (qualified, rows[0]["relkind"]))
        if rows[0] not in result:
            result.append(rows[0])
    return result


def free_space(conn, plan, params, facts):
    """(free bytes where the table lives, their source), or (None, the reason) when that cannot be known."""
    mode = plan.free_space["mode"]
    if mode in ("off", "figure"):
        return plan.free_space.get("bytes"), "given figure" if mode == "figure" else "free_space_check is off"
    path = plan.free_space.get("path") or facts.get("tablespace_path")
    if mode == "auto":
        host = repack_host(params)
        if not is_local_host(host):
            return None, "database host %s is not local; set free_space_check to a path or a figure" % host
        if not path:
            with conn.cursor() as cur:
                cur.execute("SELECT current_setting('data_directory', true)")
                path = cur.fetchone()[0]
    if not path or not os.path.exists(path):
        return None, "path %s is not visible from here; set free_space_check to a path or a figure" % path
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize, "statvfs %s" % path
