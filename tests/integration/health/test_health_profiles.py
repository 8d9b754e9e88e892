"""Orchestrator profiles: a real Dagster database (dagster instance migrate + in-process runs), a schema
with Prefect's table names, and a database of neither."""
from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import uuid

import psycopg
import pytest

from conftest import conn_params, task_result

from ansible_collections.pgtidy.maintenance.plugins.module_utils._dagster.rules import DagsterProfile
from ansible_collections.pgtidy.maintenance.plugins.module_utils._health.health import run_health
from ansible_collections.pgtidy.maintenance.plugins.module_utils._prefect.rules import PrefectProfile
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.prune import run_prune

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

DAGSTER_RUNS = r'''
import collections, json, sys
import dagster as dg

@dg.asset
def raw(context):
    context.log.debug("debug line")
    context.log.info("info line")
    context.log.warning("warning line")
    return 1

@dg.asset
def cleaned(context, raw):
    context.log.info("cleaning")
    return raw + 1

@dg.op
def broken(context):
    context.log.error("about to fail")
    raise Exception("broken on purpose")

@dg.job
def failing_job():
    broken()

with dg.DagsterInstance.get() as instance:
    for dummy in range(3):
        dg.materialize([raw, cleaned], instance=instance)
    failing_job.execute_in_process(instance=instance, raise_on_error=False)
    runs = instance.get_runs()
    statuses = collections.Counter(r.status.value for r in runs)
    json.dump({"run_ids": [r.run_id for r in reversed(runs)], "by_status": dict(statuses)}, sys.stdout)
'''


def health_params(pg, db, **extra):
    params = conn_params(pg, db, **extra)
    params.pop("lock_wait")
    return params


@pytest.fixture(scope="module")
def dagster_db(pg, tmp_path_factory):
    """Four real runs (three successful materializations, one failure); the first two moved 100 days back."""
    db = "dagster_health_" + uuid.uuid4().hex[:6]
    pg.create_db(db)
    home = str(tmp_path_factory.mktemp("dagster_home"))
    with open(os.path.join(home, "dagster.yaml"), "w") as fh:
        fh.write("storage:\n  postgres:\n    postgres_db:\n      username: postgres\n      password: \"%s\"\n"
                 "      hostname: 127.0.0.1\n      db_name: %s\n      port: %d\n      scheme: postgresql+psycopg2\n"
                 "telemetry:\n  enabled: false\n" % (pg.password or "", db, pg.port))
    env = dict(os.environ, DAGSTER_HOME=home)
    bindir = os.path.dirname(sys.executable)
    subprocess.run([os.path.join(bindir, "dagster"), "instance", "migrate"], check=True, capture_output=True, env=env)
    proc = subprocess.run([sys.executable, "-c", DAGSTER_RUNS], check=True, capture_output=True, text=True, env=env)
    manifest = json.loads(proc.stdout[proc.stdout.index("{"):])
    with psycopg.connect(pg.dsn(db), autocommit=True) as c:
        c.execute("UPDATE event_logs SET timestamp = timestamp - interval '100 days' WHERE run_id = ANY(%s)",
                  (manifest["run_ids"][:2],))
        c.execute("ANALYZE")
    manifest["db"] = db
    yield manifest
    pg.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % db)


def exact_categories(pg, db):
    with psycopg.connect(pg.dsn(db)) as c:
        types = {t or "LOG": (n, lo, hi) for t, n, lo, hi in c.execute(
            "SELECT dagster_event_type, count(*), min(timestamp), max(timestamp) FROM event_logs GROUP BY 1")}
        levels = dict(c.execute("SELECT (event::json ->> 'level')::int, count(*) FROM event_logs"
                                " WHERE dagster_event_type IS NULL GROUP BY 1").fetchall())
    return types, levels


@pytest.mark.newest_major
def test_dagster_profile_exact_categories(pg, dagster_db):
    result = run_health(health_params(pg, dagster_db["db"]))
    assert result["profile"] == "dagster"
    ev = result["orchestrator"]["event_logs"]
    assert ev["exact"] is True
    types, levels = exact_categories(pg, dagster_db["db"])
    assert ev["rows"] == sum(n for n, dummy0, dummy in types.values())
    assert {t: v["rows"] for t, v in ev["by_event_type"].items()} == {t: n for t, (n, dummy0, dummy) in types.items()}
    for etype, (dummy, oldest, newest) in types.items():
        assert ev["by_event_type"][etype]["oldest"] == oldest.isoformat()
        assert ev["by_event_type"][etype]["newest"] == newest.isoformat()
    names = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR"}
    assert ev["log_lines_by_level"] == {names[lvl]: n for lvl, n in levels.items()}
    assert ev["log_lines_by_level"]["ERROR"] >= 1
    # Dagster's own instance API agrees on the runs
    assert result["orchestrator"]["runs"]["by_status"] == dagster_db["by_status"]
    assert result["orchestrator"]["runs"]["rows"] == len(dagster_db["run_ids"])


