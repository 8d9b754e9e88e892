"""Builds real Dagster metadata databases for tests, the demo and benchmarks, and reads them back.

Everything is written by the ``dagster`` package itself (``dagster instance migrate``, real
in-process runs, the instance API for ticks and instigator state); only the timestamps are
moved back afterwards with SQL to simulate months of history.

The tests drive two Dagster releases: the newest supported one, installed here, in process, and the
oldest, Dagster 1.9, in a virtual environment of its own (``dagster19`` in locks/environments.txt)
through this very file run by that environment's python::

    python tests/dagster_fixture.py build|migrate|read|write_ticks|reexecute 'JSON arguments'

prints the answer as JSON on stdout (``serve`` answers one JSON request per line, so that a test session
imports Dagster once per release). ``Release`` hides the difference: the tests call the same
methods for both, and every answer is JSON-shaped (lists, not tuples) either way. What differs between
the releases' APIs is handled in one place, the section "Release differences" below.
"""
from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import dagster_defs  # noqa: E402

# -- Release differences (Dagster 1.9.13 to 1.13.27) ---------------------------------------------------------
# Everything below this line that reads or writes through Dagster's API works on every release the tests
# drive; where the API moved, the lookup is here.


def _origin_classes():
    """(code location, repository, instigator) origin classes: ``dagster._core.remote_origin`` since 1.10,
    ``dagster._core.remote_representation.origin`` in 1.9."""
    try:
        from dagster._core import remote_origin as origins
    except ImportError:     # Dagster 1.9
        from dagster._core.remote_representation import origin as origins
    return origins.InProcessCodeLocationOrigin, origins.RemoteRepositoryOrigin, origins.RemoteInstigatorOrigin


def _error_info(message):
    """A tick's error as Dagster stores it (``dagster._utils.error`` in every release driven here)."""
    from dagster._utils.error import SerializableErrorInfo
    return SerializableErrorInfo(message, [], "RuntimeError")


# -- Building ------------------------------------------------------------------------------------------------


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
    location_origin, repository_origin, instigator_origin = _origin_classes()
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    location = location_origin(
        LoadableTargetOrigin(python_file=dagster_defs.__file__, attribute="defs"), location_name="pgtidy_demo")
    return instigator_origin(repository_origin(location, "__repository__"), name)


def instigator_ids(name):
    """(origin id, selector id) of the fixture's instigator ``name``: what ``get_ticks`` is asked with."""
    origin = _instigator_origin(name)
    return origin.get_id(), origin.get_selector().get_id()


def write_ticks(instance, instigators=(), ticks=()):
    """Instigator states and ticks written through Dagster's instance API, in the order given; the new tick ids.

    ``instigators``: ``{"name", "kind" (SENSOR or SCHEDULE), "stopped", "last_tick", "start", "cursor"}``;
    ``ticks``: ``{"name", "kind", "status", "timestamp", "run_ids", "reserved_run_ids", "selector"}`` (a tick
    written with ``"selector": false`` has no selector id, as ticks from before Dagster wrote them).
    """
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.scheduler.instigation import (InstigatorState, InstigatorStatus, SensorInstigatorData,
                                                     ScheduleInstigatorData, TickData, TickStatus)
    now = time.time()
    for spec in instigators:
        kind = InstigatorType(spec["kind"])
        if kind == InstigatorType.SENSOR:
            data = SensorInstigatorData(last_tick_timestamp=spec.get("last_tick", now), min_interval=30,
                                        cursor=spec.get("cursor"), sensor_type=None)
        else:
            data = ScheduleInstigatorData(cron_schedule="0 * * * *", start_timestamp=spec.get("start", now))
        status = InstigatorStatus.STOPPED if spec.get("stopped") else InstigatorStatus.RUNNING
        instance.add_instigator_state(InstigatorState(_instigator_origin(spec["name"]), kind, status, data))
    made = []
    for spec in ticks:
        origin = _instigator_origin(spec["name"])
        status = TickStatus(spec["status"])
        made.append(instance.create_tick(TickData(
            instigator_origin_id=origin.get_id(), instigator_name=spec["name"],
            instigator_type=InstigatorType(spec["kind"]), status=status, timestamp=spec.get("timestamp", now),
            selector_id=origin.get_selector().get_id() if spec.get("selector", True) else None,
            run_ids=list(spec.get("run_ids", [])), run_keys=[], reserved_run_ids=spec.get("reserved_run_ids"),
            error=_error_info("sensor raised") if status == TickStatus.FAILURE else None,
            skip_reason="nothing to do" if status == TickStatus.SKIPPED else None)).tick_id)
    return made


