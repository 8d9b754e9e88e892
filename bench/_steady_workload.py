"""What a small Dagster deployment writes to its metadata database, one simulated day at a time.

The deployment: an hourly op job, a daily-partitioned asset job with an asset check, a reports job
every four hours with a check, a sensor every five minutes that launches file imports, a weekly and a
monthly job, a backfill of the daily partitions every four weeks, failed runs (some re-executed from
failure), canceled runs, and a code deploy every few weeks that writes new job snapshots.

Rows are shaped like those Dagster 1.13 writes (compared with a database made by real runs with
tests/dagster_fixture.build_history): the run body of a daemon-launched run, run tags, each step's
event sequence, ticks written as STARTED and then finished, asset check executions written as PLANNED
and then evaluated. JSON sizes per event type are those of bench/_prune_data.MIX, with +-15 % spread.

``Workload.day(date)`` returns a ``Day``: COPY text for each table plus the staged values the
loader applies as updates (bench/_steady_load.py). Days must be asked for in order (snapshots and
the code version carry over); the same seed gives the same rows, so every line gets identical data.
"""
from __future__ import annotations

import datetime
import functools
import hashlib
import json
import random
import uuid
from dataclasses import dataclass, field

from _prune_data import MIX

EPOCH = datetime.datetime(1970, 1, 1)
LOG_SIZE = {level: size for etype, level, _n, size in MIX if etype is None}
EVENT_SIZE = {etype: size for etype, _level, _n, size in MIX if etype}
# Run-queue events are not in MIX (in-process runs do not write them); sized like PIPELINE_START.
EVENT_SIZE.update({"PIPELINE_ENQUEUED": 640, "PIPELINE_DEQUEUED": 640, "PIPELINE_STARTING": 640,
                   "PIPELINE_CANCELING": 650, "PIPELINE_CANCELED": 650})
EVENT_DATA_CLASS = {
    "ASSET_MATERIALIZATION_PLANNED": "AssetMaterializationPlannedData",
    "ASSET_MATERIALIZATION": "StepMaterializationData",
    "ASSET_CHECK_EVALUATION_PLANNED": "AssetCheckEvaluationPlanned", "ASSET_CHECK_EVALUATION": "AssetCheckEvaluation",
    "STEP_OUTPUT": "StepOutputData", "HANDLED_OUTPUT": "HandledOutputData", "LOADED_INPUT": "LoadedInputData",
    "STEP_INPUT": "StepInputData", "STEP_SUCCESS": "StepSuccessData", "STEP_FAILURE": "StepFailureData",
    "ENGINE_EVENT": "EngineEventData", "RESOURCE_INIT_STARTED": "EngineEventData",
    "RESOURCE_INIT_SUCCESS": "EngineEventData", "LOGS_CAPTURED": "ComputeLogsCaptureData",
    "PIPELINE_FAILURE": "JobFailureData", "PIPELINE_CANCELED": "JobCanceledData",
}
LOCATION = "analytics"
REPOSITORY_LABEL = "__repository__@" + LOCATION
REPOSITORY_ORIGIN = {
    "__class__": "ExternalRepositoryOrigin", "repository_name": "__repository__",
    "repository_location_origin": {"__class__": "GrpcServerRepositoryLocationOrigin", "additional_metadata": None,
                                   "host": "analytics-code", "location_name": LOCATION, "port": 4000,
                                   "socket": None, "use_ssl": None}}

FAILURE_P = 0.04          # share of runs that fail at a step
REEXECUTE_P = 0.6         # share of failed runs re-executed from failure 15-45 minutes later
CANCEL_P = 0.01
SENSOR_EVERY_MIN = 5
BACKFILL_EVERY_DAYS = 28
BACKFILL_PARTITIONS = 7


@dataclass(frozen=True)
class Step:
    key: str
    has_input: bool = False
    asset: str | None = None          # the asset this step materializes
    check: tuple | None = None        # (asset, check name) this step evaluates


