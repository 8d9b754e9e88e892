"""Pure parts of the health core: option checks, the disk history and its growth rate, metrics of a down server."""
from __future__ import annotations

import json

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.pgtidy.maintenance.plugins.module_utils._common import units as _units
from ansible_collections.pgtidy.maintenance.plugins.module_utils._health import (
    disk as _health_disk, gaps as _health_gaps, health as _health, metrics as _health_metrics,
    options as _health_options, summary as _health_summary)
from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.errors import ConnectionFailed, InvalidRequest
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.errors import SchemaMismatch
from pgserver import free_port

DAY = 86400.0


@pytest.mark.parametrize("params,needle", [
    ({"thresholds": {"disk_used_percent": 80}}, "unknown threshold"),
    ({"thresholds": {"disk_used_warning_percent": -1}}, "must be a number"),
    ({"thresholds": {"disk_used_warning_percent": True}}, "must be a number"),
    ({"top_tables": 0}, "top_tables"),
    ({"exact_count_limit": -5}, "exact_count_limit"),
    ({"dagster_retention": {"retention": 3}}, "unknown key"),
    ({"dagster_retention": {"event_types": ["STEP_OUTPUT"]}}, "protected"),
    ({"dagster_retention": {"max_rows": -1}}, "max_rows"),
    ({"prefect_retention": {"event_retention_days": 0}}, "event_retention_days"),
    ({"prefect_retention": {"events_retention_days": 7}}, "unknown key"),
    ({"prefect_retention": {"log_retention_days": {"error": 3}}}, "protected"),
])
def test_bad_options_are_refused_before_connecting(params, needle):
    with pytest.raises(InvalidRequest) as err:
        _health_options.validate_options(params)
    assert needle in err.value.message


def test_threshold_overrides_and_defaults():
    thresholds, plans = _health_options.validate_options(
        {"thresholds": {"disk_used_warning_percent": 70},
         "dagster_retention": {"event_retention_days": 14, "max_rows": 1000}})
    assert thresholds["disk_used_warning_percent"] == 70
    assert thresholds["dead_ratio_critical_percent"] == 50   # percent of all tuples: dead / (live + dead)
    plan, budget = plans["dagster"]
    assert plan["event_retention_days"] == 14
    assert budget.max_rows == 1000


def test_growth_is_the_least_squares_slope_per_day():
    samples = [{"ts": 1000 + i * DAY / 4, "disk_used_bytes": 5000 + i * 250} for i in range(9)]
    assert _health_disk.growth_per_day(samples, "disk_used_bytes") == pytest.approx(1000.0)


def test_growth_needs_two_samples_an_hour_apart_within_the_window():
    assert _health_disk.growth_per_day([{"ts": 0, "x": 1}], "x") is None
    assert _health_disk.growth_per_day([{"ts": 0, "x": 1}, {"ts": 600, "x": 5}], "x") is None
    old_and_new = [{"ts": 0, "x": 1}, {"ts": 30 * DAY, "x": 5}]
    assert _health_disk.growth_per_day(old_and_new, "x") is None


def test_days_until_full_from_history():
    samples = [{"ts": 0, "disk_used_bytes": 0}, {"ts": DAY, "disk_used_bytes": 10 * 2 ** 30}]
    growth = _health_disk.growth_facts(samples, {"available": True, "free_bytes": 50 * 2 ** 30})
    assert growth["days_until_full"] == 5.0
    shrinking = [{"ts": 0, "disk_used_bytes": 100}, {"ts": DAY, "disk_used_bytes": 50}]
    growth = _health_disk.growth_facts(shrinking, {"available": True, "free_bytes": 1})
    assert growth["days_until_full"] is None and growth["reason"] == "disk usage is not growing"


def test_history_file_keeps_recent_samples_and_survives_garbage(tmp_path):
    path = tmp_path / "h.json"
    path.write_text("not json")
    assert _health_disk.load_history(str(path)) == []
    now = 100 * DAY
    _health_disk.update_history(str(path), {"ts": now - 40 * DAY, "disk_used_bytes": 1}, keep_days=30, now=now - 40 * DAY)
    samples = _health_disk.update_history(str(path), {"ts": now, "disk_used_bytes": 2}, keep_days=30, now=now)
    assert samples == [{"ts": now, "disk_used_bytes": 2}]
    assert json.loads(path.read_text())["samples"] == samples
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_unavailable_result_has_metrics_and_summary():
    params = {"login_db": "dagster", "login_password": "hunter2-secret"}
    result = _health.unavailable_result(ConnectionFailed("cannot connect: bad password hunter2-secret"), params)
    assert result["available"] is False and result["changed"] is False
    assert "hunter2-secret" not in json.dumps(result)
    families = {f.name: f for f in text_string_to_metric_families(
        _health_metrics.health_metrics(result, database="dagster").render())}
    up = families["pgtidy_health_up"].samples[0]
    assert up.value == 0 and up.labels == {"job": "health_info", "database": "dagster"}
    critical = [s for s in families["pgtidy_health_findings"].samples if s.labels["severity"] == "critical"]
    assert critical[0].value == 1
    assert "pgtidy_last_success_timestamp_seconds" not in families
    assert "UNAVAILABLE" in result["summary_lines"][0]


