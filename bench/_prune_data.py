"""A Dagster metadata database of any size for the prune benchmark and the EXPLAIN test.

The schema comes from the real ``dagster instance migrate``; only the rows are made by SQL,
shaped like what real in-process Dagster runs write (see MIX below).
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TESTS = os.path.join(ROOT, "tests")
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

# Event mix per 496 rows of 20 real runs (tests/dagster_fixture.build_history, rounds=2):
# (dagster_event_type or None for a Python log line, log level, rows, average JSON length).
# Measured with: SELECT coalesce(dagster_event_type, 'LOG_' || (event::json->>'level')),
# count(*), avg(length(event)) FROM event_logs GROUP BY 1.
MIX = (
    (None, 10, 80, 337),
    ("ENGINE_EVENT", 10, 39, 1023),
    ("STEP_START", 10, 34, 984),
    (None, 20, 33, 283),
    ("STEP_OUTPUT", 10, 30, 1361),
    (None, 30, 30, 300),
    ("STEP_SUCCESS", 10, 30, 1070),
    ("HANDLED_OUTPUT", 10, 28, 1307),
    ("RESOURCE_INIT_SUCCESS", 10, 24, 1178),
    ("RESOURCE_INIT_STARTED", 10, 24, 780),
    ("ASSET_MATERIALIZATION_PLANNED", 10, 20, 779),
    ("PIPELINE_START", 10, 20, 628),
    ("LOGS_CAPTURED", 10, 19, 802),
    ("ASSET_MATERIALIZATION", 10, 18, 1608),
    ("LOADED_INPUT", 10, 16, 1285),
    ("STEP_INPUT", 10, 16, 1205),
    ("PIPELINE_SUCCESS", 10, 15, 642),
    ("PIPELINE_FAILURE", 40, 4, 6246),
    (None, 40, 4, 305),
    ("STEP_FAILURE", 40, 4, 3478),
    ("ASSET_CHECK_EVALUATION_PLANNED", 10, 2, 864),
    ("ASSET_CHECK_EVALUATION", 10, 2, 1706),
    (None, 50, 2, 282),
    ("ASSET_OBSERVATION", 10, 2, 1354),
)
EVENTS_PER_RUN = 25          # 496 rows / 20 runs
DAYS = 180
ASSET_TYPES = ("ASSET_MATERIALIZATION_PLANNED", "ASSET_MATERIALIZATION", "ASSET_OBSERVATION",
               "ASSET_CHECK_EVALUATION_PLANNED", "ASSET_CHECK_EVALUATION")


def _quote(value):
    return "NULL" if value is None else "'%s'" % value


def _type_case(column):
    """CASE over a uniform draw ``column`` in [0, 1) that picks a MIX entry by its weight."""
    total = float(sum(m[2] for m in MIX))
    acc = 0.0
    branches = []
    for n, entry in enumerate(MIX):
        acc += entry[2] / total
        branches.append("WHEN %s < %.6f THEN %d" % (column, acc, n))
    return "CASE %s ELSE %d END" % (" ".join(branches), len(MIX) - 1)


def _mix_values():
    rows = []
    for n, (etype, level, _weight, size) in enumerate(MIX):
        rows.append("(%d, %s, %d, %d)" % (n, _quote(etype), level, size))
    return "VALUES " + ", ".join(rows)


def fill_sql(rows, first_run=0):
    """One INSERT ... SELECT of ``rows`` event_logs rows, ids growing with time over DAYS days."""
    asset_types = ", ".join("'%s'" % t for t in ASSET_TYPES)
    return f"""
    WITH mix(k, etype, level, size) AS ({_mix_values()}),
    draws AS (SELECT g AS n, random() AS u FROM generate_series(1, {rows}) AS g),
    g AS (
      SELECT n, {_type_case('u')} AS k, ({first_run} + (n - 1) / {EVENTS_PER_RUN}) AS run_no FROM draws
    )
    INSERT INTO event_logs (run_id, event, dagster_event_type, timestamp, step_key, asset_key, partition)
    SELECT md5('run' || g.run_no)::uuid::text,
           json_build_object(
             '__class__', 'EventLogEntry',
             'dagster_event', CASE WHEN mix.etype IS NULL THEN NULL ELSE json_build_object(
                 '__class__', 'DagsterEvent', 'event_type_value', mix.etype,
                 'job_name', 'job_' || (g.run_no % 40), 'step_key', 'step_' || (g.n % 7),
                 'message', mix.etype || ' for step_' || (g.n % 7),
                 'event_specific_data', repeat(md5(g.n::text), greatest(0, (mix.size - 420) / 32)))
               END,
             'error_info', NULL, 'job_name', 'job_' || (g.run_no % 40), 'level', mix.level,
             'run_id', md5('run' || g.run_no)::uuid::text, 'step_key', 'step_' || (g.n % 7),
             'timestamp', extract(epoch FROM now()),
             'user_message', CASE WHEN mix.etype IS NULL
               THEN 'line ' || g.n || ' ' || repeat('x', greatest(0, mix.size - 300)) ELSE '' END
           )::text,
           mix.etype,
           (now() AT TIME ZONE 'utc') - make_interval(secs => {DAYS} * 86400.0 * (1 - g.n::float8 / {rows}))
             + make_interval(secs => random() * 60 - 30),
           'step_' || (g.n % 7),
           CASE WHEN mix.etype IN ({asset_types}) THEN '["asset_' || (g.run_no % 20) || '"]' END,
           CASE WHEN mix.etype IN ({asset_types}) AND g.run_no % 20 < 10 THEN 'p' || (g.run_no % 30) END
    FROM g JOIN mix USING (k)
    ORDER BY g.n
    """


RUNS_SQL = """
INSERT INTO runs (run_id, snapshot_id, pipeline_name, mode, status, run_body, partition,
                  create_timestamp, update_timestamp, start_time, end_time)
