"""Writes a simulated day (bench/_steady_workload.Day) into a Dagster database, and measures one.

A day is one transaction. The writes follow what Dagster does, in bulk: runs are inserted QUEUED and
updated to STARTED and then to their final status (Dagster updates the row at each change), ticks are
inserted STARTED and updated when they end, asset check executions are inserted PLANNED and updated with
their evaluation, and every materialization writes its data-version tag and updates its asset_keys row.
Those updates leave dead row versions behind, as Dagster's do, for autovacuum to clean up.
"""
from __future__ import annotations

STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS stage_runs (run_id text, start_time float8, end_time float8,"
    " update_timestamp timestamp, status text, run_body text) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS stage_ticks (selector_id text, timestamp timestamp, status text,"
    " tick_body text, update_timestamp timestamp) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS stage_checks (asset_key text, check_name text, partition text, run_id text,"
    " step_key text, create_timestamp timestamp) ON COMMIT DELETE ROWS",
)
COPIES = (
    ("snapshots", "snapshots (snapshot_id, snapshot_body, snapshot_type)"),
    ("runs", "runs (run_id, snapshot_id, pipeline_name, mode, status, run_body, partition, partition_set,"
             " create_timestamp, update_timestamp, start_time, end_time, backfill_id)"),
    ("run_tags", "run_tags (run_id, key, value)"),
    ("bulk_actions", "bulk_actions (key, status, timestamp, body, action_type, selector_id, job_name)"),
    ("events", "event_logs (run_id, event, dagster_event_type, timestamp, step_key, asset_key, partition)"),
    ("ticks", "job_ticks (job_origin_id, selector_id, status, type, timestamp, tick_body, create_timestamp,"
              " update_timestamp)"),
    ("run_finals", "stage_runs (run_id, start_time, end_time, update_timestamp, status, run_body)"),
    ("tick_finals", "stage_ticks (selector_id, timestamp, status, tick_body, update_timestamp)"),
    ("checks", "stage_checks (asset_key, check_name, partition, run_id, step_key, create_timestamp)"),
)
AFTER_COPY = (
    # Each materialization's data version, as Dagster indexes it for the asset catalog.
    """INSERT INTO asset_event_tags (event_id, asset_key, key, value, event_timestamp)
       SELECT id, asset_key, 'dagster/data_version',
              encode(sha256(convert_to(run_id || asset_key || coalesce(partition, ''), 'UTF8')), 'hex'), timestamp
       FROM event_logs WHERE id > %(first_event)s AND dagster_event_type = 'ASSET_MATERIALIZATION'""",
    """INSERT INTO asset_keys (asset_key, last_materialization, last_run_id, last_materialization_timestamp,
                              create_timestamp)
       SELECT DISTINCT ON (asset_key) asset_key, event, run_id, timestamp, timestamp FROM event_logs
       WHERE id > %(first_event)s AND dagster_event_type = 'ASSET_MATERIALIZATION' ORDER BY asset_key, id DESC
       ON CONFLICT (asset_key) DO UPDATE SET last_materialization = EXCLUDED.last_materialization,
           last_run_id = EXCLUDED.last_run_id,
           last_materialization_timestamp = EXCLUDED.last_materialization_timestamp""",
    """INSERT INTO asset_check_executions (asset_key, check_name, partition, run_id, execution_status, create_timestamp)
       SELECT asset_key, check_name, partition, run_id, 'PLANNED', create_timestamp FROM stage_checks""",
    """UPDATE asset_check_executions AS x SET execution_status = 'SUCCEEDED', evaluation_event = e.event,
              evaluation_event_timestamp = e.timestamp, evaluation_event_storage_id = e.id,
              materialization_event_storage_id = (
                SELECT max(m.id) FROM event_logs AS m WHERE m.run_id = s.run_id
                AND m.dagster_event_type = 'ASSET_MATERIALIZATION' AND m.asset_key = s.asset_key)
       FROM stage_checks AS s JOIN event_logs AS e ON e.run_id = s.run_id AND e.step_key = s.step_key
            AND e.dagster_event_type = 'ASSET_CHECK_EVALUATION' AND e.id > %(first_event)s
       WHERE x.run_id = s.run_id AND x.asset_key = s.asset_key AND x.check_name = s.check_name""",
    """UPDATE runs AS r SET status = 'STARTED', start_time = s.start_time,
              run_body = replace(r.run_body, 'PipelineRunStatus.QUEUED', 'PipelineRunStatus.STARTED')
       FROM stage_runs AS s WHERE r.run_id = s.run_id""",
    """UPDATE runs AS r SET status = s.status, end_time = s.end_time, update_timestamp = s.update_timestamp,
              run_body = s.run_body
       FROM stage_runs AS s WHERE r.run_id = s.run_id""",
    """UPDATE job_ticks AS t SET status = s.status, tick_body = s.tick_body, update_timestamp = s.update_timestamp
       FROM stage_ticks AS s WHERE t.selector_id = s.selector_id AND t.timestamp = s.timestamp
            AND t.id > %(first_tick)s""",
)


