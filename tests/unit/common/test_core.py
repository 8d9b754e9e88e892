"""The pure core without a database: options, sizes, durations, secrets, the lockfile against flock(1)."""
from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import time

import pytest
import yaml

from ansible_collections.pgtidy.maintenance.plugins.module_utils._dagster import rules as _dagster
from ansible_collections.pgtidy.maintenance.plugins.doc_fragments._common import ModuleDocFragment
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.budget import BUDGET_ARGUMENT_SPEC, Budget
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.pacing_limits import (
    DEFAULT_MAX_REPLICA_LAG, PacingLimits)
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.scheduler import Sweep
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.walks import HandlerState, IdWalk, Rule
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.timewalk import TimeWalk
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.session import lsn_to_int
from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.units import parse_bytes, parse_duration
from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.connection import (
    CONNECTION_ARGUMENT_SPEC, conninfo_from_params, duration_setting, redact)
from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.errors import InvalidRequest, LockBusy
from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.lock import (
    LOCK_ARGUMENT_SPEC, LockFile, describe_holder)


@pytest.mark.parametrize("text, expected", [
    ("1GiB", 1 << 30), ("500MB", 500_000_000), ("1048576", 1 << 20), (0, 0), ("2 kib", 2048), ("1.5G", 3 << 29)])
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["lots", "12XB", "-5MB"])
def test_parse_bytes_rejects_nonsense(text):
    with pytest.raises(InvalidRequest):
        parse_bytes(text, "max_wal_bytes")


@pytest.mark.parametrize("text, bare, seconds", [
    ("500ms", None, 0.5), ("1.5s", None, 1.5), ("30sec", None, 30.0), ("2min", None, 120.0), ("0.5h", None, 1800.0),
    ("1d", None, 86400.0), ("1.25d", None, 108000.0), (" 5 S ", None, 5.0), (".5s", None, 0.5), ("0s", None, 0.0),
    ("250", "ms", 0.25), (250, "ms", 0.25), (1.5, "s", 1.5), ("90", "s", 90.0)])
def test_one_duration_grammar(text, bare, seconds):
    assert parse_duration(text, "lock_timeout", bare=bare) == pytest.approx(seconds)


@pytest.mark.parametrize("value, bare", [
    ("forever", "ms"), ("-5s", "ms"), ("5 weeks", "ms"), ("5y", "ms"), ("1e3ms", "ms"), ("", "ms"), (True, "ms"),
    ("1.2.3s", "ms"), ("s", "ms"), (-1, "ms"), ("30", None), (30, None)])
def test_duration_refusals_name_the_option_and_the_forms(value, bare):
    with pytest.raises(InvalidRequest) as err:
        parse_duration(value, "statement_timeout", bare=bare)
    message = err.value.message
    assert message.startswith("statement_timeout must be a number and a unit (ms, s, min, h or d")
    assert "'1d'" in message and repr(value) in message
    assert ("a number without a unit is in ms" in message) == (bare == "ms")


@pytest.mark.parametrize("value, setting", [
    ("5s", "5000ms"), (250, "250ms"), ("250", "250ms"), ("1.5s", "1500ms"), ("2min", "120000ms"), ("1d", "86400000ms"),
    ("1.4ms", "1ms"), ("0", "0ms"), ("24h", "86400000ms")])
def test_duration_setting_is_whole_milliseconds_for_postgres(value, setting):
    assert duration_setting("lock_timeout", value) == setting


@pytest.mark.parametrize("value, words", [
    ("forever", "statement_timeout must be a number and a unit"), ("0.5ms", "less than a millisecond"),
    ("30d", "more than PostgreSQL allows")])
def test_duration_setting_refusals(value, words):
    with pytest.raises(InvalidRequest) as err:
        duration_setting("statement_timeout", value)
    assert words in err.value.message and "statement_timeout" in err.value.message


def test_lock_wait_is_checked_in_one_place():
    assert LockFile(wait=None).wait == LOCK_ARGUMENT_SPEC["lock_wait"]["default"] == 300
    assert LockFile(wait=0).wait == 0 and LockFile(wait=2.5).wait == 2.5
    for bad in (-1, "5", True, -0.5):
        with pytest.raises(InvalidRequest) as err:
            LockFile(wait=bad)
        assert "lock_wait must be 0 (do not wait) or more seconds" in err.value.message
    with pytest.raises(InvalidRequest):
        LockFile("/tmp/pgtidy-never-opened.lock", wait=-1)
    with pytest.raises(InvalidRequest):
        LockFile.from_params({"lock_file": "/tmp/pgtidy-never-opened.lock", "lock_wait": -3})
    lock = LockFile.from_params({"lock_file": None, "lock_wait": None}, job="repack")
    assert (lock.path, lock.wait, lock.job) == (LOCK_ARGUMENT_SPEC["lock_file"]["default"], 300, "repack")