SELECT e.run_id, NULL, 'job_' || (row_number() OVER (ORDER BY min(e.id)) % 40), 'default',
       CASE WHEN random() < 0.01 THEN 'STARTED' WHEN random() < 0.15 THEN 'FAILURE'
            WHEN random() < 0.03 THEN 'CANCELED' ELSE 'SUCCESS' END,
       repeat(md5(e.run_id), 60), NULL, min(e.timestamp), max(e.timestamp),
       extract(epoch FROM min(e.timestamp)), extract(epoch FROM max(e.timestamp))
FROM event_logs e WHERE e.run_id IS NOT NULL
GROUP BY e.run_id
"""


def write_instance_yaml(home, port, db):
    import dagster_fixture
    return dagster_fixture.write_instance_yaml(home, port, db)


def migrate(pg, db):
    """Create ``db`` and the Dagster schema in it with ``dagster instance migrate``."""
    import dagster_fixture
    pg.create_db(db)
    home = tempfile.mkdtemp(prefix="pgtidy-bench-dagster-")
    dagster_fixture.write_instance_yaml(home, pg.port, db)
    dagster_fixture.migrate(home)
    return home


def fill(conn, rows, log=print):
    """Fill event_logs to ``rows`` rows plus one runs row per run; indexes are rebuilt after the load.

    ``conn`` must be in autocommit mode. Returns seconds taken.
    """
    t0 = time.monotonic()
    cur = conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
                       " AND tablename = 'event_logs' AND indexname <> 'event_logs_pkey'")
    indexes = cur.fetchall()
    for name, _definition in indexes:
        conn.execute('DROP INDEX "%s"' % name)
    chunk = 1_000_000
    done = 0
    while done < rows:
        n = min(chunk, rows - done)
        # The time spread is computed over the whole table: fill in one statement per chunk
        # with a shifted series, so ids keep growing with time across chunks.
        conn.execute(fill_sql(n, first_run=done // EVENTS_PER_RUN).replace(
            "1 - g.n::float8 / %d" % n, "1 - (g.n + %d)::float8 / %d" % (done, rows)))
        done += n
        log("  event_logs: %d / %d rows (%.0f s)" % (done, rows, time.monotonic() - t0))
    conn.execute(RUNS_SQL)
    for _name, definition in indexes:
        conn.execute(definition)
    conn.execute("VACUUM ANALYZE event_logs")
    conn.execute("VACUUM ANALYZE runs")
    return time.monotonic() - t0
