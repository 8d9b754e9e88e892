"""The rows of the Airflow test history that both tested releases write through the same models (notes, audit
log entries, jobs, import errors), imported by tests/airflow/make_history.py and tests/airflow2/make_history.py.
``NOW`` is the moment the history is dated from, for both scripts and every row."""
from __future__ import annotations

import datetime

from sqlalchemy import select

from airflow.models.dagrun import DagRun, DagRunNote
from airflow.utils.session import create_session

UTC = datetime.timezone.utc
NOW = datetime.datetime.now(UTC).replace(microsecond=0)
DAYS = datetime.timedelta(days=1)


def add_notes(dag_id, run_id):
    from airflow.models.taskinstance import TaskInstance, TaskInstanceNote
    with create_session() as session:
        dr = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        dr.dag_run_note = DagRunNote(content="checked by hand: %s" % run_id)
        ti = session.scalar(select(TaskInstance).where(TaskInstance.dag_id == dag_id,
                                                       TaskInstance.run_id == run_id,
                                                       TaskInstance.task_id == "extract"))
        ti.task_instance_note = TaskInstanceNote(content="extract looked fine")


def audit(*entries):
    """Audit log rows as the API server (2.x: the webserver) writes them ((age in days, event) pairs, oldest first:
    ids grow with time)."""
    from airflow.models.log import Log
    with create_session() as session:
        for age, event in entries:
            entry = Log(event=event, dag_id="pgtidy_etl", owner="pgtidy")
            session.add(entry)
            session.flush()
            entry.dttm = NOW - age * DAYS


def jobs_and_errors(**import_error):
    """Finished and running jobs, and import errors, as Airflow writes them (oldest first); ``import_error``: the
    release's own columns of an import error (Airflow 3's ``bundle_name``)."""
    from airflow.jobs.job import Job
    from airflow.models.errors import ParseImportError
    ids = {"jobs": {}}
    with create_session() as session:
        for label, job_type, state, age in (("old_scheduler", "SchedulerJob", "success", 90),
                                            ("old_triggerer", "TriggererJob", "failed", 80),
                                            ("dead_processor", "DagProcessorJob", "success", 70),
                                            ("newest_processor", "DagProcessorJob", "success", 60),
                                            ("running_scheduler", "SchedulerJob", "running", 0)):
            job = Job()
            job.job_type = job_type
            job.state = state
            session.add(job)
            session.flush()
            job.start_date = NOW - age * DAYS - DAYS
            job.latest_heartbeat = NOW - age * DAYS
            if state != "running":
                job.end_date = job.latest_heartbeat
            ids["jobs"][label] = job.id
        for name, age in (("removed_long_ago.py", 60), ("broken_now.py", 0)):
            session.add(ParseImportError(filename=name, stacktrace="SyntaxError", timestamp=NOW - age * DAYS,
                                         **import_error))
    return ids
