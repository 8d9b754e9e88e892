"""prefect_prune against a real Prefect history: core runs, real ansible-playbook runs, and read-back
through Prefect's own client."""
from __future__ import annotations

import pytest

from conftest import conn_params
from prefect_fixture import NO_END_TIME, PREFECT_RELEASES, RETENTION, TABLES, counts, old_labels, read_back

from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.errors import InvalidRequest
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.errors import SchemaMismatch
from ansible_collections.pgtidy.maintenance.plugins.module_utils._prefect.options import TESTED_REVISIONS
from ansible_collections.pgtidy.maintenance.plugins.module_utils._prefect.rules import PrefectProfile, validate_options
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.prune import run_prune

MODULE = "pgtidy.maintenance.prefect_prune"


def prune(pg, db, lock_file, check=False, **options):
    params = conn_params(pg, db, lock_file=lock_file, **dict(RETENTION, **options))
    return run_prune(params, PrefectProfile(), check_mode=check)


def handler_view(result):
    return {name: (h["deleted"], h.get("cascaded"), h.get("repointed"), h["status"])
            for name, h in result["handlers"].items()}


def old_run_ids(history):
    return {i for label in old_labels(history["release"]) for i in history["made"][label]}


@pytest.mark.parametrize("prefect_release", PREFECT_RELEASES)
def test_check_mode_predicts_the_run_and_a_rerun_changes_nothing(pg, prefect_db, prefect_history, prefect_release,
                                                                 lock_file):
    before = counts(pg, prefect_db)
    plan = prune(pg, prefect_db, lock_file, check=True)
    assert counts(pg, prefect_db) == before, "check mode must not change anything"
    done = prune(pg, prefect_db, lock_file)
    plan_again = prune(pg, prefect_db, lock_file, check=True)
    again = prune(pg, prefect_db, lock_file)

    assert plan["changed"] is True and done["changed"] is True
    assert handler_view(plan) == handler_view(done)
    assert plan["deleted_total"] == done["deleted_total"] > 0
    assert plan["rows_after"] == done["rows_after"]
    assert not done["failed_handlers"] and not done["capped"]

    handlers = done["handlers"]
    # Prefect 3.4 gives the run cancelled before it started no end time: it is kept, as Prefect's vacuum keeps it.
    assert handlers["old_flow_runs"]["deleted"] == len(old_run_ids(prefect_history)) \
        == {"3.8": 9, "3.4": 8}[prefect_release]
    assert handlers["old_flow_runs"]["cascaded"]["log"] > 0
    assert handlers["old_flow_runs"]["cascaded"]["artifact"] > 0
    assert handlers["orphaned_artifacts"]["deleted"] == 2          # the run deleted through the API
    assert handlers["events_override_1"]["deleted"] == 2           # heartbeats 10 days old, override 7
    assert handlers["old_events"]["deleted"] == 1                  # the 20-day-old custom event still stored
    if prefect_release == "3.4":
        # No index on event_resources.event_id: the events go alone, and the sweep behind them deletes the
        # resources older than the events retention, those of the 20-day-old custom event among them.
        assert "cascaded" not in handlers["old_events"] and "deletes those of the events they deleted" in \
            handlers["orphaned_event_resources"]["note"]
        assert handlers["orphaned_event_resources"]["deleted"] >= 2
    else:
        assert handlers["old_events"]["cascaded"]["event_resources"] >= 1
        assert handlers["orphaned_event_resources"]["deleted"] >= 1    # resources of the event deleted by SQL
    assert handlers["artifact_collections"]["repointed"] == 1      # "report": latest version came from an old run
    assert handlers["artifact_collections"]["deleted"] == 3        # only-old, failing-report, orphan-key
    assert "walks the distinct flow run ids" in handlers["orphaned_logs"]["note"]
    # The orphan walks examine flow run ids, the resources sweep rows, and check mode says how many (it
    # used to say 0). It reads what the real batches read, but nothing is deleted before it, so it examines
    # at least as many: the rows of the old flow runs and events deleted first by the real run are still there.
    for sweep in ("orphaned_logs", "orphaned_artifacts", "orphaned_event_resources"):
        assert plan["handlers"][sweep]["scanned"] >= handlers[sweep]["scanned"] > 0, sweep
        # where no other handler deletes first, check mode examines exactly what the real run examines
        assert plan_again["handlers"][sweep]["scanned"] == again["handlers"][sweep]["scanned"], sweep
    assert again["handlers"]["orphaned_logs"]["scanned"] > 0

    assert again["changed"] is False and again["deleted_total"] == 0
    assert all(h["deleted"] == 0 and not h.get("repointed") for h in again["handlers"].values())
    assert counts(pg, prefect_db) == {t: done["rows_after"].get(t, counts(pg, prefect_db)[t]) for t in TABLES}


