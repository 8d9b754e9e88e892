"""A Prefect server database of any size for the Prefect prune benchmark, made from rows a real server wrote.

``record_history`` creates the schema with the real ``prefect server database upgrade``, starts a real
Prefect server and runs the flows of bench/_prefect_history.py against it (about a dozen flow runs with
their states, task runs, logs, artifacts, events and event resources). ``capture`` keeps those rows as a
template (schema ``tpl``) and empties the live tables. ``fill`` then writes copies of the template: copy
``k`` of every row gets new ids (``md5(old id || ':' || k)``, the same mapping for the ids that refer to it,
inside text and JSON too), the times shifted so the copies spread evenly over ``DAYS`` days, newest now, and
artifact keys spread over 100 live keys (plus 50 keys only the oldest quarter used). Rows are written in
time order with the indexes dropped, which are rebuilt after the load. ``make_orphans`` deletes 1 % of the
top-level flow runs the way the API does, leaving their logs and artifacts behind. A larger database with
the same old rows adds copies inside every retention (``recent_flow_runs``).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(os.path.dirname(HERE), "tests")
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from prefect_fixture import PrefectServer, prefect_env  # noqa: E402  (the tests' own server harness)

DAYS = 180
# The tables copied, in load order (foreign keys are not checked during the load: every id is mapped).
TABLES = ("flow_run", "flow_run_state", "task_run", "task_run_state", "log", "artifact", "events",
          "event_resources")
# Text and JSON columns that name other rows of the template (resource ids, state details, task inputs).
REMAPPED_TEXT = {
    "flow_run": ("context", "empirical_policy", "parameters"),
    "flow_run_state": ("state_details", "data"),
    "task_run": ("task_inputs", "cache_key"),
    "task_run_state": ("state_details", "data"),
    "events": ("resource_id", "resource", "related_resource_ids", "related", "payload"),
    "event_resources": ("resource_id", "resource"),
}
RECENT_DAYS = 6                   # the extra copies of a larger database: inside every retention
LIVE_KEYS = 100
RETIRED_KEYS = 50
WRITER_FLOW_RUN = "00000000-0000-4000-8000-00000000b0b0"
WRITER_EVENT = "bench.writer.tick"


def record_history(pg, db, python, log=print):
    """Create ``db`` with Prefect's schema and let a real Prefect server write the template's runs into it."""
    import psycopg
    pg.create_db(db)
    home = tempfile.mkdtemp(prefix="pgtidy-bench-prefect-")
    try:
        env = prefect_env(pg, db, home)
        t0 = time.monotonic()
        subprocess.run([python, "-m", "prefect", "server", "database", "upgrade", "-y"], env=env, check=True,
                       capture_output=True)
        log("  prefect server database upgrade: %.0f s" % (time.monotonic() - t0))
        server = PrefectServer(python, env).wait_healthy(timeout=300)
        try:
            proc = subprocess.run([python, os.path.join(HERE, "_prefect_history.py")],
                                  env=dict(env, PREFECT_API_URL=server.url), capture_output=True, text=True,
                                  check=False)
            if proc.returncode != 0:
                raise RuntimeError("the Prefect flows failed:\n" + proc.stderr[-3000:])
            made = json.loads(proc.stdout)
            # The event persister writes in the background: wait until the count stops moving.
            with psycopg.connect(pg.dsn(db), autocommit=True) as conn:
                last, steady = -1, 0
                while steady < 3:
                    time.sleep(1)
                    n = conn.execute("SELECT count(*) FROM events").fetchone()[0]
                    steady = steady + 1 if n == last else 0
                    last = n
        finally:
            server.stop()
        log("  a real Prefect server wrote %d flow runs (%.0f s)" % (len(made), time.monotonic() - t0))
        return made
    finally:
        shutil.rmtree(home, ignore_errors=True)


def capture(conn):
    """Move the rows the server wrote into the template schema ``tpl``; the live tables are left empty.

    Every id of a template row gets a random 64-bit suffix; copy ``k`` of the id is a prefix for ``k``
    followed by that suffix, so ids that refer to a row map exactly as the row's own id does. The prefix is
    random per copy for random (version 4) ids and grows with ``k`` for time-ordered (version 7) ones, as the
    server's own ids do. Each uuid column of a template table records whether its values are ids of template
    rows (mapped in every copy) or of shared rows such as flows (kept). In text and JSON columns the ids a row
    mentions are replaced by numbered tokens, filled in for each copy.
    """
    conn.execute("DROP SCHEMA IF EXISTS tpl CASCADE")
    conn.execute("CREATE SCHEMA tpl")
    for table in TABLES:
        conn.execute("CREATE TABLE tpl.%s AS SELECT * FROM public.%s" % (table, table))
    conn.execute("CREATE TABLE tpl.ids AS SELECT id, substr(md5(random()::text), 1, 16) AS s,"
                 " substr(id::text, 15, 1) = '7' AS v7 FROM (%s) AS u"
                 % " UNION ".join("SELECT id FROM tpl.%s" % t for t in TABLES))
    conn.execute("CREATE UNIQUE INDEX ON tpl.ids (id)")
    conn.execute("CREATE TABLE tpl.columns (tbl text, col text, kind text)")
    most = 0
    for table in TABLES:
        cols = conn.execute("SELECT column_name, data_type FROM information_schema.columns"
                            " WHERE table_schema = 'tpl' AND table_name = %s ORDER BY ordinal_position",
                            (table,)).fetchall()
        remapped = [c for c, _t in cols if c in REMAPPED_TEXT.get(table, ())]
        if remapped:
            conn.execute("ALTER TABLE tpl.%s ADD COLUMN _m uuid[], ADD COLUMN _ms text[], ADD COLUMN _mv bool[]"
                         % table)
            conn.execute("UPDATE tpl.%s AS t SET _m = ARRAY(SELECT i.id FROM tpl.ids AS i"
                         " WHERE strpos(concat_ws('|', %s), i.id::text) > 0 ORDER BY i.id)"
                         % (table, ", ".join('t."%s"::text' % c for c in remapped)))
            conn.execute("UPDATE tpl.%s AS t SET _ms = ARRAY(SELECT i.s FROM unnest(t._m) WITH ORDINALITY AS m(id, n)"
                         " JOIN tpl.ids AS i USING (id) ORDER BY m.n), _mv = ARRAY(SELECT i.v7 FROM unnest(t._m)"
                         " WITH ORDINALITY AS m(id, n) JOIN tpl.ids AS i USING (id) ORDER BY m.n)" % table)
            most = max(most, conn.execute("SELECT coalesce(max(cardinality(_m)), 0) FROM tpl.%s" % table
                                          ).fetchone()[0])
        for col, dtype in cols:
            kind = "copy"
            if dtype == "uuid":
                outside = conn.execute('SELECT count(*) FROM tpl.%s AS t WHERE t."%s" IS NOT NULL AND NOT EXISTS'
                                       ' (SELECT 1 FROM tpl.ids AS m WHERE m.id = t."%s")'
                                       % (table, col, col)).fetchone()[0]
                if outside == 0:
                    kind = "map"
                    conn.execute('ALTER TABLE tpl.%s ADD COLUMN "%s__s" text, ADD COLUMN "%s__v7" bool'
                                 % (table, col, col))
                    conn.execute('UPDATE tpl.%s AS t SET "%s__s" = i.s, "%s__v7" = i.v7 FROM tpl.ids AS i'
                                 ' WHERE i.id = t."%s"' % (table, col, col, col))
            elif dtype == "timestamp with time zone":
                kind = "shift"
            elif col in remapped:
                kind = "remap:" + dtype
                _tokenise(conn, table, col, dtype)
            elif table == "artifact" and col == "key":
                kind = "key"
            conn.execute("INSERT INTO tpl.columns VALUES (%s, %s, %s)", (table, col, kind))
    conn.execute("CREATE TABLE tpl.facts AS SELECT %s AS most_mentions" % most)
    conn.execute("TRUNCATE public.flow_run, public.flow_run_state, public.task_run, public.task_run_state,"
                 " public.log, public.artifact, public.artifact_collection, public.events,"
                 " public.event_resources CASCADE")
    return conn.execute("SELECT count(*) FROM tpl.flow_run").fetchone()[0]


def _tokenise(conn, table, col, dtype):
    """Replace the ids a row's column mentions by ``@@n@@`` (n: the id's place in the row's ``_m``)."""
    text_col = "%s__text" % col
    conn.execute('ALTER TABLE tpl.%s ADD COLUMN "%s" text' % (table, text_col))
    rows = conn.execute('SELECT ctid::text, "%s"::text, _m FROM tpl.%s' % (col, table)).fetchall()
    for ctid, value, mentions in rows:
        if value is not None:
            for n, uid in enumerate(mentions or [], 1):
                value = value.replace(str(uid), "@@%d@@" % n)
        conn.execute('UPDATE tpl.%s SET "%s" = %%s WHERE ctid = %%s::tid' % (table, text_col), (value, ctid))