def test_dagster_estimates_for_a_table_past_the_exact_limit(pg, dagster_db):
    result = run_health(health_params(pg, dagster_db["db"], exact_count_limit=10))
    ev = result["orchestrator"]["event_logs"]
    assert ev["exact"] is False and "planner estimates" in ev["method"]
    types, dummy = exact_categories(pg, dagster_db["db"])
    assert set(ev["by_event_type"]) == set(types)
    for etype, (n, oldest, newest) in types.items():
        est = ev["by_event_type"][etype]
        assert abs(est["rows"] - n) <= max(2, n // 5), (etype, est, n)
        # ids grow with time, so the first and last id of a type carry its oldest and newest timestamps
        assert est["oldest"] == oldest.isoformat() and est["newest"] == newest.isoformat()
    assert abs(sum(ev["log_lines_by_level"].values()) - types["LOG"][0]) <= max(2, types["LOG"][0] // 5)
    assert result["orchestrator"]["runs"]["exact"] is True  # four rows stay below the limit: counted


@pytest.mark.newest_major
def test_retention_prediction_matches_a_real_prune(pg, dagster_db, tmp_path, same_cutoffs):
    result = run_health(health_params(pg, dagster_db["db"]))
    retention = result["orchestrator"]["retention"]
    predicted = {name: h["rows"] for name, h in retention["handlers"].items()}
    assert retention["next_run_rows"] == sum(predicted.values()) > 0
    assert retention["method"].startswith("dagster_prune")
    assert retention["next_run_capped"] is False and retention["rows_left_after_next_run"] == 0
    # DEBUG lines past 7 days and noise events past 30 days of the two backdated runs
    assert predicted["python_logs_debug"] > 0 and predicted["events_handled_output"] > 0
    assert predicted["python_logs_info"] > 0 and predicted["python_logs_warning"] > 0  # 100 days > 90
    assert any("would delete %d rows" % retention["next_run_rows"] in line for line in result["summary_lines"])

    clone = "clone_" + uuid.uuid4().hex[:8]
    pg.psql('CREATE DATABASE "%s" TEMPLATE "%s"' % (clone, dagster_db["db"]))
    try:
        pruned = run_prune(dict(conn_params(pg, clone), lock_file=str(tmp_path / "lock")), DagsterProfile())
        assert {name: h["deleted"] for name, h in pruned["handlers"].items()} == predicted
        after = run_health(health_params(pg, clone))
        assert after["orchestrator"]["retention"]["next_run_rows"] == 0
    finally:
        pg.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % clone)

    capped = run_health(health_params(pg, dagster_db["db"], dagster_retention={"max_rows": 5, "batch_size": 5}))
    ret = capped["orchestrator"]["retention"]
    assert ret["next_run_capped"] is True and ret["next_run_rows"] == 5
    assert ret["next_run_rows"] + ret["rows_left_after_next_run"] == retention["next_run_rows"]
    longer = run_health(health_params(pg, dagster_db["db"], dagster_retention={
        "log_retention_days": {"debug": 365, "info": 365, "warning": 365}, "event_retention_days": 365}))
    assert longer["orchestrator"]["retention"]["next_run_rows"] == 0


@pytest.mark.system_python
def test_health_playbook_summary_and_history_on_dagster(pg, dagster_db, ansible, tmp_path):
    history = tmp_path / "history.json"
    extra = {"pgtidy_login_host": "127.0.0.1", "pgtidy_login_port": pg.port, "pgtidy_login_db": dagster_db["db"],
             "pgtidy_login_password": pg.password or "", "pgtidy_ssl_mode": "disable",
             "pgtidy_health_history_file": str(history)}
    playbook = os.path.join(ROOT, "playbooks", "health.yml")
    checked = ansible.run_playbook(playbook, extra_vars=extra, check=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    gathered = task_result(checked.stdout, "Gather health facts")
    assert gathered["changed"] is False and gathered["check_mode"] is True
    lines = task_result(checked.stdout, "Summary")["msg"]
    assert lines[0].startswith("pgtidy health: %s (dagster profile)" % dagster_db["db"])
    assert any(line.startswith("TABLE ") and "DEAD%" in line for line in lines)
    assert any(line.startswith("public.event_logs") for line in lines)
    assert any(line.startswith("event_logs: ") for line in lines)
    assert any(line.startswith("FINDINGS: ") for line in lines)
    real = ansible.run_playbook(playbook, extra_vars=dict(extra, pgtidy_health_fail_on_critical=True))
    assert real.returncode == 0, real.stdout + real.stderr
    gathered = task_result(real.stdout, "Gather health facts")
    assert gathered["changed"] is False and gathered["growth"]["samples"] == 2
    assert len(json.loads(history.read_text())["samples"]) == 2


def test_days_until_full_from_an_older_history(pg, dagster_db, tmp_path):
    """A history whose older samples used less disk gives a growth rate and a date the disk fills."""
    probe = run_health(health_params(pg, dagster_db["db"]))
    disk = probe["disk"]
    now = datetime.datetime.now().timestamp()
    daily = disk["free_bytes"] / 20.0  # so that the disk fills in about 20 days
    samples = [{"ts": now - d * 86400, "database_bytes": probe["database"]["size_bytes"],
                "disk_used_bytes": disk["used_bytes"] - d * daily} for d in (3, 2, 1)]
    history = tmp_path / "h.json"
    history.write_text(json.dumps({"version": 1, "samples": samples}))
    result = run_health(health_params(pg, dagster_db["db"], history_file=str(history)))
    growth = result["growth"]
    assert growth["samples"] == 4
    assert growth["disk_bytes_per_day"] == pytest.approx(daily, rel=0.05)
    assert 18 < growth["days_until_full"] < 22
    found = [f for f in result["findings"] if f["check"] == "disk_days_until_full"]
    assert [f["severity"] for f in found] == ["warning"]


def test_prefect_profile_from_prefect_table_names(pg, fresh_db):
    now = datetime.datetime.now(datetime.timezone.utc)
    with psycopg.connect(pg.dsn(fresh_db), autocommit=True) as c:
        c.execute("CREATE TABLE flow_run (id uuid PRIMARY KEY, state_type text, end_time timestamptz,"
                  " parent_task_run_id uuid)")
        c.execute("CREATE TABLE log (id uuid PRIMARY KEY, level int, timestamp timestamptz, flow_run_id uuid,"
                  " message text)")
        c.execute("CREATE TABLE events (id uuid PRIMARY KEY, occurred timestamptz NOT NULL, event text NOT NULL)")
        c.execute("INSERT INTO events SELECT gen_random_uuid(), %s - make_interval(days => g %% 20, hours => 12),"
                  " CASE WHEN g %% 3 = 0 THEN 'prefect.flow-run.heartbeat' ELSE 'prefect.flow-run.Completed' END"
                  " FROM generate_series(1, 300) g", (now,))
        c.execute("INSERT INTO flow_run SELECT gen_random_uuid(), s, %s - make_interval(days => d), NULL"
                  " FROM (VALUES ('COMPLETED', 100), ('FAILED', 95), ('RUNNING', 0), ('COMPLETED', 1)) v(s, d)", (now,))
        c.execute("INSERT INTO log SELECT gen_random_uuid(), 20, %s, NULL, 'x' FROM generate_series(1, 7)", (now,))
    result = run_health(health_params(pg, fresh_db))
    assert result["profile"] == "prefect"
    orch = result["orchestrator"]
    assert orch["events"]["by_event"] == {"prefect.flow-run.Completed": 200, "prefect.flow-run.heartbeat": 100}
    assert orch["events"]["oldest"] is not None and orch["events"]["exact"] is True
    assert orch["log"]["by_level"] == {"INFO": 7}
    assert orch["flow_run"]["by_state_type"] == {"COMPLETED": 2, "FAILED": 1, "RUNNING": 1}
    # only Prefect's table names, not its columns: the retention preview says why it is missing
    assert orch["retention"] is None
    gaps = {g["section"]: g for g in result["incomplete_sections"]}
    assert "Prefect" in gaps["prefect retention"]["reason"] and "schema" in gaps["prefect retention"]["fix"]
    assert "prefect retention unavailable (fix: set schema" in result["msg"]


def test_prefect_retention_preview_matches_a_real_prune(pg, prefect_db, lock_file):
    """A database made by a real Prefect server (tests/prefect_fixture.py): the preview is what prefect_prune deletes."""
    retention = {"flow_run_retention_days": 30, "event_retention_days": 7}
    result = run_health(health_params(pg, prefect_db, prefect_retention=retention))
    assert result["profile"] == "prefect" and result["incomplete_sections"] == []
    with psycopg.connect(pg.dsn(prefect_db)) as c:
        by_event = dict(c.execute("SELECT event, count(*) FROM events GROUP BY 1").fetchall())
        by_state = dict(c.execute("SELECT state_type::text, count(*) FROM flow_run GROUP BY 1").fetchall())
    orch = result["orchestrator"]
    assert orch["events"]["by_event"] == by_event
    assert orch["flow_run"]["by_state_type"] == by_state
    preview = orch["retention"]
    assert preview["next_run_rows"] > 0
    pruned = run_prune(dict(conn_params(pg, prefect_db), lock_file=lock_file, **retention), PrefectProfile())
    assert {n: h["deleted"] for n, h in pruned["handlers"].items()} == \
        {n: h["rows"] for n, h in preview["handlers"].items()}
    assert pruned["deleted_total"] == preview["next_run_rows"]
    after = run_health(health_params(pg, prefect_db, prefect_retention=retention))
    assert after["orchestrator"]["retention"]["next_run_rows"] == 0


def test_unknown_profile(pg, fresh_db):
    with psycopg.connect(pg.dsn(fresh_db), autocommit=True) as c:
        c.execute("CREATE TABLE job_executions (id int PRIMARY KEY)")
    result = run_health(health_params(pg, fresh_db))
    assert result["profile"] == "unknown" and result["orchestrator"] is None
    assert result["table_count"] == 1