@pytest.mark.parametrize("prefect_release", PREFECT_RELEASES)
def test_prefect_reads_back_what_was_kept(pg, prefect_db, prefect_history, lock_file):
    made = prefect_history["made"]
    result = prune(pg, prefect_db, lock_file)
    assert result["changed"] and not result["failed_handlers"]

    after = read_back(pg, prefect_db, prefect_history["python"], prefect_history["home"], prefect_history["release"])
    before = prefect_history["before"]
    gone = old_run_ids(prefect_history)
    assert set(after["flow_runs"]) == set(before["flow_runs"]) - gone
    for run_id, record in after["flow_runs"].items():
        assert record == before["flow_runs"][run_id], "kept flow run %s changed" % run_id
    # Kept on purpose: a subflow of a recent parent, a RUNNING run, a run inside the retention (and on
    # Prefect 3.4 a run cancelled before it started, which has no end time).
    for label in ("kept_child", "running", "kept_etl", "kept_parent") + NO_END_TIME.get(prefect_history["release"], ()):
        assert all(i in after["flow_runs"] for i in made[label]), label

    latest = after["latest_artifacts"]
    assert latest and all(v["latest_exists"] for v in latest.values())
    assert set(latest) == {"report", "child-report"}
    assert latest["report"]["flow_run_id"] == made["kept_etl"][0]
    assert latest["child-report"] == before["latest_artifacts"]["child-report"]

    orphans = pg.psql(
        "SELECT (SELECT count(*) FROM log l WHERE l.flow_run_id IS NOT NULL AND NOT EXISTS"
        "        (SELECT 1 FROM flow_run f WHERE f.id = l.flow_run_id))"
        "     + (SELECT count(*) FROM artifact a WHERE a.flow_run_id IS NOT NULL AND NOT EXISTS"
        "        (SELECT 1 FROM flow_run f WHERE f.id = a.flow_run_id))"
        "     + (SELECT count(*) FROM task_run t WHERE NOT EXISTS"
        "        (SELECT 1 FROM flow_run f WHERE f.id = t.flow_run_id))"
        "     + (SELECT count(*) FROM event_resources r WHERE NOT EXISTS"
        "        (SELECT 1 FROM events e WHERE e.id = r.event_id)"
        "        AND r.occurred < now() - interval '14 days')", prefect_db)
    assert orphans == "0"


