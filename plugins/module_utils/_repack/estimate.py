# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a rewrite would give back, of the heap and of each B-tree index (rebuilt alone when only they are
bloated): estimated from the planner's statistics, ANALYZEd first when missing or stale, or measured by
pgstattuple. The reasoning and its limits: docs/repack.md, "Estimating what a rewrite gives back"."""

from __future__ import annotations

import math

from .._common.connection import psycopg, sql
from .._common.errors import first_line
from .._common.units import quoted_name
from .catalog import current_facts

# PostgreSQL's page geometry (default build).
PAGE_SIZE = 8192
PAGE_HEADER = 24
LINE_POINTER = 4
TUPLE_HEADER = 23
BTREE_SPECIAL = 16
INDEX_TUPLE_HEADER = 8
BTREE_DEFAULT_FILLFACTOR = 90
# Statistics are stale once more rows changed since the last ANALYZE than autovacuum itself tolerates
# before it analyzes a table (the defaults of autovacuum_analyze_scale_factor and _threshold).
STALE_FRACTION = 0.1
STALE_ROWS = 50

_INDEX_FACTS_SQL = """
SELECT i.oid, i.relname, pg_relation_size(i.oid), am.amname, x.indexprs IS NULL AND x.indpred IS NULL AS plain,
       COALESCE((SELECT substring(o from '^fillfactor=([0-9]+)$')::int
                 FROM unnest(i.reloptions) o WHERE o LIKE 'fillfactor=%%'), %(default_ff)s) AS fillfactor,
       x.indnatts, k.key_stats, k.key_width
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am am ON am.oid = i.relam
CROSS JOIN LATERAL (SELECT count(*) AS key_stats, COALESCE(sum(s.avg_width), 0) AS key_width
                    FROM pg_attribute a JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname
                    AND s.attname = a.attname AND NOT s.inherited
                    WHERE a.attrelid = c.oid AND a.attnum = ANY (x.indkey::int2[])) k
WHERE x.indrelid = %(table)s AND x.indisvalid
ORDER BY i.relname
"""
_INDEX_KEYS = ("oid", "name", "bytes", "method", "plain", "fillfactor", "columns", "key_stats", "key_width")


def maxalign(n):
    """``n`` rounded up to PostgreSQL's MAXALIGN (8 bytes)."""
    return int(-(-n // 8) * 8)


def statistics_state(facts):
    """Whether the planner's statistics describe the table as it is now: ``current``, ``stale`` (more rows
    changed since the last ANALYZE than autovacuum tolerates, as after a big prune) or ``missing``."""
    if _statistics_missing(facts):
        return "missing"
    if facts["mod_since_analyze"] > STALE_FRACTION * facts["reltuples"] + STALE_ROWS:
        return "stale"
    return "current"


def _statistics_missing(facts):
    reltuples = facts["reltuples"]
    return reltuples is None or reltuples < 0 or (reltuples > 0 and not facts["nstats"])


def analyze_table(conn, facts):
    """ANALYZE one table; '' when it ran, else what PostgreSQL said (a role that may not analyze it gets a WARNING)."""
    said = []

    def keep(diag):
        if diag.severity_nonlocalized == "WARNING" and diag.message_primary:
            said.append(diag.message_primary)

    conn.add_notice_handler(keep)
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(facts["schema"], facts["table"])))
    except psycopg.Error as exc:
        said.append(first_line(exc))
    finally:
        conn.remove_notice_handler(keep)
    return "; ".join(said)