def _copy_sql(conn, table, copies, recent=0):
    """INSERT ... SELECT of copies ``%(k0)s``..``%(k1)s`` of the template rows of ``table``, in time order.

    Copies 1..``copies`` spread over DAYS days up to ``%(anchor)s``; copies beyond (``recent`` of them) fall
    in the RECENT_DAYS days before it, inside every retention.
    """
    cols = conn.execute("SELECT col, kind FROM tpl.columns WHERE tbl = %s", (table,)).fetchall()
    most = conn.execute("SELECT most_mentions FROM tpl.facts").fetchone()[0]
    exprs = []
    remaps = False
    for col, kind in cols:
        c = 't."%s"' % col
        if kind == "map":
            exprs.append('((CASE WHEN t."%s__v7" THEN g.kt ELSE g.kr END) || t."%s__s")::uuid' % (col, col))
        elif kind == "shift":
            exprs.append("%s + g.shift" % c)
        elif kind.startswith("remap:"):
            remaps = True
            dtype = kind.split(":", 1)[1]
            cast = {"jsonb": "::jsonb", "json": "::json"}.get(dtype, "")
            value = 't."%s__text"' % col
            for n in range(1, most + 1):
                value = "replace(%s, '@@%d@@', m.m%d)" % (value, n, n)
            exprs.append("%s%s" % (value, cast))
        elif kind == "key":
            exprs.append("%s || '-' || CASE WHEN g.k > %d / 4 THEN g.k %%%% %d ELSE %d + g.k %%%% %d END"
                         % (c, copies, LIVE_KEYS, LIVE_KEYS, RETIRED_KEYS))
        else:
            exprs.append(c)
    lateral = ""
    if remaps:
        lateral = " CROSS JOIN LATERAL (SELECT %s) AS m" % ", ".join(
            "coalesce(((CASE WHEN t._mv[%d] THEN g.kt ELSE g.kr END) || t._ms[%d])::uuid::text, '') AS m%d"
            % (n, n, n) for n in range(1, max(1, most) + 1))
    order = {"log": "t.timestamp", "events": "t.occurred", "event_resources": "t.occurred"}.get(table, "t.created")
    return ('INSERT INTO public.%s (%s) SELECT %s FROM tpl.%s AS t CROSS JOIN'
            ' (SELECT k, substr(md5(k::text), 1, 16) AS kr, lpad(to_hex(k), 16, \'0\') AS kt,'
            '   (%%(anchor)s::timestamptz - (SELECT max(created) FROM tpl.flow_run)) - CASE WHEN k <= %d'
            '    THEN make_interval(secs => %d * 86400.0 * (%d - k) / %d)'
            '    ELSE make_interval(secs => %d * 86400.0 * (%d - k) / %d) END AS shift'
            '  FROM generate_series(%%(k0)s::int, %%(k1)s::int) AS k) AS g%s ORDER BY g.k, %s'
            % (table, ", ".join('"%s"' % c for c, unused in cols), ", ".join(exprs), table, copies, DAYS, copies, copies,
               RECENT_DAYS, copies + recent, max(1, recent), lateral, order))