def test_nothing_newer_than_the_retention_goes(pg, prefect_db, prefect_history, lock_file):
    newer = ("SELECT (SELECT count(*) FROM events WHERE occurred >= now() - interval '14 days' AND"
             "        (event <> 'prefect.flow-run.heartbeat' OR occurred >= now() - interval '7 days')),"
             " (SELECT count(*) FROM event_resources WHERE occurred >= now() - interval '7 days'),"
             " (SELECT count(*) FROM flow_run WHERE end_time IS NULL OR end_time >= now() - interval '30 days'),"
             " (SELECT count(*) FROM log WHERE timestamp >= now() - interval '1 hour'),"
             " (SELECT count(*) FROM log WHERE level >= 40)")
    kept_before = pg.psql(newer, prefect_db)
    errors_of_kept_runs = pg.psql("SELECT count(*) FROM log WHERE level >= 40 AND flow_run_id = ANY(ARRAY[%s]::uuid[])"
                                  % ",".join("'%s'" % i for i in prefect_history["made"]["kept_etl"]), prefect_db)
    result = prune(pg, prefect_db, lock_file, log_retention_days={"debug": 1, "info": -1})
    assert result["handlers"]["logs_debug"]["deleted"] > 0
    assert "logs_info" not in result["handlers"]
    after = pg.psql(newer, prefect_db).split("|")
    # Events, resources, runs and fresh logs inside their retention are untouched.
    assert after[:4] == kept_before.split("|")[:4]
    assert pg.psql("SELECT count(*) FROM log WHERE level = 10 AND timestamp < now() - interval '1 day'",
                   prefect_db) == "0"
    assert int(pg.psql("SELECT count(*) FROM log WHERE level = 20", prefect_db)) > 0
    assert pg.psql("SELECT count(*) FROM log WHERE level >= 40 AND flow_run_id = ANY(ARRAY[%s]::uuid[])"
                   % ",".join("'%s'" % i for i in prefect_history["made"]["kept_etl"]), prefect_db) \
        == errors_of_kept_runs


def test_budgets_cap_the_run_and_the_next_runs_finish(pg, prefect_db, prefect_history, lock_file):
    plan = prune(pg, prefect_db, lock_file, check=True, max_rows=3, batch_size=2, prune_artifact_collections=False)
    first = prune(pg, prefect_db, lock_file, max_rows=3, batch_size=2, prune_artifact_collections=False)
    assert first["capped"] is True and first["capped_by"] == "max_rows"
    assert first["remaining_total"] > 0
    assert plan["capped"] is True
    assert sum(h["deleted"] for h in plan["handlers"].values()) == \
        sum(h["deleted"] for h in first["handlers"].values()) == 3
    for dummy in range(20):
        run = prune(pg, prefect_db, lock_file, max_rows=3, batch_size=2)
        if not run["changed"]:
            break
    else:
        pytest.fail("capped runs never finished")
    assert int(pg.psql("SELECT count(*) FROM flow_run WHERE id = ANY(ARRAY[%s]::uuid[])"
                       % ",".join("'%s'" % i for i in old_run_ids(prefect_history)), prefect_db)) == 0
    assert pg.psql("SELECT count(*) FROM artifact_collection c WHERE NOT EXISTS"
                   " (SELECT 1 FROM artifact a WHERE a.id = c.latest_id)", prefect_db) == "0"


ONLY_ORPHANS = {"flow_run_retention_days": -1, "event_retention_days": -1, "prune_artifact_collections": False}
ONLY_LEVELS = {"flow_run_retention_days": -1, "event_retention_days": -1, "prune_artifact_collections": False,
               "prune_orphans": False}


def test_a_clean_rerun_examines_flow_runs_not_log_rows(pg, prefect_db, lock_file):
    """The orphan walks read one index entry per distinct flow run, however many rows each has."""
    assert not prune(pg, prefect_db, lock_file)["failed_handlers"]
    distinct = {t: int(pg.psql("SELECT count(DISTINCT flow_run_id) FROM %s" % t, prefect_db))
                for t in ("log", "artifact")}
    rerun = prune(pg, prefect_db, lock_file)
    assert rerun["changed"] is False
    assert rerun["handlers"]["orphaned_logs"]["scanned"] == distinct["log"] > 0
    assert rerun["handlers"]["orphaned_artifacts"]["scanned"] == distinct["artifact"] > 0
    # Twenty times the log rows of the same flow runs: the re-run examines exactly as much as before.
    pg.psql("INSERT INTO log (name, level, flow_run_id, task_run_id, message, timestamp)"
            " SELECT l.name, l.level, l.flow_run_id, l.task_run_id, l.message, l.timestamp"
            " FROM log AS l, generate_series(1, 20) AS g", prefect_db)
    rows = int(pg.psql("SELECT count(*) FROM log", prefect_db))
    plan = prune(pg, prefect_db, lock_file, check=True)
    rerun = prune(pg, prefect_db, lock_file)
    assert rerun["changed"] is False and plan["changed"] is False
    for result in (plan, rerun):
        assert result["handlers"]["orphaned_logs"]["scanned"] == distinct["log"] < rows / 20