JOBS = {
    "ingest_job": (Step("extract"), Step("transform", True), Step("load", True)),
    "file_import_job": (Step("parse_file"), Step("imported_files", True, asset="imported_files")),
    "daily_orders_job": (Step("raw_orders", asset="raw_orders"), Step("orders_clean", True, asset="orders_clean"),
                         Step("orders_clean_orders_not_empty", True, check=("orders_clean", "orders_not_empty"))),
    "reports_job": (Step("revenue_summary", asset="revenue_summary"),
                    Step("customer_stats", True, asset="customer_stats"),
                    Step("revenue_summary_revenue_positive", True, check=("revenue_summary", "revenue_positive"))),
    "weekly_export_job": (Step("weekly_export", asset="weekly_export"),),
    "monthly_billing_job": (Step("monthly_invoices", asset="monthly_invoices"), Step("notify_finance", True)),
}
DAILY_PARTITIONED = "daily_orders_job"
SENSOR = ("new_files_sensor", "file_import_job")
# name: (job, cron text for the instigator body)
SCHEDULES = {
    "ingest_schedule": ("ingest_job", None),            # cron set from the events-per-day target
    "daily_orders_schedule": ("daily_orders_job", "0 2 * * *"),
    "reports_schedule": ("reports_job", "30 */4 * * *"),
    "weekly_export_schedule": ("weekly_export_job", "0 6 * * 1"),
    "monthly_billing_schedule": ("monthly_billing_job", "0 5 1 * *"),
}


def epoch(dt):
    return (dt - EPOCH).total_seconds()


def sha1(text):
    return hashlib.sha1(text.encode()).hexdigest()


@functools.lru_cache(maxsize=None)
def origin_id(name):
    return sha1("origin:" + name)


@functools.lru_cache(maxsize=None)
def selector_id(name):
    return sha1("selector:" + name)


def copy_field(value):
    """One value in COPY text format."""
    if value is None:
        return "\\N"
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, bytes):
        return "\\\\x" + value.hex()
    text = str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def copy_text(rows):
    return "".join("\t".join(copy_field(v) for v in row) + "\n" for row in rows)


@dataclass
class Run:
    run_id: str
    job: str
    launch: datetime.datetime
    tags: dict
    partition: str | None = None
    steps: tuple = ()
    parent: "Run | None" = None
    backfill_id: str | None = None
    outcome: str = "SUCCESS"
    fail_at: int | None = None
    events: list = field(default_factory=list)
    start: datetime.datetime | None = None
    end: datetime.datetime | None = None


@dataclass
class Day:
    date: datetime.date
    snapshots: str = ""
    runs: str = ""              # inserted QUEUED
    run_finals: str = ""        # run_id, start_time, end_time, update_timestamp, status, run_body
    run_tags: str = ""
    events: str = ""
    ticks: str = ""             # inserted STARTED
    tick_finals: str = ""       # selector_id, timestamp, status, tick_body, update_timestamp
    checks: str = ""            # asset_key, check_name, partition, run_id, step_key, create_timestamp
    bulk_actions: str = ""
    instigators: list = field(default_factory=list)   # (selector_id, body) at the end of the day
    counts: dict = field(default_factory=dict)


