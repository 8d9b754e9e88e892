"""Pacing without a server: options, the decisions before each batch, and what the result reports.

A fake probe plays the server's answers and a fake clock the passing of time, so every decision is
asserted on states and reasons, never on how long something took.
"""
from __future__ import annotations

import os

import pytest

from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.budget import BUDGET_ARGUMENT_SPEC, Budget
from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.errors import InvalidRequest
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.pacer import (
    POLL_S, RATE_BURST_S, RATE_WINDOW_S, Pacer, pause_file_present)
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.pacing_limits import (
    DEFAULT_MAX_REPLICA_LAG, PacingLimits, parse_lag_limit)
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.replication import Standby
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.metrics import prune_metrics
from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.units import parse_bytes

MB = 1024 ** 2


class Clock:
    def __init__(self):
        self.now = 100.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


class Probe:
    """Answers ``read()`` from a script: one (lsn, standbys) per call, the last one repeated."""

    def __init__(self, script, slots=()):
        self.script = list(script)
        self.slots = list(slots)
        self.reads = 0

    def read(self):
        self.reads += 1
        if len(self.script) > 1:
            return self.script.pop(0)
        return self.script[0]

    def inactive_slots(self):
        return list(self.slots)


def standby(name="replica1", lag=0, replay_lag=None, visible=True, client="10.0.0.7"):
    return Standby(pid=hash(name) % 10000, name=name, client=client if visible else "not visible",
                   state="streaming" if visible else None, sync_state="async" if visible else None,
                   lag_bytes=lag if visible else None, replay_lag_s=replay_lag)


def pacer(limits, probe, clock, **kw):
    return Pacer(limits, probe, clock=clock, sleep=clock.sleep, **kw)


# -- options -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("256MiB", (256 << 20, 0.0)), ("30s", (0, 30.0)), ("256MiB, 30s", (256 << 20, 30.0)),
    ("500ms 1GB", (10 ** 9, 0.5)), ("2min", (0, 120.0)), ("0", (0, 0.0)), ("1048576", (1 << 20, 0.0)),
    ("1.5min", (0, 90.0)), ("1d", (0, 86400.0)), ("0.5h, 64kB", (64_000, 1800.0)), ("30sec", (0, 30.0))])
def test_max_replica_lag_takes_a_size_a_duration_or_both(text, expected):
    assert parse_lag_limit(text) == expected


@pytest.mark.parametrize("params, words", [
    ({"max_replica_lag": "lots"}, "max_replica_lag must be a size"),
    ({"max_replica_lag": "1MB 2MB"}, "two sizes"),
    ({"max_replica_lag": "1s 2s"}, "two durations"),
    ({"max_replica_lag": "-5MB"}, "max_replica_lag"),
    ({"max_replica_lag": "1kB"}, "at least 64kB"),
    ({"max_replica_lag": "3d"}, "between 100ms and 24h"),
    ({"max_replica_lag": "50ms"}, "between 100ms and 24h"),
    ({"max_replica_lag": "30 weeks"}, "max_replica_lag must be a size ('256MiB'), a duration"),
    ({"max_replica_lag": "90000s"}, "between 100ms and 24h"),
    ({"max_lag_wait": -1}, "max_lag_wait must be between 0"),
    ({"max_lag_wait": 10 ** 6}, "max_lag_wait must be between 0"),
    ({"max_wal_rate": "-1MB"}, "max_wal_rate must not be negative"),
    ({"max_wal_rate": "10kB"}, "at least 64kB"),
    ({"max_wal_rate": "fast"}, "max_wal_rate must be a size"),
    ({"pause_file": "pgtidy.pause"}, "absolute path"),
    ({"pause_file": "/nonexistent-dir/pgtidy.pause"}, "does not exist"),
])
def test_pacing_options_are_validated_with_a_message_that_names_them(params, words):
    with pytest.raises(InvalidRequest) as err:
        Budget.from_params(params)
    assert words in err.value.message


def test_all_problems_are_named_at_once():
    with pytest.raises(InvalidRequest) as err:
        PacingLimits.from_params({"max_replica_lag": "1kB", "max_lag_wait": -3, "max_wal_rate": "1kB"})
    assert len(err.value.details["problems"]) == 3