def _orphan_some_kept_runs(pg, db, made, copies):
    """Delete the kept ETL runs as the API does, leaving their logs and artifacts; past the grace, and
    ``copies`` times as many logs, so batches end inside one flow run's rows."""
    ids = "ARRAY[%s]::uuid[]" % ",".join("'%s'" % i for i in made["kept_etl"])
    pg.psql("DELETE FROM flow_run WHERE id = ANY(%s);"
            " UPDATE log SET timestamp = timestamp - interval '2 hours' WHERE flow_run_id = ANY(%s);"
            " UPDATE artifact SET updated = updated - interval '2 hours' WHERE flow_run_id = ANY(%s);"
            " INSERT INTO log (name, level, flow_run_id, message, timestamp) SELECT l.name, l.level, l.flow_run_id,"
            "  l.message, l.timestamp FROM log AS l, generate_series(2, %d) AS g WHERE l.flow_run_id = ANY(%s)"
            % (ids, ids, ids, copies, ids), db)
    return int(pg.psql("SELECT count(*) FROM log AS l WHERE NOT EXISTS (SELECT 1 FROM flow_run AS f"
                       " WHERE f.id = l.flow_run_id) AND l.timestamp < now() - interval '1 hour'", db))


def test_orphan_walk_in_small_batches_capped_runs_and_check_mode(pg, prefect_db, prefect_history, lock_file):
    orphans = _orphan_some_kept_runs(pg, prefect_db, prefect_history["made"], copies=6)
    assert orphans > 60
    # Capped runs: check mode predicts each, the cursor resumes inside a flow run's rows, nothing is lost.
    taken = 0
    for dummy in range(40):
        plan = prune(pg, prefect_db, lock_file, check=True, batch_size=7, max_rows=25, **ONLY_ORPHANS)
        run = prune(pg, prefect_db, lock_file, batch_size=7, max_rows=25, **ONLY_ORPHANS)
        assert handler_view(plan) == handler_view(run)
        assert plan["remaining_total"] == run["remaining_total"]
        taken += run["handlers"]["orphaned_logs"]["deleted"]
        if not run["capped"]:
            break
        assert run["remaining_total"] > 0
    else:
        pytest.fail("capped runs never finished")
    assert taken == orphans
    assert pg.psql("SELECT count(*) FROM log AS l WHERE l.flow_run_id IS NOT NULL AND NOT EXISTS"
                   " (SELECT 1 FROM flow_run AS f WHERE f.id = l.flow_run_id)", prefect_db) == "0"
    assert pg.psql("SELECT count(*) FROM artifact AS a WHERE a.flow_run_id IS NOT NULL AND NOT EXISTS"
                   " (SELECT 1 FROM flow_run AS f WHERE f.id = a.flow_run_id)", prefect_db) == "0"


ONLY_EVENTS = {"flow_run_retention_days": -1, "prune_orphans": False, "prune_artifact_collections": False}


