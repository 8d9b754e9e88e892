"""Each red flag produced for real on a small server of our own (low max_connections, a password,
WAL a slot can hold), then read back by health_info's core and through ansible-playbook."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import COLLECTIONS_ROOT, ROOT, conn_params
from pgserver import PgServer, free_port

from ansible_collections.pgtidy.maintenance.plugins.module_utils._health.health import run_health

MAX_CONNECTIONS = 12
PASSWORD = "flag-Srv-pw-7d1e"


@pytest.fixture(scope="module")
def srv(pg):
    server = PgServer(settings={"fsync": "off", "synchronous_commit": "off", "max_connections": MAX_CONNECTIONS,
                                "wal_level": "replica", "max_wal_size": "64MB"},
                      superuser_password=PASSWORD, major=pg.major).start()
    try:
        yield server
    finally:
        server.stop()


def connect(server, db="postgres", **kw):
    return psycopg.connect(server.dsn(db), autocommit=True, **kw)


def core_params(server, db, **extra):
    params = conn_params(server, db, **extra)
    params.pop("lock_wait")
    return params


def task_args(server, db, **extra):
    return core_params(server, db, **extra)


def wait_until(check, what, timeout=30):
    """Statistics reach pg_stat_* asynchronously (at most about a second after a transaction)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("gave up waiting for %s" % what)
        time.sleep(0.2)


def stat(server, db, table, column):
    with connect(server, db) as c:
        row = c.execute("SELECT %s FROM pg_stat_user_tables WHERE relname = %%s" % column, (table,)).fetchone()
        return row[0] if row else None


def by_check(result, check, obj=None):
    return [f for f in result["findings"] if f["check"] == check and (obj is None or f["object"] == obj)]


@pytest.fixture(scope="module")
def bloated_db(srv):
    """A table with autovacuum off after a mass delete (16000 dead tuples, 4000 live)."""
    srv.create_db("bloat")
    with connect(srv, "bloat") as c:
        c.execute("CREATE TABLE bloated (id serial PRIMARY KEY, payload text) WITH (autovacuum_enabled = false)")
        c.execute("INSERT INTO bloated (payload) SELECT repeat(md5(g::text), 4) FROM generate_series(1, 20000) g")
        c.execute("CREATE INDEX bloated_payload ON bloated (payload)")
        c.execute("DELETE FROM bloated WHERE id > 4000")
    wait_until(lambda: (stat(srv, "bloat", "bloated", "n_dead_tup") or 0) >= 16000, "dead tuples in statistics")
    return "bloat"


@pytest.mark.every_major
def test_bloated_table_after_mass_delete(srv, bloated_db):
    result = run_health(core_params(srv, bloated_db, thresholds={"unused_index_min_bytes": 1 << 20}))
    assert result["available"] is True and result["changed"] is False
    table = next(t for t in result["tables"] if t["name"] == "bloated")
    assert table["dead_tuples"] >= 16000 and table["live_tuples"] == 4000
    dead_share = 100.0 * table["dead_tuples"] / (table["dead_tuples"] + table["live_tuples"])
    assert table["dead_ratio_percent"] == round(dead_share, 2) and 80 <= table["dead_ratio_percent"] < 100
    assert table["autovacuum_enabled"] is False
    assert table["total_bytes"] == table["table_bytes"] + table["index_bytes"] + table["toast_bytes"]
    dead = by_check(result, "dead_tuples", "public.bloated")
    assert [f["severity"] for f in dead] == ["critical"]
    assert "VACUUM" in dead[0]["recommendation"] and "pg_repack" in dead[0]["recommendation"]
    assert by_check(result, "autovacuum_disabled", "public.bloated")[0]["severity"] == "warning"
    unused = by_check(result, "unused_index", "public.bloated_payload")
    assert unused and unused[0]["severity"] == "info"
    assert not by_check(result, "unused_index", "public.bloated_pkey")  # unique indexes are never "unused"
    assert result["findings"][0]["severity"] == "critical"
    assert any(line.startswith("public.bloated") for line in result["summary_lines"])
    # Read-only: the dead tuples are still there, nobody vacuumed.
    assert stat(srv, bloated_db, "bloated", "n_dead_tup") >= 16000
    assert stat(srv, bloated_db, "bloated", "vacuum_count") == 0


