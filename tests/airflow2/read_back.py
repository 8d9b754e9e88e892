"""Reads an Airflow 2.11 database back through Airflow 2.11's own models (run in its environment, see
tests/airflow_fixture.py), as tests/airflow/read_back.py does on Airflow 3, into the JSON file named by its first
argument: every dag run with its task instances, tries, XComs, rendered fields and notes, the dataset events each
run consumed, and what the scheduler would run next for each DAG. A run's ``logical_date`` and ``run_after`` are
both its ``execution_date`` (2.11 has no other). Given a dag id, run id and task id as well, it then clears that
task instance and runs it again, as a user clearing it in the UI and the scheduler would, and adds its outcome.
"""
from __future__ import annotations

import json
import os
import sys

from sqlalchemy import func, select


def iso(value):
    return value.isoformat() if value is not None else None


def plain(value):
    return json.loads(json.dumps(value, default=str))


def xcoms_of(session, ti):
    from airflow.models.xcom import XCom
    rows = session.scalars(select(XCom).where(
        XCom.dag_id == ti.dag_id, XCom.run_id == ti.run_id, XCom.task_id == ti.task_id,
        XCom.map_index == ti.map_index).order_by(XCom.key))
    return {x.key: plain(x.value) for x in rows}  # deserialized when loaded


def runs(session):
    from airflow.models.dagrun import DagRun
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    out = {}
    for dr in session.scalars(select(DagRun).order_by(DagRun.dag_id, DagRun.run_id)):
        tis = {}
        for ti in dr.get_task_instances(session=session):
            key = "%s[%d]" % (ti.task_id, ti.map_index)
            rendered = session.scalar(select(RenderedTaskInstanceFields.rendered_fields).where(
                RenderedTaskInstanceFields.dag_id == ti.dag_id, RenderedTaskInstanceFields.run_id == ti.run_id,
                RenderedTaskInstanceFields.task_id == ti.task_id,
                RenderedTaskInstanceFields.map_index == ti.map_index))
            tries = session.execute(select(TaskInstanceHistory.try_number, TaskInstanceHistory.state).where(
                TaskInstanceHistory.dag_id == ti.dag_id, TaskInstanceHistory.run_id == ti.run_id,
                TaskInstanceHistory.task_id == ti.task_id, TaskInstanceHistory.map_index == ti.map_index)
                .order_by(TaskInstanceHistory.try_number)).all()
            tis[key] = {
                "state": ti.state, "try_number": ti.try_number, "note": ti.note,
                "start_date": iso(ti.start_date), "end_date": iso(ti.end_date),
                "xcom": xcoms_of(session, ti), "rendered": plain(rendered),
                "earlier_tries": [[n, s] for n, s in tries],
            }
        out["%s/%s" % (dr.dag_id, dr.run_id)] = {
            "id": dr.id, "state": dr.state, "run_type": dr.run_type, "logical_date": iso(dr.execution_date),
            "run_after": iso(dr.execution_date), "start_date": iso(dr.start_date), "end_date": iso(dr.end_date),
            "note": dr.note, "consumed_asset_events": sorted(e.id for e in dr.consumed_dataset_events),
            "task_instances": tis,
        }
    return out


def next_runs(session):
    """Per DAG: the next run stored by the scheduler, and the one the DAG processor recomputes from the runs left."""
    from airflow.models.dag import DAG, DagModel
    from airflow.models.dagrun import DagRun
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.types import DagRunType
    out = {}
    for model in session.scalars(select(DagModel).order_by(DagModel.dag_id)):
        dag = SerializedDagModel.get_dag(model.dag_id, session=session)
        latest = session.scalar(DAG._get_latest_runs_stmt([model.dag_id]))
        info = dag.next_dagrun_info(dag.get_run_data_interval(latest) if latest else None)
        # The floor of the next dataset-triggered run's events (the previous dataset-triggered run).
        floor = session.scalar(select(func.max(DagRun.execution_date)).where(
            DagRun.dag_id == model.dag_id, DagRun.run_type == DagRunType.DATASET_TRIGGERED))
        out[model.dag_id] = {
            "stored": {"next_dagrun": iso(model.next_dagrun),
                       "next_dagrun_create_after": iso(model.next_dagrun_create_after)},
            "recomputed": {"logical_date": iso(info.logical_date) if info else None,
                           "run_after": iso(info.run_after) if info else None},
            "asset_event_floor": iso(floor),
        }
    return out


def read_back():
    from airflow.utils.session import create_session
    with create_session() as session:
        return {"runs": runs(session), "next": next_runs(session)}


def rerun(dag_id, run_id, task_id):
    """Clear one task instance of a run and run it again, as a user clearing it and the scheduler would."""
    from airflow.models.dag import _run_task
    from airflow.models.dagbag import DagBag
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance, clear_task_instances
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.models.xcom import XCom
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    # The users table (ab_user) the notes refer to is mapped by the FAB auth manager's models, which the
    # webserver loads: without them clearing cannot flush.
    import airflow.providers.fab.auth_manager.models  # noqa: F401  pylint: disable=unused-import

    dag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"], include_examples=False).get_dag(dag_id)
    with create_session() as session:
        tis = list(session.scalars(select(TaskInstance).where(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.task_id == task_id)))
        clear_task_instances(tis, session, dag=dag)
    with create_session() as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        run.dag = dag
        run.state = DagRunState.RUNNING
        session.commit()
        # The scheduler's part, as dag.test() plays it: schedule what may run, run it, until the run is over.
        for dummy in range(20):
            if run.state != DagRunState.RUNNING:
                break
            session.expire_all()
            schedulable = run.update_state(session=session)[0]
            for ti in schedulable:
                ti.try_number += 1
                ti.state = TaskInstanceState.SCHEDULED
            session.commit()
            for ti in run.get_task_instances(state=[TaskInstanceState.SCHEDULED], session=session):
                ti.task = dag.task_dict[ti.task_id]
                _run_task(ti=ti, session=session)
        tis = run.get_task_instances(session=session)
        xcom = list(session.scalars(select(XCom).where(
            XCom.dag_id == dag_id, XCom.run_id == run_id, XCom.task_id == task_id, XCom.key == "return_value")))
        out = {
            "run_state": run.state,
            "xcom": xcom[0].value if xcom else None,
            "task_instances": {"%s[%d]" % (ti.task_id, ti.map_index): [ti.state, ti.try_number]
                               for ti in tis if ti.task_id == task_id},
            "history": sorted([n, s] for n, s in session.execute(
                select(TaskInstanceHistory.try_number, TaskInstanceHistory.state).where(
                    TaskInstanceHistory.dag_id == dag_id, TaskInstanceHistory.run_id == run_id,
                    TaskInstanceHistory.task_id == task_id))),
        }
    return out


def main():
    data = read_back()
    if len(sys.argv) > 2:       # then clear a task of a kept run and run it again
        data["rerun"] = rerun(*sys.argv[2:5])
    with open(sys.argv[1], "w") as fh:     # Airflow logs to stdout
        json.dump(data, fh, sort_keys=True)


if __name__ == "__main__":
    main()