def _copy_old_events(pg, db, copies):
    """``copies`` more of every event past a week old, each with its resources, and of every resource whose event
    is gone. The statistics the events batches are sized from are read once and kept (no autovacuum here), so
    check mode and the real run size their batches alike."""
    pg.psql(
        "CREATE TEMP TABLE copy_of AS SELECT e.id AS old_id, gen_random_uuid() AS new_id FROM events AS e,"
        " generate_series(1, %(n)d) AS g WHERE e.occurred < now() - interval '7 days';"
        " INSERT INTO events SELECT (jsonb_populate_record(NULL::events,"
        "  to_jsonb(e) || jsonb_build_object('id', c.new_id))).* FROM events AS e JOIN copy_of AS c ON c.old_id = e.id;"
        " INSERT INTO event_resources SELECT (jsonb_populate_record(NULL::event_resources, to_jsonb(r)"
        "  || jsonb_build_object('id', gen_random_uuid(), 'event_id', c.new_id))).*"
        "  FROM event_resources AS r JOIN copy_of AS c ON c.old_id = r.event_id;"
        " INSERT INTO event_resources SELECT (jsonb_populate_record(NULL::event_resources, to_jsonb(r)"
        "  || jsonb_build_object('id', gen_random_uuid()))).* FROM event_resources AS r, generate_series(1, %(n)d)"
        "  AS g WHERE NOT EXISTS (SELECT 1 FROM events AS e WHERE e.id = r.event_id);"
        " ALTER TABLE events SET (autovacuum_enabled = off);"
        " ALTER TABLE event_resources SET (autovacuum_enabled = off);"
        " ANALYZE events; ANALYZE event_resources" % {"n": copies}, db)


@pytest.mark.parametrize("prefect_release", PREFECT_RELEASES)
def test_events_and_their_resources_in_capped_runs_match_check_mode(pg, prefect_db, prefect_release, lock_file):
    """Check mode predicts every capped run, per handler, on every release: on Prefect 3.4 (no index on
    event_resources.event_id) the resources of the events deleted are the trailing sweep's, and check mode,
    where those events are still there, counts them as the real run deletes them."""
    _copy_old_events(pg, prefect_db, copies=12)
    past = ("SELECT (SELECT count(*) FROM events WHERE occurred < now() - interval '14 days' OR"
            "        (event = 'prefect.flow-run.heartbeat' AND occurred < now() - interval '7 days')),"
            " (SELECT count(*) FROM event_resources WHERE occurred < now() - interval '14 days')")
    kept = ("SELECT count(*) FROM events WHERE occurred >= now() - interval '14 days' AND"
            " (event <> 'prefect.flow-run.heartbeat' OR occurred >= now() - interval '7 days')")
    events_kept = pg.psql(kept, prefect_db)
    old_events, old_resources = (int(n) for n in pg.psql(past, prefect_db).split("|"))
    assert old_events > 30 and old_resources > 30
    deleted = {}
    for run_number in range(40):
        plan = prune(pg, prefect_db, lock_file, check=True, batch_size=7, max_rows=25, **ONLY_EVENTS)
        run = prune(pg, prefect_db, lock_file, batch_size=7, max_rows=25, **ONLY_EVENTS)
        assert handler_view(plan) == handler_view(run), run_number
        assert plan["deleted_total"] == run["deleted_total"] and plan["rows_after"] == run["rows_after"]
        assert plan["remaining_total"] == run["remaining_total"], run_number
        for name, handler in run["handlers"].items():
            deleted[name] = deleted.get(name, 0) + handler["deleted"]
        if not run["capped"]:
            break
    else:
        pytest.fail("capped runs never finished")
    assert run_number >= 2                  # several capped runs, each predicted
    assert deleted["events_override_1"] + deleted["old_events"] == old_events
    assert pg.psql(past, prefect_db) == "0|0" and pg.psql(kept, prefect_db) == events_kept
    if prefect_release == "3.4":
        # Every resource older than the retention went through the sweep, those of the deleted events too.
        assert deleted["orphaned_event_resources"] == old_resources
    else:
        assert deleted["orphaned_event_resources"] < old_resources


def test_orphans_younger_than_the_grace_are_kept(pg, prefect_db, prefect_history, lock_file):
    ids = "ARRAY[%s]::uuid[]" % ",".join("'%s'" % i for i in prefect_history["made"]["kept_etl"])
    young = int(pg.psql("SELECT count(*) FROM log WHERE flow_run_id = ANY(%s) AND timestamp > now() - interval"
                        " '1 hour'" % ids, prefect_db))
    assert young > 0
    pg.psql("DELETE FROM flow_run WHERE id = ANY(%s)" % ids, prefect_db)
    prune(pg, prefect_db, lock_file, **ONLY_ORPHANS)
    assert int(pg.psql("SELECT count(*) FROM log WHERE flow_run_id = ANY(%s)" % ids, prefect_db)) == young


