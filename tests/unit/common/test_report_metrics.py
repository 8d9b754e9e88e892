"""The Prometheus textfile writer, read back with prometheus_client's own text parser."""
from __future__ import annotations

import math
import os
import stat

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.report import Metrics, write_atomic, write_json_report
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.metrics import prune_metrics
from ansible_collections.pgtidy.maintenance.plugins.module_utils._dagster.rules import DagsterProfile


def parse(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(family):
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples}


def key(**labels):
    return tuple(sorted(labels.items()))


def test_gauges_with_awkward_label_values_round_trip():
    m = Metrics()
    m.gauge("rows", "Rows by table.", 12, table='we"ird\\na\nme', database="d")
    m.gauge("rows", "Rows by table.", 3.5, table="plain", database="d")
    m.gauge("flag", "A boolean.", True)
    m.gauge("skipped", "None is not written.", None)
    families = parse(m.render())
    assert set(families) == {"pgtidy_rows", "pgtidy_flag"}
    assert families["pgtidy_rows"].type == "gauge"
    assert families["pgtidy_rows"].documentation == "Rows by table."
    got = samples(families["pgtidy_rows"])
    assert got[(("database", "d"), ("table", 'we"ird\\na\nme'))] == 12
    assert got[(("database", "d"), ("table", "plain"))] == 3.5
    assert samples(families["pgtidy_flag"]) == {(): 1.0}


def test_special_float_values_parse():
    m = Metrics(prefix="x")
    m.gauge("nan", "n", float("nan"))
    m.gauge("pinf", "p", float("inf"))
    m.gauge("ninf", "m", float("-inf"))
    m.gauge("big", "b", 1e20)
    m.gauge("neg", "c", -7)
    families = parse(m.render())
    assert math.isnan(families["x_nan"].samples[0].value)
    assert families["x_pinf"].samples[0].value == math.inf
    assert families["x_ninf"].samples[0].value == -math.inf
    assert families["x_big"].samples[0].value == 1e20
    assert families["x_neg"].samples[0].value == -7


def test_help_text_with_newline_and_backslash_stays_one_line():
    m = Metrics()
    m.gauge("g", "first line\nsecond \\ part", 1)
    text = m.render()
    assert text.count("\n") == 3
    assert parse(text)["pgtidy_g"].documentation.startswith("first line second")


@pytest.mark.parametrize("name,labels", [("bad-name", {}), ("ok", {"bad-label": "x"}), ("ok", {"0abc": "x"})])
def test_bad_names_are_refused(name, labels):
    with pytest.raises(ValueError):
        Metrics().gauge(name, "h", 1, **labels)


def test_write_is_atomic_and_readable(tmp_path):
    path = tmp_path / "sub" / "m.prom"
    path.parent.mkdir()   # a missing directory is refused, not created (test_messages_core)
    m = Metrics()
    m.gauge("up", "u", 1)
    m.write(str(path))
    assert parse(path.read_text())["pgtidy_up"].samples[0].value == 1
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["m.prom"]
    write_atomic(str(path), "replaced\n", mode=0o600)
    assert path.read_text() == "replaced\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_failed_write_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "r.json"
    with pytest.raises(TypeError):
        write_atomic(str(target), object())
    assert list(tmp_path.iterdir()) == []


def test_json_report(tmp_path):
    import datetime
    import json
    path = tmp_path / "r.json"
    write_json_report(str(path), {"b": 1, "a": datetime.date(2024, 1, 2)})
    assert json.loads(path.read_text()) == {"a": "2024-01-02", "b": 1}


def test_prune_metrics_parse():
    result = {"duration_s": 2.5, "capped": True, "wal_bytes": 4096, "handlers": {
        "python_logs_debug": {"table": "event_logs", "deleted": 10, "remaining": 5, "duration_s": 0.1, "status": "ok"},
        "ticks_sensor_skipped": {"table": "job_ticks", "deleted": 0, "remaining": 0, "duration_s": 0.0,
                                 "status": "failed"}}}
    families = parse(prune_metrics(result, "dagster_prune", "dagster").render())
    base = (("database", "dagster"), ("job", "dagster_prune"))
    assert samples(families["pgtidy_run_success"]) == {base: 1}
    assert samples(families["pgtidy_run_capped"]) == {base: 1}
    assert samples(families["pgtidy_run_wal_bytes"]) == {base: 4096}
    pruned = samples(families["pgtidy_rows_pruned"])
    assert pruned[key(database="dagster", job="dagster_prune", handler="python_logs_debug", table="event_logs")] == 10
    failed = samples(families["pgtidy_handler_failed"])
    assert failed[key(database="dagster", job="dagster_prune", handler="ticks_sensor_skipped", table="job_ticks")] == 1
    assert failed[key(database="dagster", job="dagster_prune", handler="python_logs_debug", table="event_logs")] == 0
    assert "pgtidy_last_success_timestamp_seconds" in families


def test_failed_prune_has_no_last_success():
    families = parse(prune_metrics({"failed": True}, "prefect_prune", "prefect").render())
    assert samples(families["pgtidy_run_success"]) == {(("database", "prefect"), ("job", "prefect_prune")): 0}
    assert "pgtidy_last_success_timestamp_seconds" not in families


def test_run_retention_metrics():
    result = {"handlers": {"runs_retired": {"table": "runs", "deleted": 900, "remaining": 0, "duration_s": 1.0,
                                            "status": "ok", "runs_retired": 12,
                                            "kept_by_reason": {"newest_per_job": 25, "latest_asset_event": 3}}}}
    families = parse(prune_metrics(result, "dagster_prune", "dagster", more=DagsterProfile.metrics).render())
    assert samples(families["pgtidy_runs_retired"]) == {(("database", "dagster"), ("job", "dagster_prune")): 12}
    kept = samples(families["pgtidy_runs_kept_past_retention"])
    assert kept[key(database="dagster", job="dagster_prune", reason="newest_per_job")] == 25
    assert kept[key(database="dagster", job="dagster_prune", reason="latest_asset_event")] == 3
