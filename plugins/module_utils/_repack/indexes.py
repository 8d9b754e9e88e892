# -*- coding: utf-8 -*-
# Copyright: pgtidy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Index bloat: how much of a table's B-tree indexes a rebuild would give back.

A table pruned steadily can keep a compact heap (autovacuum makes the space of deleted rows reusable
and new rows fill it) while its indexes keep growing: a B-tree page is recycled only once it is
empty, and an index keyed by an ever-increasing id gets its new entries at its right edge, so the
old pages where a few kept rows' entries remain are never filled again. Only a rebuild gives that
space back, and ``pg_repack --index`` rebuilds an index without rewriting the heap.

Two estimates, as for the heap:

- ``pgstatindex`` (the pgstattuple extension) measures each leaf page's fill; a rebuild packs the
  leaves to the index's fillfactor, so what it gives back is the leaves beyond that plus empty and
  deleted pages. It reads the whole index.
- the planner's statistics: a B-tree over plain columns holds one entry per row (index tuple header
  + the key's average width, MAXALIGNed, + its line pointer), packed to the fillfactor on fresh leaf
  pages, plus about one inner page per few hundred leaves. What the index holds beyond that counts as
  reclaimable. Deduplication of repeated keys makes real indexes smaller than this, so the estimate
  errs towards "nothing to gain". Indexes over expressions, partial indexes and other access methods
  get no estimate and count as nothing to gain.
"""
from __future__ import annotations

import math

from .._common.units import LINE_POINTER, PAGE_HEADER, PAGE_SIZE, maxalign

try:
    from psycopg import sql
except ImportError:  # pragma: no cover - the module reports the missing driver
    sql = None

BTREE_SPECIAL = 16
INDEX_TUPLE_HEADER = 8
BTREE_DEFAULT_FILLFACTOR = 90

_INDEX_FACTS_SQL = """
SELECT i.oid, i.relname, pg_relation_size(i.oid), am.amname,
       x.indexprs IS NULL AND x.indpred IS NULL AS plain,
       COALESCE((SELECT substring(o from '^fillfactor=([0-9]+)$')::int
                 FROM unnest(i.reloptions) o WHERE o LIKE 'fillfactor=%%'), %(default_ff)s) AS fillfactor,
       x.indnatts,
       (SELECT count(*) FROM pg_attribute a JOIN pg_stats s ON s.schemaname = n.nspname
          AND s.tablename = c.relname AND s.attname = a.attname AND NOT s.inherited
          WHERE a.attrelid = c.oid AND a.attnum = ANY (x.indkey::int2[])) AS key_stats,
       (SELECT COALESCE(sum(s.avg_width), 0) FROM pg_attribute a JOIN pg_stats s ON s.schemaname = n.nspname
          AND s.tablename = c.relname AND s.attname = a.attname AND NOT s.inherited
          WHERE a.attrelid = c.oid AND a.attnum = ANY (x.indkey::int2[])) AS key_width
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am am ON am.oid = i.relam
WHERE x.indrelid = %(table)s AND x.indisvalid
ORDER BY i.relname
"""

_INDEX_KEYS = ("oid", "name", "bytes", "method", "plain", "fillfactor", "columns",
               "key_stats", "key_width")


def index_facts(conn, table_oid):
    """The valid indexes of a table, with what the estimates need."""
    with conn.cursor() as cur:
        cur.execute(_INDEX_FACTS_SQL, {"table": table_oid, "default_ff": BTREE_DEFAULT_FILLFACTOR})
        return [dict(zip(_INDEX_KEYS, row)) for row in cur.fetchall()]


def index_filenodes(conn, table_oid):
    """The relfilenodes of a table's indexes: they change when the indexes are rebuilt."""
    with conn.cursor() as cur:
        cur.execute("SELECT x.indexrelid, i.relfilenode FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
                    " WHERE x.indrelid = %s ORDER BY 1", (table_oid,))
        return cur.fetchall()


def expected_btree_pages(rows, key_width, fillfactor):
    """Pages a freshly built B-tree over ``rows`` entries of ``key_width`` bytes would take."""
    entry = maxalign(INDEX_TUPLE_HEADER + float(key_width)) + LINE_POINTER
    usable = (PAGE_SIZE - PAGE_HEADER - BTREE_SPECIAL) * fillfactor / 100.0
    per_leaf = max(1, int(usable // entry))
    leaves = -(-int(max(rows, 0)) // per_leaf)
    # Inner pages hold one downlink per leaf, packed fully (about 70 % of a leaf's fill is a fair lower bound).
    per_inner = max(2, int((PAGE_SIZE - PAGE_HEADER - BTREE_SPECIAL) * 0.7 // entry))
    inner, level = 0, leaves
    while level > 1:
        level = -(-level // per_inner)
        inner += level
    return 1 + max(leaves, 1) + inner          # the metapage, the leaves, the inner levels


def estimate_from_statistics(index, table_rows):
    """Reclaimable bytes of one index from the planner's statistics; None when it cannot be estimated."""
    if index["method"] != "btree" or not index["plain"] or table_rows is None or table_rows < 0:
        return None
    if index["key_stats"] < index["columns"]:
        return None                             # a key column without statistics: no width to go on
    pages = expected_btree_pages(table_rows, index["key_width"], index["fillfactor"])
    return max(0, int(index["bytes"] - pages * PAGE_SIZE))


def estimate_with_pgstatindex(conn, index, schema_of_ext):
    """Reclaimable bytes of one B-tree measured by pgstatindex: leaves beyond the fillfactor, empty and
    deleted pages. None for other access methods."""
    if index["method"] != "btree":
        return None
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT leaf_pages, avg_leaf_density, empty_pages, deleted_pages FROM {}.pgstatindex(%s::oid::regclass)")
                    .format(sql.Identifier(schema_of_ext)), (index["oid"],))
        leaf_pages, density, empty, deleted = cur.fetchone()
    if density is None or math.isnan(density):     # NaN: an index without leaf entries
        density = 0.0
    packed = leaf_pages * min(1.0, float(density) / index["fillfactor"])
    return max(0, int((leaf_pages - packed + empty + deleted) * PAGE_SIZE))


def reclaimable_fraction(estimate):
    """An index estimate's reclaimable share of its size (0 when it has no estimate or no size)."""
    if not estimate["bytes"] or estimate["estimated_reclaimable_bytes"] is None:
        return 0.0
    return float(estimate["estimated_reclaimable_bytes"]) / estimate["bytes"]


def estimate_indexes(conn, facts, pgstattuple_schema):
    """(per-index estimates, total bytes, total reclaimable bytes) for one table's indexes."""
    found, total, reclaimable = [], 0, 0
    for index in index_facts(conn, facts["oid"]):
        if pgstattuple_schema:
            estimate = estimate_with_pgstatindex(conn, index, pgstattuple_schema)
        else:
            estimate = estimate_from_statistics(index, facts["reltuples"])
        total += index["bytes"]
        reclaimable += estimate or 0
        found.append({"index": index["name"], "bytes": index["bytes"], "estimated_reclaimable_bytes": estimate})
    return found, total, reclaimable
