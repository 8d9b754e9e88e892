"""Run retention against real Dagster databases: whole old runs go, every asset view stays.

The runs that may go are worked out here independently of the implementation, from what
Dagster's own instance API returns (latest materialization and planned event per partition,
latest observation, check history, asset records, run records and re-execution groups), and the
prune must retire exactly those. Tests parametrized over ``DAGSTER_RELEASES`` run on the oldest
supported Dagster as well as the newest.
"""
from __future__ import annotations

import datetime
import json
import signal
import subprocess
import sys
import time

import psycopg
import pytest

from conftest import COLLECTIONS_ROOT, conn_params
from dagster_checks import AGGRESSIVE, DAGSTER_RELEASES
# The release-aware dagster_db, and what it needs (pytest finds fixtures among a module's names).
from dagster_checks import (  # noqa: F401  pylint: disable=unused-import
    release_db_fixture, release_fixture, side_templates_fixture)

from ansible_collections.pgtidy.maintenance.plugins.module_utils._dagster import rules as _dagster
from ansible_collections.pgtidy.maintenance.plugins.module_utils._dagster.options import TESTED_REVISIONS
from ansible_collections.pgtidy.maintenance.plugins.module_utils._dagster.rules import DagsterProfile
from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.errors import InvalidRequest
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.prune import run_prune

DAYS = 30
KEEP = 1
# Noise pruning off, so the event logs of every kept run must stay identical.
NO_NOISE = {"log_retention_days": {"debug": -1, "info": -1, "warning": -1}, "event_retention_days": -1,
            "prune_superseded_planned": False}
RETENTION = dict(NO_NOISE, run_retention_days={"success": DAYS, "failure": DAYS, "canceled": DAYS},
                 keep_runs_per_job=KEEP)
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")
NOW = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    """Every cutoff of the module measured from one instant, the one the expectations use."""
    monkeypatch.setattr(_dagster, "utc_cutoff", lambda days, _now=None: NOW - datetime.timedelta(days=days))


def q(pg, db, text, params=None):
    with psycopg.connect(pg.dsn(db), autocommit=True) as conn:
        cur = conn.execute(text, params)
        return cur.fetchall() if cur.description else None


def cutoff_ts(days=DAYS):
    return (NOW - datetime.timedelta(days=days)).replace(tzinfo=datetime.timezone.utc).timestamp()


def run_ids_of_events(pg, db, storage_ids):
    if not storage_ids:
        return set()
    return {r[0] for r in q(pg, db, "SELECT run_id FROM event_logs WHERE id = ANY(%s)", (list(storage_ids),))}


def expected_retirement(facts, pg, db, statuses_days=None, keep=KEEP):
    """(retirable run ids, {kept old run id: reasons}) from what Dagster's API reports before any prune
    (``retention_facts`` of tests/dagster_fixture.py)."""
    statuses_days = statuses_days or {"SUCCESS": DAYS, "FAILURE": DAYS, "CANCELED": DAYS}
    runs = facts["runs"]        # [run_id, status, job, end_time, storage_id, root_run_id], from get_run_records
    reasons = {run[0]: set() for run in runs}
    old = set()
    for run_id, status, _job, end_time, _storage_id, _root in runs:
        days = statuses_days.get(status)
        if status not in FINISHED:
            reasons[run_id].add("not_finished")
        elif days is None:
            reasons[run_id].add("status_kept")
        elif (end_time or 0) >= cutoff_ts(days):
            reasons[run_id].add("within_retention")
        else:
            old.add(run_id)
    per_job = {}
    for run_id, status, job, _end, _storage_id, _root in sorted(runs, key=lambda r: r[4], reverse=True):
        if status in FINISHED:
            per_job.setdefault(job, []).append(run_id)
    for ids in per_job.values():
        for run_id in ids[:keep]:
            reasons[run_id].add("newest_per_job")

    def hold(run_ids, reason):
        for run_id in run_ids:
            if run_id in reasons:
                reasons[run_id].add(reason)

    # The newest materialization and planned event per asset partition, the newest materialization and
    # observation per asset, the catalog's last run of each asset, the newest check execution.
    hold(run_ids_of_events(pg, db, facts["latest_storage_ids"]), "latest_asset_event")
    for run_id, reason in facts["held"]:
        hold([run_id], reason)
    # The newest stored event of every asset-keyed kind per asset and partition (check evaluations and
    # their plans among them): the asset views above read these; keep whoever holds one.
    hold({r[0] for r in q(pg, db, """
        SELECT DISTINCT ON (asset_key, dagster_event_type, partition) run_id FROM event_logs
        WHERE asset_key IS NOT NULL ORDER BY asset_key, dagster_event_type, partition, id DESC""")},
         "latest_asset_event")
    groups = {}
    for run_id, _status, _job, _end, _storage_id, root in runs:
        groups.setdefault(root or run_id, set()).add(run_id)
    retirable, kept = set(), {}
    for members in groups.values():
        blocked = any(reasons[m] for m in members)
        for m in members & old:
            if blocked:
                kept[m] = (reasons[m] - {"within_retention"}) or {"reexecution_group"}
            else:
                retirable.add(m)
    return retirable, kept