def _write_ticks(instance, ticks_per_instigator):
    statuses = ["SKIPPED", "SKIPPED", "SKIPPED", "SUCCESS", "FAILURE"]
    kinds = [("new_files_sensor", "SENSOR"), ("etl_job_schedule", "SCHEDULE")]
    write_ticks(instance, [{"name": name, "kind": kind, "cursor": "file-0042"} for name, kind in kinds],
                [{"name": name, "kind": kind, "status": statuses[i % len(statuses)]}
                 for name, kind in kinds for i in range(ticks_per_instigator)])


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


# -- Reading back: what Dagster itself shows -----------------------------------------------------------------


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


def status_cache(instance):
    """Materialized / failed / in-progress partitions of the partitioned assets, from Dagster's partition
    status cache (rebuilt from the events when the cache is empty)."""
    from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value
    out = {}
    for asset in (dagster_defs.events, dagster_defs.sessions, dagster_defs.invoices):
        value = get_and_update_asset_status_cache_value(instance, asset.key, asset.partitions_def)
        out[asset.key.to_user_string()] = tuple(
            sorted(subset(asset.partitions_def).get_partition_keys())
            for subset in (value.deserialize_materialized_partition_subsets,
                           value.deserialize_failed_partition_subsets,
                           value.deserialize_in_progress_partition_subsets))
    return out


def retention_facts(instance):
    """What run retention must respect, as Dagster's API reports it (the tests work out the runs that may go
    from it, independently of the implementation): every run record, the storage ids of the newest
    materialization and planned event per asset partition, and the runs the asset views name."""
    import dagster as dg
    from dagster._core.events import DagsterEventType
    storage = instance.event_log_storage
    runs = [(r.dagster_run.run_id, r.dagster_run.status.value, r.dagster_run.job_name, r.end_time, r.storage_id,
             r.dagster_run.root_run_id) for r in instance.get_run_records()]
    storage_ids, held = set(), set()
    for key in instance.get_asset_keys():
        for kind in (DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.ASSET_MATERIALIZATION_PLANNED):
            storage_ids.update(storage.get_latest_storage_id_by_partition(key, kind).values())
        latest = instance.get_latest_materialization_event(key)
        if latest:
            held.add((latest.run_id, "latest_asset_event"))
        held.update((r.run_id, "latest_asset_event") for r in instance.fetch_observations(key, limit=1).records)
        record = instance.get_asset_records([key])
        if record and record[0].asset_entry.last_run_id:
            held.add((record[0].asset_entry.last_run_id, "asset_last_run"))
    check = dg.AssetCheckKey(dg.AssetKey("summary"), "summary_is_positive")
    held.update((r.run_id, "latest_check_execution")
                for r in storage.get_asset_check_execution_history(check, limit=1))
    return {"runs": runs, "latest_storage_ids": sorted(storage_ids), "held": sorted(held)}


def ticks_by_instigator(instance, limit=None, names=()):
    """What the UI reads: ``get_ticks(origin_id, selector_id)``, newest first, as (id, status, timestamp), for
    every instigator with a state and the fixture's instigators ``names`` (ticks may exist without a state)."""
    ids = {state.instigator_name: (state.instigator_origin_id, state.selector_id)
           for state in instance.all_instigator_state()}
    ids.update((name, instigator_ids(name)) for name in names)
    return {name: [(t.tick_id, t.status.value, t.timestamp)
                   for t in instance.get_ticks(origin_id, selector_id, limit=limit)]
            for name, (origin_id, selector_id) in ids.items()}


READERS = {
    "snapshot": snapshot,
    "status_cache": status_cache,
    "retention_facts": retention_facts,
    "ticks": ticks_by_instigator,
}


def read(home, parts, options=None):
    """``{part: what READERS[part] returns}``, JSON-shaped, read through one instance; ``options`` maps a part
    to the keyword arguments of its reader."""
    options = options or {}
    with instance_for(home) as instance:
        return _json_shaped({part: READERS[part](instance, **options.get(part, {})) for part in parts})


def _json_shaped(value):
    return json.loads(json.dumps(value))


# -- One release, in process or through its own python ------------------------------------------------------


def _build(home, port, db, password="", rounds=4, ticks_per_instigator=30):
    write_instance_yaml(home, port, db, password=password)
    migrate(home)
    return build_history(home, rounds=rounds, ticks_per_instigator=ticks_per_instigator)


def _write_ticks_command(home, instigators=(), ticks=()):
    with instance_for(home) as instance:
        return write_ticks(instance, instigators, ticks)


def _reexecute_command(home, run_id):
    status, steps = reexecute_from_failure(home, run_id)
    return [status.value, sorted(steps)]


COMMANDS = {
    "build": _build,
    "migrate": migrate,
    "read": read,
    "write_ticks": _write_ticks_command,
    "reexecute": _reexecute_command,
}

