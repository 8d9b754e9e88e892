"""Builds real Dagster metadata databases for tests, the demo and benchmarks.

Everything is written by the ``dagster`` package itself (``dagster instance migrate``, real
in-process runs, the instance API for ticks and instigator state); only the timestamps are
moved back afterwards with SQL to simulate months of history.
"""
from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import dagster_defs  # noqa: E402


def write_instance_yaml(home, port, db, host="127.0.0.1", user="postgres", password=""):
    os.makedirs(home, exist_ok=True)
    with open(os.path.join(home, "dagster.yaml"), "w") as fh:
        fh.write(
            "storage:\n  postgres:\n    postgres_db:\n"
            "      username: %s\n      password: \"%s\"\n      hostname: %s\n      db_name: %s\n"
            "      port: %d\n      scheme: postgresql+psycopg2\n"
            "telemetry:\n  enabled: false\n" % (user, password, host, db, port))
    return home


def migrate(home):
    """Create the schema with Dagster's own migration command."""
    bindir = os.path.dirname(sys.executable)
    subprocess.run([os.path.join(bindir, "dagster"), "instance", "migrate"], check=True,
                   capture_output=True, env=dict(os.environ, DAGSTER_HOME=home))


@contextlib.contextmanager
def instance_for(home):
    import dagster as dg
    old = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = home
    try:
        with dg.DagsterInstance.get() as instance:
            yield instance
    finally:
        if old is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = old


@contextlib.contextmanager
def failing(flag_path):
    open(flag_path, "w").close()
    os.environ[dagster_defs.FLAG_ENV] = flag_path
    try:
        yield
    finally:
        os.unlink(flag_path)


def _instigator_origin(name):
    from dagster._core.remote_origin import (InProcessCodeLocationOrigin, RemoteInstigatorOrigin,
                                             RemoteRepositoryOrigin)
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    location = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(python_file=dagster_defs.__file__, attribute="defs"), location_name="pgtidy_demo")
    return RemoteInstigatorOrigin(RemoteRepositoryOrigin(location, "__repository__"), name)


def _write_ticks(instance, ticks_per_instigator):
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._utils.error import SerializableErrorInfo
    from dagster._core.scheduler.instigation import (InstigatorState, InstigatorStatus, SensorInstigatorData,
                                                     ScheduleInstigatorData, TickData, TickStatus)
    now = time.time()
    kinds = [("new_files_sensor", InstigatorType.SENSOR), ("etl_job_schedule", InstigatorType.SCHEDULE)]
    statuses = [TickStatus.SKIPPED, TickStatus.SKIPPED, TickStatus.SKIPPED, TickStatus.SUCCESS, TickStatus.FAILURE]
    for name, kind in kinds:
        origin = _instigator_origin(name)
        if kind == InstigatorType.SENSOR:
            data = SensorInstigatorData(last_tick_timestamp=now, min_interval=30, cursor="file-0042",
                                        sensor_type=None)
        else:
            data = ScheduleInstigatorData(cron_schedule="0 * * * *", start_timestamp=now)
        instance.add_instigator_state(InstigatorState(origin, kind, InstigatorStatus.RUNNING, data))
        for i in range(ticks_per_instigator):
            status = statuses[i % len(statuses)]
            instance.create_tick(TickData(
                instigator_origin_id=origin.get_id(), instigator_name=name, instigator_type=kind,
                status=status, timestamp=now, selector_id=origin.get_selector().get_id(),
                run_ids=[], run_keys=[],
                error=SerializableErrorInfo("sensor raised", [], "RuntimeError") if status == TickStatus.FAILURE
                else None,
                skip_reason="nothing to do" if status == TickStatus.SKIPPED else None))