def run_rows(pg, db):
    """Every row of every run, per run: (table, row id) for runs, run_tags and event_logs."""
    rows = {}
    for run_id, ident in q(pg, db, "SELECT run_id, 'runs:' || id FROM runs UNION ALL"
                                   " SELECT run_id, 'run_tags:' || id FROM run_tags UNION ALL"
                                   " SELECT run_id, 'event_logs:' || id || ':' || md5(event) FROM event_logs"):
        rows.setdefault(run_id, set()).add(ident)
    return rows


def snapshot_refs(pg, db):
    """Every stored snapshot id, and the job and execution-plan snapshot ids each run refers to."""
    by_run = {run_id: {s for s in (snap, plan) if s} for run_id, snap, plan in q(
        pg, db, "SELECT run_id, snapshot_id, run_body::json ->> 'execution_plan_snapshot_id' FROM runs")}
    return {"all": {r[0] for r in q(pg, db, "SELECT snapshot_id FROM snapshots")}, "by_run": by_run}


def references_to(pg, db, run_ids):
    """Rows in any table that still name one of ``run_ids``."""
    found = {}
    for table, column in q(pg, db, "SELECT table_name, column_name FROM information_schema.columns"
                                   " WHERE table_schema = 'public' AND column_name IN ('run_id', 'last_run_id')"):
        n = q(pg, db, 'SELECT count(*) FROM "%s" WHERE "%s" = ANY(%%s)' % (table, column), (list(run_ids),))[0][0]
        if n:
            found["%s.%s" % (table, column)] = n
    n = q(pg, db, "SELECT count(*) FROM run_tags WHERE value = ANY(%s)", (list(run_ids),))[0][0]
    if n:
        found["run_tags.value"] = n
    return found


# The fixture's snapshot entries that belong to single runs; the rest is what the asset pages show.
PER_RUN = ("runs", "run_stats", "step_stats", "ticks", "asset_checks", "observations")


def views(read):
    """What the asset pages show, from one read of ``snapshot`` and ``status_cache``: the snapshot without its
    per-run entries, plus the partition status cache."""
    shown = {key: value for key, value in read["snapshot"].items() if key not in PER_RUN}
    shown["status_cache"] = read["status_cache"]
    return shown


