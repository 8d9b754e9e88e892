"""Dagster definitions the tests and the demo run for real against a PostgreSQL instance.

A file flag (path in PGTIDY_DAGSTER_FAIL_FLAG) makes ``transform`` and the ``events`` asset
fail while it exists, so a run can fail and later be re-executed from failure.
"""
from __future__ import annotations

import os

import dagster as dg

FLAG_ENV = "PGTIDY_DAGSTER_FAIL_FLAG"


def _should_fail():
    flag = os.environ.get(FLAG_ENV)
    return bool(flag) and os.path.exists(flag)


customers = dg.DynamicPartitionsDefinition(name="customers")
regions = dg.StaticPartitionsDefinition(["eu", "us", "apac"])


def _chatter(log, what):
    log.debug("debug detail for %s" % what)
    log.info("processing %s" % what)
    log.warning("slow source while loading %s" % what)


@dg.asset(partitions_def=regions)
def events(context):
    _chatter(context.log, context.partition_key)
    if _should_fail() and context.partition_key == "apac":
        context.log.error("upstream for apac is down")
        raise dg.Failure("apac source unavailable")
    return {"region": context.partition_key, "rows": 100}


@dg.asset(partitions_def=regions)
def sessions(context, events):
    _chatter(context.log, "sessions %s" % context.partition_key)
    return {"region": context.partition_key, "sessions": events["rows"] // 2}


@dg.asset(partitions_def=customers)
def invoices(context):
    _chatter(context.log, "invoices for %s" % context.partition_key)
    return context.partition_key


@dg.asset
def summary(context):
    _chatter(context.log, "summary")
    context.log_event(dg.AssetObservation(asset_key="warehouse_table", metadata={"row_count": 1234}))
    return 42


@dg.asset_check(asset=summary)
def summary_is_positive(summary):
    return dg.AssetCheckResult(passed=summary > 0, metadata={"value": summary})


@dg.op
def extract(context):
    _chatter(context.log, "extract")
    return [1, 2, 3]


@dg.op
def transform(context, rows):
    _chatter(context.log, "transform")
    if _should_fail():
        context.log.critical("transform cannot continue")
        raise dg.Failure("transform failed on purpose")
    return [r * 10 for r in rows]


@dg.op
def load(context, rows):
    context.log.info("loaded %d rows" % len(rows))
    return sum(rows)


@dg.job(executor_def=dg.in_process_executor)
def etl_job():
    load(transform(extract()))


@dg.sensor(job=etl_job)
def new_files_sensor(context):
    return dg.SkipReason("no new files")


etl_schedule = dg.ScheduleDefinition(job=etl_job, cron_schedule="0 * * * *")

defs = dg.Definitions(assets=[events, sessions, invoices, summary], asset_checks=[summary_is_positive],
                      jobs=[etl_job], sensors=[new_files_sensor], schedules=[etl_schedule])
