"""Messages that say what happened: the pure helpers behind them (no server needed)."""
from __future__ import annotations

import pytest

from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.connection import is_local_host
from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.errors import InvalidRequest, first_line
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.errors import message_line


class Blank(Exception):
    pass


@pytest.mark.parametrize("exc, expected", [
    (Blank(), "Blank"),
    (Blank(""), "Blank"),
    (Blank("   \n  "), "Blank"),
    (ValueError("bad value\nDETAIL: more"), "ValueError: bad value"),
    (OSError(2, "No such file or directory"), "FileNotFoundError: [Errno 2] No such file or directory"),
    (RuntimeError("\n  second line first\nthird"), "RuntimeError: second line first"),
])
def test_first_line_is_safe_on_any_message(exc, expected):
    assert first_line(exc) == expected


@pytest.mark.parametrize("exc, expected", [
    (Blank(), "Blank"),
    (Blank(" \n "), "Blank"),
    (ValueError("permission denied for function pg_ls_waldir\nHINT: more"), "permission denied for function pg_ls_waldir"),
    (InvalidRequest("lock_wait must be 0 or more\nsecond"), "lock_wait must be 0 or more"),
])
def test_message_line_is_the_first_line_without_the_type(exc, expected):
    """What the health sections and the WAL compression notes show of an error: an empty message used to
    raise IndexError there."""
    assert message_line(exc) == expected


@pytest.mark.parametrize("host, local", [
    ("", True), (None, True), ("localhost", True), ("127.0.0.1", True), ("127.0.1.1", True), ("::1", True),
    ("/var/run/postgresql", True), ("db.internal", False), ("10.0.0.5", False), ("128.0.0.1", False)])
def test_a_server_is_local_by_one_rule(host, local):
    """repack's free-space check and health_info's disk facts measure the data directory only on this host."""
    assert is_local_host(host) is local


def test_sizes_are_printed_in_the_units_they_are_divided_by():
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.units import human_bytes, parse_bytes
    assert human_bytes(1536) == "1.5 KiB" and human_bytes(34 * 2 ** 20) == "34.0 MiB"
    assert human_bytes(5 * 2 ** 30) == "5.0 GiB" and human_bytes(512) == "512 B"
    assert human_bytes(None) == "unknown" and human_bytes(None, "-") == "-"
    # What is printed reads back as the same size: "MiB" is 1024 ** 2, while "MB" is 1000 ** 2.
    assert parse_bytes(human_bytes(34 * 2 ** 20).replace(" ", "")) == 34 * 2 ** 20
    assert parse_bytes("1MB") == 1000 ** 2 and parse_bytes("1kB") == 1000 and parse_bytes("1KiB") == 1024


def test_names_in_sql_shown_to_people_are_quoted():
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.units import quoted_name
    assert quoted_name("My Schema", "Events") == '"My Schema"."Events"'
    assert quoted_name('we"ird', "a.b") == '"we""ird"."a.b"'
    assert quoted_name("public") == '"public"'


def _repacked_indexes_only():
    return {"check_mode": False, "repacked": ["public.bloat"], "reclaimed_bytes": int(4.4 * 2 ** 20),
            "candidates_below_threshold": 0, "leftovers": [], "selection": "auto", "tables_considered": 1,
            "tables": {"public.bloat": {
                "status": "repacked", "reason": "", "error": "", "fix": "", "mode": "indexes",
                "rebuild_indexes": ["bloat_pkey"],
                "heap_left": "its 34.0 MiB (with indexes and TOAST) is below min_table_size 100.0 MiB"}}}


def test_a_table_whose_indexes_alone_were_rebuilt_is_not_called_repacked():
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._repack.report import outcome_messages
    msg, action = outcome_messages(_repacked_indexes_only())
    assert msg == ("rebuilt only the indexes of public.bloat (bloat_pkey), not its heap: its 34.0 MiB (with"
                   " indexes and TOAST) is below min_table_size 100.0 MiB (reclaimed 4.4 MiB)")
    assert action == []
    check, dummy = outcome_messages(dict(_repacked_indexes_only(), check_mode=True))
    assert check.startswith("would rebuild only the indexes of public.bloat (bloat_pkey), not its heap")


def test_a_profile_that_matched_no_table_says_so():
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._repack.report import outcome_messages
    result = {"check_mode": False, "repacked": [], "reclaimed_bytes": 0, "candidates_below_threshold": 0,
              "leftovers": [], "tables": {}, "selection": "auto", "profile": "dagster", "schema": "public",
              "tables_considered": 0}
    msg, action = outcome_messages(result)
    assert msg.startswith("nothing repacked: profile dagster matched no table in schema public")
    assert "event_logs" in msg and len(action) == 1 and "check profile and schema" in action[0]
    compact = dict(result, tables_considered=3, candidates_below_threshold=3)
    assert outcome_messages(compact) == ("nothing repacked; 3 more below the thresholds", [])


def test_an_output_file_in_a_missing_directory_is_refused_not_created(tmp_path):
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.errors import ReportFileRefused
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.report import (
        Metrics, check_output_files, write_json_report)
    missing = tmp_path / "typo"
    with pytest.raises(ReportFileRefused) as err:
        write_json_report(str(missing / "r.json"), {"ok": True})
    assert err.value.kind == "report_file_refused" and "report_file" in err.value.message
    assert "does not exist" in err.value.message and "create the directory" in err.value.message
    with pytest.raises(ReportFileRefused) as err:
        Metrics().write(str(missing / "m.prom"))
    assert err.value.message.startswith("metrics_file ")
    for option in ("report_file", "metrics_file", "history_file"):
        with pytest.raises(ReportFileRefused) as err:
            check_output_files({option: str(missing / "f")})
        assert err.value.details == {"refused_option": option, "refused_file": str(missing / "f")}
    (tmp_path / "file").write_text("")
    with pytest.raises(ReportFileRefused, match="is not a directory"):
        check_output_files({"report_file": str(tmp_path / "file" / "r.json")})
    assert not missing.exists()
    check_output_files({"report_file": str(tmp_path / "r.json"), "metrics_file": None})