@pytest.mark.parametrize("dagster_release", DAGSTER_RELEASES)
def test_run_retention_keeps_every_asset_view_and_retires_exactly_what_the_rules_allow(pg, dagster_db, lock_file):
    db, home, release = dagster_db["db"], dagster_db["home"], dagster_db["release"]
    read = release.read(home, "snapshot", "status_cache", "retention_facts")
    retirable, kept_old = expected_retirement(read["retention_facts"], pg, db)
    before, before_runs = views(read), read["snapshot"]
    rows_before = run_rows(pg, db)
    snapshots_before = snapshot_refs(pg, db)
    assert len(retirable) >= len(rows_before) / 3, "the test must retire at least a third of the runs"
    assert kept_old, "some old runs must be kept for a reason, or the rules are not exercised"

    plan = run_prune(conn_params(pg, db, lock_file=lock_file, **RETENTION), DagsterProfile(), check_mode=True)
    assert run_rows(pg, db) == rows_before, "check mode changed something"
    result = run_prune(conn_params(pg, db, lock_file=lock_file, **RETENTION), DagsterProfile())
    again = run_prune(conn_params(pg, db, lock_file=lock_file, **RETENTION), DagsterProfile())

    handler = result["handlers"]["runs_retired"]
    assert set(handler["run_ids"]) == retirable
    assert handler["runs_retired"] == len(retirable) and not handler["run_ids_truncated"]
    predicted = plan["handlers"]["runs_retired"]
    assert set(predicted["run_ids"]) == retirable
    assert predicted["rows_by_table"] == handler["rows_by_table"]
    assert plan["deleted_total"] == result["deleted_total"] > 0
    assert handler["kept_runs"] == len(kept_old)
    assert sum(handler["retired_by_status"].values()) == sum(handler["retired_by_job"].values()) == len(retirable)
    assert handler["oldest_kept"]["run_id"] in kept_old and handler["oldest_kept"]["reasons"]
    assert set(handler["kept_by_reason"]) <= {r for rs in kept_old.values() for r in rs}
    assert again["changed"] is False and again["handlers"]["runs_retired"]["runs_retired"] == 0

    rows_after = run_rows(pg, db)
    assert set(rows_after) == set(rows_before) - retirable
    for run_id in rows_after:
        assert rows_after[run_id] == rows_before[run_id], "rows of kept run %s changed" % run_id
    assert references_to(pg, db, retirable) == {}
    deleted_events = sum(len([r for r in rows_before[x] if r.startswith("event_logs:")]) for x in retirable)
    assert handler["rows_by_table"]["event_logs"] == deleted_events
    assert handler["rows_by_table"]["runs"] == len(retirable)
    # Snapshots: those only retired runs referred to are gone, every other one stays.
    kept_refs = {ref for run_id, refs in snapshots_before["by_run"].items() if run_id not in retirable for ref in refs}
    orphaned = {ref for run_id in retirable for ref in snapshots_before["by_run"][run_id]} - kept_refs
    snapshots_after = snapshot_refs(pg, db)
    assert snapshots_after["all"] == snapshots_before["all"] - orphaned
    assert handler["rows_by_table"]["snapshots"] == len(orphaned) > 0

    read = release.read(home, "snapshot", "status_cache")
    after, after_runs = views(read), read["snapshot"]
    # The same status rebuilt from the events alone, the cache dropped.
    q(pg, db, "UPDATE asset_keys SET cached_status_data = NULL")
    rebuilt = release.read(home, "status_cache")
    for key in before:
        assert after[key] == before[key], key
    assert rebuilt == before["status_cache"]
    kept_ids = set(rows_after)
    assert list(after_runs["runs"]) == [r for r in before_runs["runs"] if r[0] in kept_ids]
    for run_id in kept_ids:
        assert after_runs["run_stats"][run_id] == before_runs["run_stats"][run_id]
        assert after_runs["step_stats"][run_id] == before_runs["step_stats"][run_id]
    assert after_runs["asset_checks"] == [r for r in before_runs["asset_checks"] if r[0] in kept_ids]
    assert max(after_runs["observations"]) == max(before_runs["observations"])


@pytest.mark.parametrize("dagster_release", DAGSTER_RELEASES)
def test_kept_old_failed_run_reexecutes_from_failure(pg, dagster_db, lock_file):
    """Failures kept by status, successes retired around them: the failed run's snapshots and events stay."""
    failed_run = dagster_db["manifest"]["failed_runs"][0]
    options = {**RETENTION, "run_retention_days": {"success": DAYS, "failure": -1, "canceled": DAYS}}
    result = run_prune(conn_params(pg, dagster_db["db"], lock_file=lock_file, **options), DagsterProfile())
    handler = result["handlers"]["runs_retired"]
    assert handler["runs_retired"] > 0 and "FAILURE" not in handler["retired_by_status"]
    assert failed_run not in handler["run_ids"]
    status, executed = dagster_db["release"].reexecute_from_failure(dagster_db["home"], failed_run)
    assert status == "FAILURE"
    assert executed == {"transform", "load"}