@pytest.mark.every_major
def test_hot_update_table_like_a_job_queue(srv):
    srv.create_db("jobs")
    with connect(srv, "jobs") as c:
        c.execute("CREATE TABLE job_executions (id int PRIMARY KEY, poller_instance_id int, state text,"
                  " alive_at timestamptz)")
        c.execute("CREATE INDEX job_executions_alive ON job_executions (alive_at)")
        c.execute("INSERT INTO job_executions SELECT g, g % 4, 'running', now() FROM generate_series(1, 100) g")
        for dummy in range(120):  # keep-alive: UPDATE ... SET alive_at = now() for every running job
            c.execute("UPDATE job_executions SET alive_at = clock_timestamp() WHERE state = 'running'")
    wait_until(lambda: (stat(srv, "jobs", "job_executions", "n_tup_upd") or 0) >= 12000, "update statistics")
    result = run_health(core_params(srv, "jobs"))
    hot = by_check(result, "hot_update_table", "public.job_executions")
    assert len(hot) == 1
    assert "fillfactor" in hot[0]["recommendation"]
    assert "autovacuum_vacuum_scale_factor" in hot[0]["recommendation"]
    assert hot[0]["value"] >= 12000
    table = next(t for t in result["tables"] if t["name"] == "job_executions")
    assert table["updates"] >= 12000 and table["fillfactor"] == 100
    # alive_at is indexed, so the keep-alive updates cannot be HOT
    assert table["hot_update_percent"] is not None and table["hot_update_percent"] < 50
    assert hot[0]["severity"] == "warning"


@pytest.mark.every_major
def test_idle_in_transaction_and_long_transaction(srv):
    with connect(srv) as holder:
        holder.autocommit = False
        holder.execute("SELECT pg_current_xact_id()")
        pid = holder.info.backend_pid
        time.sleep(1.5)
        result = run_health(core_params(srv, "postgres", thresholds={
            "idle_in_transaction_warning_seconds": 1, "long_transaction_warning_seconds": 1,
            "long_transaction_critical_seconds": 100000}))
        holder.rollback()
    idle = by_check(result, "idle_in_transaction")
    assert idle and idle[0]["object"] == "pid %d" % pid and idle[0]["severity"] == "warning"
    assert "pg_terminate_backend(%d)" % pid in idle[0]["recommendation"]
    assert [s["pid"] for s in result["connections"]["idle_in_transaction"]] == [pid]
    assert result["connections"]["oldest_transaction"]["pid"] == pid
    assert result["connections"]["oldest_transaction"]["age_seconds"] >= 1.5
    long_tx = by_check(result, "long_transaction")
    assert long_tx and long_tx[0]["severity"] == "warning" and long_tx[0]["object"] == "pid %d" % pid
    # the same session under the default thresholds (60 s, 300 s) is not yet a red flag
    quiet = run_health(core_params(srv, "postgres"))
    assert not by_check(quiet, "idle_in_transaction") and not by_check(quiet, "long_transaction")


def client_backends(server):
    with connect(server) as c:
        return c.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
                         " AND pid <> pg_backend_pid()").fetchone()[0]


@pytest.mark.every_major
def test_connections_near_a_lowered_max_connections(srv):
    held = []
    try:
        while client_backends(srv) < MAX_CONNECTIONS - 2:
            held.append(connect(srv))
        result = run_health(core_params(srv, "postgres"))
    finally:
        for c in held:
            c.close()
    conns = result["connections"]
    assert conns["max_connections"] == MAX_CONNECTIONS
    assert conns["total"] == MAX_CONNECTIONS - 1  # the ones held plus the check's own session
    assert conns["by_state"].get("idle", 0) >= MAX_CONNECTIONS - 2
    found = by_check(result, "connections")
    assert [f["severity"] for f in found] == ["critical"]
    assert "pooler" in found[0]["recommendation"]
    wait_until(lambda: client_backends(srv) <= 2, "closed sessions to leave pg_stat_activity")
    relaxed = run_health(core_params(srv, "postgres"))
    assert relaxed["connections"]["total"] <= 3
    assert not by_check(relaxed, "connections")


