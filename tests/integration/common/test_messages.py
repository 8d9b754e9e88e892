"""Messages that say what happened, through real ansible-playbook runs against real PostgreSQL and pg_repack:
a table whose indexes alone were rebuilt is not called repacked, a profile that matched nothing says so, the
dead-tuple share never exceeds 100 %, sizes are printed in the units they are divided by, output files in a
missing directory are refused before the database is touched, and SQL shown to people runs as shown."""
from __future__ import annotations

import os
import re
import shutil

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql as psql

from conftest import conn_params

REPACK_BIN = shutil.which("pg_repack") or "/usr/lib/postgresql/15/bin/pg_repack"
needs_repack = pytest.mark.skipif(not os.path.exists(REPACK_BIN), reason="pg_repack client not installed")

REPACK = "pgtidy.maintenance.repack"
HEALTH = "pgtidy.maintenance.health_info"
MiB = 1 << 20


def sql(pg, db, statement, args=None):
    with psycopg.connect(pg.dsn(db), autocommit=True) as conn:
        cur = conn.execute(statement, args)
        return cur.fetchall() if cur.description else None


def health_args(pg, db, **extra):
    args = conn_params(pg, db, **extra)
    args.pop("lock_wait")
    return args


def wait_for_stats(pg, db, table, dead, schema="public"):
    """Statistics reach pg_stat_user_tables asynchronously (about a second after the transaction)."""
    import time
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        row = sql(pg, db, "SELECT n_live_tup, n_dead_tup FROM pg_stat_user_tables WHERE schemaname = %s"
                  " AND relname = %s", (schema, table))
        if row and row[0][1] >= dead:
            return row[0]
        time.sleep(0.2)
    raise AssertionError("no statistics for %s.%s" % (schema, table))


@needs_repack
def test_indexes_rebuilt_alone_are_not_called_a_repack(pg, fresh_db, lock_file, ansible):
    """A 34 MiB table, 80 % of its heap reclaimable, under min_table_size (100 MiB): only its index is rebuilt,
    and the message says so and why the heap was left, with the figures."""
    sql(pg, fresh_db, "CREATE EXTENSION pg_repack")
    sql(pg, fresh_db, "CREATE TABLE bloat (id bigserial PRIMARY KEY, payload text NOT NULL, n int)"
        " WITH (autovacuum_enabled = false)")
    sql(pg, fresh_db, "INSERT INTO bloat (payload, n) SELECT repeat(md5(g::text), 4), g"
        " FROM generate_series(1, 190000) g")
    sql(pg, fresh_db, "DELETE FROM bloat WHERE n % 5 <> 0")
    sql(pg, fresh_db, "VACUUM ANALYZE bloat")
    size, node = sql(pg, fresh_db, "SELECT pg_total_relation_size('bloat'), relfilenode FROM pg_class"
                     " WHERE relname = 'bloat'")[0]
    assert 30 * MiB < size < 40 * MiB, size
    rc, result, out = ansible.run_task(REPACK, conn_params(pg, fresh_db, lock_file=lock_file, tables=["bloat"]))
    assert rc == 0, out
    entry = result["tables"]["public.bloat"]
    assert entry["status"] == "repacked" and entry["mode"] == "indexes", entry
    assert entry["estimated_reclaimable_fraction"] > 0.7 and entry["rebuild_indexes"] == ["bloat_pkey"]
    assert sql(pg, fresh_db, "SELECT relfilenode FROM pg_class WHERE relname = 'bloat'")[0][0] == node
    msg = result["msg"]
    assert "repacked public.bloat" not in msg, msg
    assert msg.startswith("rebuilt only the indexes of public.bloat (bloat_pkey), not its heap: "), msg
    assert "its %.1f MiB (with indexes and TOAST) is below min_table_size 100.0 MiB" % (size / MiB) in msg, msg
    assert re.search(r"though an estimated [0-9.]+ MiB \(8\d %\) of its heap is reclaimable", msg), msg
    assert msg.endswith("(reclaimed %.1f MiB)" % (entry["reclaimed_bytes"] / MiB)), msg


@needs_repack
def test_a_profile_that_matched_no_table_says_so(pg, fresh_db, lock_file, ansible):
    sql(pg, fresh_db, "CREATE EXTENSION pg_repack")
    sql(pg, fresh_db, "CREATE TABLE flow_run (id int PRIMARY KEY)")   # a Prefect table, no Dagster one
    rc, result, out = ansible.run_task(REPACK, conn_params(pg, fresh_db, lock_file=lock_file, auto=True,
                                                           profile="dagster"))
    assert rc == 0, out
    assert not result["changed"] and result["tables_considered"] == 0
    assert result["msg"].startswith("nothing repacked: profile dagster matched no table in schema public"), result
    assert "event_logs" in result["msg"]
    assert any("matched no table" in w for w in result.get("warnings", [])), result

    # A profile that matched tables, all compact, says only that.
    rc, result, out = ansible.run_task(REPACK, conn_params(pg, fresh_db, lock_file=lock_file, auto=True,
                                                           profile="prefect"))
    assert rc == 0, out
    assert result["tables_considered"] == 1 and result["msg"] == "nothing repacked; 1 more below the thresholds"