def test_unfinished_backfill_and_reexecution_groups_stay_whole(pg, dagster_db, lock_file):
    db = dagster_db["db"]
    manifest = dagster_db["manifest"]
    group = manifest["reexecutions"][0]
    # Two old runs belong to a backfill the daemon is still working on.
    old = [r[0] for r in q(pg, db, "SELECT run_id FROM runs WHERE status = 'SUCCESS' AND run_id <> ALL(%s)"
                                   " ORDER BY id LIMIT 2", ([group["parent"], group["child"]],))]
    q(pg, db, "INSERT INTO bulk_actions (key, status, timestamp, body) VALUES ('bf-open', 'REQUESTED',"
              " now() at time zone 'utc', '{}')")
    q(pg, db, "UPDATE runs SET backfill_id = 'bf-open' WHERE run_id = ANY(%s)", (old,))
    # The re-executed child is made recent: its failed parent is old but must stay with it.
    q(pg, db, "UPDATE runs SET end_time = extract(epoch FROM now()) WHERE run_id = %s", (group["child"],))
    result = run_prune(conn_params(pg, db, lock_file=lock_file, **RETENTION), DagsterProfile())
    handler = result["handlers"]["runs_retired"]
    left = {r[0] for r in q(pg, db, "SELECT run_id FROM runs")}
    assert set(old) <= left and handler["kept_by_reason"]["backfill_in_progress"] == 2
    assert {group["parent"], group["child"]} <= left, (group, handler, q(
        pg, db, "SELECT run_id, key, value FROM run_tags WHERE run_id = ANY(%s) OR value = ANY(%s)",
        ([group["parent"], group["child"]], [group["parent"], group["child"]])))
    assert handler["kept_by_reason"]["reexecution_group"] >= 1
    assert handler["runs_retired"] > 0

    # Backfill finished, child old again: the next run retires the backfill's runs and the whole group.
    q(pg, db, "UPDATE bulk_actions SET status = 'COMPLETED_SUCCESS' WHERE key = 'bf-open'")
    q(pg, db, "UPDATE runs SET end_time = extract(epoch FROM now()) - 90 * 86400 WHERE run_id = %s",
      (group["child"],))
    run_prune(conn_params(pg, db, lock_file=lock_file, **RETENTION), DagsterProfile())
    left = {r[0] for r in q(pg, db, "SELECT run_id FROM runs")}
    assert not set(old) & left
    # parent and child go together or stay together
    assert (group["parent"] in left) == (group["child"] in left)


def test_budget_caps_whole_runs_and_the_next_run_finishes(pg, dagster_db, lock_file):
    db = dagster_db["db"]
    rows_before = run_rows(pg, db)
    capped = run_prune(conn_params(pg, db, lock_file=lock_file, max_rows=40, batch_size=10, **RETENTION),
                       DagsterProfile())
    handler = capped["handlers"]["runs_retired"]
    assert capped["capped"] is True and capped["capped_by"] == "max_rows" and handler["capped"] is True
    assert 0 < handler["runs_retired"] and handler["remaining"] > 0
    rows_mid = run_rows(pg, db)
    for run_id, rows in rows_mid.items():       # no half-retired run
        assert rows == rows_before[run_id]
    rest = run_prune(conn_params(pg, db, lock_file=lock_file, **RETENTION), DagsterProfile())
    assert rest["capped"] is False and rest["handlers"]["runs_retired"]["runs_retired"] > 0