def _in_progress_run(instance):
    """A run that is still going: created through the instance and started, never finished."""
    import dagster as dg
    from dagster._core.events import DagsterEvent, DagsterEventType, EngineEventData
    run = instance.create_run_for_job(job_def=dagster_defs.etl_job)
    instance.report_dagster_event(DagsterEvent(DagsterEventType.RUN_START.value, job_name=run.job_name),
                                  run_id=run.run_id)
    instance.report_engine_event("run worker still busy", run, EngineEventData())
    for level in ("DEBUG", "INFO", "WARNING"):
        entry = dg.EventLogEntry(error_info=None, level=getattr(logging, level),
                                 user_message="%s line of a running run" % level, run_id=run.run_id,
                                 timestamp=time.time(), step_key="extract", job_name=run.job_name,
                                 dagster_event=None)
        instance.store_event(entry)
    return run.run_id


def build_history(home, rounds=6, ticks_per_instigator=30):
    """Run real jobs and assets; return the ids tests need. About 1.5 runs a second in process."""
    import dagster as dg
    from dagster_defs import etl_job, events, invoices, sessions, summary, summary_is_positive
    flag = os.path.join(home, "fail.flag")
    manifest = {"failed_runs": [], "reexecutions": [], "in_progress": []}
    with instance_for(home) as instance:
        instance.add_dynamic_partitions("customers", ["acme", "globex", "initech"])
        recon = dg.reconstructable(etl_job)
        # An early failed run nobody re-executed: months old once backdated.
        with failing(flag):
            with dg.execute_job(recon, instance=instance, raise_on_error=False) as result:
                manifest["failed_runs"].append(result.run_id)
        for r in range(rounds):
            for region in ("eu", "us", "apac"):
                dg.materialize([events, sessions], partition_key=region, instance=instance)
            for customer in ("acme", "globex") if r % 2 == 0 else ("initech",):
                dg.materialize([invoices], partition_key=customer, instance=instance)
            dg.materialize([summary, summary_is_positive], instance=instance)
            with dg.execute_job(recon, instance=instance) as result:
                assert result.success
            if r == 1:
                # A failed run, re-executed from failure once the failure is fixed.
                with failing(flag):
                    with dg.execute_job(recon, instance=instance, raise_on_error=False) as result:
                        failed_id = result.run_id
                with dg.execute_job(recon, instance=instance,
                                    reexecution_options=dg.ReexecutionOptions.from_failure(failed_id, instance)) as rr:
                    assert rr.success
                manifest["reexecutions"].append({"parent": failed_id, "child": rr.run_id})
                # A partition that failed and was then fixed.
                with failing(flag):
                    dg.materialize([events], partition_key="apac", instance=instance, raise_on_error=False)
                dg.materialize([events], partition_key="apac", instance=instance)
        # A partition left failed.
        with failing(flag):
            dg.materialize([events], partition_key="apac", instance=instance, raise_on_error=False)
        manifest["in_progress"].append(_in_progress_run(instance))
        _write_ticks(instance, ticks_per_instigator)
    return manifest


def backdate(conn, days=180, keep_recent_runs=3):
    """Spread runs over ``days`` in creation order (ids keep growing with time).

    The newest ``keep_recent_runs`` runs and the in-progress run keep today's timestamps.
    """
    with conn.cursor() as cur:
        cur.execute("""
            WITH ordered AS (
              SELECT run_id, row_number() OVER (ORDER BY id) AS n, count(*) OVER () AS total FROM runs
            ), shift AS (
              SELECT run_id,
                     CASE WHEN n > total - %(keep)s THEN 0
                          ELSE %(days)s * 86400.0 * (1 - (n - 1)::float / greatest(total - %(keep)s, 1)) END AS secs
              FROM ordered
            ), moved_events AS (
              UPDATE event_logs e SET timestamp = e.timestamp - make_interval(secs => s.secs)
              FROM shift s WHERE e.run_id = s.run_id RETURNING 1
            )
            UPDATE runs r SET create_timestamp = r.create_timestamp - make_interval(secs => s.secs),
                              update_timestamp = r.update_timestamp - make_interval(secs => s.secs),
                              start_time = r.start_time - s.secs, end_time = r.end_time - s.secs
            FROM shift s WHERE r.run_id = s.run_id
        """, {"days": days, "keep": keep_recent_runs})
        # Ticks: spread over 60 days in id order.
        cur.execute("""
            WITH ordered AS (SELECT id, row_number() OVER (ORDER BY id) AS n, count(*) OVER () AS total
                             FROM job_ticks)
            UPDATE job_ticks t SET timestamp = t.timestamp - make_interval(secs => 60 * 86400.0 *
                   (1 - (o.n - 1)::float / greatest(o.total, 1)))
            FROM ordered o WHERE o.id = t.id
        """)
        # Rows outside any run (runless events) keep their time.
    return conn


