"""What the Dagster tests check on a database: the retention options that prune hard, and the rows pgtidy must
never delete, read with SQL independently of the implementation."""
from __future__ import annotations

import psycopg

from conftest import COLLECTIONS_ROOT  # noqa: F401  (puts the collection on sys.path)

from ansible_collections.pgtidy.maintenance.plugins.module_utils._dagster.rules import NOISE_EVENT_TYPES

AGGRESSIVE = {
    "log_retention_days": {"debug": 1, "info": 1, "warning": 1},
    "event_retention_days": 1,
    "tick_retention_days": {"sensor": {"skipped": 1, "failure": 1}, "schedule": {"skipped": 1}},
}


def q(pg, db, sql):
    with psycopg.connect(pg.dsn(db), autocommit=True) as conn:
        cur = conn.execute(sql)
        return cur.fetchall() if cur.description else None


def protected_fingerprint(pg, db):
    """Every row pgtidy must never delete, as (table, count, checksum)."""
    noise = ",".join("'%s'" % t for t in NOISE_EVENT_TYPES + ("ASSET_MATERIALIZATION_PLANNED",))
    return q(pg, db, f"""
        SELECT 'events', count(*), md5(string_agg(id::text, ',' ORDER BY id)) FROM event_logs
          WHERE dagster_event_type IS NOT NULL AND dagster_event_type NOT IN ({noise})
        UNION ALL SELECT 'error_logs', count(*), md5(string_agg(id::text, ',' ORDER BY id)) FROM event_logs
          WHERE dagster_event_type IS NULL AND (event::json->>'level')::int >= 40
        UNION ALL SELECT 'unfinished_run_rows', count(*), md5(string_agg(e.id::text, ',' ORDER BY e.id))
          FROM event_logs e JOIN runs r USING (run_id) WHERE r.status NOT IN ('SUCCESS', 'FAILURE', 'CANCELED')
        UNION ALL SELECT 'runs', count(*), md5(string_agg(run_id || status, ',' ORDER BY run_id)) FROM runs
        UNION ALL SELECT 'run_tags', count(*), md5(string_agg(key || value, ',' ORDER BY id)) FROM run_tags
        UNION ALL SELECT 'asset_keys', count(*), md5(string_agg(asset_key, ',' ORDER BY asset_key)) FROM asset_keys
        UNION ALL SELECT 'instigators', count(*), md5(string_agg(selector_id, ',' ORDER BY selector_id))
          FROM instigators
        UNION ALL SELECT 'kvs', count(*), md5(coalesce(string_agg(key, ',' ORDER BY key), '')) FROM kvs
        UNION ALL SELECT 'asset_check_executions', count(*), md5(string_agg(id::text, ',' ORDER BY id))
          FROM asset_check_executions
    """)


def noise_left(pg, db, days=1):
    noise = ",".join("'%s'" % t for t in NOISE_EVENT_TYPES)
    return q(pg, db, f"""
        SELECT count(*) FROM event_logs e JOIN runs r USING (run_id)
        WHERE r.status IN ('SUCCESS', 'FAILURE', 'CANCELED') AND e.timestamp < now() at time zone 'utc' - interval '{days} days'
          AND (e.dagster_event_type IN ({noise})
               OR (e.dagster_event_type IS NULL AND (e.event::json->>'level')::int < 40))""")[0][0]