def test_dead_share_is_at_most_100_percent_and_sizes_are_iec(pg, fresh_db, ansible, tmp_path):
    """9 live rows and 18 dead ones: 67 % of the table's tuples are dead (it used to say 200 %)."""
    sql(pg, fresh_db, "CREATE TABLE runs (id int PRIMARY KEY, payload text) WITH (autovacuum_enabled = false)")
    sql(pg, fresh_db, "INSERT INTO runs SELECT g, repeat('x', 100) FROM generate_series(1, 27) g")
    sql(pg, fresh_db, "DELETE FROM runs WHERE id > 9")
    assert wait_for_stats(pg, fresh_db, "runs", 18) == (9, 18)
    metrics = tmp_path / "health.prom"
    rc, result, out = ansible.run_task(HEALTH, health_args(pg, fresh_db, metrics_file=str(metrics)))
    assert rc == 0, out
    table = next(t for t in result["tables"] if t["name"] == "runs")
    assert table["dead_ratio_percent"] == round(100.0 * 18 / 27, 2)
    line = next(line for line in result["summary_lines"] if line.startswith("public.runs "))
    cells = line.split()
    header = next(line for line in result["summary_lines"] if line.startswith("TABLE "))
    assert cells[header.split().index("DEAD%") + 4] == "67", (header, line)   # 4 sizes are two words each
    families = {f.name: f for f in text_string_to_metric_families(metrics.read_text())}
    ratio = [s.value for s in families["pgtidy_table_dead_ratio"].samples if s.labels["table"] == "runs"]
    assert ratio == [pytest.approx(18 / 27, abs=1e-4)]
    assert "dead / (live + dead)" in families["pgtidy_table_dead_ratio"].documentation

    # Sizes: binary units, named as such (kB/MB would mean 1000 and 1000 ** 2 where options are parsed).
    text = "\n".join(result["summary_lines"])
    assert re.search(r"\d (KiB|MiB)\b", text), text
    assert not re.search(r"\d (kB|KB|MB|GB|TB)\b", text), text
    assert "KiB" in line


@needs_repack
def test_output_files_in_a_missing_directory_are_refused_before_the_database(pg, fresh_db, lock_file, ansible, tmp_path):
    sql(pg, fresh_db, "CREATE EXTENSION pg_repack")
    sql(pg, fresh_db, "CREATE TABLE t (id bigserial PRIMARY KEY, payload text)")
    sql(pg, fresh_db, "INSERT INTO t (payload) SELECT repeat('x', 200) FROM generate_series(1, 20000)")
    sql(pg, fresh_db, "DELETE FROM t WHERE id % 2 = 0")
    sql(pg, fresh_db, "VACUUM ANALYZE t")
    node = sql(pg, fresh_db, "SELECT relfilenode FROM pg_class WHERE relname = 't'")[0][0]
    missing = tmp_path / "no-such-dir"
    base = conn_params(pg, fresh_db, lock_file=lock_file, tables=["t"], min_table_size="0")
    for option in ("report_file", "metrics_file"):
        rc, result, out = ansible.run_task(REPACK, dict(base, **{option: str(missing / "out")}))
        assert rc != 0, out
        assert result["error_kind"] == "report_file_refused", result
        assert (result["refused_option"], result["refused_file"]) == (option, str(missing / "out"))
        assert result["msg"].startswith("%s %s refused: its directory %s does not exist" % (
            option, missing / "out", missing)), result["msg"]
        assert "check %s for a typo, or create the directory" % option in result["msg"]
        assert not missing.exists(), "the directory was created"
        assert sql(pg, fresh_db, "SELECT relfilenode FROM pg_class WHERE relname = 't'")[0][0] == node
        assert not os.path.exists(lock_file), "the lockfile was taken: the refusal came too late"

    # health_info: the report, the metrics and the history file, refused before connecting: as a role that may
    # not connect at all, the refusal is what the task reports, not a connection failure.
    role = "refused_" + fresh_db
    sql(pg, fresh_db, 'CREATE ROLE "%s" LOGIN CONNECTION LIMIT 0' % role)
    for option in ("report_file", "metrics_file", "history_file"):
        args = health_args(pg, fresh_db, login_user=role, **{option: str(missing / "out")})
        rc, result, out = ansible.run_task(HEALTH, args)
        assert rc != 0, out
        assert result["error_kind"] == "report_file_refused", result
        assert "%s %s refused" % (option, missing / "out") in result["msg"]
        assert not missing.exists()
    rc, result, out = ansible.run_task(HEALTH, health_args(pg, fresh_db, login_user=role))
    assert rc != 0 and result["error_kind"] == "connection_failed", result   # the role really cannot connect
    sql(pg, fresh_db, 'DROP ROLE "%s"' % role)