@pytest.mark.parametrize("level_time_index", [False, True], ids=["prefect-indexes", "with-level-time-index"])
def test_logs_by_level_capped_runs_match_check_mode(pg, prefect_db, lock_file, level_time_index):
    if level_time_index:
        pg.psql("CREATE INDEX ix_extra_log__level_timestamp ON log (level, timestamp)", prefect_db)
    pg.psql("INSERT INTO log (name, level, flow_run_id, task_run_id, message, timestamp)"
            " SELECT l.name, l.level, l.flow_run_id, l.task_run_id, l.message, l.timestamp - g * interval '1 day'"
            " FROM log AS l, generate_series(1, 4) AS g", prefect_db)
    levels = {"debug": 1, "info": 2, "warning": 3}
    expected = {level: int(pg.psql(
        "SELECT count(*) FROM log AS l WHERE l.level = %d AND l.timestamp < now() - interval '%d days' AND"
        " (l.flow_run_id IS NULL OR EXISTS (SELECT 1 FROM flow_run AS f WHERE f.id = l.flow_run_id))"
        % (value, days), prefect_db)) for (level, days), value in zip(levels.items(), (10, 20, 30))}
    assert all(expected.values())
    errors = pg.psql("SELECT count(*) FROM log WHERE level >= 40", prefect_db)
    deleted = {level: 0 for level in levels}
    for dummy in range(60):
        plan = prune(pg, prefect_db, lock_file, check=True, batch_size=9, max_rows=30, log_retention_days=levels,
                     **ONLY_LEVELS)
        run = prune(pg, prefect_db, lock_file, batch_size=9, max_rows=30, log_retention_days=levels, **ONLY_LEVELS)
        assert handler_view(plan) == handler_view(run)
        assert plan["rows_after"] == run["rows_after"]
        for level in levels:
            deleted[level] += run["handlers"]["logs_%s" % level]["deleted"]
        if not run["capped"]:
            break
    else:
        pytest.fail("capped runs never finished")
    assert deleted == expected
    assert pg.psql("SELECT count(*) FROM log WHERE level >= 40", prefect_db) == errors
    note = run["handlers"]["logs_debug"]["note"]
    assert ("walks an index on log (level, timestamp)" if level_time_index else "walks log.level's index") in note


def test_logs_by_level_leave_the_old_flow_runs_logs_to_their_handler(pg, prefect_db, lock_file):
    """With flow run retention on, the level handlers wait for old_flow_runs, and their counts never overlap."""
    opts = dict(log_retention_days={"debug": 1, "info": 1}, prune_orphans=False, prune_artifact_collections=False,
                event_retention_days=-1)
    plan = prune(pg, prefect_db, lock_file, check=True, batch_size=4, **opts)
    run = prune(pg, prefect_db, lock_file, batch_size=4, **opts)
    assert handler_view(plan) == handler_view(run)
    assert plan["rows_after"] == run["rows_after"]
    assert run["handlers"]["old_flow_runs"]["cascaded"]["log"] > 0 and run["handlers"]["logs_debug"]["deleted"] > 0
    assert "after old_flow_runs" in run["handlers"]["logs_debug"]["note"]
    assert pg.psql("SELECT count(*) FROM log WHERE level IN (10, 20) AND timestamp < now() - interval '1 day'",
                   prefect_db) == "0"