def reexecute_from_failure(home, failed_run):
    """Re-execute a failed etl_job run from failure; returns (its status before, the steps that succeeded)."""
    import dagster as dg
    with instance_for(home) as instance:
        status = instance.get_run_by_id(failed_run).status
        options = dg.ReexecutionOptions.from_failure(failed_run, instance)
        with dg.execute_job(dg.reconstructable(dagster_defs.etl_job), instance=instance,
                            reexecution_options=options) as result:
            assert result.success
            return status, {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}


def snapshot(instance, manifest=None):
    """What Dagster itself shows: everything the UI and re-execution read, through the instance API."""
    import dagster as dg
    from dagster._core.events import DagsterEventType
    storage = instance.event_log_storage
    out = {}
    runs = instance.get_runs()
    out["runs"] = sorted((r.run_id, r.status.value, r.job_name, r.parent_run_id or "") for r in runs)
    out["run_stats"] = {}
    out["step_stats"] = {}
    for run in runs:
        stats = instance.get_run_stats(run.run_id)
        out["run_stats"][run.run_id] = (stats.steps_succeeded, stats.steps_failed, stats.materializations,
                                        stats.expectations, stats.enqueued_time, stats.launch_time,
                                        stats.start_time, stats.end_time)
        out["step_stats"][run.run_id] = sorted(
            (s.step_key, s.status.value if s.status else None, s.start_time, s.end_time, len(s.attempts_list or []))
            for s in instance.get_run_step_stats(run.run_id))
    keys = sorted(instance.get_asset_keys(), key=lambda k: k.to_string())
    out["asset_keys"] = [k.to_string() for k in keys]
    out["latest_materialization"] = {}
    out["partitions"] = {}
    out["failed_or_in_progress"] = {}
    out["planned"] = {}
    for key in keys:
        latest = instance.get_latest_materialization_event(key)
        out["latest_materialization"][key.to_string()] = latest.run_id if latest else None
        by_partition = storage.get_latest_storage_id_by_partition(key, DagsterEventType.ASSET_MATERIALIZATION)
        out["partitions"][key.to_string()] = dict(sorted(by_partition.items()))
        attempts = storage.get_latest_asset_partition_materialization_attempts_without_materializations(key)
        out["failed_or_in_progress"][key.to_string()] = dict(sorted(attempts.items()))
        record = instance.get_asset_records([key])
        out["planned"][key.to_string()] = (
            record[0].asset_entry.last_planned_materialization_storage_id if record else None)
        for partition in sorted(by_partition) or [None]:
            info = storage.get_latest_planned_materialization_info(key, partition)
            out["planned"]["%s|%s" % (key.to_string(), partition)] = (info.run_id, info.storage_id) if info else None
        out["materialized_partitions"] = out.get("materialized_partitions", {})
        out["materialized_partitions"][key.to_string()] = sorted(instance.get_materialized_partitions(key))
    check_key = dg.AssetCheckKey(dg.AssetKey("summary"), "summary_is_positive")
    history = storage.get_asset_check_execution_history(check_key, limit=1000)
    out["asset_checks"] = sorted((r.run_id, r.status.value, r.event.timestamp if r.event else None)
                                 for r in history)
    observations = instance.fetch_observations(dg.AssetKey("warehouse_table"), limit=1000).records
    out["observations"] = sorted(r.storage_id for r in observations)
    out["instigators"] = sorted((s.instigator_name, s.instigator_type.value, s.status.value)
                                for s in instance.all_instigator_state())
    out["ticks"] = {}
    for state in instance.all_instigator_state():
        ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=10000)
        out["ticks"][state.instigator_name] = sorted((t.tick_id, t.status.value) for t in ticks)
    out["dynamic_partitions"] = sorted(instance.get_dynamic_partitions("customers"))
    return out
