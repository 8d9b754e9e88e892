"""A prune that could not do its work ends red, says why and what fixes it, and counts what it left.

Through real ansible-playbook runs against a real Dagster database: a role without the privileges,
a statement timeout, and the report and metrics such a run leaves.
"""
from __future__ import annotations

import json

import psycopg
import pytest

from conftest import conn_params
from dagster_checks import AGGRESSIVE, q

MODULE = "pgtidy.maintenance.dagster_prune"


def make_role(pg, db, prefix, grants):
    """A new login role with exactly ``grants`` on every table of the schema (and nothing else)."""
    name = "%s_%s" % (prefix, db[-10:])
    q(pg, db, "CREATE ROLE \"%s\" LOGIN PASSWORD 'pw-%s-secret'" % (name, prefix))
    q(pg, db, 'GRANT USAGE ON SCHEMA public TO "%s"' % name)
    q(pg, db, 'GRANT %s ON ALL TABLES IN SCHEMA public TO "%s"' % (grants, name))
    return {"login_user": name, "login_password": "pw-%s-secret" % prefix}


@pytest.mark.parametrize("grants, lacking", [
    ("SELECT", {"UPDATE", "DELETE"}),
    ("SELECT, DELETE", {"UPDATE"}),       # rows are locked (FOR UPDATE) before they are deleted
])
def test_a_role_that_may_not_delete_fails_in_check_mode_and_for_real(
        pg, dagster_db, ansible, lock_file, tmp_path, grants, lacking):
    db = dagster_db["db"]
    rows = q(pg, db, "SELECT count(*) FROM event_logs")[0][0]
    # What a role with every privilege would delete: the backlog the failed runs must report as left.
    rc, full, out = ansible.run_task(MODULE, conn_params(pg, db, lock_file=lock_file, **AGGRESSIVE), check=True)
    assert rc == 0 and full["deleted_total"] > 0 and not full["capped"], out
    login = make_role(pg, db, "reader", grants)
    role = login["login_user"]
    report, metrics = tmp_path / "report.json", tmp_path / "prune.prom"
    args = conn_params(pg, db, lock_file=lock_file, report_file=str(report), metrics_file=str(metrics),
                       **dict(AGGRESSIVE, **login))

    rc, check, out = ansible.run_task(MODULE, args, check=True)
    assert rc != 0 and check["failed"] is True, out
    assert check["error_kind"] == "insufficient_privilege"
    assert check["changed"] is False and check["deleted_total"] == 0     # nothing it could do is predicted

    rc, real, out = ansible.run_task(MODULE, args)
    assert rc != 0 and real["failed"] is True, out
    assert real["error_kind"] == "insufficient_privilege"
    assert q(pg, db, "SELECT count(*) FROM event_logs")[0][0] == rows
    for result in (check, real):
        handlers = result["handlers"]
        assert set(result["failed_handlers"]) == set(handlers)
        for name, handler in handlers.items():
            assert handler["status"] == "failed" and handler["error_kind"] == "insufficient_privilege", name
            assert {m.split(" on ")[0] for m in handler["missing_privileges"]} == lacking, name
        # What is still past retention is counted (what the privileged role would delete), never 0.
        assert {n: h["remaining"] for n, h in handlers.items()} == \
            {n: h["deleted"] for n, h in full["handlers"].items()}
        assert result["remaining_total"] == full["deleted_total"] > 0
        # The message names the cause and the GRANT that fixes it, quoted as SQL is.
        assert "permission denied" in result["msg"]
        assert 'GRANT %s ON TABLE "public"."event_logs" TO "%s"' % (", ".join(
            p for p in ("SELECT", "UPDATE", "DELETE") if p in lacking), role) in result["msg"]
        assert "pw-reader-secret" not in json.dumps(result)

    # The report and the metrics of the failed run were written, and say it failed.
    saved = json.loads(report.read_text())
    assert saved["failed"] is True and saved["error_kind"] == "insufficient_privilege"
    text = metrics.read_text()
    assert 'pgtidy_run_success{database="%s",job="dagster_prune"} 0' % db in text
    assert 'handler_failed{' in text and "pgtidy_rows_remaining{" in text

    # The GRANTs it names are enough: run them, and the same role prunes.
    with psycopg.connect(pg.dsn(db), autocommit=True) as conn:
        for grant in real["grants_needed"]:
            conn.execute(grant)
    rc, fixed, out = ansible.run_task(MODULE, args)
    assert rc == 0, out
    assert fixed["deleted_total"] == full["deleted_total"] and fixed["failed_handlers"] == []
    assert fixed["msg"].startswith("Deleted %d rows from %s.public" % (fixed["deleted_total"], db))