class Workload:
    def __init__(self, events_per_day=3000, seed=1):
        self.seed = seed
        self.target = events_per_day
        self.pad = random.Random(seed).randbytes(8192).hex()
        self.templates = {}
        self.version = {job: 0 for job in JOBS}
        self.snapshots = set()
        self.next_deploy = None
        self.day_no = 0
        per_run = {job: self._event_count(job) for job in JOBS}
        fixed = per_run["daily_orders_job"] + 6 * per_run["reports_job"] + per_run["weekly_export_job"] / 7.0 \
            + per_run["monthly_billing_job"] / 30.0
        # The hourly job takes about a third of the events; the sensor's imports make up the rest.
        self.ingest_every_h = next((h for h in (1, 2, 3, 4, 6, 8, 12, 24)
                                    if 24 / h * per_run["ingest_job"] <= 0.35 * events_per_day), 24)
        ingest = 24 / self.ingest_every_h * per_run["ingest_job"]
        self.sensor_runs_per_day = max(1, int(round((events_per_day - fixed - ingest) / per_run["file_import_job"])))
        self.per_run = per_run

    # -- the plan of a day ----------------------------------------------------------------
    def _event_count(self, job):
        run = Run("x", job, datetime.datetime(2000, 1, 1), {}, steps=JOBS[job])
        self._run_events(run, random.Random(0), daemon=True)
        return len(run.events)

    def day(self, date):
        rng = random.Random("%d:%s" % (self.seed, date.isoformat()))
        midnight = datetime.datetime.combine(date, datetime.time())
        out = Day(date)
        snapshots = []
        if self.next_deploy is None:
            self.next_deploy = date
        if date >= self.next_deploy:
            for job in JOBS:
                if self.day_no == 0 or rng.random() < 0.5:
                    self.version[job] += 1
            self.next_deploy = date + datetime.timedelta(days=rng.randint(14, 28))
        self.day_no += 1

        runs, ticks, bulk = [], [], []
        # Schedules: one tick per scheduled time, each launching one run.
        scheduled = []
        for hour in range(0, 24, self.ingest_every_h):
            scheduled.append(("ingest_schedule", midnight + datetime.timedelta(hours=hour)))
        scheduled.append(("daily_orders_schedule", midnight + datetime.timedelta(hours=2)))
        for hour in range(0, 24, 4):
            scheduled.append(("reports_schedule", midnight + datetime.timedelta(hours=hour, minutes=30)))
        if date.weekday() == 0:
            scheduled.append(("weekly_export_schedule", midnight + datetime.timedelta(hours=6)))
        if date.day == 1:
            scheduled.append(("monthly_billing_schedule", midnight + datetime.timedelta(hours=5)))
        for name, when in scheduled:
            job = SCHEDULES[name][0]
            tags = {"dagster/schedule_name": name, "dagster/scheduled_execution_time": when.isoformat() + "+00:00"}
            partition = None
            if job == DAILY_PARTITIONED:
                partition = (date - datetime.timedelta(days=1)).isoformat()
            run = self._new_run(rng, job, when + datetime.timedelta(seconds=rng.uniform(1, 20)), tags, partition)
            runs.append(run)
            ticks.append(self._tick(rng, name, "SCHEDULE", when, "SUCCESS", [run]))
        # The sensor: every few minutes, mostly skipped; some ticks find new files and launch imports.
        slots = 24 * 60 // SENSOR_EVERY_MIN
        launches = {}
        for unused in range(self.sensor_runs_per_day):
            launches.setdefault(rng.randrange(slots), []).append(None)
        for slot in range(slots):
            when = midnight + datetime.timedelta(minutes=slot * SENSOR_EVERY_MIN, seconds=rng.uniform(0, 3))
            if slot in launches:
                started = []
                for n in range(len(launches[slot])):
                    key = "s3://landing/orders/%s/%06d.parquet" % (date.isoformat(), slot * 10 + n)
                    tags = {"dagster/sensor_name": SENSOR[0], "dagster/run_key": key}
                    started.append(self._new_run(rng, SENSOR[1], when + datetime.timedelta(seconds=2), tags))
                runs.extend(started)
                ticks.append(self._tick(rng, SENSOR[0], "SENSOR", when, "SUCCESS", started))
            else:
                status = "FAILURE" if rng.random() < 0.002 else "SKIPPED"
                ticks.append(self._tick(rng, SENSOR[0], "SENSOR", when, status, []))
        # A backfill of the last week's daily partitions, every few weeks.
        if self.day_no % BACKFILL_EVERY_DAYS == BACKFILL_EVERY_DAYS // 2:
            backfill_id = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for unused in range(8))
            when = midnight + datetime.timedelta(hours=10)
            partitions = [(date - datetime.timedelta(days=d)).isoformat()
                          for d in range(BACKFILL_PARTITIONS + 1, 1, -1)]
            for n, partition in enumerate(partitions):
                tags = {"dagster/backfill": backfill_id}
                run = self._new_run(rng, DAILY_PARTITIONED, when + datetime.timedelta(minutes=3 * n), tags, partition)
                run.backfill_id = backfill_id
                runs.append(run)
            bulk.append(self._backfill_row(backfill_id, when, partitions, runs[-1]))
        # Outcomes, re-executions from failure, events.
        for run in list(runs):
            self._finish(rng, run, runs)
        runs.sort(key=lambda r: r.launch)

        for run in runs:
            for snapshot in self._snapshots_for(rng, run):
                snapshots.append(snapshot)
        out.snapshots = copy_text(snapshots)
        out.runs = copy_text(self._run_row(r) for r in runs)
        out.run_finals = copy_text((r.run_id, epoch(r.start), epoch(r.end), r.end, r.outcome,
                                    self._run_body(r, r.outcome)) for r in runs)
        out.run_tags = copy_text((r.run_id, k, v) for r in runs for k, v in self._all_tags(r).items())
        events = sorted((e for r in runs for e in r.events), key=lambda e: e[0])
        out.events = "".join(line for _ts, line in events)
        ticks.sort(key=lambda t: t[0][4])
        out.ticks = copy_text(t[0] for t in ticks)
        out.tick_finals = copy_text(t[1] for t in ticks)
        out.checks = copy_text(self._check_rows(runs))
        out.bulk_actions = copy_text(bulk)
        end_of_day = midnight + datetime.timedelta(days=1)
        out.instigators = [(selector_id(name), instigator_body(name, kind, epoch(end_of_day), self._cron(name)))
                           for name, kind in self.instigator_names()]
        out.counts = {"runs": len(runs), "events": len(events), "ticks": len(ticks), "snapshots": len(snapshots)}
        return out

    # -- runs -------------------------------------------------------------------------------
    def _new_run(self, rng, job, launch, tags, partition=None, steps=None, parent=None):
        run_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        return Run(run_id, job, launch, dict(tags), partition, steps or JOBS[job], parent)

    def _finish(self, rng, run, runs):
        draw = rng.random()
        fail_p = FAILURE_P / 2 if run.parent else FAILURE_P    # the cause is usually fixed before re-executing
        if draw < fail_p:
            run.outcome, run.fail_at = "FAILURE", rng.randrange(len(run.steps))
        elif draw < fail_p + CANCEL_P:
            run.outcome, run.fail_at = "CANCELED", rng.randrange(len(run.steps))
        self._run_events(run, rng, daemon=True)
        if run.outcome == "FAILURE" and rng.random() < REEXECUTE_P:
            when = run.end + datetime.timedelta(minutes=rng.uniform(15, 45))
            if when.date() == run.launch.date():
                root = run.parent.tags.get("dagster/root_run_id", run.parent.run_id) if run.parent else run.run_id
                tags = {k: v for k, v in run.tags.items() if k in ("dagster/partition", "dagster/backfill")}
                tags.update({"dagster/parent_run_id": run.run_id, "dagster/root_run_id": root})
                child = self._new_run(rng, run.job, when, tags, run.partition, run.steps[run.fail_at:], run)
                child.backfill_id = run.backfill_id
                runs.append(child)
                self._finish(rng, child, runs)

    def _run_events(self, run, rng, daemon):
        """The event sequence of one run, as an in-process run writes it plus the run queue's events."""
        t = run.launch
        events = []

        def add(etype, step=None, level=10, asset=None, partition=None, gap=0.3):
            nonlocal t
            t += datetime.timedelta(seconds=rng.uniform(0.5, 1.5) * gap)
            events.append(self._event(rng, run, etype, level, step, t, asset, partition))

        for step in run.steps:
            if step.asset:
                add("ASSET_MATERIALIZATION_PLANNED", step.key, asset=step.asset, partition=run.partition, gap=0.02)
            if step.check:
                add("ASSET_CHECK_EVALUATION_PLANNED", step.key, gap=0.02)
        if daemon:
            add("PIPELINE_ENQUEUED", gap=0.05)
            add("PIPELINE_DEQUEUED", gap=5)
            add("PIPELINE_STARTING", gap=0.5)
            add("ENGINE_EVENT", gap=1)
        add("PIPELINE_START", gap=4)
        run.start = t
        add("ENGINE_EVENT")
        add("RESOURCE_INIT_STARTED")
        add("RESOURCE_INIT_SUCCESS", gap=1)
        add("LOGS_CAPTURED")
        stopped = False
        for n, step in enumerate(run.steps):
            work = rng.uniform(5, 90)
            add("STEP_START", step.key)
            if step.has_input:
                add("LOADED_INPUT", step.key)
                add("STEP_INPUT", step.key, gap=0.05)
            if step.check is None:
                add(None, step.key, level=10, gap=work / 4)
                add(None, step.key, level=20, gap=work / 4)
                if rng.random() < 0.5:
                    add(None, step.key, level=30, gap=work / 8)
            if run.fail_at == n and run.outcome == "FAILURE":
                add(None, step.key, level=40, gap=work / 4)
                add("STEP_FAILURE", step.key, level=40)
                stopped = True
                break
            if run.fail_at == n and run.outcome == "CANCELED":
                add("PIPELINE_CANCELING", gap=work / 4)
                add("ENGINE_EVENT", step.key)
                stopped = True
                break
            add("STEP_OUTPUT", step.key, gap=work / 4)
            add(None, step.key, level=10, gap=0.05)
            if step.asset:
                add("ASSET_MATERIALIZATION", step.key, asset=step.asset, partition=run.partition)
            if step.check:
                add("ASSET_CHECK_EVALUATION", step.key)
            else:
                add("HANDLED_OUTPUT", step.key)
            add("STEP_SUCCESS", step.key)
        add("ENGINE_EVENT", gap=0.5)
        if run.outcome == "FAILURE":
            add("PIPELINE_FAILURE", level=40)
        elif run.outcome == "CANCELED":
            add("PIPELINE_CANCELED")
        else:
            add("PIPELINE_SUCCESS")
        assert stopped == (run.outcome != "SUCCESS")
        run.events = events
        run.end = t

    def _event(self, rng, run, etype, level, step_key, ts, asset=None, partition=None):
        """(timestamp, the event_logs row as a line of COPY text)."""
        key = (run.job, etype, level, step_key, asset, partition)
        template = self.templates.get(key)
        if template is None:
            template = self.templates[key] = self._event_template(run.job, etype, level, step_key, asset, partition)
        text, base = template
        size = int((EVENT_SIZE[etype] if etype else LOG_SIZE[level]) * rng.uniform(0.85, 1.15))
        fill = max(0, size - base)
        offset = rng.randrange(len(self.pad) - fill)
        return ts, text % {"r": run.run_id, "t": repr(epoch(ts)), "p": self.pad[offset:offset + fill],
                           "ts": ts.isoformat(sep=" ")}

    @staticmethod
    def _event_template(job, etype, level, step_key, asset, partition):
        """The COPY line of an event with its run id, time and padding left as %-placeholders."""
        if etype is None:
            entry = {"__class__": "EventLogEntry", "dagster_event": None, "error_info": None, "level": level,
                     "message": "", "pipeline_name": job, "run_id": "@@R@@", "step_key": step_key,
                     "timestamp": "@@T@@", "user_message": "@@P@@"}
        else:
            data = None
            if etype in EVENT_DATA_CLASS:
                data = {"__class__": EVENT_DATA_CLASS[etype], "metadata": "@@P@@"}
                if asset:
                    data["asset_key"] = {"__class__": "AssetKey", "path": [asset]}
                    data["partition"] = partition
            # Planned events are written when the run is created: no step handle, no logging tags.
            in_step = step_key if not etype.endswith("_PLANNED") else None
            handle = {"__class__": "SolidHandle", "name": step_key, "parent": None} if in_step else None
            entry = {
                "__class__": "EventLogEntry",
                "dagster_event": {
                    "__class__": "DagsterEvent", "event_specific_data": data, "event_type_value": etype,
                    "logging_tags": {"job_name": job, "op_name": step_key, "run_id": "@@R@@",
                                     "step_key": step_key} if in_step else {},
                    "message": "@@P@@" if data is None else "%s for %s" % (etype, step_key or job),
                    "pid": 7, "pipeline_name": job, "solid_handle": handle,
                    "step_handle": {"__class__": "StepHandle", "key": step_key, "solid_handle": handle}
                    if in_step else None,
                    "step_key": step_key, "step_kind_value": "COMPUTE" if in_step else None},
                "error_info": None, "level": level, "message": "", "pipeline_name": job, "run_id": "@@R@@",
                "step_key": step_key, "timestamp": "@@T@@", "user_message": ""}
        js = json.dumps(entry)
        base = len(js.replace('"@@T@@"', "1736812832.121902").replace("@@R@@", "0" * 36).replace("@@P@@", ""))
        row = ("@@R@@", js, etype, "@@TS@@", step_key, json.dumps([asset]) if asset else None, partition)
        text = copy_text([row]).replace("%", "%%").replace('"@@T@@"', "%(t)s").replace("@@TS@@", "%(ts)s")
        text = text.replace("@@R@@", "%(r)s").replace("@@P@@", "%(p)s")
        return text, base

    def _all_tags(self, run):
        tags = dict(run.tags)
        tags[".dagster/repository"] = REPOSITORY_LABEL
        if run.partition:
            tags["dagster/partition"] = run.partition
            tags["dagster/partition_set"] = run.job + "_partition_set"
        if run.outcome == "FAILURE":
            tags["dagster/failure_reason"] = "STEP_FAILURE"
        return tags

    def _snapshot_ids(self, run):
        job_snapshot = sha1("job:%s:%d" % (run.job, self.version[run.job]))
        plan = sha1("plan:%s:%d:%s" % (run.job, self.version[run.job], ",".join(s.key for s in run.steps)))
        return job_snapshot, plan

    def _snapshots_for(self, rng, run):
        out = []
        for snapshot_id, kind, low, high in zip(self._snapshot_ids(run), ("PIPELINE", "EXECUTION_PLAN"),
                                                (4000, 600), (16000, 2000)):
            if snapshot_id not in self.snapshots:
                self.snapshots.add(snapshot_id)
                # The body is zlib-compressed JSON: about as incompressible as random bytes.
                out.append((snapshot_id, random.Random(snapshot_id).randbytes(rng.randint(low, high)), kind))
        return out

    def _run_row(self, run):
        job_snapshot, _plan = self._snapshot_ids(run)
        partition_set = run.job + "_partition_set" if run.partition else None
        return (run.run_id, job_snapshot, run.job, None, "QUEUED", self._run_body(run, "QUEUED"), run.partition,
                partition_set, run.launch, run.launch, None, None, run.backfill_id)

    def _run_body(self, run, status):
        job_snapshot, plan = self._snapshot_ids(run)
        assets = [s.asset for s in JOBS[run.job] if s.asset]
        partial = run.steps != JOBS[run.job]
        return json.dumps({
            "__class__": "PipelineRun", "asset_check_selection": None,
            "asset_selection": {"__frozenset__": [{"__class__": "AssetKey", "path": [a]} for a in assets]}
            if assets else None,
            "execution_plan_snapshot_id": plan,
            "external_pipeline_origin": {"__class__": "ExternalPipelineOrigin",
                                         "external_repository_origin": REPOSITORY_ORIGIN, "pipeline_name": run.job},
            "has_repository_load_data": False, "mode": None,
            "parent_run_id": run.parent.run_id if run.parent else None, "partitions_subset": None,
            "pipeline_code_origin": {
                "__class__": "PipelinePythonOrigin", "pipeline_name": run.job,
                "repository_origin": {"__class__": "RepositoryPythonOrigin",
                                      "code_pointer": {"__class__": "ModuleCodePointer", "fn_name": "defs",
                                                       "module": "analytics.definitions",
                                                       "working_directory": "/opt/dagster/app"},
                                      "container_context": {},
                                      "container_image": "analytics:%d" % self.version[run.job],
                                      "entry_point": ["dagster"], "executable_path": "/usr/local/bin/python"}},
            "pipeline_name": run.job, "pipeline_snapshot_id": job_snapshot,
            "root_run_id": run.tags.get("dagster/root_run_id"),
            "run_config": {"ops": {s.key: {"config": {"source": "warehouse"}} for s in run.steps if not s.check}},
            "run_id": run.run_id, "run_op_concurrency": None, "solid_selection": None, "solids_to_execute": None,
            "status": {"__enum__": "PipelineRunStatus.%s" % status},
            "step_keys_to_execute": [s.key for s in run.steps] if partial else None,
            "tags": self._all_tags(run)})

    def _check_rows(self, runs):
        for run in runs:
            for step in run.steps:
                if step.check:
                    yield (json.dumps([step.check[0]]), step.check[1], run.partition, run.run_id, step.key,
                           run.launch)

    # -- ticks, backfills, instigators -------------------------------------------------------
    def _tick(self, rng, name, kind, when, status, runs):
        """(the row as inserted, STARTED; the values it is updated to when the tick ends)."""
        end = when + datetime.timedelta(seconds=rng.uniform(0.2, 3))
        body = {
            "__class__": "TickData", "auto_materialize_evaluation_id": None, "consecutive_failure_count": 0,
            "cursor": "%s:%d" % (when.date().isoformat(), int(epoch(when))) if kind == "SENSOR" else None,
            "dynamic_partitions_request_results": [], "end_timestamp": None,
            "error": None, "failure_count": 0, "job_name": name, "job_origin_id": origin_id(name),
            "job_type": {"__enum__": "InstigatorType.%s" % kind},
            "log_key": [kind.lower(), origin_id(name), selector_id(name)[:8], str(int(epoch(when)))],
            "origin_run_ids": [], "reserved_run_ids": [], "run_ids": [], "run_keys": [], "run_requests": [],
            "selector_id": selector_id(name), "skip_reason": None,
            "status": {"__enum__": "TickStatus.STARTED"}, "timestamp": epoch(when), "user_interrupted": False}
        started = json.dumps(body)
        body["status"] = {"__enum__": "TickStatus.%s" % status}
        body["end_timestamp"] = epoch(end)
        body["run_ids"] = [r.run_id for r in runs]
        body["run_keys"] = [r.tags.get("dagster/run_key") for r in runs if r.tags.get("dagster/run_key")]
        body["run_requests"] = [{"__class__": "RunRequest", "asset_selection": None, "job_name": r.job,
                                 "partition_key": r.partition, "run_config": {},
                                 "run_key": r.tags.get("dagster/run_key"),
                                 "stale_assets_only": False, "tags": r.tags} for r in runs]
        if status == "SKIPPED":
            body["skip_reason"] = "No new files in s3://landing/orders/"
        if status == "FAILURE":
            body["error"] = {"__class__": "SerializableErrorInfo", "cause": None, "cls_name": "ClientError",
                             "context": None, "message": "botocore.exceptions.ClientError: throttled\n",
                             "stack": [self.pad[:120] + "\n"] * 12}
        row = (origin_id(name), selector_id(name), "STARTED", kind, when, started, when, when)
        final = (selector_id(name), when, status, json.dumps(body), end)
        return row, final

    def _backfill_row(self, backfill_id, when, partitions, last_run):
        body = {"__class__": "PartitionBackfill", "asset_selection": None, "backfill_id": backfill_id,
                "backfill_timestamp": epoch(when), "from_failure": False,
                "last_submitted_partition_name": partitions[-1],
                "partition_names": partitions, "partition_set_origin": {
                    "__class__": "ExternalPartitionSetOrigin",
                    "partition_set_name": DAILY_PARTITIONED + "_partition_set",
                    "external_repository_origin": REPOSITORY_ORIGIN},
                "reexecution_steps": None, "status": {"__enum__": "BulkActionStatus.COMPLETED"},
                "tags": {"requested_by": "ops@example.com"}, "title": None, "description": None}
        return (backfill_id, "COMPLETED_SUCCESS", when, json.dumps(body), "PARTITION_BACKFILL",
                selector_id(DAILY_PARTITIONED + "_partition_set"), DAILY_PARTITIONED)

    def _cron(self, name):
        if name == "ingest_schedule":
            return "0 */%d * * *" % self.ingest_every_h if self.ingest_every_h > 1 else "0 * * * *"
        return SCHEDULES.get(name, (None, None))[1]

    def instigator_names(self):
        return [(name, "SCHEDULE") for name in SCHEDULES] + [(SENSOR[0], "SENSOR")]

    def instigator_rows(self, when):
        """The instigators table at the start: every schedule and the sensor, running."""
        return copy_text((selector_id(name), sha1("repo:" + LOCATION), "RUNNING", kind,
                          instigator_body(name, kind, epoch(when), self._cron(name)), when, when)
                         for name, kind in self.instigator_names())


def instigator_body(name, kind, last_tick, cron):
    if kind == "SENSOR":
        data = {"__class__": "SensorInstigatorData", "cursor": str(int(last_tick)), "last_run_key": None,
                "last_sensor_start_timestamp": last_tick, "last_tick_start_timestamp": last_tick,
                "last_tick_success_timestamp": last_tick, "last_tick_timestamp": last_tick, "min_interval": 300,
                "sensor_type": {"__enum__": "SensorType.STANDARD"}}
    else:
        data = {"__class__": "ScheduleInstigatorData", "cron_schedule": cron, "last_iteration_timestamp": last_tick,
                "start_timestamp": 0.0}
    return json.dumps({"__class__": "InstigatorState", "job_specific_data": data,
                       "job_type": {"__enum__": "InstigatorType.%s" % kind},
                       "origin": {"__class__": "ExternalJobOrigin", "external_repository_origin": REPOSITORY_ORIGIN,
                                  "job_name": name},
                       "status": {"__enum__": "InstigatorStatus.RUNNING"}})
