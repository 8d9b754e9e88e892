"""airflow_prune against a real Airflow history, on every release it supports (Airflow 3.3 and 2.11): core runs,
real ansible-playbook runs, and read-back through Airflow's own models (tests/airflow_fixture.py)."""
from __future__ import annotations

import datetime
import json
import signal
import subprocess
import sys
import time

import psycopg
import pytest

from airflow_fixture import AIRFLOW_RELEASES, RELEASES, RETENTION, counts, read_back, run_key
from conftest import COLLECTIONS_ROOT, conn_params

from ansible_collections.pgtidy.maintenance.plugins.module_utils._airflow.rules import AirflowProfile
from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.errors import InvalidRequest
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.prune import run_prune

# One worker per release builds its Airflow history and runs every test of that release on its copies: each
# release's parameter is an xdist group ("airflow", the one of test_airflow_health.py, and "airflow-2.11").
every_release = pytest.mark.parametrize("airflow_release", AIRFLOW_RELEASES)

MODULE = "pgtidy.maintenance.airflow_prune"
FINISHED = ("success", "failed")


def prune(pg, db, lock_file, check=False, **options):
    params = conn_params(pg, db, lock_file=lock_file, **dict(RETENTION, **options))
    return run_prune(params, AirflowProfile(), check_mode=check)


def parse(value):
    return datetime.datetime.fromisoformat(value) if value else None


def expected_deleted(before, days, keep, asset_triggered="asset_triggered"):
    """The runs the rules delete, worked out from Airflow's read-back (not from the module's SQL). On 2.11 a run's
    ``logical_date`` and ``run_after`` are both its execution date (tests/airflow2/read_back.py)."""
    cutoff = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days)
    by_dag = {}
    for key, run in before["runs"].items():
        by_dag.setdefault(key.split("/", 1)[0], []).append((key, run))
    gone = set()
    for dag_id, runs in by_dag.items():
        newest = {k for k, _r in sorted(runs, key=lambda kr: (parse(kr[1]["run_after"]), kr[1]["id"]),
                                        reverse=True)[:keep]}
        automated = [(parse(r["logical_date"]), k) for k, r in runs if r["run_type"] in ("scheduled", "backfill")]
        needed = {k for d, k in automated if d == max(automated)[0]} if automated else set()
        asset_runs = [(parse(r["run_after"]), r["id"], k) for k, r in runs if r["run_type"] == asset_triggered]
        if asset_runs:
            needed.add(max(asset_runs)[2])
        for key, run in runs:
            ended = parse(run["end_date"]) or parse(run["run_after"])
            unfinished_task = any(ti["state"] not in ("success", "failed", "skipped", "upstream_failed", "removed",
                                                      None) for ti in run["task_instances"].values())
            if (run["state"] in FINISHED and ended < cutoff and key not in newest and key not in needed
                    and not unfinished_task):
                gone.add(key)
    return gone


def handler_view(result):
    return {name: (h["deleted"], h.get("rows_by_table"), h.get("kept_by_reason"), h.get("dropped"), h["status"])
            for name, h in result["handlers"].items()}


