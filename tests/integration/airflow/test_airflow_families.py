"""airflow_prune's table families beyond dag runs (plugins/module_utils/_airflow/families.py) against the real
Airflow 3 history (tests/airflow_fixture.py, rows made by tests/airflow/families_history.py)."""
from __future__ import annotations

import pytest

from airflow_fixture import RETENTION, read_back, run_key
from conftest import conn_params

from ansible_collections.pgtidy.maintenance.plugins.module_utils._airflow.families import FAMILY_OPTIONS
from ansible_collections.pgtidy.maintenance.plugins.module_utils._airflow.options import AIRFLOW_PRUNE_ARGUMENT_SPEC
from ansible_collections.pgtidy.maintenance.plugins.module_utils._airflow.rules import AirflowProfile
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.prune import run_prune

pytestmark = pytest.mark.xdist_group("airflow")

FAMILIES = ("triggers", "callbacks", "dag_versions", "sessions", "task_state_store", "partitioned_asset_key_log")


def prune(pg, db, lock_file, check=False, **options):
    params = conn_params(pg, db, lock_file=lock_file, **dict(RETENTION, **options))
    return run_prune(params, AirflowProfile(), check_mode=check)


def ids(pg, db, query):
    return sorted(line for line in pg.psql(query, db).splitlines() if line)


def as_text(values):
    return sorted(str(v) for v in values)


def test_each_family_deletes_what_is_past_retention_and_keeps_the_rest(pg, airflow_db, airflow_history, lock_file):
    made = airflow_history["made"]
    plan = prune(pg, airflow_db, lock_file, check=True)
    done = prune(pg, airflow_db, lock_file)
    assert not done["failed_handlers"], done["handlers"]
    for name in FAMILIES:
        assert plan["handlers"][name]["deleted"] == done["handlers"][name]["deleted"], name
        assert done["handlers"][name]["status"] == "ok" and "skipped" not in done["handlers"][name], name
    handlers = done["handlers"]

    # Triggers: the unused one created 40 days ago goes; the one a deferred sensor waits on (60 days old), the one
    # an asset watcher uses (45 days) and the unused one of yesterday stay.
    triggers = made["triggers"]
    assert handlers["triggers"]["deleted"] == 1
    assert ids(pg, airflow_db, "SELECT id FROM trigger") == as_text(
        [made["deferred_trigger"], triggers["watched_trigger"], triggers["unused_trigger_recent"]])
    assert ids(pg, airflow_db, "SELECT trigger_id FROM asset_watcher") == as_text([triggers["watched_trigger"]])

    # Callbacks: the finished ones of 60 and 50 days go, and the one whose deadline went with its run; the pending
    # one, yesterday's and the one whose deadline belongs to a run that stays remain (the deadline with it).
    callbacks = made["callbacks"]
    assert handlers["callbacks"]["deleted"] == 3
    assert handlers["dag_runs"]["rows_by_table"]["deadline"] == 1
    assert ids(pg, airflow_db, "SELECT id FROM callback") == sorted(
        [callbacks["pending_old"], callbacks["success_recent"], callbacks["deadline_of_kept_run"]])
    assert ids(pg, airflow_db, "SELECT callback_id FROM deadline") == [callbacks["deadline_of_kept_run"]]

    # DAG versions: the first version of pgtidy_versioned, whose only run the dag run rule deleted, goes with its
    # serialized DAG and code; every DAG's current version stays.
    first = made["versions"]["first_version"]
    assert handlers["dag_versions"]["deleted"] == 1
    assert handlers["dag_versions"]["cascaded"] == {"serialized_dag": 1, "dag_code": 1}
    assert handlers["dag_versions"]["rows_by_table"] == {"dag_version": 1, "serialized_dag": 1, "dag_code": 1}
    assert run_key(made["versioned_old"]) in handlers["dag_runs"]["run_ids"]
    for table, column in (("dag_version", "id"), ("serialized_dag", "dag_version_id"), ("dag_code", "dag_version_id")):
        assert pg.psql("SELECT count(*) FROM %s WHERE %s = '%s'" % (table, column, first), airflow_db) == "0", table
    assert pg.psql("SELECT count(*) FROM dag_version", airflow_db) == pg.psql(
        "SELECT count(DISTINCT dag_id) FROM dag_version", airflow_db) == "5"

    # Sessions: those that expired 60 and 40 days ago go; the one that expired 5 days ago and the live one stay.
    sessions = made["sessions"]
    assert handlers["sessions"]["deleted"] == 2
    assert ids(pg, airflow_db, "SELECT id FROM session") == as_text([sessions["expired_5"], sessions["fresh"]])

    # Task state: the row expired 40 days ago goes; the row of a deleted run went with its run (dag_runs counts it).
    state = made["task_state"]
    assert handlers["task_state_store"]["deleted"] == 1
    assert handlers["dag_runs"]["rows_by_table"]["task_state_store"] == 1
    assert ids(pg, airflow_db, "SELECT id FROM task_state_store") == as_text(
        [state["expired_lately"], state["no_expiry"], state["future"]])

    # Partition log: the old orphan and the row of the partitioned run the dag run rule deleted go; the row of
    # the pending partitioned run and the recent orphan stay.
    log = made["partition_log"]
    assert handlers["partitioned_asset_key_log"]["deleted"] == 2
    assert handlers["dag_runs"]["rows_by_table"]["asset_partition_dag_run"] == 1
    assert ids(pg, airflow_db, "SELECT id FROM partitioned_asset_key_log") == as_text(
        [log["of_pending"], log["orphan_recent"]])


