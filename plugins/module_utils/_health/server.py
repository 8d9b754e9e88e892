# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health facts of the server and the database: settings, tables, indexes, connections,
transaction-ID age, replication slots and WAL. Catalog and statistics views only, never a write."""

from __future__ import annotations

from .values import iso_or_none, plain_number

XID_WRAPAROUND_LIMIT = 2 ** 31 - 1


def _fetchall_dicts(cur, query, params=None):
    cur.execute(query, params)
    names = [d.name for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _reloptions(options):
    out = {}
    for item in options or ():
        key, dummy, value = str(item).partition("=")
        out[key] = value
    return out


def database_facts(cur):
    cur.execute("SELECT current_database(), pg_database_size(current_database()),"
                " current_setting('server_version'), current_setting('max_connections')::int,"
                " current_setting('superuser_reserved_connections')::int, current_setting('autovacuum'),"
                " current_setting('autovacuum_vacuum_threshold')::int,"
                " current_setting('autovacuum_vacuum_scale_factor')::float8,"
                " current_setting('autovacuum_freeze_max_age')::bigint,"
                " (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()),"
                " current_user")
    row = cur.fetchone()
    return {"name": row[0], "size_bytes": row[1], "server_version": row[2], "max_connections": row[3],
            "superuser_reserved_connections": row[4], "autovacuum": row[5] == "on",
            "autovacuum_vacuum_threshold": row[6], "autovacuum_vacuum_scale_factor": row[7],
            "autovacuum_freeze_max_age": row[8], "stats_reset": iso_or_none(row[9]), "user": row[10]}


TABLES_SQL = """
SELECT s.schemaname AS schema, s.relname AS name,
       pg_total_relation_size(c.oid) AS total_bytes,
       pg_table_size(c.oid) - COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0) AS table_bytes,
       pg_indexes_size(c.oid) AS index_bytes,
       COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0) AS toast_bytes,
       s.n_live_tup AS live_tuples, s.n_dead_tup AS dead_tuples,
       s.n_tup_ins AS inserts, s.n_tup_upd AS updates, s.n_tup_hot_upd AS hot_updates, s.n_tup_del AS deletes,
       s.n_mod_since_analyze AS modified_since_analyze,
       s.seq_scan, s.seq_tup_read, COALESCE(s.idx_scan, 0) AS idx_scan,
       s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze,
       s.vacuum_count, s.autovacuum_count, c.reloptions
FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
ORDER BY pg_total_relation_size(c.oid) DESC, s.schemaname, s.relname
"""


def table_facts(cur, db):
    tables = []
    for row in _fetchall_dicts(cur, TABLES_SQL):
        live, dead, updates = row["live_tuples"], row["dead_tuples"], row["updates"]
        options = _reloptions(row.pop("reloptions"))
        # The share of the table's tuples that are dead: dead / (live + dead), so 0 to 100, never more.
        row["dead_ratio_percent"] = round(100.0 * dead / (live + dead), 2) if dead else 0.0
        row["hot_update_percent"] = round(100.0 * row["hot_updates"] / updates, 2) if updates else None
        total_scans = row["seq_scan"] + row["idx_scan"]
        row["seq_scan_percent"] = round(100.0 * row["seq_scan"] / total_scans, 2) if total_scans else None
        row["autovacuum_enabled"] = options.get("autovacuum_enabled", "true").lower() not in ("false", "off", "0")
        row["fillfactor"] = int(options.get("fillfactor", 100))
        threshold = int(options.get("autovacuum_vacuum_threshold", db["autovacuum_vacuum_threshold"]))
        scale = float(options.get("autovacuum_vacuum_scale_factor", db["autovacuum_vacuum_scale_factor"]))
        row["autovacuum_trigger_dead_tuples"] = int(threshold + scale * live)
        row["options"] = options
        for key in ("last_vacuum", "last_autovacuum", "last_analyze", "last_autoanalyze"):
            row[key] = iso_or_none(row[key])
        tables.append(row)
    return tables


INDEXES_SQL = """
SELECT s.schemaname AS schema, s.relname AS table, s.indexrelname AS name,
       pg_relation_size(s.indexrelid) AS size_bytes, s.idx_scan AS scans,
       s.idx_tup_read AS tuples_read, s.idx_tup_fetch AS tuples_fetched,
       i.indisunique AS is_unique, i.indisprimary AS is_primary, i.indisvalid AS is_valid
FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
ORDER BY pg_relation_size(s.indexrelid) DESC, s.schemaname, s.indexrelname
"""


def index_facts(cur):
    return _fetchall_dicts(cur, INDEXES_SQL)


def connection_facts(cur, db):
    cur.execute("SELECT COALESCE(state, 'unknown'), count(*) FROM pg_stat_activity"
                " WHERE backend_type = 'client backend' GROUP BY 1 ORDER BY 1")
    by_state = dict(cur.fetchall())
    total = sum(by_state.values())
    facts = {"total": total, "by_state": by_state, "max_connections": db["max_connections"],
             "superuser_reserved": db["superuser_reserved_connections"],
             "used_percent": round(100.0 * total / db["max_connections"], 1)}
    oldest = _fetchall_dicts(cur, """
        SELECT pid, usename AS user, datname AS database, application_name, state,
               client_addr::text AS client_addr,
               EXTRACT(EPOCH FROM clock_timestamp() - xact_start)::float8 AS age_seconds, xact_start
        FROM pg_stat_activity
        WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() AND backend_type = 'client backend'
        ORDER BY xact_start LIMIT 1""")
    facts["oldest_transaction"] = None
    if oldest:
        row = oldest[0]
        row["xact_start"] = iso_or_none(row["xact_start"])
        row["age_seconds"] = round(row["age_seconds"], 1)
        facts["oldest_transaction"] = row
    idle = _fetchall_dicts(cur, """
        SELECT pid, usename AS user, datname AS database, application_name, state,
               client_addr::text AS client_addr,
               EXTRACT(EPOCH FROM clock_timestamp() - state_change)::float8 AS idle_seconds,
               EXTRACT(EPOCH FROM clock_timestamp() - xact_start)::float8 AS transaction_seconds
        FROM pg_stat_activity
        WHERE state LIKE 'idle in transaction%%' AND pid <> pg_backend_pid()
        ORDER BY state_change""")
    for row in idle:
        row["idle_seconds"] = round(row["idle_seconds"], 1)
        row["transaction_seconds"] = round(row["transaction_seconds"] or 0, 1)
    facts["idle_in_transaction"] = idle
    cur.execute("SELECT count(*), min(prepared) FROM pg_prepared_xacts")
    count, oldest_prepared = cur.fetchone()
    facts["prepared_transactions"] = {"count": count, "oldest": iso_or_none(oldest_prepared)}
    # Without pg_read_all_stats, other roles' sessions show no backend type, state or times: they are
    # left out of everything above, so say so rather than report a quiet server.
    cur.execute("SELECT pg_has_role('pg_read_all_stats', 'USAGE'),"
                " (SELECT count(*) FROM pg_stat_activity WHERE backend_type IS NULL)")
    facts["sees_all_sessions"], facts["hidden_sessions"] = cur.fetchone()
    return facts


def xid_facts(cur, db):
    cur.execute("SELECT datname, age(datfrozenxid)::bigint, mxid_age(datminmxid)::bigint FROM pg_database"
                " ORDER BY age(datfrozenxid) DESC")
    rows = cur.fetchall()
    worst = rows[0]
    current = next((r for r in rows if r[0] == db["name"]), worst)
    return {
        "max_age": worst[1], "max_age_database": worst[0],
        "database_age": current[1], "multixact_age": max(r[2] for r in rows),
        "wraparound_limit": XID_WRAPAROUND_LIMIT,
        "wraparound_percent": round(100.0 * worst[1] / XID_WRAPAROUND_LIMIT, 6),
        "autovacuum_freeze_max_age": db["autovacuum_freeze_max_age"],
    }


def replication_slot_facts(cur):
    return [
        dict(row, retained_wal_bytes=plain_number(row["retained_wal_bytes"]),
             safe_wal_size=plain_number(row["safe_wal_size"]))
        for row in _fetchall_dicts(cur, """
            SELECT slot_name AS name, slot_type AS type, database, active, wal_status, safe_wal_size,
                   pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                                        ELSE pg_current_wal_lsn() END, restart_lsn) AS retained_wal_bytes
            FROM pg_replication_slots ORDER BY slot_name""")]


def wal_facts(cur):
    cur.execute("SELECT count(*), COALESCE(sum(size), 0)::bigint FROM pg_ls_waldir()")
    files, size = cur.fetchone()
    cur.execute("SELECT current_setting('wal_level'), current_setting('max_wal_size'),"
                " current_setting('max_slot_wal_keep_size')")
    level, max_size, keep = cur.fetchone()
    return {"files": files, "size_bytes": size, "wal_level": level, "max_wal_size": max_size,
            "max_slot_wal_keep_size": keep}