@pytest.mark.every_major
def test_replication_slot_holding_wal(srv):
    with connect(srv) as c:
        c.execute("SELECT pg_create_physical_replication_slot('forgotten_replica', true)")
        try:
            c.execute("CREATE TABLE walgen AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 120000) g")
            c.execute("DROP TABLE walgen")
            c.execute("SELECT pg_switch_wal()")
            c.execute("CHECKPOINT")
            result = run_health(core_params(srv, "postgres"))
            strict = run_health(core_params(srv, "postgres",
                                            thresholds={"slot_retained_wal_critical_bytes": 16 << 20}))
        finally:
            c.execute("SELECT pg_drop_replication_slot('forgotten_replica')")
    slot = next(s for s in result["replication_slots"] if s["name"] == "forgotten_replica")
    assert slot["active"] is False and slot["type"] == "physical"
    assert slot["retained_wal_bytes"] >= 20 << 20
    assert result["wal"]["size_bytes"] >= slot["retained_wal_bytes"] - (16 << 20)
    found = by_check(result, "replication_slot", "forgotten_replica")
    assert [f["severity"] for f in found] == ["warning"]
    assert "pg_drop_replication_slot('forgotten_replica')" in found[0]["recommendation"]
    assert [f["severity"] for f in by_check(strict, "replication_slot", "forgotten_replica")] == ["critical"]


@pytest.mark.every_major
def test_xid_age_and_disk_thresholds_from_real_values(srv):
    base = run_health(core_params(srv, "postgres"))
    xid = base["xid"]
    assert 0 < xid["max_age"] < 10 ** 7 and xid["wraparound_limit"] == 2 ** 31 - 1
    assert not by_check(base, "xid_wraparound")
    disk = base["disk"]
    assert disk["available"] and disk["source"] == "data_directory" and disk["path"] == srv.data
    assert disk["used_bytes"] + disk["free_bytes"] <= disk["total_bytes"]
    pct = 100.0 * xid["max_age"] / xid["wraparound_limit"]
    flagged = run_health(core_params(srv, "postgres", thresholds={
        "xid_age_warning_percent": pct / 2, "xid_age_critical_percent": pct * 1000,
        "disk_used_warning_percent": disk["used_percent"] - 1, "disk_used_critical_percent": 100}))
    assert [f["severity"] for f in by_check(flagged, "xid_wraparound")] == ["warning"]
    assert [f["severity"] for f in by_check(flagged, "disk_used")] == ["warning"]


def plain_reader(server):
    with connect(server) as c:
        c.execute("DROP ROLE IF EXISTS plain_reader")
        c.execute("CREATE ROLE plain_reader LOGIN PASSWORD 'plain-Reader-pw'")
    return {"login_user": "plain_reader", "login_password": "plain-Reader-pw"}


def gaps_by_section(result):
    return {g["section"]: g for g in result["incomplete_sections"]}


@pytest.mark.every_major
def test_role_without_monitoring_privileges_gets_incomplete_sections_not_a_failure(srv, bloated_db):
    result = run_health(dict(core_params(srv, bloated_db), **plain_reader(srv)))
    assert result["available"] is True and "failed" not in result
    gaps = gaps_by_section(result)
    assert gaps["wal"]["status"] == "unavailable" and "permission denied" in gaps["wal"]["reason"]
    assert gaps["wal"]["fix"] == "GRANT pg_monitor TO plain_reader"
    assert result["wal"] is None
    assert result["disk"]["available"] is False and "data_directory" in result["disk"]["reason"]
    assert gaps["disk"]["reason"] == result["disk"]["reason"]
    assert "GRANT pg_read_all_settings TO plain_reader" in gaps["disk"]["fix"] and "disk_path" in gaps["disk"]["fix"]
    assert any(t["name"] == "bloated" for t in result["tables"])
    assert by_check(result, "dead_tuples", "public.bloated")


