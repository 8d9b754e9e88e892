"""health_info's retention preview and the prune module's check mode, given the same options through real
ansible-playbook runs, predict the same rows per handler: the preview hands the options it was given to the
prune's core, the module gets them from Ansible with its spec's defaults filled in, and both plan alike."""
from __future__ import annotations

import pytest

from conftest import assert_agree, preview_and_check

DAGSTER_OPTIONS = [
    {},
    {"log_retention_days": {"debug": 1}, "event_retention_days": 14},
    {"log_retention_days": {"info": 2, "warning": -1}, "tick_retention_days": {"sensor": {"failure": 1}, "schedule": 1},
     "prune_superseded_planned": False},
    {"run_retention_days": {"success": 30}, "keep_runs_per_job": 1},
    {"run_retention_days": {"success": 30, "failure": 30, "canceled": 30}, "keep_runs_per_job": 2,
     "retire_run_ticks": False, "event_types": ["HANDLED_OUTPUT", "LOADED_INPUT"], "max_rows": 50},
]
PREFECT_OPTIONS = [
    {},
    {"flow_run_retention_days": 30, "event_retention_days": 14},
    {"log_retention_days": {"debug": 1, "info": 3}, "event_retention_overrides": {"prefect.flow-run.heartbeat": 1},
     "prune_orphans": False},
    {"flow_run_retention_days": 30, "log_retention_days": {"warning": 1}, "flow_run_batch_size": 2, "max_rows": 7},
]


@pytest.mark.parametrize("options", DAGSTER_OPTIONS)
def test_dagster_preview_is_the_prune_check_mode(pg, dagster_db, ansible, lock_file, options):
    preview, check = preview_and_check(pg, dagster_db["db"], ansible, lock_file, "dagster", options)
    assert_agree(preview, check)


def test_dagster_preview_counts_something(pg, dagster_db, ansible, lock_file):
    """The comparisons above are not all of zeros: the history has rows past the default retention."""
    preview, check = preview_and_check(pg, dagster_db["db"], ansible, lock_file, "dagster",
                                       {"run_retention_days": {"success": 30}, "keep_runs_per_job": 1})
    assert check["deleted_total"] > 0 and check["handlers"]["runs_retired"]["deleted"] > 0
    assert preview["next_run_rows"] == check["deleted_total"]


@pytest.mark.parametrize("options", PREFECT_OPTIONS)
def test_prefect_preview_is_the_prune_check_mode(pg, prefect_db, ansible, lock_file, options):
    preview, check = preview_and_check(pg, prefect_db, ansible, lock_file, "prefect", options)
    assert_agree(preview, check)
    if options.get("flow_run_retention_days"):
        assert check["handlers"]["old_flow_runs"]["deleted"] > 0