def test_index_walks_read_through_their_indexes(pg, prefect_db, lock_file):
    """The plans of the orphan and level walks: index scans only, however small the tables are."""
    import psycopg
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._prefect.rules import (
        build_rules, leading_index_columns)
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._prefect.walks import held_to_indexes
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.walks import HandlerState

    with psycopg.connect(pg.dsn(prefect_db), autocommit=True) as conn:
        conn.execute("ANALYZE")
        plan = validate_options(dict(RETENTION, log_retention_days={"debug": 1}))
        rules = {r.name: r for r in build_rules(plan, "public", leading_index_columns(conn, "public"))}
        for name in ("orphaned_logs", "orphaned_artifacts", "logs_debug"):
            rule = rules[name]
            state = HandlerState(rule)
            rule.walk.prepare(conn, state, {})
            for check_mode in (True, False):
                if name == "logs_debug":
                    stmt, params = rule.walk.statement(rule, check_mode), rule.walk.params(state, limit=10)
                else:
                    stmt = rule.walk.statement(rule, False, check_mode)
                    lo, after = state.cursor
                    params = rule.walk.params(state, lo=lo, after=after, limit=10, page=100)
                with held_to_indexes(conn) as cur:
                    cur.execute(psycopg.sql.SQL("EXPLAIN {}").format(stmt), params)
                    text = "\n".join(r[0] for r in cur.fetchall())
                assert "Seq Scan" not in text and "Bitmap" not in text, (name, text)
                index = "ix_log__level" if name == "logs_debug" else "flow_run_id"
                assert index in text, (name, text)


def test_wrong_schema_is_refused(pg, fresh_db, lock_file):
    pg.psql("CREATE TABLE flow_run (id uuid PRIMARY KEY); CREATE TABLE events (id uuid PRIMARY KEY)", fresh_db)
    with pytest.raises(SchemaMismatch, match="partial Prefect schema"):
        prune(pg, fresh_db, lock_file)
    with pytest.raises(SchemaMismatch, match="not a Prefect server schema"):
        prune(pg, "postgres", lock_file)


@pytest.mark.parametrize("options, message", [
    ({"log_retention_days": {"error": 5}}, "protected"),
    ({"log_retention_days": {"verbose": 5}}, "unknown log level"),
    ({"flow_run_retention_days": 0}, "out of range"),
    ({"event_retention_days": 0}, "out of range"),
    ({"event_retention_overrides": {"prefect.flow-run.heartbeat": 0.01}}, "out of range"),
    ({"event_retention_overrides": {"": 3}}, "not an event type"),
    ({"flow_run_batch_size": 0}, "flow_run_batch_size"),
    ({"orphan_scan_window": 5}, "orphan_scan_window"),
])
def test_unsafe_options_are_refused(options, message):
    with pytest.raises(InvalidRequest, match=message):
        validate_options(dict(RETENTION, **options))


def test_overrides_are_capped_by_the_global_retention():
    plan = validate_options({"event_retention_days": 3, "event_retention_overrides": {"a.b": 10, "c.d": 0.5}})
    assert plan["event_retention_overrides"] == {"a.b": 3, "c.d": 0.5}
    assert plan["flow_run_retention_days"] is None
    assert validate_options({"event_retention_days": -1})["event_retention_overrides"] == {}


@pytest.mark.parametrize("prefect_release", PREFECT_RELEASES)
@pytest.mark.system_python
def test_module_check_diff_run_and_rerun(pg, prefect_db, prefect_release, ansible, lock_file):
    args = conn_params(pg, prefect_db, lock_file=lock_file, **RETENTION)
    before = counts(pg, prefect_db)
    rc, planned, out = ansible.run_task(MODULE, args, check=True, diff=True)
    assert rc == 0, out
    assert planned["changed"] is True and planned["check_mode"] is True
    assert planned["diff"]["before"]["rows"]["flow_run"] == before["flow_run"]
    assert counts(pg, prefect_db) == before
    # The release's own schema revision, one the collection was tested on: 3.4.25's is the oldest.
    assert planned["schema_tested"] is True
    assert planned["schema_revision"] == TESTED_REVISIONS[{"3.4": 0, "3.8": -1}[prefect_release]]

    rc, done, out = ansible.run_task(MODULE, args)
    assert rc == 0, out
    assert done["changed"] is True
    assert handler_view(done) == handler_view(planned)
    assert done["deleted_total"] == planned["deleted_total"]
    assert done["rows_after"] == planned["rows_after"]
    assert args["login_password"] not in out or not args["login_password"]

    rc, again, out = ansible.run_task(MODULE, args)
    assert rc == 0, out
    assert again["changed"] is False and again["deleted_total"] == 0


