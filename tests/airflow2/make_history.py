"""Makes the Airflow 2.11 test history with the installed Airflow 2.11 (run in its own environment, see
tests/airflow_fixture.py): the same history as tests/airflow/make_history.py makes on Airflow 3, through the 2.x
API. The DAGs of tests/airflow2/dags are written to the database as the DAG processor writes them, then run
in-process with ``dag.test()``, each run created as the 2.11 scheduler creates it (scheduled runs from the DAG's
timetable, dataset-triggered runs with the dataset events they consume, manual runs), then moved back in time
with SQL. Writes a JSON manifest to the file named by its argument.
"""
from __future__ import annotations

import datetime
import json
import os
import sys

from sqlalchemy import delete, select, text

from airflow.models import dag as dag_module
from airflow.models.dagrun import DagRun
from airflow.utils.session import create_session
from airflow.utils.state import DagRunState
from airflow.utils.types import DagRunType

# The rows both releases write alike, and the moment the history is dated from: tests/airflow/history_rows.py.
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "airflow"))
from history_rows import DAYS, NOW, add_notes, audit, jobs_and_errors  # noqa: E402

_next = {}          # what the patched run factory creates next


def _make_run(dag, conf, start_date, execution_date, run_id, session, data_interval=None):
    """Airflow's dag.test() makes manual runs; this makes the run the scheduler would (``_next`` says which)."""
    kind = _next.get("type", DagRunType.MANUAL)
    if kind == DagRunType.SCHEDULED:
        info = _next["info"]
        return dag.create_dagrun(
            run_id=dag.timetable.generate_run_id(run_type=DagRunType.SCHEDULED, logical_date=info.logical_date,
                                                 data_interval=info.data_interval),
            execution_date=info.logical_date, data_interval=info.data_interval, run_type=DagRunType.SCHEDULED,
            external_trigger=False, state=DagRunState.RUNNING, session=session, start_date=info.run_after)
    if kind == DagRunType.DATASET_TRIGGERED:
        return dataset_triggered_run(dag, execution_date, session)
    return dag.create_dagrun(
        run_id=DagRun.generate_run_id(DagRunType.MANUAL, execution_date), execution_date=execution_date,
        data_interval=data_interval, conf=conf, run_type=DagRunType.MANUAL, external_trigger=True,
        state=DagRunState.RUNNING, start_date=start_date, session=session)


def next_scheduled(dag):
    """The next run of the timetable after the DAG's newest scheduled run, as the scheduler computes it."""
    with create_session() as session:
        last = session.scalar(select(DagRun).where(DagRun.dag_id == dag.dag_id,
                                                   DagRun.run_type == DagRunType.SCHEDULED)
                              .order_by(DagRun.execution_date.desc()).limit(1))
        return dag.next_dagrun_info(dag.get_run_data_interval(last) if last is not None else None)


def dataset_triggered_run(dag, exec_date, session):
    """A dataset-triggered run consuming the events since the previous one, as the 2.11 scheduler makes it."""
    from airflow.models.dataset import DagScheduleDatasetReference, DatasetDagRunQueue, DatasetEvent
    previous = session.scalar(select(DagRun).where(
        DagRun.dag_id == dag.dag_id, DagRun.execution_date < exec_date,
        DagRun.run_type == DagRunType.DATASET_TRIGGERED).order_by(DagRun.execution_date.desc()).limit(1))
    filters = [DagScheduleDatasetReference.dag_id == dag.dag_id, DatasetEvent.timestamp <= exec_date]
    if previous is not None:
        filters.append(DatasetEvent.timestamp > previous.execution_date)
    events = list(session.scalars(select(DatasetEvent).join(
        DagScheduleDatasetReference, DatasetEvent.dataset_id == DagScheduleDatasetReference.dataset_id)
        .where(*filters).order_by(DatasetEvent.timestamp, DatasetEvent.id)))
    interval = dag.timetable.data_interval_for_events(exec_date, events)
    run = dag.create_dagrun(
        run_id=dag.timetable.generate_run_id(run_type=DagRunType.DATASET_TRIGGERED, logical_date=exec_date,
                                             data_interval=interval, session=session, events=events),
        run_type=DagRunType.DATASET_TRIGGERED, execution_date=exec_date, data_interval=interval,
        state=DagRunState.RUNNING, external_trigger=False, session=session)
    run.consumed_dataset_events.extend(events)
    session.execute(delete(DatasetDagRunQueue).where(DatasetDagRunQueue.target_dag_id == dag.dag_id))
    session.flush()
    return run


_run_task = dag_module._run_task


def _run_running(*, ti, session, **kwargs):
    """dag.test() runs a task instance still SCHEDULED; the task runner marks it RUNNING first (and Airflow records a
    failed try in task_instance_history only from RUNNING): this does as the runner does."""
    from airflow.utils.state import TaskInstanceState
    ti.state = TaskInstanceState.RUNNING
    session.merge(ti)
    session.commit()
    return _run_task(ti=ti, session=session, **kwargs)


dag_module._get_or_create_dagrun = _make_run
dag_module._run_task = _run_running


def run(dag, kind=DagRunType.MANUAL, at=None):
    """One real run of ``dag``: its tasks run in-process. Returns ((dag_id, run_id), when it was due)."""
    _next.clear()
    _next.update(type=kind)
    if kind == DagRunType.SCHEDULED:
        info = next_scheduled(dag)
        _next["info"] = info
        dr = dag.test(execution_date=info.logical_date)
        advance_next_dagrun(dag, info.data_interval)
        return [dr.dag_id, dr.run_id], info.run_after
    dr = dag.test(execution_date=at)
    return [dr.dag_id, dr.run_id], at