@every_release
@pytest.mark.parametrize("track_counts", ["on", "off", "on-without-ti_dag_run"])
def test_check_mode_predicts_the_run_and_a_rerun_deletes_nothing(
        pg, airflow_db, lock_file, airflow_release, track_counts):
    """With track_counts on, the rows that go with a run by Airflow's indexed cascades are counted from the
    transaction's statistics; with it off, each table is deleted and counted by its own statement; without the
    index of the task instances' link to their run, the task instances are deleted by their own statement and their
    children by its cascade. All count alike."""
    release = RELEASES[airflow_release]
    if track_counts == "on-without-ti_dag_run":
        assert pg.psql("SELECT count(*) FROM pg_indexes WHERE indexname = 'ti_dag_run'", airflow_db) == "1"
        pg.psql("DROP INDEX ti_dag_run", airflow_db)
        track_counts = "on"
    pg.psql('ALTER DATABASE "%s" SET track_counts = %s' % (airflow_db, track_counts), airflow_db)
    tables = release.tables
    before = counts(pg, airflow_db, airflow_release)
    old_log = int(pg.psql("SELECT count(*) FROM log WHERE dttm < now() - interval '30 days'", airflow_db))
    plan = prune(pg, airflow_db, lock_file, check=True)
    assert counts(pg, airflow_db, airflow_release) == before, "check mode must not change anything"
    done = prune(pg, airflow_db, lock_file)
    again_plan = prune(pg, airflow_db, lock_file, check=True)
    again = prune(pg, airflow_db, lock_file)

    assert not done["failed_handlers"] and not done["capped"], done["handlers"]
    assert plan["changed"] is True and done["changed"] is True
    assert handler_view(plan) == handler_view(done)
    assert plan["deleted_total"] == done["deleted_total"] > 0
    assert plan["rows_after"] == done["rows_after"]
    after = counts(pg, airflow_db, airflow_release)
    for table in tables:
        assert after[table] == done["rows_after"].get(table, after[table]), table
    # Every row the run removed is counted: the tables' counts fell by exactly the rows reported.
    gone_rows = {t: before[t] - after[t] for t in tables}
    reported = {}
    for handler in done["handlers"].values():
        for table, n in (handler.get("rows_by_table") or {handler["table"]: handler["deleted"]}).items():
            reported[table] = reported.get(table, 0) + n
    for table in tables:
        assert gone_rows[table] == reported.get(table, 0), table
    assert done["deleted_total"] == sum(gone_rows.values())

    runs = done["handlers"]["dag_runs"]
    assert runs["runs_deleted"] > 0 and runs["rows_by_table"]["task_instance"] > 0
    assert runs["rows_by_table"]["xcom"] > 0 and runs["rows_by_table"]["rendered_task_instance_fields"] > 0
    # The old manual run's flaky task failed its first try: that try is its history row.
    assert runs["rows_by_table"]["task_map"] > 0 and runs["rows_by_table"]["task_instance_history"] == 1
    assert runs["rows_by_table"]["dag_run_note"] == 1 and runs["rows_by_table"]["task_instance_note"] == 1
    assert runs["rows_by_table"][release.asset_link] == 1
    for table in release.ti_children:       # 2.11: the failed first try is a task_fail row too
        assert runs["rows_by_table"][table] == 1, table
    # The oldest asset event: its consumer run is gone and the consumer DAG has consumed past it. The next one is
    # still consumed by a kept run, the newest is its asset's newest.
    assert done["handlers"]["asset_events"]["deleted"] == 1
    # Airflow's own entries of the old runs' tasks, and two older entries (120 and 100 days).
    assert done["handlers"]["audit_log"]["deleted"] == old_log > 2
    # Not the running scheduler, not the only triggerer job, not the newest DAG processor job.
    assert done["handlers"]["jobs"]["deleted"] == 2
    assert done["handlers"]["import_errors"]["deleted"] == 1
    archive = done["handlers"]["archive_tables"]
    assert len(archive["archive_tables"]) == 1 and archive["dropped"] == []

    assert again_plan["deleted_total"] == 0 and again_plan["changed"] is False
    assert again["deleted_total"] == 0 and again["changed"] is False
    assert counts(pg, airflow_db, airflow_release) == after


@every_release
def test_airflow_reads_back_what_was_kept_and_schedules_the_same(pg, airflow_db, airflow_history, lock_file,
                                                                 airflow_release):
    before = airflow_history["before"]
    made = airflow_history["made"]
    result = prune(pg, airflow_db, lock_file)
    assert result["changed"] and not result["failed_handlers"]
    newest_scheduled = made["scheduled"][-1]
    after = read_back(pg, airflow_db, airflow_history["python"], airflow_history["home"],
                      rerun=(newest_scheduled[0], newest_scheduled[1], "total"), release=airflow_release)

    gone = expected_deleted(before, RETENTION["dag_run_retention_days"], RETENTION["keep_runs_per_dag"],
                            RELEASES[airflow_release].asset_triggered)
    assert gone and set(before["runs"]) - set(after["runs"]) == gone
    assert set(after["runs"]) == set(before["runs"]) - gone
    assert sorted(result["handlers"]["dag_runs"]["run_ids"]) == sorted(gone)
    for key, run in after["runs"].items():
        assert run == before["runs"][key], "kept run %s changed" % key
    # What the scheduler and the DAG processor compute the next runs from is unchanged.
    assert after["next"] == before["next"]
    # Kept on purpose although past the retention.
    running = run_key(made["running"])
    assert after["runs"][running]["state"] == "running"
    assert run_key(made["scheduled"][-1]) in after["runs"]               # the newest scheduled run
    assert run_key(made["newest_asset_run"]) in after["runs"]            # the newest asset-triggered run
    assert run_key(made["old_asset_run"]) not in after["runs"]
    assert run_key(made["old_manual"]) not in after["runs"]
    assert run_key(made["recent_manual"]) in after["runs"]
    kept = result["handlers"]["dag_runs"]["kept_by_reason"]
    assert kept["not_finished"] == 1 and kept["scheduler_needs"] >= 2 and kept["newest_per_dag"] >= 1
    # A kept task cleared and run again: it reads its mapped upstream XComs again and adds a try.
    rerun = after["rerun"]
    total = before["runs"][run_key(newest_scheduled)]["task_instances"]["total[-1]"]
    assert rerun["run_state"] == "success"
    assert rerun["task_instances"] == {"total[-1]": ["success", total["try_number"] + 1]}
    assert rerun["xcom"] == total["xcom"]["return_value"] == 14
    assert rerun["history"] == [[total["try_number"], "success"]]