def test_the_deferred_run_its_trigger_and_every_current_dag_stay_readable(pg, airflow_db, airflow_history,
                                                                          lock_file):
    before = airflow_history["before"]
    made = airflow_history["made"]
    done = prune(pg, airflow_db, lock_file)
    assert not done["failed_handlers"] and done["handlers"]["dag_versions"]["deleted"] == 1
    after = read_back(pg, airflow_db, airflow_history["python"], airflow_history["home"])
    deferred = run_key(made["deferred_run"])
    # Marked failed by hand 60 days ago, but its sensor is deferred: the run, the task and its trigger stay.
    assert deferred in after["runs"] and after["runs"][deferred] == before["runs"][deferred]
    assert after["runs"][deferred]["state"] == "failed"
    assert after["runs"][deferred]["task_instances"]["wait[-1]"]["state"] == "deferred"
    assert pg.psql("SELECT trigger_id FROM task_instance WHERE dag_id = 'pgtidy_deferred' AND state = 'deferred'",
                   airflow_db) == str(made["deferred_trigger"])
    assert done["handlers"]["dag_runs"]["kept_by_reason"]["task_unfinished"] >= 1
    # Every current DAG loads from its latest serialized DAG and code as before, and schedules the same.
    assert after["dags"] == before["dags"] and set(after["dags"]) >= {"pgtidy_versioned", "pgtidy_deferred"}
    assert after["dags"]["pgtidy_versioned"]["version"] == 2
    assert after["next"] == before["next"]


def test_a_family_without_its_table_is_skipped_and_said_so(pg, airflow_db, lock_file):
    """Airflow releases without a family's table (and databases without FAB's ``session``): the rule does nothing
    and its report says why; the other rules run."""
    pg.psql("DROP TABLE session; DROP TABLE partitioned_asset_key_log; ALTER TABLE callback DROP COLUMN state",
            airflow_db)
    for check in (True, False):
        result = prune(pg, airflow_db, lock_file, check=check)
        assert not result["failed_handlers"], result["handlers"]
        handlers = result["handlers"]
        assert handlers["sessions"]["skipped"] == "table session is not in this database"
        assert handlers["partitioned_asset_key_log"]["skipped"] == \
            "table partitioned_asset_key_log is not in this database"
        assert handlers["callbacks"]["skipped"] == "table callback has no column state"
        for name in ("sessions", "partitioned_asset_key_log", "callbacks"):
            assert handlers[name]["deleted"] == 0 and handlers[name]["status"] == "ok"
            assert "skipped" in handlers[name]["description"]
        assert handlers["triggers"]["deleted"] == 1 and handlers["dag_versions"]["deleted"] == 1
    assert pg.psql("SELECT count(*) FROM callback", airflow_db) == "6"


def test_minus_one_keeps_a_family_and_the_defaults_live_in_the_spec(pg, airflow_db, lock_file):
    keep = {name: -1 for name in FAMILY_OPTIONS}
    before = {t: pg.psql("SELECT count(*) FROM %s" % t, airflow_db) for t in ("trigger", "callback", "session")}
    result = prune(pg, airflow_db, lock_file, **keep)
    assert not set(FAMILIES) & set(result["handlers"])
    assert {t: pg.psql("SELECT count(*) FROM %s" % t, airflow_db) for t in before} == before
    plan = AirflowProfile().validate_options({})
    for name in FAMILY_OPTIONS:
        assert plan[name] == AIRFLOW_PRUNE_ARGUMENT_SPEC[name]["default"] >= 1, name


def family_view(result):
    """What check mode predicts of each family. Not ``scanned``: in check mode the rows of the runs dag_runs counted
    are still there, so a window examines them too (they are not candidates)."""
    return {name: {key: h.get(key) for key in ("deleted", "batches", "remaining", "cascaded", "status")}
            for name, h in result["handlers"].items() if name in FAMILIES}


def test_check_mode_predicts_the_families_batch_by_batch_and_under_a_row_budget(pg, airflow_db, lock_file):
    """One row per batch, and a row budget that ends the run inside the families (the other handlers off, the
    families that wait for dag_runs last): check mode predicts each handler's rows, batches and backlog, and the
    next run finishes the work."""
    only = dict(batch_size=1, asset_event_retention_days=-1, log_retention_days=-1, job_retention_days=-1,
                import_error_retention_days=-1)
    whole = prune(pg, airflow_db, lock_file, check=True, **only)
    assert sum(whole["handlers"][name]["deleted"] for name in FAMILIES) == 10
    cap = whole["deleted_total"] - 4
    plan = prune(pg, airflow_db, lock_file, check=True, max_rows=cap, **only)
    done = prune(pg, airflow_db, lock_file, max_rows=cap, **only)
    assert done["capped"] and done["capped_by"] == "max_rows" and not done["failed_handlers"]
    assert family_view(plan) == family_view(done)
    assert any(view["remaining"] for view in family_view(done).values()), "the budget ended before the families"
    # A batch may pass the budget by its own rows (a DAG version brings its serialized DAG and code).
    assert plan["deleted_total"] == done["deleted_total"] and cap <= done["deleted_total"] < whole["deleted_total"]
    rest_plan = prune(pg, airflow_db, lock_file, check=True, **only)
    rest = prune(pg, airflow_db, lock_file, **only)
    assert family_view(rest_plan) == family_view(rest) and not rest["capped"]
    assert rest["deleted_total"] == whole["deleted_total"] - done["deleted_total"] > 0
    assert prune(pg, airflow_db, lock_file, check=True, **only)["deleted_total"] == 0
