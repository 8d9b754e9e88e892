"""The drain's decisions, made by the timers role's job runner (roles/timers/files/pgtidy-run) itself.

The runner prunes a real Dagster database through the real prune playbook with a row budget smaller than the
backlog, records in its job report whether the drain goes on, and answers the drain service's ExecCondition
(exit 0: run the next prune now, 1: skip, 255: fail and notify). Under systemd the same runs follow each other
automatically (tests/integration/roles/test_roles.py, molecule/timers).
"""
from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys

from conftest import COLLECTIONS_ROOT, ROOT, conn_params

RUNNER = os.path.join(ROOT, "roles", "timers", "files", "pgtidy-run")


def drain_check(job_report, window="", **env):
    argv = [sys.executable, RUNNER, "prune", "--drain-check", "--job-report", str(job_report)]
    if window:
        argv += ["--drain-window", window]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=dict(os.environ, **env))
    return proc.returncode, proc.stdout + proc.stderr


def hhmm(minutes):
    minutes %= 1440
    return "%02d:%02d" % (minutes // 60, minutes % 60)


def test_drain_check_runs_skips_or_fails(tmp_path):
    report = tmp_path / "prune.run.json"
    assert drain_check(report)[0] == 1                       # no run yet: the scheduled one starts a drain
    report.write_text("{half a report")
    rc, out = drain_check(report)
    assert rc == 255 and "cannot be read" in out             # unreadable: a failure, never "drained"
    report.write_text(json.dumps({"status": "ok", "drain": True, "capped_by": "max_rows", "remaining_total": 9}))
    rc, out = drain_check(report)
    assert rc == 0 and "stopped on max_rows with 9 rows" in out
    rc, out = drain_check(report, PGTIDY_ENABLED="false")
    assert rc == 1 and "maintenance is disabled" in out      # the kill switch: the next run does not start
    now = datetime.datetime.now()
    minute = now.hour * 60 + now.minute
    day = now.strftime("%a")
    assert drain_check(report, "%s-%s" % (hhmm(minute - 60), hhmm(minute + 60)))[0] == 0
    rc, out = drain_check(report, "%s - %s" % (hhmm(minute + 60), hhmm(minute + 120)))
    assert rc == 1 and "outside the drain window" in out
    # Weekly windows: today all day (across the week's end on a Sunday), and every day but today.
    tomorrow = (now + datetime.timedelta(days=1)).strftime("%a")
    assert drain_check(report, "%s 00:00-%s 00:00" % (day, tomorrow))[0] == 0
    assert drain_check(report, "%s 00:00-%s 00:00" % (tomorrow, day))[0] == 1
    for bad in ("Sat 01:00-Sun 24:00", "Sat 01:00-23:00", "Sun 01:00", "Fri 12:00-Fri 12:00", "Xyz 01:00-Sun 02:00"):
        rc, out = drain_check(report, bad)
        assert rc == 255 and "drain window" in out, (bad, out)
    for status, words in (("failed", "the last run failed"), ("ok", "finished within its budgets")):
        report.write_text(json.dumps({"status": status, "drain": False}))
        rc, out = drain_check(report)
        assert rc == 1 and words in out


def run_job(work, vars_file, playbook="pgtidy.maintenance.prune", **env):
    argv = [sys.executable, RUNNER, "prune", "--playbook", playbook, "--vars", str(vars_file),
            "--report", str(work / "prune.json"), "--metrics", str(work / "pgtidy_prune.prom"),
            "--job-report", str(work / "prune.run.json"), "--job-metrics", str(work / "pgtidy_job_prune.prom"),
            "--lock-file", str(work / "pgtidy.lock"), "--lock-wait", "5"]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=str(work), check=False,
                          env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT,
                                   ANSIBLE_LOCALHOST_WARNING="false", **env))
    return proc, json.loads((work / "prune.run.json").read_text())


def test_capped_runs_drain_a_real_backlog_then_the_drain_stops(pg, dagster_db, tmp_path):
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._dagster.rules import DagsterProfile
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.prune import run_prune
    db = dagster_db["db"]
    backlog = run_prune(conn_params(pg, db, max_rows=0), DagsterProfile(), check_mode=True)["deleted_total"]
    assert backlog >= 30, backlog
    max_rows = backlog // 3 + 1                                # three runs: two capped, the third finishes
    params = conn_params(pg, db)
    vars_file = tmp_path / "prune.yml"
    vars_file.write_text(json.dumps({
        "pgtidy_orchestrator": "dagster", "pgtidy_max_rows": max_rows, "pgtidy_batch_size": min(500, max_rows),
        "pgtidy_connection_options": {k: params[k] for k in ("login_host", "login_port", "login_user", "login_db",
                                                             "ssl_mode")},
        "pgtidy_login_password": params["login_password"]}))
    work = tmp_path / "run"
    work.mkdir()

    proc, first = run_job(work, vars_file)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert first["status"] == "ok" and first["capped"] and first["capped_by"] == "max_rows"
    assert first["drain"] and first["remaining_total"] > 0
    assert 'pgtidy_job_drain_pending{job="prune"} 1' in (work / "pgtidy_job_prune.prom").read_text()
    assert drain_check(work / "prune.run.json")[0] == 0

    # The kill switch: the run does nothing, and the drain is still pending once it is switched back on.
    proc, disabled = run_job(work, vars_file, PGTIDY_ENABLED="false")
    assert disabled["status"] == "disabled" and disabled["drain"] and disabled["remaining_total"] == first["remaining_total"]
    assert drain_check(work / "prune.run.json", PGTIDY_ENABLED="false")[0] == 1

    runs = [first]
    while runs[-1]["drain"]:
        assert drain_check(work / "prune.run.json")[0] == 0
        proc, report = run_job(work, vars_file)
        assert proc.returncode == 0 and report["status"] == "ok", proc.stdout[-3000:]
        runs.append(report)
        assert len(runs) <= 5, runs
    assert len(runs) >= 3
    assert [r["capped"] for r in runs] == [True] * (len(runs) - 1) + [False]
    assert runs[-1]["remaining_total"] == 0
    assert 'pgtidy_job_backlog_rows{job="prune"} 0' in (work / "pgtidy_job_prune.prom").read_text()
    module_metrics = (work / "pgtidy_prune.prom").read_text()
    assert 'pgtidy_prune_backlog_rows{database="%s",job="dagster_prune",table="event_logs"} 0' % db in module_metrics
    rc, out = drain_check(work / "prune.run.json")
    assert rc == 1 and "finished within its budgets" in out
    # Nothing is past retention any more, by the module's own count.
    assert run_prune(conn_params(pg, db, max_rows=0), DagsterProfile(), check_mode=True)["deleted_total"] == 0


def test_a_prune_that_leaves_no_report_fails_and_stops_the_drain(tmp_path):
    work = tmp_path / "run"
    work.mkdir()
    (work / "prune.run.json").write_text(json.dumps({"status": "ok", "drain": True, "capped": True}))
    playbook = tmp_path / "noop.yml"
    playbook.write_text("- hosts: localhost\n  gather_facts: false\n  tasks: []\n")
    vars_file = tmp_path / "vars.yml"
    vars_file.write_text("{}")
    proc, report = run_job(work, vars_file, playbook=str(playbook))
    assert proc.returncode == 70, proc.stdout[-2000:]
    assert report["status"] == "failed" and not report["drain"]
    assert "no readable report" in report["message"]
    assert drain_check(work / "prune.run.json")[0] == 1