def test_the_prune_playbook_goes_red_when_a_handler_failed(pg, dagster_db, ansible, lock_file):
    """What the weekly timer runs: the play recap must show the failure."""
    db = dagster_db["db"]
    login = make_role(pg, db, "readonly", "SELECT")
    extra = {"pgtidy_login_host": "127.0.0.1", "pgtidy_login_port": pg.port, "pgtidy_login_db": db,
             "pgtidy_ssl_mode": "disable", "pgtidy_lock_file": lock_file, "pgtidy_lock_wait": 5,
             "pgtidy_login_user": login["login_user"], "pgtidy_login_password": login["login_password"]}
    proc = ansible.run_playbook("playbooks/prune.yml", extra_vars=extra)
    assert proc.returncode != 0, proc.stdout[-3000:]
    stats = json.loads(proc.stdout[proc.stdout.index("{"):])["stats"]["localhost"]
    assert stats["failures"] >= 1


def test_a_statement_timeout_is_an_error_kind_not_a_traceback(pg, dagster_db, ansible, lock_file):
    db = dagster_db["db"]
    args = conn_params(pg, db, lock_file=lock_file, statement_timeout="1ms", **AGGRESSIVE)
    rc, result, out = ansible.run_task(MODULE, args)
    assert rc != 0, out
    assert result["failed"] is True
    assert result["error_kind"] == "statement_timeout", result
    assert "statement_timeout" in result["msg"] and "Traceback" not in json.dumps(result)


def test_a_report_file_in_a_missing_directory_is_refused_before_anything_is_deleted(
        pg, dagster_db, ansible, lock_file, tmp_path):
    db = dagster_db["db"]
    rows = q(pg, db, "SELECT count(*) FROM event_logs")[0][0]
    args = conn_params(pg, db, lock_file=lock_file, report_file=str(tmp_path / "typo" / "report.json"), **AGGRESSIVE)
    rc, result, out = ansible.run_task(MODULE, args)
    assert rc != 0 and result["error_kind"] == "report_file_refused", out
    assert "report_file" in result["msg"]
    assert q(pg, db, "SELECT count(*) FROM event_logs")[0][0] == rows
    assert not (tmp_path / "typo").exists()


def test_a_schema_with_a_space_and_capitals_is_pruned_and_named_quoted(pg, dagster_db, ansible, lock_file):
    """Identifiers are quoted in what runs and in what is shown: a Dagster schema renamed to "My Schema"."""
    db = dagster_db["db"]
    q(pg, db, 'ALTER SCHEMA public RENAME TO "My Schema"')
    q(pg, db, "CREATE SCHEMA public")
    args = conn_params(pg, db, lock_file=lock_file, schema="My Schema", **AGGRESSIVE)
    rc, check, out = ansible.run_task(MODULE, args, check=True)
    assert rc == 0 and check["deleted_total"] > 0, out
    rc, real, out = ansible.run_task(MODULE, args)
    assert rc == 0, out
    assert real["deleted_total"] == check["deleted_total"]
    assert real["msg"].startswith("Deleted %d rows from %s.My Schema" % (real["deleted_total"], db))
    login = make_role(pg, db, "viewer", "SELECT")
    q(pg, db, 'GRANT USAGE ON SCHEMA "My Schema" TO "%s"' % login["login_user"])
    q(pg, db, 'GRANT SELECT ON ALL TABLES IN SCHEMA "My Schema" TO "%s"' % login["login_user"])
    rc, denied, out = ansible.run_task(MODULE, dict(args, **login), check=True)
    assert rc != 0 and denied["error_kind"] == "insufficient_privilege", out
    assert 'ON TABLE "My Schema"."event_logs" TO "%s"' % login["login_user"] in denied["msg"]
    with psycopg.connect(pg.dsn(db), autocommit=True) as conn:      # the GRANTs run as shown
        for grant in denied["grants_needed"]:
            conn.execute(grant)
    rc, fine, out = ansible.run_task(MODULE, dict(args, **login), check=True)
    assert rc == 0 and fine["failed_handlers"] == [], out