def test_killed_mid_run_leaves_no_half_retired_run(pg, dagster_db, lock_file, tmp_path):
    db = dagster_db["db"]
    rows_before = run_rows(pg, db)
    script = tmp_path / "run.py"
    script.write_text(
        "import sys, json\n"
        "sys.path[:0] = %r\n"
        "from ansible_collections.pgtidy.maintenance.plugins.module_utils._dagster.rules import DagsterProfile\n"
        "from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.prune import run_prune\n"
        "run_prune(json.loads(sys.argv[1]), DagsterProfile())\n" % ([COLLECTIONS_ROOT],))
    params = conn_params(pg, db, lock_file=lock_file, batch_size=1, batch_pause=0.3, **RETENTION)
    proc = subprocess.Popen([sys.executable, str(script), json.dumps(params)])
    deadline = time.monotonic() + 60
    while len(run_rows(pg, db)) == len(rows_before) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the pruning process ended before it was killed (rc %s)" % proc.returncode
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rows_mid = run_rows(pg, db)
    assert 0 < len(rows_before) - len(rows_mid)
    for run_id, rows in rows_mid.items():
        assert rows == rows_before[run_id], "run %s was half retired" % run_id
    assert references_to(pg, db, set(rows_before) - set(rows_mid)) == {}
    result = run_prune(conn_params(pg, db, lock_file=lock_file, **RETENTION), DagsterProfile())
    assert result["capped"] is False and not result["failed_handlers"]
    assert result["handlers"]["runs_retired"]["runs_retired"] > 0


@pytest.mark.parametrize("options, fragment", [
    ({"run_retention_days": {"succes": 30}}, "unknown run status"),
    ({"run_retention_days": {"success": 0}}, "out of range"),
    ({"run_retention_days": {"success": 30}, "keep_runs_per_job": 0}, "keep_runs_per_job"),
    ({"keep_runs_per_job": 5}, "only applies with run_retention_days"),
    ({"run_retention_days": 30}, "mapping of run status"),
])
def test_bad_run_retention_requests_are_refused(options, fragment):
    with pytest.raises(InvalidRequest) as err:
        _dagster.validate_options(options)
    assert fragment in err.value.message


def test_health_preview_includes_run_retention(pg, dagster_db, lock_file):
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._health.health import run_health
    db = dagster_db["db"]
    params = conn_params(pg, db, dagster_retention=dict(RETENTION))
    params.pop("lock_wait")
    preview = run_health(params)["orchestrator"]["retention"]
    predicted = preview["handlers"]["runs_retired"]["rows"]
    assert predicted > 0
    result = run_prune(conn_params(pg, db, lock_file=lock_file, **RETENTION), DagsterProfile())
    assert result["handlers"]["runs_retired"]["deleted"] == predicted


@pytest.mark.parametrize("dagster_release", DAGSTER_RELEASES)
def test_module_check_diff_real_run_and_rerun_with_run_retention(pg, dagster_db, ansible, lock_file):
    """Through ansible-playbook, run retention beside noise pruning and tick retention (every handler): check mode
    predicts the real run per handler and in total, and a re-run deletes nothing."""
    db = dagster_db["db"]
    options = {**RETENTION, **AGGRESSIVE, "prune_superseded_planned": True}
    args = conn_params(pg, db, lock_file=lock_file, **options)
    rc, check, out = ansible.run_task("pgtidy.maintenance.dagster_prune", args, check=True, diff=True)
    assert rc == 0, out
    # The schema the release's own migration wrote: the oldest supported release's head is the first tested
    # revision, the newest's the last.
    newest = dagster_db["release"].python is None
    assert check["schema_revision"] == TESTED_REVISIONS[-1 if newest else 0] and check["schema_tested"] is True
    runs = q(pg, db, "SELECT count(*) FROM runs")[0][0]
    before = check["diff"]["before"]["rows"]
    assert before["runs"] == runs and {"run_tags", "asset_check_executions", "snapshots"} <= set(before)
    predicted = check["handlers"]["runs_retired"]
    assert check["diff"]["after"]["rows"]["runs"] == runs - predicted["runs_retired"] < runs
    rc, real, out = ansible.run_task("pgtidy.maintenance.dagster_prune", args, diff=True)
    assert rc == 0, out
    assert real["diff"]["after"]["rows"] == check["diff"]["after"]["rows"]
    assert real["handlers"]["runs_retired"]["run_ids"] == predicted["run_ids"]
    assert {name: h["deleted"] for name, h in real["handlers"].items()} == \
        {name: h["deleted"] for name, h in check["handlers"].items()}
    assert real["deleted_total"] == check["deleted_total"] > real["handlers"]["runs_retired"]["deleted"] > 0
    assert real["handlers"]["python_logs_debug"]["deleted"] > 0
    assert real["handlers"]["ticks_sensor_skipped"]["deleted"] > 0
    assert q(pg, db, "SELECT count(*) FROM runs")[0][0] == real["rows_after"]["runs"]
    rc, again, out = ansible.run_task("pgtidy.maintenance.dagster_prune", args)
    assert rc == 0, out
    assert again["changed"] is False and again["deleted_total"] == 0


