"""dagster_prune through real ansible-playbook runs: check mode, real run, re-run, diff, errors."""
from __future__ import annotations

import os

import pytest

from conftest import ROOT, conn_params
from dagster_checks import AGGRESSIVE, noise_left, protected_fingerprint, q

MODULE = "pgtidy.maintenance.dagster_prune"


@pytest.mark.newest_major
@pytest.mark.system_python
def test_check_mode_predicts_the_real_run_then_rerun_is_unchanged(pg, dagster_db, ansible, lock_file):
    args = conn_params(pg, dagster_db["db"], lock_file=lock_file, **AGGRESSIVE)
    rows = q(pg, dagster_db["db"], "SELECT count(*) FROM event_logs")

    rc, check, out = ansible.run_task(MODULE, args, check=True, diff=True)
    assert rc == 0, out
    assert check["changed"] is True and check["check_mode"] is True
    assert q(pg, dagster_db["db"], "SELECT count(*) FROM event_logs") == rows   # nothing deleted
    assert check["diff"]["before"]["rows"]["event_logs"] == rows[0][0]

    rc, real, out = ansible.run_task(MODULE, args, diff=True)
    assert rc == 0, out
    assert real["changed"] is True
    assert real["deleted_total"] == check["deleted_total"] > 0
    assert {k: h["deleted"] for k, h in real["handlers"].items()} == \
        {k: h["deleted"] for k, h in check["handlers"].items()}
    assert real["diff"]["after"]["rows"] == check["diff"]["after"]["rows"]
    assert real["rows_after"]["event_logs"] == q(pg, dagster_db["db"], "SELECT count(*) FROM event_logs")[0][0]

    rc, again, out = ansible.run_task(MODULE, args)
    assert rc == 0, out
    assert again["changed"] is False and again["deleted_total"] == 0
    rc, again_check, out = ansible.run_task(MODULE, args, check=True)
    assert again_check["changed"] is False


def test_check_mode_predicts_a_capped_run(pg, dagster_db, ansible, lock_file):
    args = conn_params(pg, dagster_db["db"], lock_file=lock_file, batch_size=30, max_rows=200, **AGGRESSIVE)
    rc, check, out = ansible.run_task(MODULE, args, check=True)
    assert rc == 0, out
    rc, real, out = ansible.run_task(MODULE, args)
    assert rc == 0, out
    assert real["capped"] is True and check["capped"] is True
    for name, handler in real["handlers"].items():
        predicted = check["handlers"][name]
        assert (handler["deleted"], handler["remaining"], handler["capped"]) == \
            (predicted["deleted"], predicted["remaining"], predicted["capped"]), name


@pytest.mark.system_python
def test_protected_type_fails_naming_it_and_deletes_nothing(pg, dagster_db, ansible, lock_file):
    fingerprint = protected_fingerprint(pg, dagster_db["db"])
    before = noise_left(pg, dagster_db["db"])
    args = conn_params(pg, dagster_db["db"], lock_file=lock_file,
                       event_types=["HANDLED_OUTPUT", "ASSET_MATERIALIZATION"], **{"event_retention_days": 1})
    rc, res, out = ansible.run_task(MODULE, args)
    assert rc != 0
    assert res["failed"] is True and "ASSET_MATERIALIZATION" in res["msg"] and "protected" in res["msg"]
    assert res["error_kind"] == "invalid_request"
    assert noise_left(pg, dagster_db["db"]) == before
    assert protected_fingerprint(pg, dagster_db["db"]) == fingerprint


@pytest.mark.system_python
def test_report_and_metrics_files(pg, dagster_db, ansible, lock_file, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families
    import json
    report, metrics = tmp_path / "report.json", tmp_path / "prune.prom"
    args = conn_params(pg, dagster_db["db"], lock_file=lock_file, report_file=str(report),
                       metrics_file=str(metrics), **AGGRESSIVE)
    rc, res, out = ansible.run_task(MODULE, args)
    assert rc == 0, out
    saved = json.loads(report.read_text())
    assert saved["deleted_total"] == res["deleted_total"] > 0
    families = {f.name: f for f in text_string_to_metric_families(metrics.read_text())}
    pruned = {s.labels["handler"]: s.value for s in families["pgtidy_rows_pruned"].samples}
    assert pruned == {name: h["deleted"] for name, h in res["handlers"].items()}
    assert families["pgtidy_run_success"].samples[0].value == 1


@pytest.mark.system_python
def test_wrong_password_is_a_clear_error_without_the_secret(tmp_path, ansible, lock_file):
    from pgserver import PgServer
    server = PgServer(superuser_password="right-horse-battery").start()
    try:
        args = {"login_host": "127.0.0.1", "login_port": server.port, "login_user": "postgres",
                "login_password": "Wr0ng-Secret-42", "login_db": "postgres", "lock_file": lock_file}
        rc, res, out = ansible.run_task(MODULE, args)
        assert rc != 0
        assert res["error_kind"] == "connection_failed"
        assert "password authentication failed" in res["msg"]
        assert "Wr0ng-Secret-42" not in out
        args["login_password"] = "right-horse-battery"
        rc, res, out = ansible.run_task(MODULE, args)
        assert res["error_kind"] == "schema_mismatch" and "not a Dagster metadata schema" in res["msg"]
        assert "right-horse-battery" not in out
    finally:
        server.stop()


def test_prune_playbook_against_an_inventory_host(pg, dagster_db, ansible, lock_file, tmp_path):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[pgtidy]\ndbhost ansible_connection=local\n")
    extra = {"pgtidy_hosts": "pgtidy", "pgtidy_login_host": "127.0.0.1", "pgtidy_login_port": pg.port, "pgtidy_login_db": dagster_db["db"],
             "pgtidy_login_user": "postgres", "pgtidy_ssl_mode": "disable", "pgtidy_lock_file": lock_file,
             "pgtidy_dagster_log_retention_days": AGGRESSIVE["log_retention_days"],
             "pgtidy_dagster_event_retention_days": 1, "pgtidy_batch_size": 100}
    proc = ansible.run_playbook(os.path.join(ROOT, "playbooks", "prune.yml"), extra_vars=extra,
                                inventory=str(inventory))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert "Deleted" in proc.stdout and "python_logs_debug" in proc.stdout
    assert noise_left(pg, dagster_db["db"]) == 0
    assert q(pg, dagster_db["db"], "SELECT count(*) FROM event_logs e JOIN runs r USING (run_id)"
             " WHERE r.status = 'SUCCESS' AND e.dagster_event_type = 'HANDLED_OUTPUT'"
             " AND e.timestamp < now() at time zone 'utc' - interval '1 day'") == [(0,)]
    # The kill switch ends the play before anything runs.
    before = q(pg, dagster_db["db"], "SELECT count(*) FROM event_logs")
    extra.update(pgtidy_disabled=True, pgtidy_dagster_event_retention_days=-1)
    proc = ansible.run_playbook(os.path.join(ROOT, "playbooks", "prune.yml"), extra_vars=extra,
                                inventory=str(inventory))
    assert proc.returncode == 0 and "Prune Dagster metadata" not in proc.stdout
    assert q(pg, dagster_db["db"], "SELECT count(*) FROM event_logs") == before
