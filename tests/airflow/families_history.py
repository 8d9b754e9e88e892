"""The rows of the Airflow table families beyond dag runs, for the test history (make_history.py calls these).

Written through Airflow itself where it can:
- the deferred run: a run of ``pgtidy_deferred`` created from the serialized DAG, its deferrable sensor executed
  until it defers (``TaskDeferred``), and the trigger row and the task instance's deferred state written as
  Airflow's execution API writes them (``Trigger.from_object``, ``state``, ``trigger_id``, ``next_method``); the
  run then marked failed by hand with the sensor still deferred; a newer finished run of the same DAG;
- triggers: ``Trigger.from_object`` of a ``DateTimeTrigger`` no task instance refers to (what a triggerer
  that stopped running leaves), and one an asset watcher (``AssetWatcherModel``) uses;
- callbacks: ``Callback.create_from_sdk_def`` of a ``SyncCallback``, in states success, failed and pending;
- DAG versions: ``SerializedDagModel.write_dag`` of a changed ``pgtidy_versioned`` after a run used its first
  version (Airflow keeps a version once a task instance used it, make_history.py);
- task state store rows (``TaskStateStoreModel``), partitioned asset runs and their key log rows
  (``AssetPartitionDagRun``, ``PartitionedAssetKeyLog``).
With SQL only:
- the times Airflow stamps itself (``created_date``, ``created_at``) moved back;
- the ``session`` table and its rows: it belongs to the FAB auth manager, which this Airflow does not install;
  the table is made as FAB's model makes it (``id``, ``session_id``, ``data``, ``expiry`` without time zone).
"""
from __future__ import annotations

import datetime

from sqlalchemy import select, text

from airflow.utils.session import create_session

UTC = datetime.timezone.utc
DAYS = datetime.timedelta(days=1)


def _run_id(session, key):
    from airflow.models.dagrun import DagRun
    return session.scalar(select(DagRun.id).where(DagRun.dag_id == key[0], DagRun.run_id == key[1]))