def test_module_refuses_before_touching_anything(pg, prefect_db, ansible, lock_file):
    before = counts(pg, prefect_db)
    args = conn_params(pg, prefect_db, lock_file=lock_file, **dict(RETENTION, log_retention_days={"critical": 30}))
    rc, result, out = ansible.run_task(MODULE, args)
    assert rc != 0
    assert result["failed"] is True and result["error_kind"] == "invalid_request"
    assert "CRITICAL" in result["msg"]
    rc, result, out = ansible.run_task(MODULE, conn_params(pg, "postgres", lock_file=lock_file))
    assert rc != 0 and result["error_kind"] == "schema_mismatch"
    assert counts(pg, prefect_db) == before


def test_prune_playbook_dispatches_to_prefect(pg, prefect_db, ansible, lock_file):
    import os
    from conftest import ROOT
    before = counts(pg, prefect_db)
    extra = {"pgtidy_orchestrator": "prefect", "pgtidy_login_host": "127.0.0.1", "pgtidy_login_port": pg.port,
             "pgtidy_login_db": prefect_db, "pgtidy_ssl_mode": "disable", "pgtidy_lock_file": lock_file,
             "pgtidy_prefect_flow_run_retention_days": 30}
    proc = ansible.run_playbook(os.path.join(ROOT, "playbooks", "prune.yml"), extra_vars=extra)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert "old_flow_runs" in proc.stdout and "Prune Dagster metadata" in proc.stdout
    after = counts(pg, prefect_db)
    assert after["flow_run"] < before["flow_run"]
    assert after["events"] < before["events"]


def test_a_read_only_role_fails_in_check_mode_and_for_real_naming_the_grants(pg, prefect_db, ansible, lock_file):
    """prefect_prune as a role that may only read: red in both modes, nothing deleted, the backlog counted."""
    import psycopg
    before = counts(pg, prefect_db)
    base = conn_params(pg, prefect_db, lock_file=lock_file, **RETENTION)
    rc, full, out = ansible.run_task(MODULE, base, check=True)
    assert rc == 0 and full["deleted_total"] > 0, out
    role = "reader_" + prefect_db[-10:]
    pg.psql("CREATE ROLE \"%s\" LOGIN PASSWORD 'pw-reader-secret'" % role, prefect_db)
    pg.psql('GRANT SELECT ON ALL TABLES IN SCHEMA public TO "%s"' % role, prefect_db)
    args = dict(base, login_user=role, login_password="pw-reader-secret")
    for check in (True, False):
        rc, result, out = ansible.run_task(MODULE, args, check=check)
        assert rc != 0 and result["failed"] is True, out
        assert result["error_kind"] == "insufficient_privilege"
        assert result["deleted_total"] == 0 and result["changed"] is False
        assert set(result["failed_handlers"]) == set(result["handlers"])
        assert {h["error_kind"] for h in result["handlers"].values()} == {"insufficient_privilege"}
        assert 'GRANT SELECT, UPDATE, DELETE ON TABLE "public"."artifact_collection"' in result["msg"] or \
            'GRANT UPDATE, DELETE ON TABLE "public"."artifact_collection"' in result["msg"]
        left = result["remaining_total"]
        assert left is None or left > 0            # unknown or counted, never "nothing left"
        assert sum(h["remaining"] or 0 for h in result["handlers"].values()) > 0
        assert "pw-reader-secret" not in str(result)
    assert counts(pg, prefect_db) == before
    with psycopg.connect(pg.dsn(prefect_db), autocommit=True) as conn:
        for grant in result["grants_needed"]:
            conn.execute(grant)
    rc, fixed, out = ansible.run_task(MODULE, args)
    assert rc == 0 and fixed["failed_handlers"] == [], out
    assert fixed["deleted_total"] == full["deleted_total"]