def test_defaults_and_the_argument_spec_agree():
    pacing = Budget.from_params({}).pacing
    assert (pacing.max_lag_bytes, pacing.max_lag_s) == parse_lag_limit(DEFAULT_MAX_REPLICA_LAG)
    assert pacing.lag_explicit is False and pacing.watches_replicas
    assert pacing.max_wal_rate == parse_bytes(BUDGET_ARGUMENT_SPEC["max_wal_rate"]["default"])
    assert pacing.max_lag_wait == BUDGET_ARGUMENT_SPEC["max_lag_wait"]["default"]
    # Unset is not the same as set to the default: only a limit the user set is refused when it cannot be enforced.
    assert BUDGET_ARGUMENT_SPEC["max_replica_lag"].get("default") is None
    assert PacingLimits.from_params({"max_replica_lag": DEFAULT_MAX_REPLICA_LAG}).lag_explicit is True
    assert PacingLimits.from_params({"max_replica_lag": "0"}).watches_replicas is False


# -- replica lag ---------------------------------------------------------------------------------

def test_a_standby_over_the_limit_pauses_the_run_until_it_catches_up():
    clock = Clock()
    probe = Probe([(1000, [standby(lag=300 * MB)]), (2000, [standby(lag=200 * MB)]), (3000, [standby(lag=5 * MB)])])
    p = pacer(PacingLimits(max_lag_bytes=100 * MB, max_lag_wait=60), probe, clock)
    p.start()
    assert p.wait_turn() is None                      # 300 MB read in start(), then 200 MB, then 5 MB
    assert probe.reads == 3 and p.pauses["replica_lag"] == 1 and p.paused_s["replica_lag"] > 0
    assert p.batch_start_lsn == 3000                  # the batch is measured from the read just before it
    report = p.report()
    assert report["max_replica_lag_bytes"] == 300 * MB
    assert report["max_replica_lag_standby"] == {"application_name": "replica1", "client": "10.0.0.7"}
    assert report["stopped_by"] is None and report["replicas_watched"] is True


def test_a_standby_that_stays_behind_ends_the_run_after_max_lag_wait_and_is_named():
    clock = Clock()
    probe = Probe([(1000, [standby("fast", lag=1 * MB), standby("stuck", lag=900 * MB, replay_lag=42.0)])])
    p = pacer(PacingLimits(max_lag_bytes=100 * MB, max_lag_wait=3), probe, clock)
    p.start()
    assert p.wait_turn() == "replica_lag"
    report = p.report()
    assert report["stopped_by"] == "replica_lag"
    assert "'stuck' (10.0.0.7)" in report["stop_reason"] and "900.0 MiB behind" in report["stop_reason"]
    assert "42.0 s behind" in report["stop_reason"] and "max_lag_wait 3" in report["stop_reason"]
    assert p.paused_s["replica_lag"] >= 3
    assert [s["application_name"] for s in report["standbys"]] == ["fast", "stuck"]


def test_max_lag_wait_0_stops_at_once():
    clock = Clock()
    p = pacer(PacingLimits(max_lag_bytes=100 * MB, max_lag_wait=0), Probe([(1, [standby(lag=200 * MB)])]), clock)
    p.start()
    assert p.wait_turn() == "replica_lag" and clock.slept == []


def test_lag_in_seconds_counts_and_null_lag_times_are_no_lag():
    clock = Clock()
    idle = standby(lag=0, replay_lag=None)            # PostgreSQL's NULL: idle and caught up
    p = pacer(PacingLimits(max_lag_bytes=0, max_lag_s=10.0, max_lag_wait=0), Probe([(1, [idle])]), clock)
    p.start()
    assert p.wait_turn() is None
    late = standby(lag=1 * MB, replay_lag=11.5)
    p = pacer(PacingLimits(max_lag_bytes=0, max_lag_s=10.0, max_lag_wait=0), Probe([(1, [late])]), clock)
    p.start()
    assert p.wait_turn() == "replica_lag" and "11.5 s behind" in p.stop_reason


def test_ignored_replicas_do_not_pause_but_are_reported():
    clock = Clock()
    delayed = standby("reporting_delayed", lag=5000 * MB, replay_lag=3600.0)
    p = pacer(PacingLimits(max_lag_bytes=100 * MB, max_lag_wait=0, ignore_replicas=("reporting_delayed",)),
              Probe([(1, [delayed])]), clock)
    p.start()
    assert p.wait_turn() is None
    report = p.report()
    assert report["standbys"][0]["ignored"] is True and report["standbys"][0]["max_lag_bytes"] == 5000 * MB
    assert report["max_replica_lag_bytes"] is None     # the highest lag of the standbys that count