def test_lsn_to_int():
    assert lsn_to_int("0/10") == 16
    assert lsn_to_int("1/0") == 1 << 32
    assert lsn_to_int(None) is None


def test_password_goes_to_libpq_but_never_into_messages():
    params = {"login_user": "dagster", "login_password": "pa55-word", "login_host": "db", "login_port": 5433,
              "login_db": "dagster", "connect_params": {"sslpassword": "key-secret", "target_session_attrs": "rw"}}
    kw = conninfo_from_params(params)
    assert kw["password"] == "pa55-word" and kw["port"] == "5433" and kw["application_name"] == "pgtidy"
    assert kw["target_session_attrs"] == "rw"
    text = redact('password "pa55-word" rejected; sslpassword=key-secret', params)
    assert "pa55-word" not in text and "key-secret" not in text and text.count("********") == 2


def test_unix_socket_wins_over_host():
    kw = conninfo_from_params({"login_host": "db", "login_unix_socket": "/var/run/postgresql"})
    assert kw["host"] == "/var/run/postgresql"


def test_budget_validation():
    assert Budget.from_params({}).batch_size == 5000
    for bad in ({"batch_size": 0}, {"batch_size": 10**6}, {"max_rows": -1}, {"batch_pause": 100}):
        with pytest.raises(InvalidRequest):
            Budget.from_params(bad)


def test_budget_defaults_are_the_argument_spec_s():
    assert Budget() == Budget.from_params({}) == Budget.from_params({k: None for k in BUDGET_ARGUMENT_SPEC})
    budget = Budget()
    assert budget.batch_size == BUDGET_ARGUMENT_SPEC["batch_size"]["default"]
    assert budget.max_rows == BUDGET_ARGUMENT_SPEC["max_rows"]["default"]
    assert budget.max_duration == BUDGET_ARGUMENT_SPEC["max_duration"]["default"]
    assert budget.max_wal_bytes == parse_bytes(BUDGET_ARGUMENT_SPEC["max_wal_bytes"]["default"])
    assert budget.batch_pause == BUDGET_ARGUMENT_SPEC["batch_pause"]["default"]
    assert PacingLimits() == PacingLimits.from_params({})


def _fragment_options(name):
    return yaml.safe_load(getattr(ModuleDocFragment, name))["options"]


@pytest.mark.parametrize("fragment, spec", [
    ("DOCUMENTATION", CONNECTION_ARGUMENT_SPEC), ("LOCK", LOCK_ARGUMENT_SPEC), ("BUDGET", BUDGET_ARGUMENT_SPEC)])
def test_doc_fragment_states_the_argument_spec_s_defaults(fragment, spec):
    """ansible-test validate-modules compares them per module; here every option of the fragment, at once."""
    documented = _fragment_options(fragment)
    assert set(documented) == set(spec)
    for name, option in spec.items():
        doc = documented[name]
        assert doc.get("default") == option.get("default"), name
        assert doc.get("type", "str") == option.get("type", "str"), name
        assert doc.get("choices") == option.get("choices"), name
        assert doc.get("elements") == option.get("elements"), name


def test_doc_fragment_names_the_default_replica_lag():
    text = " ".join(_fragment_options("BUDGET")["max_replica_lag"]["description"])
    assert "When not set, V(%s) applies" % DEFAULT_MAX_REPLICA_LAG in text


def test_dagster_defaults_follow_the_issue_and_dagster():
    plan = _dagster.validate_options({})
    assert plan["log_retention_days"] == {"debug": 7, "info": 30, "warning": 90}
    assert plan["event_retention_days"] == 30
    assert set(plan["event_types"]) == set(_dagster.NOISE_EVENT_TYPES)
    assert plan["tick_retention_days"]["sensor"]["skipped"] == 7
    assert plan["tick_retention_days"]["schedule"] == {"skipped": None, "success": None, "failure": None,
                                                       "started": None}


def test_dagster_tick_retention_accepts_one_number_per_type():
    plan = _dagster.validate_options({"tick_retention_days": {"schedule": 14}})
    assert plan["tick_retention_days"]["schedule"] == {"skipped": 14, "success": 14, "failure": 14, "started": 14}


def test_allow_list_and_protected_list_do_not_overlap():
    assert not set(_dagster.NOISE_EVENT_TYPES) & set(_dagster.PROTECTED_EVENT_TYPES)
    assert "STEP_OUTPUT" in _dagster.PROTECTED_EVENT_TYPES
    assert "ASSET_MATERIALIZATION" in _dagster.PROTECTED_EVENT_TYPES


def test_keep_everything_with_minus_one():
    plan = _dagster.validate_options({"log_retention_days": {"debug": -1}, "event_retention_days": -1})
    assert plan["log_retention_days"]["debug"] is None and plan["event_retention_days"] is None