def deferred_runs(dag, now):
    """An old run marked failed by hand while its sensor is deferred (holding its trigger), and a newer finished
    run of the same DAG. Returns ({label: [dag_id, run_id]}, the deferred trigger's id)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.sdk.exceptions import TaskDeferred
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    made, trigger_id = {}, None
    for label, age in (("deferred_run", 60), ("deferred_newest", 10)):
        run_after = now - age * DAYS
        with create_session() as session:
            serdag = SerializedDagModel.get_dag(dag.dag_id, session=session)
            dr = serdag.create_dagrun(
                run_id=DagRun.generate_run_id(run_type=DagRunType.MANUAL, logical_date=run_after,
                                              run_after=run_after),
                logical_date=run_after, data_interval=serdag.timetable.infer_manual_data_interval(run_after=run_after),
                run_after=run_after, run_type=DagRunType.MANUAL, triggered_by=DagRunTriggeredByType.UI,
                triggering_user_name="pgtidy", state=DagRunState.RUNNING, session=session, start_date=run_after)
            ti = session.scalar(select(TaskInstance).where(TaskInstance.dag_id == dr.dag_id,
                                                           TaskInstance.run_id == dr.run_id))
            ti.start_date = run_after
            if label == "deferred_run":
                try:
                    dag.get_task("wait").execute({"dag_run": dr})
                    raise RuntimeError("the deferrable sensor did not defer")
                except TaskDeferred as deferral:
                    trigger = Trigger.from_object(deferral.trigger)
                    session.add(trigger)
                    session.flush()
                    ti.state = TaskInstanceState.DEFERRED
                    ti.trigger_id = trigger_id = trigger.id
                    ti.next_method = deferral.method_name
                    ti.next_kwargs = deferral.kwargs or {}
                session.execute(text("UPDATE trigger SET created_date = :t WHERE id = :id"),
                                {"t": run_after, "id": trigger_id})
                dr.state = DagRunState.FAILED        # marked failed by hand; the sensor is still deferred
            else:
                ti.state = TaskInstanceState.SUCCESS
                ti.end_date = run_after + DAYS
                dr.state = DagRunState.SUCCESS
            dr.end_date = run_after + DAYS
            made[label] = [dr.dag_id, dr.run_id]
    return made, trigger_id


def unused_triggers(now, asset_uri):
    """Triggers, oldest first (trigger ids grow with time): one an asset watcher of ``asset_uri`` uses (45 days
    old), and two nothing refers to (40 days and 1 day old)."""
    from airflow.models.asset import AssetModel, AssetWatcherModel
    from airflow.models.trigger import Trigger
    from airflow.providers.standard.triggers.temporal import DateTimeTrigger
    ids = {}
    with create_session() as session:
        for label, age in (("watched_trigger", 45), ("unused_trigger_old", 40), ("unused_trigger_recent", 1)):
            trigger = Trigger.from_object(DateTimeTrigger(moment=now + 3650 * DAYS))
            session.add(trigger)
            session.flush()
            trigger.created_date = now - age * DAYS
            ids[label] = trigger.id
        asset_id = session.scalar(select(AssetModel.id).where(AssetModel.uri == asset_uri))
        session.add(AssetWatcherModel(name="pgtidy_watcher", asset_id=asset_id, trigger_id=ids["watched_trigger"]))
    return ids


def callbacks(now, kept_run, deleted_run):
    """Callbacks as a deadline alert makes them: finished long ago (success, failed), pending long ago, finished
    lately; and the finished callbacks of two missed deadlines (``Deadline``), one of a run that stays and one of a
    run the dag run rule deletes (its deadline goes with the run, and then its callback may go)."""
    from airflow.models.callback import Callback
    from airflow.models.deadline import Deadline
    from airflow.sdk.definitions.callback import SyncCallback
    ids = {}
    with create_session() as session:
        for label, state, age in (("success_old", "success", 60), ("failed_old", "failed", 50),
                                  ("pending_old", "pending", 60), ("success_recent", "success", 2)):
            callback = Callback.create_from_sdk_def(SyncCallback("pgtidy_dags.notify", kwargs={"label": label}))
            callback.state = state
            callback.created_at = now - age * DAYS
            session.add(callback)
            session.flush()
            ids[label] = str(callback.id)
        for label, key in (("deadline_of_kept_run", kept_run), ("deadline_of_deleted_run", deleted_run)):
            deadline = Deadline(deadline_time=now - 56 * DAYS, callback=SyncCallback("pgtidy_dags.notify"),
                                dagrun_id=_run_id(session, key), deadline_alert_id=None, dag_id=key[0])
            deadline.missed = True
            deadline.callback.state = "success"
            deadline.callback.created_at = now - 55 * DAYS
            session.add(deadline)
            session.flush()
            ids[label] = str(deadline.callback.id)
    return ids


def new_version(dag, now, days_old):
    """A second version of ``dag`` (its description changed) as the DAG processor writes it; the first version,
    which a run used, stays; its times are moved back ``days_old`` days. Returns {label: version id}."""
    from airflow.models.dag_version import DagVersion
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    with create_session() as session:
        first = session.scalar(select(DagVersion).where(DagVersion.dag_id == dag.dag_id)
                               .order_by(DagVersion.version_number))
        dag.description = "the second version"
        SerializedDagModel.write_dag(LazyDeserializedDAG.from_dag(dag), bundle_name=first.bundle_name,
                                     session=session)
        old = now - days_old * DAYS
        for table, column in (("dag_version", "id"), ("serialized_dag", "dag_version_id"),
                              ("dag_code", "dag_version_id")):
            session.execute(text("UPDATE %s SET created_at = :t, last_updated = :t WHERE %s = :id" % (table, column)),
                            {"t": old, "id": first.id})
        return {"first_version": str(first.id)}


def task_state(now, kept_run, deleted_run):
    """Task state store rows: on a run that stays (expired 40 and 5 days ago, no expiry, expiring in 10 days) and
    one expired row on a run the dag run rule deletes (it goes with its run)."""
    from airflow.models.task_state_store import TaskStateStoreModel
    ids = {}
    with create_session() as session:
        for label, key, expires in (("expired_long_ago", kept_run, now - 40 * DAYS),
                                    ("expired_lately", kept_run, now - 5 * DAYS),
                                    ("no_expiry", kept_run, None), ("future", kept_run, now + 10 * DAYS),
                                    ("of_deleted_run", deleted_run, now - 40 * DAYS)):
            row = TaskStateStoreModel(dag_run_id=_run_id(session, key), dag_id=key[0], run_id=key[1],
                                      task_id="extract", map_index=-1, key=label, value='"v"',
                                      updated_at=now, expires_at=expires)
            session.add(row)
            session.flush()
            ids[label] = row.id
    return ids


def partition_log(now, asset_uri, deleted_run):
    """Partitioned asset runs and their key log rows, oldest first: a pending partitioned run that stays, one
    created by a run the dag run rule deletes, and log rows of each and of a run that no longer exists."""
    from airflow.models.asset import AssetEvent, AssetModel, AssetPartitionDagRun, PartitionedAssetKeyLog
    ids = {}
    with create_session() as session:
        asset_id = session.scalar(select(AssetModel.id).where(AssetModel.uri == asset_uri))
        event_id = session.scalar(select(AssetEvent.id).where(AssetEvent.asset_id == asset_id).limit(1))
        runs = {}
        for label, created_by in (("pending", None), ("of_deleted_run", _run_id(session, deleted_run))):
            apdr = AssetPartitionDagRun(target_dag_id="pgtidy_consumer", created_dag_run_id=created_by,
                                        partition_key="2026-01-01")
            session.add(apdr)
            session.flush()
            runs[label] = apdr.id
        gone_run = max(runs.values()) + 1000
        for label, apdr_id, age in (("of_pending", runs["pending"], 60), ("orphan_old", gone_run, 60),
                                    ("of_deleted_run", runs["of_deleted_run"], 50), ("orphan_recent", gone_run, 2)):
            row = PartitionedAssetKeyLog(asset_id=asset_id, asset_event_id=event_id, asset_partition_dag_run_id=apdr_id,
                                         source_partition_key="2026-01-01", target_dag_id="pgtidy_consumer",
                                         target_partition_key="2026-01-01", created_at=now - age * DAYS)
            session.add(row)
            session.flush()
            ids[label] = row.id
    return ids


def web_sessions(now):
    """The FAB auth manager's ``session`` table (SQL: FAB is not installed) with sessions that expired 60, 40 and
    5 days ago and one that expires in 30 days. ``expiry`` is naive UTC, as Flask-Session writes it. A session's
    expiry moves on while it is used, so the ids do not follow the expiries: the session that expired 40 days ago
    comes after the one still valid, where a walk that took expiry to grow with the id would stop."""
    naive = now.astimezone(UTC).replace(tzinfo=None)
    ids = {}
    with create_session() as session:
        session.execute(text("CREATE TABLE session (id serial PRIMARY KEY, session_id varchar(255) UNIQUE,"
                             " data bytea, expiry timestamp without time zone)"))
        for label, days in (("expired_60", -60), ("fresh", 30), ("expired_40", -40), ("expired_5", -5)):
            ids[label] = session.execute(text("INSERT INTO session (session_id, data, expiry) VALUES (:s, :d, :e)"
                                              " RETURNING id"),
                                         {"s": label, "d": b"\x80\x04}\x94.", "e": naive + days * DAYS}).scalar()
    return ids