@every_release
def test_no_row_points_at_a_deleted_run_and_no_old_audit_row_stays(pg, airflow_db, lock_file, airflow_release):
    prune(pg, airflow_db, lock_file)
    orphans = pg.psql(
        "SELECT (SELECT count(*) FROM task_instance ti WHERE NOT EXISTS (SELECT 1 FROM dag_run r"
        "   WHERE r.dag_id = ti.dag_id AND r.run_id = ti.run_id))"
        " + (SELECT count(*) FROM xcom x WHERE NOT EXISTS (SELECT 1 FROM dag_run r WHERE r.id = x.dag_run_id))"
        " + (SELECT count(*) FROM task_instance_history h WHERE NOT EXISTS (SELECT 1 FROM dag_run r"
        "   WHERE r.dag_id = h.dag_id AND r.run_id = h.run_id))"
        " + (SELECT count(*) FROM log l WHERE l.run_id IS NOT NULL AND l.dttm < now() - interval '30 days')",
        airflow_db)
    assert orphans == "0"


@every_release
def test_a_run_airflow_holds_is_skipped_whole_not_waited_for(pg, airflow_db, airflow_history, lock_file,
                                                             airflow_release):
    """A run whose row another session holds (as Airflow's scheduler does, FOR UPDATE) is neither waited for nor
    touched: the batch locks the others and deletes them; the held run keeps every row; the next run deletes it."""
    dag_id, run_id = airflow_history["made"]["old_manual"]
    plan = prune(pg, airflow_db, lock_file, check=True, log_retention_days=-1)
    rows_of_run = ("SELECT (SELECT count(*) FROM dag_run WHERE dag_id = %(d)s AND run_id = %(r)s),"
                   " (SELECT count(*) FROM task_instance WHERE dag_id = %(d)s AND run_id = %(r)s),"
                   " (SELECT count(*) FROM xcom WHERE dag_id = %(d)s AND run_id = %(r)s)")
    with psycopg.connect(pg.dsn(airflow_db)) as holder:
        held = holder.execute(rows_of_run, {"d": dag_id, "r": run_id}).fetchone()
        assert held[0] == 1 and held[1] > 0 and held[2] > 0
        holder.execute("SELECT id FROM dag_run WHERE dag_id = %s AND run_id = %s FOR UPDATE", (dag_id, run_id))
        # Had the prune waited for the row, lock_timeout (5 s) would have failed the handler.
        done = prune(pg, airflow_db, lock_file, log_retention_days=-1)
        runs = done["handlers"]["dag_runs"]
        assert not done["failed_handlers"] and runs["status"] == "ok", done["handlers"]
        assert runs["kept_by_reason"]["locked"] == 1
        assert "%s/%s" % (dag_id, run_id) not in runs["run_ids"]
        assert runs["runs_deleted"] == plan["handlers"]["dag_runs"]["runs_deleted"] - 1 > 0
        holder.rollback()
    with psycopg.connect(pg.dsn(airflow_db)) as conn:
        assert conn.execute(rows_of_run, {"d": dag_id, "r": run_id}).fetchone() == held
    after = prune(pg, airflow_db, lock_file, log_retention_days=-1)
    runs = after["handlers"]["dag_runs"]
    assert runs["run_ids"] == ["%s/%s" % (dag_id, run_id)] and "locked" not in runs["kept_by_reason"]
    assert runs["rows_by_table"]["task_instance"] == held[1] and runs["rows_by_table"]["xcom"] == held[2]
    assert runs["rows_by_table"]["dag_run"] == 1


