"""Makes the Airflow test history with the installed Airflow (run in its own environment, see
tests/airflow_fixture.py): the DAGs of tests/airflow/dags run in-process with ``dag.test()``, each run
created as the scheduler creates it (scheduled runs from the DAG's timetable, asset-triggered runs with the
asset events they consume, manual runs), then moved back in time with SQL. Writes a JSON manifest to the
file named by its argument.
"""
from __future__ import annotations

import datetime
import json
import os
import sys

from sqlalchemy import select, text

from airflow.models import dagrun as dagrun_module
from airflow.models.dagrun import DagRun
from airflow.utils.session import create_session
from airflow.utils.state import DagRunState
from airflow.utils.types import DagRunTriggeredByType, DagRunType

import families_history as families
from history_rows import DAYS, NOW, UTC, add_notes, audit, jobs_and_errors
# dag.test() clears the task instances at the logical date it is given: runs without one get a date no run has.
NO_RUN_AT = datetime.datetime(2000, 1, 1, tzinfo=UTC)

_next = {}          # what the patched run factory creates next


def _make_run(*, dag, run_id, logical_date, data_interval, run_after, conf, triggered_by, triggering_user_name,
              start_date, session):
    """Airflow's dag.test() makes manual runs; this makes the run the scheduler would (``_next`` says which)."""
    kind = _next.get("type", DagRunType.MANUAL)
    if kind == DagRunType.SCHEDULED:
        info = next_scheduled(dag, session)
        return dag.create_dagrun(
            run_id=dag.timetable.generate_run_id(run_type=DagRunType.SCHEDULED, run_after=info.run_after,
                                                 data_interval=info.data_interval, partition_key=None),
            logical_date=info.logical_date, data_interval=info.data_interval, run_after=info.run_after,
            run_type=DagRunType.SCHEDULED, triggered_by=DagRunTriggeredByType.TIMETABLE,
            state=DagRunState.RUNNING, session=session, start_date=info.run_after)
    if kind == DagRunType.ASSET_TRIGGERED:
        return asset_triggered_run(dag, _next["run_after"], session)
    return dag.create_dagrun(
        run_id=DagRun.generate_run_id(run_type=DagRunType.MANUAL, logical_date=logical_date, run_after=run_after),
        logical_date=logical_date, data_interval=data_interval, run_after=run_after, conf=conf,
        run_type=DagRunType.MANUAL, state=DagRunState.RUNNING, triggered_by=DagRunTriggeredByType.UI,
        triggering_user_name="pgtidy", start_date=start_date, session=session)


def next_scheduled(dag, session):
    """The next run of the timetable after the DAG's newest scheduled run, as the scheduler computes it."""
    last = session.scalar(select(DagRun).where(DagRun.dag_id == dag.dag_id,
                                               DagRun.run_type == DagRunType.SCHEDULED)
                          .order_by(DagRun.logical_date.desc()).limit(1))
    last_info = dag.timetable.run_info_from_dag_run(dag_run=last) if last is not None else None
    return dag.next_dagrun_info(last_automated_run_info=last_info)


def asset_triggered_run(dag, run_after, session):
    """An asset-triggered run consuming the events since the previous one, as the scheduler makes it."""
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, DagScheduleAssetReference
    previous = session.scalar(select(DagRun.run_after).where(
        DagRun.dag_id == dag.dag_id, DagRun.run_type == DagRunType.ASSET_TRIGGERED).order_by(
        DagRun.run_after.desc()).limit(1))
    events = list(session.scalars(select(AssetEvent).where(
        AssetEvent.asset_id.in_(select(DagScheduleAssetReference.asset_id).where(
            DagScheduleAssetReference.dag_id == dag.dag_id)),
        AssetEvent.timestamp <= run_after,
        AssetEvent.timestamp > (previous or datetime.datetime(1970, 1, 1, tzinfo=UTC)))
        .order_by(AssetEvent.timestamp, AssetEvent.id)))
    run = dag.create_dagrun(
        run_id=DagRun.generate_run_id(run_type=DagRunType.ASSET_TRIGGERED, logical_date=None, run_after=run_after),
        logical_date=None, data_interval=None, run_after=run_after, run_type=DagRunType.ASSET_TRIGGERED,
        triggered_by=DagRunTriggeredByType.ASSET, state=DagRunState.RUNNING, session=session)
    run.consumed_asset_events.extend(events)
    session.execute(AssetDagRunQueue.__table__.delete().where(AssetDagRunQueue.target_dag_id == dag.dag_id))
    session.flush()
    return run