def _shown_name(text):
    """The first quoted, qualified name in a piece of SQL shown to people."""
    match = re.search(r'((?:"(?:[^"]|"")*")(?:\."(?:[^"]|"")*")*)', text)
    assert match, text
    return match.group(1)


def _awkward_table(pg, db, rows=20000, keep=4000):
    sql(pg, db, 'CREATE SCHEMA "My Schema"')
    sql(pg, db, 'CREATE TABLE "My Schema"."Events" (id bigserial PRIMARY KEY, payload text NOT NULL)'
        " WITH (autovacuum_enabled = false)")
    sql(pg, db, 'INSERT INTO "My Schema"."Events" (payload) SELECT repeat(md5(g::text), 4)'
        " FROM generate_series(1, %d) g" % rows)
    sql(pg, db, 'ANALYZE "My Schema"."Events"')
    sql(pg, db, 'DELETE FROM "My Schema"."Events" WHERE id > %d' % keep)


def test_health_advice_names_a_mixed_case_table_as_sql_spells_it(pg, fresh_db, ansible):
    _awkward_table(pg, fresh_db)
    wait_for_stats(pg, fresh_db, "Events", 16000, schema="My Schema")
    rc, result, out = ansible.run_task(HEALTH, health_args(pg, fresh_db))
    assert rc == 0, out
    with psycopg.connect(pg.dsn(fresh_db), autocommit=True) as conn:
        expected = psql.Identifier("My Schema", "Events").as_string(conn)
    assert expected == '"My Schema"."Events"'
    advice = {f["check"]: f["recommendation"] for f in result["findings"] if f["object"] == "My Schema.Events"}
    assert {"dead_tuples", "autovacuum_disabled"} <= set(advice), result["findings"]
    vacuum = advice["dead_tuples"].split(";")[0]
    assert vacuum == "VACUUM (ANALYZE) %s" % expected
    reset = advice["autovacuum_disabled"]
    assert reset == "ALTER TABLE %s RESET (autovacuum_enabled)" % expected
    for statement in (vacuum, reset):        # what a person would paste into psql runs as shown
        sql(pg, fresh_db, statement)
    assert sql(pg, fresh_db, "SELECT reloptions FROM pg_class WHERE relname = 'Events'")[0][0] is None


@needs_repack
def test_repack_advice_names_a_mixed_case_table_as_sql_spells_it(pg, fresh_db, lock_file, ansible):
    sql(pg, fresh_db, "CREATE EXTENSION pg_repack")
    _awkward_table(pg, fresh_db)
    args = conn_params(pg, fresh_db, lock_file=lock_file, tables=["My Schema.Events"], min_table_size="0")
    rc, result, out = ansible.run_task(REPACK, args, check=True)
    assert rc == 0, out
    entry = result["tables"]["My Schema.Events"]
    assert (entry["status"], entry["reason"]) == ("skipped", "needs_analyze"), entry
    with psycopg.connect(pg.dsn(fresh_db), autocommit=True) as conn:
        expected = psql.Identifier("My Schema", "Events").as_string(conn)
    assert "run ANALYZE %s beforehand" % expected in entry["fix"], entry["fix"]
    shown = _shown_name(entry["fix"])
    assert shown == expected
    sql(pg, fresh_db, "ANALYZE %s" % shown)          # the advice, followed as shown
    rc, result, out = ansible.run_task(REPACK, args, check=True)
    assert rc == 0, out
    assert result["tables"]["My Schema.Events"]["status"] == "repacked", result["tables"]
    rc, result, out = ansible.run_task(REPACK, args)
    assert rc == 0 and result["repacked"] == ["My Schema.Events"], out


def test_dagster_prune_doc_does_not_say_runs_are_never_touched():
    """ansible-doc opens with what the module deletes: runs go when run_retention_days says so."""
    import json
    import subprocess
    import sys

    from conftest import COLLECTIONS_ROOT
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT)
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-doc"), "--json",
                           "pgtidy.maintenance.dagster_prune"], capture_output=True, text=True, env=env, check=True)
    doc = json.loads(proc.stdout)["pgtidy.maintenance.dagster_prune"]["doc"]
    opening = " ".join(doc["description"][0].split())
    assert "never touched" not in opening.split("Asset keys", maxsplit=1)[0], opening    # runs are retired on request
    assert "run_retention_days" in opening and "retired" in opening, opening
    assert opening.endswith("Asset keys, instigators, cursors and backfills are never touched."), opening