def advance_next_dagrun(dag, interval):
    """What the scheduler does once it created a scheduled run: the DAG's next run fields."""
    from airflow.models.dag import DagModel
    with create_session() as session:
        model = session.scalar(select(DagModel).where(DagModel.dag_id == dag.dag_id))
        model.calculate_dagrun_date_fields(dag, interval)


def in_progress(dag, at):
    """A manual run whose tasks never ran, left running (its worker died) since ``at``."""
    with create_session() as session:
        dr = dag.create_dagrun(
            run_id=DagRun.generate_run_id(DagRunType.MANUAL, at), execution_date=at,
            data_interval=dag.timetable.infer_manual_data_interval(run_after=at), run_type=DagRunType.MANUAL,
            external_trigger=True, state=DagRunState.RUNNING, session=session, start_date=at)
        return [dr.dag_id, dr.run_id]


def backdate(key, age):
    """Move a run's execution back by ``age`` days: start/end times of the run, its tasks, tries, XComs, events."""
    with create_session() as session:
        p = {"dag_id": key[0], "run_id": key[1], "age": datetime.timedelta(days=age)}
        for table in ("task_instance", "task_instance_history"):
            session.execute(text(
                "UPDATE %s SET start_date = start_date - :age, end_date = end_date - :age,"
                " queued_dttm = queued_dttm - :age, updated_at = updated_at - :age"
                " WHERE dag_id = :dag_id AND run_id = :run_id" % table), p)
        session.execute(text(
            "UPDATE dag_run AS r SET end_date = r.end_date - :age, queued_at = r.queued_at - :age,"
            " last_scheduling_decision = r.last_scheduling_decision - :age, updated_at = r.updated_at - :age,"
            " start_date = coalesce((SELECT min(ti.start_date) FROM task_instance AS ti"
            "  WHERE ti.dag_id = r.dag_id AND ti.run_id = r.run_id), r.end_date - :age)"
            " WHERE r.dag_id = :dag_id AND r.run_id = :run_id"), p)
        session.execute(text("UPDATE log SET dttm = dttm - :age WHERE dag_id = :dag_id AND run_id = :run_id"), p)
        session.execute(text("UPDATE xcom SET timestamp = timestamp - :age"
                             " WHERE dag_id = :dag_id AND run_id = :run_id"), p)
        session.execute(text("UPDATE dataset_event SET timestamp = timestamp - :age"
                             " WHERE source_dag_id = :dag_id AND source_run_id = :run_id"), p)


def leftover_archive():
    """What `airflow db clean` leaves when it is not told --skip-archive: an _airflow_deleted__ table."""
    from airflow.utils.db_cleanup import run_cleanup
    run_cleanup(clean_before_timestamp=NOW - 300 * DAYS, table_names=["log"], confirm=False,
                skip_archive=False)


def main():
    from airflow.models.dagbag import DagBag
    bag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"], include_examples=False)
    if bag.import_errors:
        sys.exit("DAG import errors: %s" % bag.import_errors)
    # What the DAG processor writes: the DAGs, their serialized form, their datasets and schedule references.
    bag.sync_to_db()
    etl, producer = bag.get_dag("pgtidy_etl"), bag.get_dag("pgtidy_producer")
    consumer = bag.get_dag("pgtidy_consumer")
    made = {}

    def aged(made_run, days=None):
        """Move a run back right after it ran (dataset events must be old before a consumer looks for them)."""
        key, due = made_run
        backdate(key, (NOW - due).days if days is None else days)
        return key

    # Rows are made oldest first, as Airflow writes them, so that integer keys grow with time.
    audit((400, "ancient"), (120, "trigger"), (105, "cli_dags_list"))
    # Weekly scheduled runs from the DAG's start: logical dates 2026-07-05 .. 2026-08-02.
    made["scheduled"] = [aged(run(etl, DagRunType.SCHEDULED)) for dummy in range(5)]
    made["old_manual"] = aged(run(etl, at=NOW - 100 * DAYS), 100)
    add_notes(*made["old_manual"])

    # Dataset events from producer runs, consumed by dataset-triggered runs of the consumer an hour later. A run
    # is made at its execution date, its events with the time they are made: they are moved back with the run.
    hour = datetime.timedelta(hours=1)
    made["old_producer"] = aged(run(producer, at=NOW - 95 * DAYS), 95)
    made["old_asset_run"] = aged(run(consumer, DagRunType.DATASET_TRIGGERED, at=NOW - 95 * DAYS + hour), 95)
    made["mid_producer"] = aged(run(producer, at=NOW - 90 * DAYS), 90)
    made["newest_asset_run"] = aged(run(consumer, DagRunType.DATASET_TRIGGERED, at=NOW - 90 * DAYS + hour), 90)
    # Triggered by hand 50 days ago and never finished: nothing of it may go.
    made["running"] = in_progress(etl, NOW - 50 * DAYS)
    made.update(jobs_and_errors())
    made["recent_manual"] = aged(run(etl, at=NOW - 2 * DAYS), 2)
    made["recent_producer"] = aged(run(producer, at=NOW - 1 * DAYS), 1)
    audit((0, "trigger"))
    leftover_archive()
    # Airflow's read-back of the history, in this process (an Airflow import less for the tests).
    from read_back import read_back
    with open(sys.argv[1], "w") as fh:     # Airflow logs to stdout
        json.dump({"made": made, "before": read_back()}, fh, sort_keys=True)


if __name__ == "__main__":
    main()