dagrun_module.get_or_create_dagrun = _make_run


def run(dag, kind=DagRunType.MANUAL, run_after=None):
    """One real run of ``dag``: its tasks run in-process. Returns (dag_id, run_id)."""
    _next.clear()
    _next.update(type=kind, run_after=run_after)
    if kind == DagRunType.MANUAL:
        dr = dag.test(run_after=run_after, logical_date=run_after)
    else:
        dr = dag.test(run_after=run_after or NOW, logical_date=NO_RUN_AT)
    if kind == DagRunType.SCHEDULED:
        advance_next_dagrun(dag.dag_id, dr.run_id)
    return [dr.dag_id, dr.run_id]


def advance_next_dagrun(dag_id, run_id):
    """What the scheduler does once it created a scheduled run: the DAG's next run fields."""
    from airflow.models.dag import DagModel
    from airflow.models.serialized_dag import SerializedDagModel
    with create_session() as session:
        serdag = SerializedDagModel.get_dag(dag_id, session=session)
        created = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        model = session.scalar(select(DagModel).where(DagModel.dag_id == dag_id))
        model.calculate_dagrun_date_fields(dag=serdag, reference_run=created)


def in_progress(dag, run_after):
    """A manual run whose tasks never ran, left running (its worker died) since ``run_after``."""
    from airflow.models.serialized_dag import SerializedDagModel
    with create_session() as session:
        serdag = SerializedDagModel.get_dag(dag.dag_id, session=session)
        dr = serdag.create_dagrun(
            run_id=DagRun.generate_run_id(run_type=DagRunType.MANUAL, logical_date=run_after, run_after=run_after),
            logical_date=run_after, data_interval=serdag.timetable.infer_manual_data_interval(run_after=run_after),
            run_after=run_after, run_type=DagRunType.MANUAL, triggered_by=DagRunTriggeredByType.UI,
            triggering_user_name="pgtidy", state=DagRunState.RUNNING, session=session, start_date=run_after)
        return [dr.dag_id, dr.run_id]


def backdate(runs):
    """Move each run's execution back by its age: start/end times of the run, its tasks, tries, XComs, events."""
    with create_session() as session:
        for (dag_id, run_id), age in runs:
            p = {"dag_id": dag_id, "run_id": run_id, "age": datetime.timedelta(days=age)}
            for table in ("task_instance", "task_instance_history"):
                session.execute(text(
                    "UPDATE %s SET start_date = start_date - :age, end_date = end_date - :age,"
                    " queued_dttm = queued_dttm - :age, scheduled_dttm = scheduled_dttm - :age,"
                    " updated_at = updated_at - :age WHERE dag_id = :dag_id AND run_id = :run_id" % table), p)
            # The run started when its first task did (dag.test() gives it the logical date as start).
            session.execute(text(
                "UPDATE dag_run AS r SET end_date = r.end_date - :age, queued_at = r.queued_at - :age,"
                " last_scheduling_decision = r.last_scheduling_decision - :age, updated_at = r.updated_at - :age,"
                " start_date = coalesce((SELECT min(ti.start_date) FROM task_instance AS ti"
                "  WHERE ti.dag_id = r.dag_id AND ti.run_id = r.run_id), r.end_date - :age)"
                " WHERE r.dag_id = :dag_id AND r.run_id = :run_id"), p)
            session.execute(text("UPDATE log SET dttm = dttm - :age WHERE dag_id = :dag_id AND run_id = :run_id"), p)
            session.execute(text("UPDATE xcom SET timestamp = timestamp - :age"
                                 " WHERE dag_id = :dag_id AND run_id = :run_id"), p)
            session.execute(text("UPDATE asset_event SET timestamp = timestamp - :age"
                                 " WHERE source_dag_id = :dag_id AND source_run_id = :run_id"), p)