def test_a_set_limit_the_role_cannot_enforce_is_refused_with_the_fix():
    hidden = standby("replica1", visible=False)
    with pytest.raises(InvalidRequest) as err:
        pacer(PacingLimits(max_lag_bytes=100 * MB, lag_explicit=True), Probe([(1, [hidden])]), Clock()).start()
    assert "pg_monitor" in err.value.message and "max_replica_lag: 0" in err.value.message
    assert "replica1" in err.value.message


def test_the_default_limit_the_role_cannot_enforce_warns_and_never_claims_no_lag():
    hidden = standby("replica1", visible=False)
    p = pacer(PacingLimits(max_lag_bytes=100 * MB, lag_explicit=False), Probe([(1, [hidden])]), Clock())
    p.start()
    assert p.wait_turn() is None
    report = p.report()
    assert report["replicas_visible"] is False and report["replicas_watched"] is False
    assert report["max_replica_lag_bytes"] is None
    assert any("not watched" in w and "pg_monitor" in w for w in report["warnings"])


def test_no_standby_is_no_lag_even_for_a_role_without_pg_monitor():
    p = pacer(PacingLimits(max_lag_bytes=100 * MB, lag_explicit=True), Probe([(1, [])]), Clock())
    p.start()
    report = p.report()
    assert report["replicas_visible"] is True and report["replicas_watched"] is True and report["warnings"] == []


def test_an_inactive_slot_holding_more_than_the_limit_is_reported_before_the_run():
    slots = [{"slot_name": "old_standby", "slot_type": "physical", "database": None, "retained_bytes": 3000 * MB,
              "wal_status": "extended", "safe_wal_size": 500 * MB},
             {"slot_name": "small", "slot_type": "logical", "database": "dagster", "retained_bytes": 1 * MB,
              "wal_status": "reserved", "safe_wal_size": None}]
    p = pacer(PacingLimits(max_lag_bytes=100 * MB), Probe([(1, [])], slots=slots), Clock(), wal_budget=1 << 30)
    p.start()
    report = p.report()
    assert [s["slot_name"] for s in report["inactive_slots"]] == ["old_standby", "small"]
    assert len(report["warnings"]) == 1
    assert "'old_standby'" in report["warnings"][0] and "2.9 GiB" in report["warnings"][0]
    assert "lost" in report["warnings"][0]


# -- WAL rate ------------------------------------------------------------------------------------

def test_wal_rate_spaces_batches_by_what_each_wrote():
    clock = Clock()
    lsn = [0]

    class WalProbe(Probe):
        def read(self):
            return lsn[0], []

    p = pacer(PacingLimits(max_lag_bytes=0, max_wal_rate=4 * MB), WalProbe([]), clock)
    p.start()
    starts = []
    for unused in range(20):
        assert p.wait_turn() is None
        starts.append(clock.now)
        clock.now += 0.1                  # the batch itself
        lsn[0] += 2 * MB                  # ... wrote 2 MB
        p.after_batch(lsn[0])
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    # 2 MB at 4 MB/s: after the credit, one batch every half second.
    assert all(abs(g - 0.5) < 1e-9 for g in gaps[3:]) and all(g >= 0.1 - 1e-9 for g in gaps)
    for i in range(len(starts)):
        for j in range(i + 1, len(starts)):
            # batches i .. j-1 wrote 2 MB each between starts[i] and starts[j]: at most the rate plus the credit
            assert (j - i) * 2 * MB <= 4 * MB * (starts[j] - starts[i] + RATE_BURST_S) + 2 * MB + 1
    report = p.report()
    assert p.pauses["wal_rate"] >= 17
    assert report["batch_wal_bytes"] == 40 * MB
    # Over any five seconds: the rate plus at most the credit.
    assert 4 * MB <= report["wal_rate_peak_bytes_s"] <= 4 * MB * (1 + RATE_BURST_S / RATE_WINDOW_S) + 1


def test_wal_rate_gives_no_burst_credit_after_a_long_pause():
    clock = Clock()
    lsn = [0]

    class WalProbe(Probe):
        def read(self):
            return lsn[0], []

    p = pacer(PacingLimits(max_lag_bytes=0, max_wal_rate=1 * MB), WalProbe([]), clock)
    p.start()
    assert p.wait_turn() is None
    lsn[0] += 1 * MB
    p.after_batch(lsn[0])
    clock.now += 60                       # paused for another reason, a minute
    assert p.wait_turn() is None
    lsn[0] += 3 * MB
    p.after_batch(lsn[0])
    before = clock.now
    assert p.wait_turn() is None
    # The 3 MB batch is paid for before the next one, less the credit.
    assert clock.now - before == pytest.approx(3 - RATE_BURST_S)