def prepare(conn, instigator_rows):
    """The deployment's schedules and sensor, before the first day."""
    with conn.transaction(), conn.cursor() as cur:
        with cur.copy("COPY instigators (selector_id, repository_selector_id, status, instigator_type,"
                      " instigator_body, create_timestamp, update_timestamp) FROM STDIN") as copy:
            copy.write(instigator_rows)


def load_day(conn, day):
    with conn.transaction(), conn.cursor() as cur:
        for statement in STAGING:
            cur.execute(statement)
        first = {"first_event": cur.execute("SELECT coalesce(max(id), 0) FROM event_logs").fetchone()[0],
                 "first_tick": cur.execute("SELECT coalesce(max(id), 0) FROM job_ticks").fetchone()[0]}
        for attribute, target in COPIES:
            text = getattr(day, attribute)
            if text:
                with cur.copy("COPY %s FROM STDIN" % target) as copy:
                    copy.write(text)
        for statement in AFTER_COPY:
            cur.execute(statement, first)
        cur.executemany("UPDATE instigators SET instigator_body = %s, update_timestamp = %s WHERE selector_id = %s",
                        [(body, day.date, selector) for selector, body in day.instigators])


TABLE_STATS = """
SELECT c.relname, pg_total_relation_size(c.oid), pg_relation_size(c.oid), pg_indexes_size(c.oid),
       coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0),
       s.n_dead_tup, s.autovacuum_count, s.vacuum_count
FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_user_tables AS s ON s.relid = c.oid
WHERE n.nspname = 'public' AND c.relkind = 'r'
ORDER BY c.relname
"""


INDEX_SIZES = """
SELECT t.relname, i.relname, pg_relation_size(i.oid)
FROM pg_index AS x JOIN pg_class AS i ON i.oid = x.indexrelid JOIN pg_class AS t ON t.oid = x.indrelid
JOIN pg_namespace AS n ON n.oid = t.relnamespace
WHERE n.nspname = 'public'
"""


def measure(conn):
    """Database size and, per table: total, heap, index (and each index's) and TOAST bytes, rows, dead rows,
    vacuums."""
    with conn.cursor() as cur:
        database = cur.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        tables = {}
        for name, total, heap, indexes, toast, dead, autovacuums, vacuums in cur.execute(TABLE_STATS).fetchall():
            rows = cur.execute('SELECT count(*) FROM "%s"' % name).fetchone()[0]
            tables[name] = {"bytes": total, "heap": heap, "indexes": indexes, "toast": toast, "rows": rows,
                            "dead": dead, "autovacuums": autovacuums, "vacuums": vacuums, "index_bytes": {}}
        for table, index, size in cur.execute(INDEX_SIZES).fetchall():
            if table in tables:
                tables[table]["index_bytes"][index] = size
    return {"database_bytes": database, "tables": tables}


AUTOVACUUM_DUE = """
SELECT count(*) FROM pg_stat_user_tables AS s JOIN pg_class AS c ON c.oid = s.relid
WHERE s.schemaname = 'public' AND (s.n_dead_tup > current_setting('autovacuum_vacuum_threshold')::float8
                     + current_setting('autovacuum_vacuum_scale_factor')::float8 * greatest(c.reltuples, 0)
   OR s.n_ins_since_vacuum > current_setting('autovacuum_vacuum_insert_threshold')::float8
                     + current_setting('autovacuum_vacuum_insert_scale_factor')::float8 * greatest(c.reltuples, 0))
"""


def autovacuum_pending(admin, conns):
    """Whether autovacuum still has work it would do: a worker running, or a table past its threshold.

    Temporary tables (the loader's staging) are left out: autovacuum never processes them.
    """
    busy = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
                         " AND datname LIKE 'steady_%'").fetchone()[0]
    if busy:
        return True
    return any(conn.execute(AUTOVACUUM_DUE).fetchone()[0] for conn in conns)