@every_release
def test_budget_stops_between_whole_runs(pg, airflow_db, lock_file, airflow_release):
    """A small row budget stops the run early; no run is left half deleted, and the next runs finish the work."""
    first = prune(pg, airflow_db, lock_file, max_rows=10, batch_size=10, log_retention_days=-1,
                  job_retention_days=-1, import_error_retention_days=-1)
    assert first["capped"] and first["capped_by"] == "max_rows"
    half = pg.psql("SELECT count(*) FROM dag_run r WHERE NOT EXISTS (SELECT 1 FROM task_instance ti"
                   " WHERE ti.dag_id = r.dag_id AND ti.run_id = r.run_id)", airflow_db)
    assert half == "0", "a run lost its task instances but stayed"
    total = first["deleted_total"]
    for dummy in range(20):
        step = prune(pg, airflow_db, lock_file, max_rows=10, batch_size=10, log_retention_days=-1,
                     job_retention_days=-1, import_error_retention_days=-1)
        total += step["deleted_total"]
        if not step["capped"]:
            break
    fresh = prune(pg, airflow_db, lock_file, check=True)
    assert fresh["handlers"]["dag_runs"]["deleted"] == 0


def run_fingerprints(pg, db, release="3.3"):
    """Per dag run, the rows it owns: task instances, XComs, rendered fields, earlier tries, notes, asset links."""
    rel = RELEASES[release]
    # A task instance note hangs off the task instance's id on Airflow 3, off its key on 2.11.
    note_of = "ti.id = n.ti_id" if not rel.ti_children else \
        "(ti.dag_id, ti.task_id, ti.run_id, ti.map_index) = (n.dag_id, n.task_id, n.run_id, n.map_index)"
    out = pg.psql(
        "SELECT r.dag_id || '/' || r.run_id, (SELECT count(*) FROM task_instance ti"
        "   WHERE ti.dag_id = r.dag_id AND ti.run_id = r.run_id),"
        " (SELECT count(*) FROM xcom x WHERE x.dag_run_id = r.id),"
        " (SELECT count(*) FROM rendered_task_instance_fields f WHERE f.dag_id = r.dag_id AND f.run_id = r.run_id),"
        " (SELECT count(*) FROM task_instance_history h WHERE h.dag_id = r.dag_id AND h.run_id = r.run_id),"
        " (SELECT count(*) FROM task_instance_note n JOIN task_instance ti ON " + note_of +
        "   WHERE ti.dag_id = r.dag_id AND ti.run_id = r.run_id),"
        " (SELECT count(*) FROM dag_run_note n WHERE n.dag_run_id = r.id),"
        " (SELECT count(*) FROM " + rel.asset_link + " e WHERE e.dag_run_id = r.id)"
        " FROM dag_run r ORDER BY 1", db)
    rows = [line.split("|") for line in out.splitlines() if line]
    return {row[0]: tuple(int(v) for v in row[1:]) for row in rows}


@every_release
def test_killed_mid_run_leaves_no_half_deleted_run(pg, airflow_db, lock_file, tmp_path, airflow_release):
    whole = run_fingerprints(pg, airflow_db, airflow_release)
    script = tmp_path / "run.py"
    script.write_text(
        "import sys, json\n"
        "sys.path[:0] = %r\n"
        "from ansible_collections.pgtidy.maintenance.plugins.module_utils._airflow.rules import AirflowProfile\n"
        "from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.prune import run_prune\n"
        "run_prune(json.loads(sys.argv[1]), AirflowProfile())\n" % ([COLLECTIONS_ROOT],))
    params = conn_params(pg, airflow_db, lock_file=lock_file, batch_size=1, batch_pause=0.3, **RETENTION)
    proc = subprocess.Popen([sys.executable, str(script), json.dumps(params)])
    deadline = time.monotonic() + 60
    while len(run_fingerprints(pg, airflow_db, airflow_release)) == len(whole) and time.monotonic() < deadline \
            and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None, "the pruning process ended before it was killed (rc %s)" % proc.returncode
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    mid = run_fingerprints(pg, airflow_db, airflow_release)
    assert 0 < len(whole) - len(mid), "nothing was deleted before the kill"
    assert {key: whole[key] for key in mid} == mid, "a run that stayed lost some of its rows"
    result = prune(pg, airflow_db, lock_file)
    assert not result["capped"] and not result["failed_handlers"]
    assert result["handlers"]["dag_runs"]["runs_deleted"] > 0
    end = run_fingerprints(pg, airflow_db, airflow_release)
    assert {key: whole[key] for key in end} == end
    assert prune(pg, airflow_db, lock_file, check=True)["deleted_total"] == 0