@pytest.mark.parametrize("value,text", [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 * 2 ** 30, "5.0 GiB"),
                                        (None, "-")])
def test_human_bytes(value, text):
    """The one human_bytes (in _units), in the IEC units it divides by; '-' for a table cell without a value."""
    assert _units.human_bytes(value, "-") == text


def test_unreachable_server_is_a_failed_result_by_default_and_data_when_asked():
    params = {"login_host": "127.0.0.1", "login_port": free_port(), "login_db": "dagster", "ssl_mode": "disable",
              "connect_timeout": 3}
    failed = _health.run_health(params)
    assert failed["failed"] is True and failed["error_kind"] == "connection_failed"
    assert failed["available"] is False and failed["msg"] == "database dagster is unavailable: %s" % failed["reason"]
    facts_only = _health.run_health(dict(params, fail_on_unavailable=False))
    assert "failed" not in facts_only and "error_kind" not in facts_only and facts_only["available"] is False


@pytest.mark.parametrize("section,exc,fix", [
    ("wal", psycopg.errors.InsufficientPrivilege("permission denied for function pg_ls_waldir"),
     "GRANT pg_monitor TO monitor"),
    ("dagster", psycopg.errors.InsufficientPrivilege("permission denied for table event_logs"),
     "GRANT pg_read_all_data TO monitor (PostgreSQL 14+), or GRANT SELECT ON ALL TABLES IN SCHEMA public TO monitor"),
    ("dagster retention", psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
     "raise statement_timeout (now 60s), or lower exact_count_limit so large tables are estimated, not counted"),
    ("prefect retention", SchemaMismatch("schema 'public' is not a Prefect schema this version understands"),
     "set schema to the one holding the prefect tables; the preview needs every table and column prefect_prune uses"),
])
def test_each_unreadable_section_names_its_fix(section, exc, fix):
    entry = _health_gaps.section_gap(section, exc, "monitor", "public", {})
    assert entry == {"section": section, "status": "unavailable", "reason": str(exc), "fix": fix}


def test_grants_quote_a_role_name_only_when_needed():
    # As a person writes a role in a GRANT: bare when it means the same unquoted.
    assert _health_gaps.grant_name("monitor_1") == "monitor_1"
    assert _health_gaps.grant_name("Grafana Reader") == '"Grafana Reader"'
    assert _health_gaps.grant_name("My Schema", "events") == '"My Schema".events'
    assert _health_gaps.grant_name("1st") == '"1st"'
    assert _health_gaps.grant_name("ro\n") == '"ro\n"'
    assert _health_gaps.grant_name('we"ird') == '"we""ird"'


def test_incomplete_sections_in_msg_summary_and_metrics():
    result = {"available": True, "database": {"name": "dagster", "size_bytes": 1, "server_version": "15.8"},
              "profile": "dagster", "findings": [], "findings_by_severity": {"critical": 0, "warning": 1, "info": 0},
              "incomplete_sections": [
                  _health_gaps.gap("wal", "permission denied for function pg_ls_waldir", "GRANT pg_monitor TO m"),
                  _health_gaps.disk_gap({"available": False, "reason": "the server is not on this host (db)",
                                         "fix": "set disk_path"})]}
    assert _health_summary.outcome_message(result) == (
        "health of dagster: 0 critical, 1 warning, 0 info finding(s); incomplete:"
        " wal unavailable (fix: GRANT pg_monitor TO m); disk unavailable (fix: set disk_path)")
    lines = _health_summary.summary_lines(result)
    start = lines.index("INCOMPLETE: 2 section(s) not read in full")
    assert lines[start + 1:] == [
        "  UNAVAILABLE wal                  permission denied for function pg_ls_waldir",
        "           -> GRANT pg_monitor TO m",
        "  UNAVAILABLE disk                 the server is not on this host (db)",
        "           -> set disk_path"]
    families = {f.name: f for f in text_string_to_metric_families(
        _health_metrics.health_metrics(result, database="dagster").render())}
    assert families["pgtidy_health_incomplete_sections"].samples[0].value == 2
