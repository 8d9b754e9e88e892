"""The drain estimate: the backlog per table at the pace the last real prune measured, and the metrics a
dashboard watches fall during a drain (read back with prometheus_client's parser)."""
from __future__ import annotations

import json
import os

from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.metrics import (
    backlog_by_table, measured_rate, prune_metrics)
from ansible_collections.pgtidy.maintenance.plugins.module_utils._health.drain import drain_estimate, read_measurement
from ansible_collections.pgtidy.maintenance.plugins.module_utils._health.metrics import health_metrics

REAL_RUN = {"check_mode": False, "deleted_total": 40_000, "duration_s": 12.0, "lock_waited_s": 2.0,
            "wal_bytes": 40_000 * 350, "capped": True, "capped_by": "max_rows",
            "handlers": {"logs": {"table": "event_logs", "deleted": 30_000, "remaining": 500_000},
                         "events": {"table": "event_logs", "deleted": 10_000, "remaining": 100_000},
                         "ticks": {"table": "job_ticks", "deleted": 0, "remaining": 7},
                         "runs": {"table": "runs", "deleted": 0, "remaining": None}}}

RETENTION = {"max_rows_per_run": 250_000,
             "handlers": {"logs": {"table": "event_logs", "rows": 250_000, "remaining": 500_000},
                          "ticks": {"table": "job_ticks", "rows": 0, "remaining": 10, "remaining_exact": True}}}


def families(metrics):
    return {f.name: {tuple(sorted(s.labels.items())): s.value for s in f.samples}
            for f in text_string_to_metric_families(metrics.render())}


def test_the_rate_is_measured_without_the_lock_wait_and_only_from_a_real_run_that_deleted():
    assert measured_rate(REAL_RUN) == {"rows": 40_000, "seconds": 10.0, "rows_per_s": 4000.0,
                                       "wal_bytes_per_row": 350.0}
    assert measured_rate(dict(REAL_RUN, check_mode=True)) is None
    assert measured_rate(dict(REAL_RUN, failed=True)) is None
    assert measured_rate(dict(REAL_RUN, deleted_total=0)) is None


def test_backlog_by_table_leaves_out_a_table_that_could_not_be_counted():
    assert backlog_by_table(REAL_RUN) == {"event_logs": 600_000, "job_ticks": 7}


def test_prune_metrics_show_the_backlog_by_table_and_the_measured_pace():
    got = families(prune_metrics(REAL_RUN, "dagster_prune", "dagster"))
    base = (("database", "dagster"), ("job", "dagster_prune"))
    assert got["pgtidy_prune_backlog_rows"] == {base + (("table", "event_logs"),): 600_000,
                                                base + (("table", "job_ticks"),): 7}
    assert got["pgtidy_prune_rate_rows_per_second"] == {base: 4000.0}
    assert got["pgtidy_prune_wal_bytes_per_row"] == {base: 350.0}
    # A check-mode run measured nothing: no pace series at all.
    assert "pgtidy_prune_rate_rows_per_second" not in families(
        prune_metrics(dict(REAL_RUN, check_mode=True), "dagster_prune", "dagster"))


def test_estimate_from_the_last_report(tmp_path):
    report = tmp_path / "prune.json"
    report.write_text(json.dumps(REAL_RUN))
    measurement, note = read_measurement(str(report))
    assert note is None and measurement["rows_per_s"] == 4000.0 and measurement["capped_by"] == "max_rows"
    estimate = drain_estimate(RETENTION, measurement, note)
    assert estimate["backlog_rows"] == 750_010
    assert estimate["backlog_by_table"] == {"event_logs": 750_000, "job_ticks": 10}
    assert estimate["runs_needed"] == 4                       # 750,010 rows at 250,000 a run
    assert estimate["work_seconds"] == round(750_010 / 4000.0, 1)
    assert estimate["wal_bytes"] == 750_010 * 350
    assert "4000.0 rows/s" in estimate["note"]


def test_no_estimate_without_a_measurement_and_the_note_says_why(tmp_path):
    for path, why in ((None, "prune_report_file is not set"),
                      (str(tmp_path / "missing.json"), "does not exist"),
                      (str(tmp_path / "bad.json"), "cannot be read"),
                      (str(tmp_path / "check.json"), "check-mode run"),
                      (str(tmp_path / "idle.json"), "deleted nothing")):
        (tmp_path / "bad.json").write_text("{not json")
        (tmp_path / "check.json").write_text(json.dumps(dict(REAL_RUN, check_mode=True)))
        (tmp_path / "idle.json").write_text(json.dumps(dict(REAL_RUN, deleted_total=0)))
        measurement, note = read_measurement(path)
        assert measurement is None and why in note, (path, note)
        estimate = drain_estimate(RETENTION, measurement, note)
        assert estimate["work_seconds"] is None and estimate["wal_bytes"] is None
        assert estimate["runs_needed"] == 4 and estimate["note"] == note
    assert not os.path.exists(tmp_path / "missing.json")


def test_an_uncountable_handler_makes_the_backlog_partial_not_zero():
    retention = {"max_rows_per_run": 0, "handlers": dict(
        RETENTION["handlers"], runs={"table": "runs", "rows": 0, "remaining": None})}
    estimate = drain_estimate(retention, None, "no measured rate yet")
    assert estimate["backlog_unknown_handlers"] == ["runs"] and not estimate["backlog_exact"]
    assert estimate["runs_needed"] == 1 and estimate["backlog_rows"] == 750_010


def test_health_metrics_show_the_backlog_and_the_estimate_only_when_measured():
    result = {"available": True, "profile": "dagster", "findings_by_severity": {},
              "database": {"name": "dagster", "size_bytes": 1},
              "orchestrator": {"drain_estimate": drain_estimate(RETENTION, None, "no measured rate yet")}}
    got = families(health_metrics(result))
    base = (("database", "dagster"), ("job", "health_info"), ("profile", "dagster"))
    assert got["pgtidy_drain_backlog_rows"][base + (("table", "event_logs"),)] == 750_000
    assert got["pgtidy_drain_runs_needed"] == {base: 4}
    assert "pgtidy_drain_estimate_seconds" not in got
    measured = {"rows": 1, "seconds": 1, "rows_per_s": 1000.0, "wal_bytes_per_row": 1.0, "measured_at": "x"}
    result["orchestrator"]["drain_estimate"] = drain_estimate(RETENTION, measured)
    assert families(health_metrics(result))["pgtidy_drain_estimate_seconds"] == {base: 750.0}