@pytest.mark.newest_major
@pytest.mark.system_python
def test_check_mode_through_ansible_as_a_read_only_monitor(srv, bloated_db, ansible, tmp_path):
    """Check mode in a session where any write would fail: the facts are complete and nothing is written."""
    with connect(srv) as c:
        c.execute("DROP ROLE IF EXISTS monitor")
        c.execute("CREATE ROLE monitor LOGIN PASSWORD 'monitor-Pw-1' IN ROLE pg_monitor")
    args = dict(task_args(srv, bloated_db), login_user="monitor", login_password="monitor-Pw-1",
                connect_params={"options": "-c default_transaction_read_only=on"},
                thresholds={"unused_index_min_bytes": 1 << 20})
    rc, checked, out = ansible.run_task("pgtidy.maintenance.health_info", args, check=True)
    assert rc == 0, out
    assert checked["changed"] is False and checked["check_mode"] is True
    assert checked["incomplete_sections"] == [] and checked["available"] is True
    assert checked["msg"].startswith("health of %s: 1 critical" % bloated_db) and "incomplete" not in checked["msg"]
    rc, real, out = ansible.run_task("pgtidy.maintenance.health_info", args)
    assert rc == 0, out
    assert real["changed"] is False and real["check_mode"] is False

    def summary(r):
        return sorted((f["severity"], f["check"], f["object"]) for f in r["findings"])
    assert summary(checked) == summary(real)
    assert ("critical", "dead_tuples", "public.bloated") in summary(real)
    assert stat(srv, bloated_db, "bloated", "vacuum_count") == 0


def playbook_vars(server, db, **extra):
    values = {"pgtidy_login_host": "127.0.0.1", "pgtidy_login_port": server.port, "pgtidy_login_db": db,
              "pgtidy_login_password": server.password or "", "pgtidy_ssl_mode": "disable"}
    values.update(extra)
    return values


def test_limited_role_gets_incomplete_sections_once_with_fixes_not_warnings(srv, bloated_db, ansible, tmp_path):
    """A role without pg_monitor, through ansible-playbook: no [WARNING] on the run, and what it could not read
    is in the result, msg, metrics and the health playbook's default output, each with the grant that fixes it."""
    reader = plain_reader(srv)
    metrics = tmp_path / "health.prom"
    playbook = os.path.join(ROOT, "playbooks", "health.yml")
    extra = playbook_vars(srv, bloated_db, pgtidy_login_user="plain_reader",
                          pgtidy_login_password=reader["login_password"])
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps(extra))
    env = dict(ansible.env(), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default")
    rc, result, out = ansible.run_task("pgtidy.maintenance.health_info",
                                       dict(task_args(srv, bloated_db), metrics_file=str(metrics), **reader))
    default_output = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
         playbook, "-e", "@%s" % vars_file], capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert rc == 0, out
    assert not result.get("warnings"), result["warnings"]
    gaps = gaps_by_section(result)
    assert list(gaps) == ["wal", "connections", "disk"]
    assert gaps["wal"]["fix"] == "GRANT pg_monitor TO plain_reader"
    assert gaps["connections"]["status"] == "partial" and "other backend(s) hidden" in gaps["connections"]["reason"]
    assert result["connections"]["sees_all_sessions"] is False and result["connections"]["hidden_sessions"] >= 1
    assert gaps["connections"]["fix"] == "GRANT pg_read_all_stats TO plain_reader (pg_monitor includes it)"
    assert gaps["disk"]["fix"].startswith("GRANT pg_read_all_settings TO plain_reader")
    assert result["msg"].startswith("health of %s: 1 critical" % bloated_db)
    assert "; incomplete: wal unavailable (fix: GRANT pg_monitor TO plain_reader); connections partial" in result["msg"]
    lines = result["summary_lines"]
    start = lines.index("INCOMPLETE: 3 section(s) not read in full")
    assert lines[start + 1].split()[:3] == ["UNAVAILABLE", "wal", "permission"]
    assert lines[start + 2].strip() == "-> GRANT pg_monitor TO plain_reader"
    families = {f.name: f for f in text_string_to_metric_families(metrics.read_text())}
    assert families["pgtidy_health_incomplete_sections"].samples[0].value == 3
    assert families["pgtidy_health_up"].samples[0].value == 1

    text = default_output.stdout + default_output.stderr
    assert default_output.returncode == 0, text
    assert "[WARNING]" not in text
    assert "INCOMPLETE: 3 section(s) not read in full" in text
    assert "-> GRANT pg_monitor TO plain_reader" in text and "pg_read_all_settings TO plain_reader" in text