def test_a_failing_run_retention_leaves_the_other_handlers_and_every_run_whole(pg, dagster_db, lock_file):
    """A role that may not delete runs: the run handler fails alone, its transaction rolled back."""
    db = dagster_db["db"]
    q(pg, db, "DROP ROLE IF EXISTS no_runs_delete")
    q(pg, db, "CREATE ROLE no_runs_delete LOGIN PASSWORD 'secret-pw'")
    q(pg, db, "GRANT SELECT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO no_runs_delete")
    q(pg, db, "REVOKE DELETE ON runs FROM no_runs_delete")
    rows_before = run_rows(pg, db)
    options = {**RETENTION, "log_retention_days": {"debug": 1, "info": 1, "warning": 1}}
    params = conn_params(pg, db, lock_file=lock_file, login_user="no_runs_delete", login_password="secret-pw",
                         **options)
    result = run_prune(params, DagsterProfile())
    assert result["failed_handlers"] == ["runs_retired"]
    assert "permission denied" in result["handlers"]["runs_retired"]["error"]
    assert result["handlers"]["python_logs_debug"]["deleted"] > 0
    assert set(run_rows(pg, db)) == set(rows_before)      # every run is still there, with its tags
    for run_id, rows in run_rows(pg, db).items():
        assert {r for r in rows if not r.startswith("event_logs:")} == \
            {r for r in rows_before[run_id] if not r.startswith("event_logs:")}
    assert "secret-pw" not in json.dumps(result)


LAUNCHING = ["retire_sensor", "retire_schedule"]      # the instigators of ticks_launching_runs


def ticks_launching_runs(pg, dagster_db):
    """Ticks of two instigators that launched (or reserved) runs run retention retires or keeps, written through
    Dagster's API, the fixture's own ticks made older than them; returns (retirable runs, {label: tick id},
    ticks per instigator as Dagster shows them, newest first)."""
    db, home, release = dagster_db["db"], dagster_db["home"], dagster_db["release"]
    retirable, kept_old = expected_retirement(release.read(home, "retention_facts"), pg, db)
    retired, kept = sorted(retirable), sorted(kept_old)
    assert len(retired) >= 7 and kept
    old = cutoff_ts() - 10 * 86400
    ticks = [  # label, instigator, kind, status, when, launched runs, reserved runs
        ("all_runs_retired", "retire_sensor", "SENSOR", "SUCCESS", old, [retired[0]], None),
        ("one_run_kept", "retire_sensor", "SENSOR", "SUCCESS", old + 1, [retired[1], kept[0]], None),
        ("reserved_run_kept", "retire_sensor", "SENSOR", "SUCCESS", old + 2, [retired[2]], [kept[0]]),
        ("still_started", "retire_sensor", "SENSOR", "STARTED", old + 3, [retired[3]], None),
        ("newest_of_sensor", "retire_sensor", "SENSOR", "SUCCESS", old + 5, [retired[4]], None),
        ("failed_tick_runs_retired", "retire_schedule", "SCHEDULE", "FAILURE", old, [retired[5]], None),
        # Skipped schedule ticks are kept forever by Dagster's default tick retention: this one launched nothing.
        ("launched_nothing", "retire_schedule", "SCHEDULE", "SKIPPED", old + 1, [], None),
        ("recent", "retire_schedule", "SCHEDULE", "SUCCESS", time.time() - 3600, [retired[6]], None),
    ]
    ids = release.write_ticks(home, ticks=[
        {"name": name, "kind": kind, "status": status, "timestamp": when, "run_ids": runs, "reserved_run_ids": reserved}
        for _label, name, kind, status, when, runs, reserved in ticks])
    made = dict(zip([t[0] for t in ticks], ids))
    # Dagster writes ticks as they happen, so ids grow with time (the id walk relies on it): the fixture's
    # earlier ticks are made older than the ones above.
    q(pg, db, "UPDATE job_ticks SET timestamp = to_timestamp(%s) at time zone 'utc' WHERE id <> ALL(%s)",
      (old - 86400, list(made.values())))
    return retirable, made, release.read(home, "ticks", ticks={"names": LAUNCHING})


