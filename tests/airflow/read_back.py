"""Reads an Airflow database back through Airflow's own models (run in Airflow's environment, see
tests/airflow_fixture.py) and prints JSON: every dag run with its task instances, tries, XComs, rendered
fields and notes, the asset events each run consumed, and what the scheduler would run next for each DAG,
into the JSON file named by its first argument. Given a dag id, run id and task id as well, it then clears that
task instance and runs it again, as a user clearing it in the UI and the scheduler would, and adds its outcome.
"""
from __future__ import annotations

import json
import os
import sys

from sqlalchemy import func, select


def iso(value):
    return value.isoformat() if value is not None else None


def runs(session):
    from airflow.models.dagrun import DagRun
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.models.xcom import XComModel
    out = {}
    for dr in session.scalars(select(DagRun).order_by(DagRun.dag_id, DagRun.run_id)):
        tis = {}
        for ti in dr.get_task_instances(session=session):
            key = "%s[%d]" % (ti.task_id, ti.map_index)
            xcoms = session.execute(select(XComModel.key, XComModel.value).where(
                XComModel.dag_id == ti.dag_id, XComModel.run_id == ti.run_id, XComModel.task_id == ti.task_id,
                XComModel.map_index == ti.map_index).order_by(XComModel.key)).all()
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
                "xcom": {k: json.loads(json.dumps(v, default=str)) for k, v in xcoms},
                "rendered": json.loads(json.dumps(rendered, default=str)),
                "earlier_tries": [[n, s] for n, s in tries],
            }
        out["%s/%s" % (dr.dag_id, dr.run_id)] = {
            "id": dr.id, "state": dr.state, "run_type": dr.run_type, "logical_date": iso(dr.logical_date),
            "run_after": iso(dr.run_after), "start_date": iso(dr.start_date), "end_date": iso(dr.end_date),
            "note": dr.note, "consumed_asset_events": sorted(e.id for e in dr.consumed_asset_events),
            "task_instances": tis,
        }
    return out


def next_runs(session):
    """Per DAG: the next run stored by the scheduler, and the one the DAG processor recomputes from the runs left."""
    from airflow.dag_processing.collection import _get_latest_runs_stmt
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.types import DagRunType
    out = {}
    for model in session.scalars(select(DagModel).order_by(DagModel.dag_id)):
        dag = SerializedDagModel.get_dag(model.dag_id, session=session)
        latest = session.scalar(_get_latest_runs_stmt(model.dag_id))
        info = dag.next_dagrun_info(
            last_automated_run_info=dag.timetable.run_info_from_dag_run(dag_run=latest) if latest else None)
        # The floor of the next asset-triggered run's event window (the scheduler's previous asset-triggered run).
        floor = session.scalar(select(func.max(DagRun.run_after)).where(
            DagRun.dag_id == model.dag_id, DagRun.run_type == DagRunType.ASSET_TRIGGERED))
        out[model.dag_id] = {
            "stored": {"next_dagrun": iso(model.next_dagrun),
                       "next_dagrun_create_after": iso(model.next_dagrun_create_after)},
            "recomputed": {"logical_date": iso(info.logical_date) if info else None,
                           "run_after": iso(info.run_after) if info else None},
            "asset_event_floor": iso(floor),
        }
    return out


def dags(session):
    """Per DAG: what Airflow loads of its current version (the latest serialized DAG, its code, its tasks)."""
    from airflow.models.dag import DagModel
    from airflow.models.dag_version import DagVersion
    from airflow.models.dagcode import DagCode
    from airflow.models.serialized_dag import SerializedDagModel
    out = {}
    for model in session.scalars(select(DagModel).order_by(DagModel.dag_id)):
        latest = DagVersion.get_latest_version(model.dag_id, session=session)
        serialized = SerializedDagModel.get(model.dag_id, session=session)
        out[model.dag_id] = {
            "version": latest.version_number, "version_id": str(latest.id), "dag_hash": serialized.dag_hash,
            "tasks": sorted(serialized.dag.task_ids), "code": DagCode.code(model.dag_id, session=session),
        }
    return out


def read_back():
    from airflow.utils.session import create_session
    with create_session() as session:
        return {"runs": runs(session), "next": next_runs(session), "dags": dags(session)}


def rerun(dag_id, run_id, task_id):
    """Clear one task instance of a run and run it again, as a user clearing it and the scheduler would."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.models.taskinstance import TaskInstance, clear_task_instances
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.models.xcom import XComModel
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState

    dag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).get_dag(dag_id)
    with create_session() as session:
        tis = list(session.scalars(select(TaskInstance).where(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.task_id == task_id)))
        clear_task_instances(tis, session)
    with create_session() as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        run.dag = SerializedDagModel.get_dag(dag_id, session=session)
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
                _run_task(ti=ti, task=dag.task_dict[ti.task_id])
        tis = run.get_task_instances(session=session)
        out = {
            "run_state": run.state,
            "xcom": session.scalar(select(XComModel.value).where(
                XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.task_id == task_id,
                XComModel.key == "return_value")),
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