def test_lockfile_excludes_flock_and_names_the_holder(tmp_path):
    path = str(tmp_path / "pgtidy.lock")
    holder = subprocess.Popen(["flock", path, "sleep", "20"], start_new_session=True)
    try:
        time.sleep(0.3)
        with pytest.raises(LockBusy) as err:
            LockFile(path, wait=1).acquire()
        assert err.value.details["holder"]["pid"] == holder.pid
        assert "flock %s sleep 20" % path in err.value.message
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()


def test_lockfile_records_the_holder_and_clears_on_release(tmp_path):
    path = str(tmp_path / "pgtidy.lock")
    with LockFile(path, wait=0, job="dagster_prune") as held:
        record = json.loads(open(path).read())
        assert record["pid"] == os.getpid() and record["job"] == "dagster_prune" and record["started"]
        assert describe_holder(held.fd)["pid"] == os.getpid()
        # flock(1) must not get in while we hold it.
        assert subprocess.run(["flock", "-n", path, "true"], check=False).returncode != 0
    assert open(path).read() == ""
    assert subprocess.run(["flock", "-n", path, "true"], check=False).returncode == 0


def _id_state(name, table="event_logs", cursor=0, boundary=100_000):
    state = HandlerState(Rule(name=name, table=table, cutoff=datetime.datetime(2026, 1, 1), walk=IdWalk("public")))
    state.cursor, state.boundary = cursor, boundary
    return state


def test_sweep_holds_every_handler_of_a_table_at_one_frontier():
    dense, sparse, ticks = _id_state("dense"), _id_state("sparse"), _id_state("ticks", table="job_ticks")
    timed = HandlerState(Rule(name="timed", table="log", cutoff=datetime.datetime(2026, 1, 1),
                              walk=TimeWalk("public")))
    sweep = Sweep([dense, sparse, ticks, timed], batch_size=100)
    assert sweep.upper(dense) == sweep.upper(sparse) == 400          # first window: four batches of ids
    assert sweep.upper(ticks) == 400                                  # each table has its own frontier
    # dense reached the frontier, sparse has not: nothing moves
    dense.cursor = 400
    sweep.record(dense, 100)
    sweep.advance([dense, sparse, ticks, timed])
    assert sweep.upper(dense) == 400
    # both there: the frontier moves by a width giving the densest handler one batch (100 rows in 400 ids)
    sparse.cursor = 400
    sweep.record(sparse, 7)
    sweep.advance([dense, sparse, ticks, timed])
    assert sweep.upper(dense) == sweep.upper(sparse) == 800
    assert sweep.upper(ticks) == 400                                  # job_ticks still has work below its frontier
    # twice as dense: half the width; an empty window: four times the width; never past a boundary
    dense.cursor = sparse.cursor = 800
    sweep.record(dense, 200)
    sweep.advance([dense, sparse])
    assert sweep.upper(dense) == 1000
    dense.cursor = sparse.cursor = 1000
    sweep.advance([dense, sparse])
    assert sweep.upper(dense) == 1800
    sparse.boundary = 1200
    assert sweep.upper(sparse) == 1200 and sweep.upper(dense) == 1800


def test_dagster_options_name_every_problem_at_once():
    with pytest.raises(InvalidRequest) as err:
        _dagster.validate_options({
            "event_types": ["STEP_OUTPUT", "FOO_EVENT", "HANDLED_OUTPUT"],
            "log_retention_days": {"error": 5, "trace": 3, "debug": 0},
            "event_retention_days": 100000,
            "tick_retention_days": {"sensor": {"bogus": 3, "skipped": "soon"}, "timer": 5, "schedule": 0},
        })
    message = err.value.message
    expected = [
        "protected Dagster event type(s) STEP_OUTPUT:",
        "unknown Dagster event type(s) FOO_EVENT:",
        "log level ERROR is protected",
        "unknown log level 'trace'",
        "log_retention_days.debug=0 is out of range",
        "event_retention_days=100000 is out of range",
        "unknown tick status 'bogus' in tick_retention_days.sensor",
        "tick_retention_days.sensor.skipped must be a whole number of days",
        "unknown instigator type 'timer'",
        "tick_retention_days.schedule.skipped=0 is out of range",
    ]
    for fragment in expected:
        assert fragment in message, fragment
    assert message.startswith("13 problems in the request, nothing was touched: ")
    assert len(err.value.details["problems"]) == 13     # the four schedule statuses are one problem each
    # a protected type is named as protected, not also as unknown
    assert "STEP_OUTPUT" not in message.split("unknown Dagster event type(s)")[1].split(":")[0]


def test_dagster_options_one_problem_keeps_its_plain_message():
    with pytest.raises(InvalidRequest) as err:
        _dagster.validate_options({"event_types": ["FOO_EVENT"]})
    assert err.value.message.startswith("unknown Dagster event type(s) FOO_EVENT: only HANDLED_OUTPUT")
    assert err.value.details["problems"] == [err.value.message]