def test_ticks_of_retired_runs_go_once_every_run_they_launched_is_gone(pg, dagster_db, lock_file):
    """Under Dagster's default tick retention, ticks that launched runs are kept forever; once run
    retention has retired every run a tick launched, the tick only links to missing runs and goes,
    unless it is still STARTED or is its instigator's newest tick. Check mode predicts it, including
    the ticks of runs the same run retires."""
    db = dagster_db["db"]
    retirable, made, ticks_before = ticks_launching_runs(pg, dagster_db)
    expected_gone = {made["all_runs_retired"], made["failed_tick_runs_retired"]}

    off = run_prune(conn_params(pg, db, lock_file=lock_file, retire_run_ticks=False, **RETENTION), DagsterProfile(),
                    check_mode=True)
    assert "ticks_of_retired_runs" not in off["handlers"]
    plan = run_prune(conn_params(pg, db, lock_file=lock_file, **RETENTION), DagsterProfile(), check_mode=True)
    result = run_prune(conn_params(pg, db, lock_file=lock_file, **RETENTION), DagsterProfile())
    again = run_prune(conn_params(pg, db, lock_file=lock_file, **RETENTION), DagsterProfile())

    assert set(result["handlers"]["runs_retired"]["run_ids"]) == retirable
    handler = result["handlers"]["ticks_of_retired_runs"]
    assert handler["deleted"] == len(expected_gone)
    assert plan["handlers"]["ticks_of_retired_runs"]["deleted"] == len(expected_gone), plan["handlers"]
    assert again["handlers"]["ticks_of_retired_runs"]["deleted"] == 0 and again["changed"] is False
    left = {r[0] for r in q(pg, db, "SELECT id FROM job_ticks")}
    assert not expected_gone & left
    assert set(made.values()) - expected_gone <= left
    after = dagster_db["release"].read(dagster_db["home"], "ticks", ticks={"names": LAUNCHING})
    for name in LAUNCHING:
        assert after[name] == [t for t in ticks_before[name] if t[0] not in expected_gone]
        assert after[name][0] == ticks_before[name][0], "an instigator's newest tick must stay"