def estimate_from_statistics(facts):
    """Reclaimable heap bytes from the statistics: a row is header + null bitmap + the average column widths,
    MAXALIGNed, + its line pointer; a page holds what its fillfactor allows. None without statistics; an
    analyzed table without rows is all reclaimable."""
    if _statistics_missing(facts):
        return None
    header = TUPLE_HEADER + (((facts["ncols"] + 7) // 8) if facts["has_nulls"] else 0)
    tuple_bytes = maxalign(maxalign(header) + float(facts["data_width"])) + LINE_POINTER
    per_page = max(1, int((PAGE_SIZE - PAGE_HEADER) * facts["fillfactor"] / 100.0 // tuple_bytes))
    expected_pages = -(-int(facts["reltuples"]) // per_page)
    return max(0, facts["heap_bytes"] - expected_pages * PAGE_SIZE)


def estimate_with_pgstattuple(conn, facts, schema_of_ext):
    """Reclaimable heap bytes measured by pgstattuple_approx (free + dead space, less the fillfactor reserve a
    fresh copy keeps free). Reads the pages the visibility map cannot skip."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT approx_free_space + dead_tuple_len FROM {}.pgstattuple_approx(%s::regclass)")
                    .format(sql.Identifier(schema_of_ext)), (facts["oid"],))
        free = cur.fetchone()[0]
    return max(0, int(free - facts["heap_bytes"] * (100 - facts["fillfactor"]) / 100.0))


def index_filenodes(conn, table_oid):
    """The relfilenodes of a table's indexes: they change when the indexes are rebuilt."""
    with conn.cursor() as cur:
        cur.execute("SELECT x.indexrelid, i.relfilenode FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
                    " WHERE x.indrelid = %s ORDER BY 1", (table_oid,))
        return cur.fetchall()


def expected_btree_pages(rows, key_width, fillfactor):
    """Pages a freshly built B-tree over ``rows`` entries of ``key_width`` bytes would take."""
    entry = maxalign(INDEX_TUPLE_HEADER + float(key_width)) + LINE_POINTER
    per_leaf = max(1, int((PAGE_SIZE - PAGE_HEADER - BTREE_SPECIAL) * fillfactor / 100.0 // entry))
    leaves = -(-int(max(rows, 0)) // per_leaf)
    # Inner pages hold one downlink per leaf, packed fully (about 70 % of a leaf's fill is a fair lower bound).
    per_inner = max(2, int((PAGE_SIZE - PAGE_HEADER - BTREE_SPECIAL) * 0.7 // entry))
    inner, level = 0, leaves
    while level > 1:
        level = -(-level // per_inner)
        inner += level
    return 1 + max(leaves, 1) + inner          # the metapage, the leaves, the inner levels


def index_estimate_from_statistics(index, table_rows):
    """Reclaimable bytes of one index from the statistics; None when it cannot be estimated (not a plain B-tree,
    rows unknown, or a key column without statistics: no width to go on)."""
    if index["method"] != "btree" or not index["plain"] or table_rows is None or table_rows < 0 \
            or index["key_stats"] < index["columns"]:
        return None
    pages = expected_btree_pages(table_rows, index["key_width"], index["fillfactor"])
    return max(0, int(index["bytes"] - pages * PAGE_SIZE))


def estimate_with_pgstatindex(conn, index, schema_of_ext):
    """Reclaimable bytes of one B-tree measured by pgstatindex: the leaves beyond its fillfactor, and empty and
    deleted pages. None for other access methods."""
    if index["method"] != "btree":
        return None
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT leaf_pages, avg_leaf_density, empty_pages, deleted_pages"
                            " FROM {}.pgstatindex(%s::oid::regclass)").format(sql.Identifier(schema_of_ext)),
                    (index["oid"],))
        leaf_pages, density, empty, deleted = cur.fetchone()
    if density is None or math.isnan(density):     # NaN: an index without leaf entries
        density = 0.0
    packed = leaf_pages * min(1.0, float(density) / index["fillfactor"])
    return max(0, int((leaf_pages - packed + empty + deleted) * PAGE_SIZE))


def reclaimable_fraction(estimate):
    """An index estimate's reclaimable share of its size (0 when it has no estimate or no size)."""
    gain = estimate["estimated_reclaimable_bytes"]
    return float(gain) / estimate["bytes"] if estimate["bytes"] and gain is not None else 0.0


def estimate_indexes(conn, facts, pgstattuple_schema):
    """The estimate of each valid index of one table: name, bytes, estimated reclaimable bytes."""
    with conn.cursor() as cur:
        cur.execute(_INDEX_FACTS_SQL, {"table": facts["oid"], "default_ff": BTREE_DEFAULT_FILLFACTOR})
        indexes = [dict(zip(_INDEX_KEYS, row)) for row in cur.fetchall()]
    return [{"index": i["name"], "bytes": i["bytes"], "estimated_reclaimable_bytes":
             estimate_with_pgstatindex(conn, i, pgstattuple_schema) if pgstattuple_schema
             else index_estimate_from_statistics(i, facts["reltuples"])} for i in indexes]


def estimate_heap(run, facts, entry):
    """Put the heap's estimate into the entry; (facts, problem): the facts re-read after an ANALYZE, and
    (reason, detail, fix) when there is no estimate to decide on. Missing or stale statistics are refreshed
    by ANALYZE when the threshold they decide is not 0, but not in check mode (it writes statistics).
    ``run``: the repack run (its session, plan, check mode, pgstattuple schema and role)."""
    name, shown = "%s.%s" % (facts["schema"], facts["table"]), quoted_name(facts["schema"], facts["table"])
    if run.pgstattuple_schema:
        entry["estimate_method"] = "pgstattuple"
        try:
            entry["estimated_reclaimable_bytes"] = estimate_with_pgstattuple(run.conn, facts, run.pgstattuple_schema)
        except psycopg.Error as exc:
            return facts, ("no_estimate", "pgstattuple_approx(%s) failed: %s" % (name, first_line(exc)),
                           "GRANT pg_stat_scan_tables TO %s (pgstattuple_approx needs it), or set"
                           " estimate_method: statistics" % quoted_name(run.role))
        return facts, None
    entry["estimate_method"] = "statistics"
    state = entry["statistics"] = statistics_state(facts)
    plan = run.plan
    if state != "current" and (plan.min_index_reclaimable_fraction if plan.below_table_size(facts)
                               else plan.min_reclaimable_fraction):
        why = ("the table has no planner statistics (never analyzed)" if state == "missing" else
               "the planner statistics are stale: %d rows changed since the last ANALYZE, which counted %d"
               % (facts["mod_since_analyze"], facts["reltuples"]))
        if run.check_mode:
            return facts, ("needs_analyze", "%s; check mode does not run ANALYZE (it writes planner statistics),"
                                            " so whether the real run repacks the table is not known yet" % why,
                           "nothing to do for the real run, which runs ANALYZE %s first and then decides; for a"
                           " check-mode estimate run ANALYZE %s beforehand, or CREATE EXTENSION pgstattuple"
                           % (shown, shown))
        refused = analyze_table(run.conn, facts)
        after = current_facts(run.conn, facts["oid"]) or facts
        if statistics_state(after) != "current":
            if not refused:
                refused = ("it ran, but role %s sees no column statistics (pg_stats shows only the columns a"
                           " role may SELECT)" % run.role)
            return facts, ("no_estimate", "%s, and ANALYZE %s did not give any: %s" % (why, name, refused),
                           _no_estimate_fix(shown, quoted_name(run.role), refused))
        entry["analyzed"] = True
        facts = after
    entry["estimated_reclaimable_bytes"] = estimate_from_statistics(facts)
    return facts, None


def choose_indexes(run, facts, entry):
    """Whether some indexes of at least min_index_size are each (on its own) at least
    min_index_reclaimable_fraction reclaimable; fills the entry with every index's estimate and those chosen."""
    plan = run.plan
    if not plan.rebuild_indexes:
        return False
    try:
        indexes = estimate_indexes(run.conn, facts, run.pgstattuple_schema)
    except psycopg.Error as exc:
        entry["index_estimate_error"] = "%s.%s: %s" % (facts["schema"], facts["table"], first_line(exc))
        return False
    total, reclaimable = sum(i["bytes"] for i in indexes), sum(i["estimated_reclaimable_bytes"] or 0 for i in indexes)
    chosen = [i for i in indexes if i["bytes"] and i["bytes"] >= plan.min_index_size
              and reclaimable_fraction(i) >= plan.min_index_reclaimable_fraction]
    entry.update(indexes=indexes, index_bytes_before=total, estimated_index_reclaimable_bytes=reclaimable,
                 estimated_index_reclaimable_fraction=round(float(reclaimable) / total, 4) if total else 0.0,
                 rebuild_indexes=[i["index"] for i in chosen], rebuild_index_bytes=sum(i["bytes"] for i in chosen),
                 estimated_rebuild_reclaimable_bytes=sum(i["estimated_reclaimable_bytes"] for i in chosen))
    return bool(chosen)


def _no_estimate_fix(name, role, said):
    """The fix of a table without an estimate; ``name`` and ``role`` as SQL spells them (quoted_name)."""
    if "timeout" in said:
        return ("ANALYZE %s waited or ran longer than lock_timeout / statement_timeout allow: raise them, or run"
                " ANALYZE %s before the repack" % (name, name))
    return ("run ANALYZE %s as its owner or a superuser before the repack, or let the module do it: connect as"
            " one, or on PostgreSQL 17+ GRANT MAINTAIN ON %s TO %s (or the pg_maintain role); or CREATE EXTENSION"
            " pgstattuple and GRANT pg_stat_scan_tables TO %s to measure the table instead"
            % (name, name, role, role))