def fill(conn, flow_runs, log=print, recent_flow_runs=0, anchor=None):
    """Write copies of the template until about ``flow_runs`` flow runs; returns (seconds, copies).

    ``recent_flow_runs`` more are written inside every retention (a larger database whose old rows are
    the same: the ids of copy ``k`` do not depend on how many copies there are). ``anchor``: the newest
    time, now by default; databases compared with each other get the same. ``conn`` must be in
    autocommit mode, on a database made by ``record_history`` + ``capture``.
    """
    t0 = time.monotonic()
    per_copy = conn.execute("SELECT count(*) FROM tpl.flow_run").fetchone()[0]
    copies = max(1, -(-flow_runs // per_copy))
    recent = -(-recent_flow_runs // per_copy) if recent_flow_runs else 0
    anchor = anchor or conn.execute("SELECT now()").fetchone()[0]
    indexes = conn.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index AS i"
        " JOIN pg_class AS c ON c.oid = i.indrelid JOIN pg_namespace AS n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relname = ANY(%s) AND NOT i.indisprimary"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint AS k WHERE k.conindid = i.indexrelid)",
        (list(TABLES),)).fetchall()
    for name, _definition in indexes:
        conn.execute("DROP INDEX %s" % name)
    statements = {table: _copy_sql(conn, table, copies, recent) for table in TABLES}
    # Foreign keys are consistent by construction (every id maps the same way); do not check them row by row.
    conn.execute("SET session_replication_role = replica")
    chunk = 500
    for k0 in range(1, copies + recent + 1, chunk):
        k1 = min(copies + recent, k0 + chunk - 1)
        for table in TABLES:
            conn.execute(statements[table], {"k0": k0, "k1": k1, "anchor": anchor})
        log("  copies %d / %d (%.0f s)" % (k1, copies + recent, time.monotonic() - t0))
    conn.execute("SET session_replication_role = DEFAULT")
    t1 = time.monotonic()
    for _name, definition in indexes:
        conn.execute(definition)
    log("  indexes rebuilt (%.0f s)" % (time.monotonic() - t1))
    conn.execute("""
        INSERT INTO public.artifact_collection (key, latest_id, task_run_id, flow_run_id, type, data, description,
                                               metadata_, created, updated)
        SELECT DISTINCT ON (a.key) a.key, a.id, a.task_run_id, a.flow_run_id, a.type, a.data, a.description,
               a.metadata_, a.created, a.updated
        FROM public.artifact AS a WHERE a.key IS NOT NULL ORDER BY a.key, a.created DESC""")
    conn.execute("""
        INSERT INTO public.flow_run (id, name, state_type, state_name, flow_id, start_time, expected_start_time,
                                     created, updated, run_count, empirical_policy, tags, auto_scheduled)
        SELECT %s, 'bench-writer', 'RUNNING', 'Running', f.flow_id, now(), now(), now(), now(), 1,
               f.empirical_policy, '[]', false
        FROM tpl.flow_run AS f LIMIT 1""", (WRITER_FLOW_RUN,))
    return time.monotonic() - t0, copies + recent


def make_orphans(conn):
    """Delete about 1 % of the top-level flow runs older than eight days, as the API does (their logs and
    artifacts stay); returns how many. Chosen by a hash of the id, so a larger database made with the same
    template and anchor loses the same ones."""
    cur = conn.execute(
        "DELETE FROM public.flow_run WHERE parent_task_run_id IS NULL AND end_time < now() - interval '8 days'"
        " AND md5(id::text) < '028f' AND id <> %s", (WRITER_FLOW_RUN,))
    return cur.rowcount


def finish(conn):
    """Drop the template and settle the tables (statistics, visibility map) as a running server's would be."""
    conn.execute("DROP SCHEMA tpl CASCADE")
    for table in TABLES + ("artifact_collection",):
        conn.execute("VACUUM ANALYZE public.%s" % table)


def sizes(conn):
    """Rows and bytes (with indexes and TOAST) of the benchmark's tables."""
    out = {}
    for table in TABLES + ("artifact_collection",):
        rows, size = conn.execute("SELECT count(*), pg_total_relation_size('public.%s') FROM public.%s"
                                  % (table, table)).fetchone()
        out[table] = {"rows": rows, "bytes": size}
    return out