def test_wrong_password_fails_without_the_secret_or_is_data_when_asked(srv, ansible):
    wrong = "Wr0ng-Secret-Value-93"
    args = dict(task_args(srv, "postgres"), login_password=wrong)
    rc, result, out = ansible.run_task("pgtidy.maintenance.health_info", args)
    assert rc != 0
    assert result["failed"] is True and result["error_kind"] == "connection_failed"
    assert result["available"] is False and "password authentication failed" in result["reason"]
    assert "password authentication failed" in result["msg"]
    assert wrong not in out and PASSWORD not in out
    rc, result, out = ansible.run_task("pgtidy.maintenance.health_info", dict(args, fail_on_unavailable=False))
    assert rc == 0, out
    assert result["available"] is False and result["changed"] is False and not result.get("failed")
    assert "password authentication failed" in result["reason"] and result["msg"] == (
        "database postgres is unavailable: %s" % result["reason"])
    assert result["findings"][0]["check"] == "unavailable"
    assert wrong not in out and PASSWORD not in out


def down_server_args(tmp_path, **extra):
    args = {"login_host": "127.0.0.1", "login_port": free_port(), "login_db": "nothing_here", "ssl_mode": "disable",
            "connect_timeout": 3, "metrics_file": str(tmp_path / "health.prom"),
            "report_file": str(tmp_path / "health.json")}
    args.update(extra)
    return args


def health_up(metrics_path):
    families = {f.name: f for f in text_string_to_metric_families(metrics_path.read_text())}
    up = families["pgtidy_health_up"].samples[0]
    critical = [s.value for s in families["pgtidy_health_findings"].samples if s.labels["severity"] == "critical"]
    assert "pgtidy_last_success_timestamp_seconds" not in families
    return up.value, up.labels["database"], critical


def test_server_down_fails_the_task_after_writing_report_and_metrics(ansible, tmp_path):
    args = down_server_args(tmp_path)
    rc, result, out = ansible.run_task("pgtidy.maintenance.health_info", args)
    assert rc != 0, out
    assert result["failed"] is True and result["error_kind"] == "connection_failed"
    assert result["available"] is False
    assert result["msg"].startswith("database nothing_here is unavailable: ")
    assert "refused" in result["reason"] or "could not connect" in result["reason"]
    report = json.loads((tmp_path / "health.json").read_text())
    assert report["available"] is False and report["failed"] is True and report["reason"] == result["reason"]
    assert report["msg"] == result["msg"] and "UNAVAILABLE" in report["summary_lines"][0]
    assert health_up(tmp_path / "health.prom") == (0, "nothing_here", [1])


def test_server_down_is_data_with_fail_on_unavailable_false(ansible, tmp_path):
    rc, result, out = ansible.run_task("pgtidy.maintenance.health_info",
                                       down_server_args(tmp_path, fail_on_unavailable=False))
    assert rc == 0, out
    assert result["available"] is False and not result.get("failed") and "error_kind" not in result
    assert result["msg"].startswith("database nothing_here is unavailable: ")
    report = json.loads((tmp_path / "health.json").read_text())
    assert report["available"] is False and "failed" not in report
    assert health_up(tmp_path / "health.prom") == (0, "nothing_here", [1])