# The side environment of each older release the tests drive (locks/environments.txt), and the variable that
# can name its python instead.
SIDE_RELEASES = {"1.9": ("dagster19", "PGTIDY_DAGSTER19_PYTHON")}


class ReleaseMissing(RuntimeError):
    pass


class Release:
    """One Dagster release: ``python`` None is the one installed here, driven in process (the fast path);
    otherwise calls go to this file served by that python (``serve``, started on first use, one per release
    and process), and come back as JSON."""

    def __init__(self, name, python=None):
        self.name = name
        self.python = python
        self._server = None
        self._log = None

    def __repr__(self):
        return "Dagster %s" % self.name

    def call(self, command, **args):
        if self.python is None:
            return _json_shaped(COMMANDS[command](**args))
        if self._server is None or self._server.poll() is not None:
            self._log = tempfile.TemporaryFile(mode="w+")     # Dagster's own output, shown when a call fails
            self._server = subprocess.Popen([self.python, os.path.abspath(__file__), "serve"], text=True,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log)
            atexit.register(self.stop)
        self._server.stdin.write(json.dumps({"command": command, "args": args}) + "\n")
        self._server.stdin.flush()
        line = self._server.stdout.readline()
        reply = json.loads(line) if line else {"error": "the server ended (rc %s)" % self._server.wait()}
        if "error" in reply:
            self._log.seek(0)
            raise RuntimeError("Dagster %s: %s failed: %s\n%s" % (self.name, command, reply["error"],
                                                                  self._log.read()[-4000:]))
        return reply["result"]

    def stop(self):
        if self._server is not None and self._server.poll() is None:
            self._server.stdin.close()
            self._server.wait()

    def build(self, home, port, db, password="", rounds=4, ticks_per_instigator=30):
        """A migrated database with real history (``build_history``); returns its manifest."""
        return self.call("build", home=home, port=port, db=db, password=password, rounds=rounds,
                         ticks_per_instigator=ticks_per_instigator)

    def migrate(self, home):
        self.call("migrate", home=home)

    def read(self, home, *parts, **options):
        """What Dagster shows, per part (``READERS``; ``options``: part -> its reader's keyword arguments); one
        part alone is returned as it is."""
        out = self.call("read", home=home, parts=list(parts), options=options)
        return out[parts[0]] if len(parts) == 1 else out

    def write_ticks(self, home, instigators=(), ticks=()):
        return self.call("write_ticks", home=home, instigators=list(instigators), ticks=list(ticks))

    def reexecute_from_failure(self, home, run_id):
        """(the failed run's status before, the steps the re-execution ran), as strings."""
        status, steps = self.call("reexecute", home=home, run_id=run_id)
        return status, set(steps)


def newest():
    """The release installed here (the newest supported), driven in process."""
    import dagster
    return Release(".".join(dagster.__version__.split(".")[:2]))


_SIDE = {}


def side_release(name):
    """An older release from its own environment (one ``Release`` per process); ``ReleaseMissing`` names how
    to get it."""
    if name in _SIDE:
        return _SIDE[name]
    lock, variable = SIDE_RELEASES[name]
    python = os.environ.get(variable)
    if not python:
        with open(os.path.join(ROOT, "locks", "environments.txt")) as fh:
            venvs = {f[0]: f[1] for f in (line.split("#", 1)[0].split() for line in fh) if len(f) == 3}
        python = os.path.join(ROOT, venvs[lock], "bin", "python")
    if not os.path.exists(python):
        raise ReleaseMissing("Dagster %s is not installed: run scripts/bootstrap.sh (it builds %s from"
                             " locks/%s.txt), or set %s to a python with it" % (name, python, lock, variable))
    return _SIDE.setdefault(name, Release(name, python))


def serve(answer):
    """One ``{"command", "args"}`` request per line of stdin, one ``{"result"}`` or ``{"error"}`` line each."""
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = {"result": COMMANDS[request["command"]](**request["args"])}
        except Exception:  # pylint: disable=broad-except
            # Any failure goes back to the caller, which raises it with the traceback.
            reply = {"error": traceback.format_exc()}
        answer.write(json.dumps(reply) + "\n")
        answer.flush()


def main(argv):
    """``dagster_fixture.py COMMAND 'JSON arguments'``: the answer as JSON on stdout, Dagster's output on stderr;
    ``dagster_fixture.py serve``: requests answered line by line."""
    answer, sys.stdout = sys.stdout, sys.stderr     # what Dagster prints stays off the answer
    if argv[0] == "serve":
        serve(answer)
        return
    answer.write(json.dumps(COMMANDS[argv[0]](**(json.loads(argv[1]) if len(argv) > 1 else {}))))
    answer.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
