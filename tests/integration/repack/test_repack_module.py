"""pgtidy.maintenance.repack through real ansible-playbook runs: check mode, real run, re-run."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

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


@pytest.mark.system_python
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


def test_tables_with_auto_is_refused_before_anything_is_locked(pg, fresh_db, lock_file, ansible):
    """Either tables or auto: true, checked by the core with a message that says so, before the lockfile. The
    argument spec cannot say it (mutually_exclusive counts options given, and auto: false beside tables is no
    conflict: the repack playbook's module_defaults pass it whenever tables are named)."""
    rc, result, out = ansible.run_task(MODULE, conn_params(pg, fresh_db, lock_file=lock_file,
                                                           tables=["run_events"], auto=True))
    assert rc != 0 and result["error_kind"] == "invalid_request", out
    assert result["msg"] == "give either tables or auto: true, not both", out
    rc, result, out = ansible.run_task(MODULE, conn_params(pg, fresh_db, lock_file=lock_file))
    assert rc != 0 and result["error_kind"] == "invalid_request", out
    assert result["msg"] == "nothing to repack: list tables, or set auto: true to choose them by profile", out
    assert not os.path.exists(lock_file), "a refused request took the lockfile"
    rc, result, out = ansible.run_task(MODULE, conn_params(pg, fresh_db, lock_file=lock_file,
                                                           tables=["run_events"], auto=False, min_table_size="0"))
    assert rc == 0 and result["skipped"], out  # accepted: fresh_db has no pg_repack extension
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


def run_as_a_person_sees_it(ansible, args, check=False):
    """One task through ansible-playbook with the default callback and no -v: the output a person reads."""
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [{"name": "under test", MODULE: args}]}]
    path = os.path.join(ansible.tmpdir, "play-%s.json" % uuid.uuid4().hex[:8])
    with open(path, "w") as fh:
        json.dump(play, fh)
    env = dict(ansible.env(), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default")
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
           path] + (["--check"] if check else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_default_output_says_why_the_run_was_skipped(pg, fresh_db, lock_file, ansible):
    bloat(pg, fresh_db, "run_events")
    args = conn_params(pg, fresh_db, lock_file=lock_file, tables=["run_events"], min_table_size="0")
    rc, out = run_as_a_person_sees_it(ansible, args)
    assert rc == 0, out
    assert "skipping: [localhost]" in out
    assert "[WARNING]" in out and "pg_repack extension is not installed in database %s" % fresh_db in out, out
    rc, result, out = ansible.run_task(MODULE, args)
    assert result["skipped"] and result["msg"] == result["skip_reason"]


def test_default_output_names_each_table_the_user_must_act_on(pg, fresh_db, lock_file, ansible):
    sql(pg, fresh_db, "CREATE EXTENSION pg_repack")
    sql(pg, fresh_db, "CREATE TABLE nokey (payload text NOT NULL, n int)")
    sql(pg, fresh_db, "INSERT INTO nokey SELECT repeat(md5(g::text), 8), g FROM generate_series(1, 15000) g")
    sql(pg, fresh_db, "DELETE FROM nokey WHERE n % 4 <> 0")
    sql(pg, fresh_db, "VACUUM ANALYZE nokey")
    # Pruned, vacuumed, never analyzed: check mode cannot estimate it without writing statistics.
    sql(pg, fresh_db, "CREATE TABLE run_events (id bigserial PRIMARY KEY, payload text NOT NULL, n int)"
                      " WITH (autovacuum_enabled = false)")
    sql(pg, fresh_db, "INSERT INTO run_events (payload, n) SELECT repeat(md5(g::text), 8), g"
                      " FROM generate_series(1, 15000) g")
    sql(pg, fresh_db, "DELETE FROM run_events WHERE n % 4 <> 0")
    sql(pg, fresh_db, "VACUUM run_events")
    args = conn_params(pg, fresh_db, lock_file=lock_file, tables=["nokey", "run_events"], min_table_size="0")

    rc, out = run_as_a_person_sees_it(ansible, args, check=True)
    assert rc == 0, out
    warnings = [line for line in out.splitlines() if line.startswith("[WARNING]")]
    assert any("public.nokey" in line and "no_key" in line for line in warnings), out
    assert any("public.run_events" in line and "needs_analyze" in line for line in warnings), out

    rc, result, out = ansible.run_task(MODULE, args)
    assert rc == 0, out
    assert result["repacked"] == ["public.run_events"] and result["tables"]["public.run_events"]["analyzed"]
    assert "repacked public.run_events" in result["msg"] and "public.nokey (no_key)" in result["msg"]
    assert result["action_needed"] == [line for line in result["warnings"] if "public." in line]
    assert len(result["action_needed"]) == 1 and "primary key" in result["action_needed"][0]