@pytest.mark.newest_major
@pytest.mark.system_python
def test_metrics_and_report_files_through_ansible(srv, bloated_db, ansible, tmp_path):
    metrics, report = tmp_path / "m" / "health.prom", tmp_path / "health.json"
    metrics.parent.mkdir()   # a directory that does not exist is refused (test_messages.py), not created
    args = dict(task_args(srv, bloated_db), metrics_file=str(metrics), report_file=str(report))
    rc, result, out = ansible.run_task("pgtidy.maintenance.health_info", args)
    assert rc == 0, out
    families = {f.name: f for f in text_string_to_metric_families(metrics.read_text())}
    base = {"job": "health_info", "database": bloated_db}

    def value(name, **labels):
        matches = [s.value for s in families[name].samples if s.labels == dict(base, **labels)]
        assert len(matches) == 1, (name, labels, families[name].samples)
        return matches[0]

    assert value("pgtidy_health_up") == 1
    assert value("pgtidy_database_size_bytes") == result["database"]["size_bytes"]
    for severity in ("critical", "warning", "info"):
        assert value("pgtidy_health_findings", severity=severity) == result["findings_by_severity"][severity]
    assert value("pgtidy_health_findings", severity="critical") >= 1
    table = next(t for t in result["tables"] if t["name"] == "bloated")
    assert value("pgtidy_table_size_bytes", schema="public", table="bloated", part="total") == table["total_bytes"]
    assert value("pgtidy_table_dead_tuples", schema="public", table="bloated") == table["dead_tuples"]
    assert value("pgtidy_connections_max") == MAX_CONNECTIONS
    assert value("pgtidy_wal_size_bytes") == result["wal"]["size_bytes"]
    assert value("pgtidy_disk_free_bytes", path=srv.data) > 0
    assert families["pgtidy_last_success_timestamp_seconds"].samples[0].value > time.time() - 600
    saved = json.loads(report.read_text())
    assert saved["findings"] == result["findings"] and saved["available"] is True


def run_health_job(tmp_path, name, playbook_values):
    """The timers role's health job as its service runs it: pgtidy-run with playbooks/health.yml."""
    work = tmp_path / name
    work.mkdir()
    (work / "health.yml").write_text(json.dumps(playbook_values))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT, ANSIBLE_LOCALHOST_WARNING="false")
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "roles", "timers", "files", "pgtidy-run"), "health",
         "--playbook", os.path.join(ROOT, "playbooks", "health.yml"), "--vars", str(work / "health.yml"),
         "--report", str(work / "health.json"), "--metrics", str(work / "health.prom"),
         "--job-report", str(work / "health.run.json"), "--job-metrics", str(work / "health.run.prom"),
         "--lock-file", str(work / "pgtidy.lock"), "--lock-wait", "5"],
        capture_output=True, text=True, env=env, cwd=str(work), check=False)
    return proc, work


def test_timer_health_job_fails_while_the_server_is_down(tmp_path):
    down = {"pgtidy_login_host": "127.0.0.1", "pgtidy_login_port": free_port(), "pgtidy_login_db": "nothing_here",
            "pgtidy_ssl_mode": "disable"}
    proc, work = run_health_job(tmp_path, "default", down)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    job = json.loads((work / "health.run.json").read_text())
    assert job["status"] == "failed" and "database nothing_here is unavailable" in job["message"]
    report = json.loads((work / "health.json").read_text())
    assert report["available"] is False and report["failed"] is True
    assert health_up(work / "health.prom") == (0, "nothing_here", [1])

    proc, work = run_health_job(tmp_path, "facts_only", dict(down, pgtidy_health_fail_on_unavailable=False))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((work / "health.run.json").read_text())["status"] == "ok"
    assert json.loads((work / "health.json").read_text())["available"] is False
    assert health_up(work / "health.prom") == (0, "nothing_here", [1])