@every_release
def test_untested_schema_revision_is_refused(pg, airflow_db, lock_file, airflow_release):
    pg.psql("UPDATE alembic_version SET version_num = '0000deadbeef'", airflow_db)
    before = counts(pg, airflow_db, airflow_release)
    with pytest.raises(Exception) as caught:
        prune(pg, airflow_db, lock_file)
    assert getattr(caught.value, "kind", None) == "untested_schema" or "untested" in type(caught.value).__name__.lower()
    assert "0000deadbeef" in str(caught.value) and "Airflow 3.3.2" in str(caught.value)
    assert "Airflow 2.11.2" in str(caught.value)
    assert counts(pg, airflow_db, airflow_release) == before


@every_release
def test_an_untested_revision_allowed_is_read_as_its_tables_say(pg, airflow_db, lock_file, airflow_release):
    """allow_untested_schema on a revision of neither release: the tables' shape says which release's rules run
    (a 2.11 database is not read with Airflow 3's columns), and they run as on the tested revision."""
    pg.psql("UPDATE alembic_version SET version_num = '0000deadbeef'", airflow_db)
    plan = prune(pg, airflow_db, lock_file, check=True, allow_untested_schema=True)
    done = prune(pg, airflow_db, lock_file, allow_untested_schema=True)
    assert done["schema_tested"] is False and done["schema_revision"] == "0000deadbeef"
    assert not done["failed_handlers"] and done["handlers"]["dag_runs"]["runs_deleted"] > 0
    assert handler_view(plan) == handler_view(done)
    assert set(done["rows_before"]) >= set(RELEASES[airflow_release].tables)


def test_options_are_checked_before_the_database():
    with pytest.raises(InvalidRequest):
        AirflowProfile().validate_options({"keep_runs_per_dag": 0})
    with pytest.raises(InvalidRequest):
        AirflowProfile().validate_options({"dag_run_retention_days": 0})
    plan = AirflowProfile().validate_options({})
    assert plan["dag_run_retention_days"] == 90 and plan["keep_runs_per_dag"] == 25
    assert plan["drop_archive_tables"] is False


@every_release
def test_playbook_check_run_rerun_and_archive_drop(pg, airflow_db, ansible, lock_file, airflow_release):
    args = conn_params(pg, airflow_db, lock_file=lock_file, drop_archive_tables=True, **RETENTION)
    rc, check, out = ansible.run_task(MODULE, args, check=True, diff=True)
    assert rc == 0, out
    assert check["changed"] is True and check["check_mode"] is True and "diff" in check
    assert check["handlers"]["archive_tables"]["dropped"] and pg.psql(
        "SELECT count(*) FROM pg_tables WHERE starts_with(tablename, '_airflow_deleted__')", airflow_db) == "1"
    rc, done, out = ansible.run_task(MODULE, args)
    assert rc == 0, out
    assert done["deleted_total"] == check["deleted_total"] > 0
    assert done["rows_after"] == check["rows_after"]
    assert done["handlers"]["archive_tables"]["dropped"] == check["handlers"]["archive_tables"]["dropped"]
    assert pg.psql("SELECT count(*) FROM pg_tables WHERE starts_with(tablename, '_airflow_deleted__')",
                   airflow_db) == "0"
    rc, again, out = ansible.run_task(MODULE, args)
    assert rc == 0, out
    assert again["changed"] is False and again["deleted_total"] == 0


@every_release
def test_playbook_refuses_an_unknown_revision(pg, airflow_db, ansible, lock_file, airflow_release):
    pg.psql("UPDATE alembic_version SET version_num = '0000deadbeef'", airflow_db)
    rc, result, out = ansible.run_task(MODULE, conn_params(pg, airflow_db, lock_file=lock_file, **RETENTION))
    assert rc != 0, out
    assert result["error_kind"] == "untested_schema" and "0000deadbeef" in result["msg"]