@pytest.mark.parametrize("dagster_release", DAGSTER_RELEASES)
def test_a_tick_past_its_tick_retention_and_with_its_runs_retired_is_counted_once(pg, dagster_db, lock_file):
    """Tick retention for finished ticks (success, failure) beside run retention: a tick both past its status's
    retention and with every launched run retired is deleted by one handler, and check mode counts it once, per
    handler and in total, as the real run deletes it."""
    db, home, release = dagster_db["db"], dagster_db["home"], dagster_db["release"]
    retirable, made, _ticks = ticks_launching_runs(pg, dagster_db)
    finished = {"success": DAYS, "failure": DAYS}
    options = dict(RETENTION, tick_retention_days={"sensor": dict(finished, skipped=DAYS), "schedule": finished})
    params = conn_params(pg, db, lock_file=lock_file, **options)
    before = release.read(home, "ticks", ticks={"names": LAUNCHING})
    ticks_before = q(pg, db, "SELECT count(*) FROM job_ticks")[0][0]

    plan = run_prune(params, DagsterProfile(), check_mode=True)
    result = run_prune(params, DagsterProfile())
    again = run_prune(params, DagsterProfile())

    assert set(result["handlers"]["runs_retired"]["run_ids"]) == retirable
    real = {name: h["deleted"] for name, h in result["handlers"].items()}
    assert {name: h["deleted"] for name, h in plan["handlers"].items()} == real
    assert plan["deleted_total"] == result["deleted_total"] == sum(real.values())
    assert plan["rows_after"] == result["rows_after"]
    gone = ticks_before - q(pg, db, "SELECT count(*) FROM job_ticks")[0][0]
    assert sum(n for name, n in real.items() if name.startswith("ticks_")) == gone > 0
    assert again["changed"] is False and again["deleted_total"] == 0
    # Both rules would take these two; whichever does, they go once and are counted once.
    left = {r[0] for r in q(pg, db, "SELECT id FROM job_ticks")}
    assert not {made["all_runs_retired"], made["failed_tick_runs_retired"]} & left
    # Every finished tick past retention went, except each instigator's newest; STARTED and recent ones stay.
    after = release.read(home, "ticks", ticks={"names": LAUNCHING})
    assert [t[0] for t in after["retire_sensor"]] == [made["newest_of_sensor"], made["still_started"]]
    assert [t[0] for t in after["retire_schedule"]] == [made["recent"], made["launched_nothing"]]
    assert after["retire_sensor"][0] == before["retire_sensor"][0]


@pytest.mark.parametrize("dagster_release", DAGSTER_RELEASES)
def test_check_mode_and_the_health_preview_equal_the_real_run_with_noise_in_retired_runs(pg, dagster_db, lock_file):
    """Run retention beside noise pruning: every row is counted once, by the handler that deletes it."""
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._health.health import run_health
    db = dagster_db["db"]
    options = dict(run_retention_days={"success": DAYS, "failure": DAYS, "canceled": DAYS}, keep_runs_per_job=KEEP,
                   log_retention_days={"debug": 1, "info": 1, "warning": 1}, event_retention_days=1)
    retirable, _kept = expected_retirement(dagster_db["release"].read(dagster_db["home"], "retention_facts"), pg, db)
    # The fixture must have what made check mode count twice: noise rows in runs that are retired.
    noise_in_retired = q(pg, db, "SELECT count(*) FROM event_logs WHERE run_id = ANY(%s) AND"
                                 " (dagster_event_type IS NULL OR dagster_event_type = 'ENGINE_EVENT')",
                         (list(retirable),))[0][0]
    assert noise_in_retired > 0
    params = conn_params(pg, db, lock_file=lock_file, **options)
    preview_params = conn_params(pg, db, dagster_retention=dict(options))
    preview_params.pop("lock_wait")
    preview = run_health(preview_params)["orchestrator"]["retention"]
    plan = run_prune(params, DagsterProfile(), check_mode=True)
    result = run_prune(params, DagsterProfile())
    assert result["handlers"]["runs_retired"]["runs_retired"] == len(retirable)

    real = {name: h["deleted"] for name, h in result["handlers"].items()}
    assert {name: h["deleted"] for name, h in plan["handlers"].items()} == real
    assert {name: h["rows"] for name, h in preview["handlers"].items()} == real
    assert plan["deleted_total"] == preview["next_run_rows"] == result["deleted_total"] > 0
    assert plan["handlers"]["runs_retired"]["rows_by_table"] == result["handlers"]["runs_retired"]["rows_by_table"]
    assert plan["rows_after"] == result["rows_after"]
    assert all(n >= 0 for n in plan["rows_after"].values())
    actual = {t: q(pg, db, 'SELECT count(*) FROM "%s"' % t)[0][0] for t in result["rows_after"]}
    assert result["rows_after"] == actual
    assert real["runs_retired"] > 0 and sum(v for k, v in real.items() if k != "runs_retired") > 0