def test_a_wal_rate_pause_past_max_duration_ends_the_run_by_max_duration():
    clock = Clock()
    lsn = [0]

    class WalProbe(Probe):
        def read(self):
            return lsn[0], []

    p = pacer(PacingLimits(max_lag_bytes=0, max_wal_rate=1 * MB), WalProbe([]), clock, deadline=clock.now + 2)
    p.start()
    assert p.wait_turn() is None
    lsn[0] += 10 * MB
    p.after_batch(lsn[0])
    assert p.wait_turn() == "max_duration"


# -- the pause file ------------------------------------------------------------------------------

def test_pause_file_is_looked_at_with_lstat_only(tmp_path):
    path = str(tmp_path / "pgtidy.pause")
    assert pause_file_present(path) is False
    os.symlink(str(tmp_path / "nowhere"), path)      # a dangling link: present, never followed
    assert pause_file_present(path) is True
    assert pause_file_present(str(tmp_path / "file" / "below-a-file")) is False


def test_pause_file_pauses_until_it_is_gone_and_is_accounted(tmp_path):
    clock = Clock()
    present = {"n": 3}

    def exists(_path):
        present["n"] -= 1
        return present["n"] >= 0

    p = pacer(PacingLimits(max_lag_bytes=0, pause_file=str(tmp_path / "pause")), Probe([(1, [])]), clock, exists=exists)
    p.start()
    assert p.report()["pause_file_present_at_start"] is True
    assert p.wait_turn() is None
    assert p.pauses["pause_file"] == 1 and p.paused_s["pause_file"] == pytest.approx(2 * POLL_S)


def test_pause_file_still_there_at_max_duration_ends_the_run(tmp_path):
    clock = Clock()
    p = pacer(PacingLimits(max_lag_bytes=0, pause_file=str(tmp_path / "pause")), Probe([(1, [])]), clock,
              exists=lambda _p: True, deadline=clock.now + 5)
    p.start()
    assert p.wait_turn() == "pause_file"
    assert p.report()["stopped_by"] == "pause_file" and "max_duration" in p.stop_reason
    assert p.paused_s["pause_file"] == pytest.approx(5)


def test_check_mode_never_waits_but_reports_what_it_sees(tmp_path):
    clock = Clock()
    p = pacer(PacingLimits(max_lag_bytes=100 * MB, pause_file=str(tmp_path / "pause")),
              Probe([(1, [standby(lag=900 * MB)])]), clock, exists=lambda _p: True, check_mode=True)
    p.start()
    assert p.wait_turn() is None and clock.slept == []
    report = p.report()
    assert report["limits"]["max_replica_lag_bytes"] == 100 * MB
    assert report["pause_file_present_at_start"] is True
    assert report["standbys"][0]["lag_bytes"] == 900 * MB


def test_batch_pause_is_accounted_as_a_pause():
    clock = Clock()
    p = pacer(PacingLimits(max_lag_bytes=0), Probe([(1, [])]), clock, batch_pause=0.25)
    p.start()
    for unused in range(4):
        p.wait_turn()
        p.after_batch(10)
    assert p.pauses["batch_pause"] == 4 and p.paused_s["batch_pause"] == pytest.approx(1.0)


# -- metrics -------------------------------------------------------------------------------------

def test_prune_metrics_carry_the_pacing():
    p = pacer(PacingLimits(max_lag_bytes=100 * MB, max_lag_wait=0), Probe([(1, [standby(lag=300 * MB, replay_lag=4.0)])]),
              Clock())
    p.start()
    p.wait_turn()
    result = {"handlers": {}, "capped": True, "capped_by": "replica_lag", "pacing": p.report()}
    text = prune_metrics(result, "dagster_prune", "dagster").render()
    assert 'pgtidy_paused_seconds{database="dagster",job="dagster_prune",reason="replica_lag"} 0' in text
    assert 'pgtidy_replica_lag_max_bytes{database="dagster",job="dagster_prune"} 314572800' in text
    assert 'pgtidy_replica_lag_max_seconds{database="dagster",job="dagster_prune"} 4' in text
    assert 'pgtidy_replica_lag_visible{database="dagster",job="dagster_prune"} 1' in text
    assert 'pgtidy_run_capped_by{database="dagster",job="dagster_prune",reason="replica_lag"} 1' in text
