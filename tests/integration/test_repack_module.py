"""pgtidy.maintenance.repack through real ansible-playbook runs: check mode, real run, re-run."""
from __future__ import annotations

import json
import os
import shutil

import psycopg
import pytest

from conftest import ROOT, conn_params

REPACK_BIN = shutil.which("pg_repack") or "/usr/lib/postgresql/15/bin/pg_repack"
MODULE = "pgtidy.maintenance.repack"

pytestmark = pytest.mark.skipif(not os.path.exists(REPACK_BIN), reason="pg_repack client not installed")


def sql(pg, db, statement):
    with psycopg.connect(pg.dsn(db), autocommit=True) as conn:
        cur = conn.execute(statement)
        return cur.fetchall() if cur.description else None


def bloat(pg, db, table):
    sql(pg, db, "CREATE TABLE %s (id bigserial PRIMARY KEY, payload text NOT NULL, n int)" % table)
    sql(pg, db, "INSERT INTO %s (payload, n) SELECT repeat(md5(g::text), 8), g FROM generate_series(1, 15000) g"
        % table)
    sql(pg, db, "DELETE FROM %s WHERE n %% 4 <> 0" % table)
    sql(pg, db, "VACUUM ANALYZE %s" % table)


def state(pg, db, table):
    return sql(pg, db, "SELECT relfilenode, pg_total_relation_size(oid) FROM pg_class WHERE oid = '%s'::regclass"
               % table)[0]


def test_module_check_then_run_then_rerun(pg, fresh_db, lock_file, ansible, tmp_path):
    sql(pg, fresh_db, "CREATE EXTENSION pg_repack")
    bloat(pg, fresh_db, "run_events")
    sql(pg, fresh_db, "CREATE TABLE tiny (id int PRIMARY KEY)")
    args = conn_params(pg, fresh_db, lock_file=lock_file, auto=True, min_table_size="1MB",
                       report_file=str(tmp_path / "report.json"), metrics_file=str(tmp_path / "repack.prom"))
    node, size = state(pg, fresh_db, "run_events")

    rc, check, out = ansible.run_task(MODULE, args, check=True, diff=True)
    assert rc == 0, out
    assert check["changed"] and check["check_mode"] and check["repacked"] == ["public.run_events"]
    assert check["diff"]["before"]["public.run_events"]["size"] == size
    assert state(pg, fresh_db, "run_events") == (node, size), "check mode rewrote the table"

    rc, real, out = ansible.run_task(MODULE, args)
    assert rc == 0, out
    assert real["changed"] and real["repacked"] == check["repacked"]
    entry = real["tables"]["public.run_events"]
    new_node, new_size = state(pg, fresh_db, "run_events")
    assert new_node != node and entry["size_after"] == new_size and entry["reclaimed_bytes"] == size - new_size
    assert new_size < size / 2
    report = json.load(open(tmp_path / "report.json"))
    assert report["repacked"] == ["public.run_events"] and report["reclaimed_bytes"] == entry["reclaimed_bytes"]
    metrics = open(tmp_path / "repack.prom").read()
    assert 'pgtidy_repack_reclaimed_bytes{database="%s",job="repack"} %d' % (fresh_db, entry["reclaimed_bytes"]) \
        in metrics
    assert 'pgtidy_run_success{database="%s",job="repack"} 1' % fresh_db in metrics

    rc, again, out = ansible.run_task(MODULE, args)
    assert rc == 0, out
    assert not again["changed"] and again["repacked"] == [] and again["candidates_below_threshold"] == 2
    assert state(pg, fresh_db, "run_events") == (new_node, new_size)


def test_module_skips_cleanly_without_the_extension(pg, fresh_db, lock_file, ansible):
    bloat(pg, fresh_db, "run_events")
    rc, result, out = ansible.run_task(MODULE, conn_params(pg, fresh_db, lock_file=lock_file,
                                                           tables=["run_events"], min_table_size="0"))
    assert rc == 0, out
    assert result["skipped"] and not result["changed"]
    assert "pg_repack extension is not installed" in result["skip_reason"]


def test_module_fails_on_version_mismatch_and_hides_the_password(pg, fresh_db, lock_file, ansible, tmp_path):
    sql(pg, fresh_db, "CREATE EXTENSION pg_repack")
    bloat(pg, fresh_db, "run_events")
    wrapper = tmp_path / "pg_repack_old"
    wrapper.write_text('#!/bin/sh\nif [ "$1" = "--version" ]; then echo "pg_repack 1.4.7"; exit 0; fi\n'
                       'exec %s "$@"\n' % REPACK_BIN)
    wrapper.chmod(0o755)
    secret = "Zx-module-secret-77"
    rc, result, out = ansible.run_task(MODULE, conn_params(
        pg, fresh_db, lock_file=lock_file, tables=["run_events"], min_table_size="0", repack_command=str(wrapper),
        login_password=secret))
    assert rc != 0
    assert result["error_kind"] == "version_mismatch"
    assert "1.4.7" in result["msg"] and "1.4.8" in result["msg"]
    assert secret not in out


def test_playbook_repacks_and_reports(pg, fresh_db, lock_file, ansible):
    sql(pg, fresh_db, "CREATE EXTENSION pg_repack")
    bloat(pg, fresh_db, "log")
    node, dummy = state(pg, fresh_db, "log")
    extra = {"pgtidy_login_host": "127.0.0.1", "pgtidy_login_port": pg.port, "pgtidy_login_db": fresh_db,
             "pgtidy_ssl_mode": "disable", "pgtidy_lock_file": lock_file, "pgtidy_repack_profile": "prefect",
             "pgtidy_repack_min_table_size": "0"}
    proc = ansible.run_playbook(os.path.join(ROOT, "playbooks", "repack.yml"), extra_vars=extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "repacked public.log" in proc.stdout
    assert state(pg, fresh_db, "log")[0] != node