def leftover_archive():
    """What `airflow db clean` leaves when it is not told --skip-archive: an _airflow_deleted__ table."""
    from airflow.utils.db_cleanup import run_cleanup
    run_cleanup(clean_before_timestamp=NOW - 300 * DAYS, table_names=["log"], confirm=False,
                skip_archive=False)


def main():
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        sys.exit("DAG import errors: %s" % bag.import_errors)
    etl, producer = bag.get_dag("pgtidy_etl"), bag.get_dag("pgtidy_producer")
    consumer = bag.get_dag("pgtidy_consumer")
    deferred, versioned = bag.get_dag("pgtidy_deferred"), bag.get_dag("pgtidy_versioned")
    made = {}

    def aged(key, days=None):
        """Move a run back right after it ran (asset events must be old before a consumer looks for them)."""
        if days is None:
            with create_session() as session:
                run_after = session.scalar(select(DagRun.run_after).where(
                    DagRun.dag_id == key[0], DagRun.run_id == key[1]))
            days = (NOW - run_after).days
        backdate([(key, days)])
        return key

    # Rows are made oldest first, as Airflow writes them, so that integer keys grow with time.
    audit((400, "ancient"), (120, "trigger"), (105, "cli_dags_list"))
    # Weekly scheduled runs from the DAG's start: logical dates 2026-07-05 .. 2026-08-02.
    made["scheduled"] = [aged(run(etl, DagRunType.SCHEDULED)) for dummy in range(5)]
    made["old_manual"] = aged(run(etl, run_after=NOW - 100 * DAYS), 100)
    add_notes(*made["old_manual"])
    # A run that used the first version of pgtidy_versioned, then a second version (the first stays: a task used it).
    made["versioned_old"] = aged(run(versioned, run_after=NOW - 100 * DAYS), 100)
    made["versions"] = families.new_version(versioned, NOW, 100)

    # Asset events from producer runs, consumed by asset-triggered runs of the consumer an hour later.
    hour = datetime.timedelta(hours=1)
    made["old_producer"] = aged(run(producer, run_after=NOW - 95 * DAYS), 95)
    made["old_asset_run"] = aged(run(consumer, DagRunType.ASSET_TRIGGERED, run_after=NOW - 95 * DAYS + hour), 95)
    made["mid_producer"] = aged(run(producer, run_after=NOW - 90 * DAYS), 90)
    made["newest_asset_run"] = aged(run(consumer, DagRunType.ASSET_TRIGGERED, run_after=NOW - 90 * DAYS + hour), 90)
    # Triggered by hand 50 days ago and never finished: nothing of it may go.
    made["running"] = in_progress(etl, NOW - 50 * DAYS)
    made.update(jobs_and_errors(bundle_name="dags-folder"))
    made["recent_manual"] = aged(run(etl, run_after=NOW - 2 * DAYS), 2)
    made["recent_producer"] = aged(run(producer, run_after=NOW - 1 * DAYS), 1)
    made["versioned_recent"] = aged(run(versioned, run_after=NOW - 3 * DAYS), 3)
    # The table families beyond dag runs (families_history.py says which rows Airflow writes and which SQL does).
    runs, made["deferred_trigger"] = families.deferred_runs(deferred, NOW)
    made.update(runs)
    made["triggers"] = families.unused_triggers(NOW, "file:///pgtidy/example.csv")
    made["callbacks"] = families.callbacks(NOW, made["recent_manual"], made["old_manual"])
    made["task_state"] = families.task_state(NOW, made["recent_manual"], made["old_manual"])
    made["partition_log"] = families.partition_log(NOW, "file:///pgtidy/example.csv", made["old_manual"])
    made["sessions"] = families.web_sessions(NOW)
    audit((0, "trigger"))
    leftover_archive()
    # Airflow's read-back of the history, in this process (an Airflow import less for the tests).
    from read_back import read_back
    with open(sys.argv[1], "w") as fh:     # Airflow logs to stdout
        json.dump({"made": made, "before": read_back()}, fh, sort_keys=True)


if __name__ == "__main__":
    main()
