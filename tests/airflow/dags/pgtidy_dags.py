"""The DAGs of the Airflow test history (tests/airflow_fixture.py runs them in-process with dag.test())."""
from __future__ import annotations

import datetime

from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from airflow.sdk import DAG, Asset, task

START = datetime.datetime(2026, 7, 5, tzinfo=datetime.timezone.utc)
EXAMPLE = Asset("pgtidy_example", uri="file:///pgtidy/example.csv")

with DAG("pgtidy_etl", schedule=datetime.timedelta(days=7), start_date=START, catchup=True,
         max_active_runs=16, tags=["pgtidy"]):
    @task
    def extract():
        return [1, 2, 3]

    @task
    def square(x):
        return x * x

    @task
    def total(values):
        return sum(values)

    @task(retries=1, retry_delay=datetime.timedelta(seconds=0))
    def flaky(**context):
        """Fails its first try in manual runs: a task instance with an earlier try in its history."""
        if context["dag_run"].run_type == "manual" and context["ti"].try_number == 1:
            raise RuntimeError("the first try fails on purpose")
        return "try %d" % context["ti"].try_number

    total(square.expand(x=extract())) >> flaky()

with DAG("pgtidy_producer", schedule=None, start_date=START, tags=["pgtidy"]):
    @task(outlets=[EXAMPLE])
    def publish():
        return "published"

    publish()

with DAG("pgtidy_consumer", schedule=[EXAMPLE], start_date=START, tags=["pgtidy"]):
    @task
    def consume(**context):
        return len(context["triggering_asset_events"])

    consume()

with DAG("pgtidy_deferred", schedule=None, start_date=START, tags=["pgtidy"]):
    # A sensor in deferrable mode: it hands its wait to a trigger (a DateTimeTrigger ten years ahead).
    TimeDeltaSensor(task_id="wait", delta=datetime.timedelta(days=3650), deferrable=True, timeout=3650 * 86400)

with DAG("pgtidy_versioned", schedule=None, start_date=START, tags=["pgtidy"]):
    @task
    def report():
        return "reported"

    report()
