# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of prefect_prune and their defaults: the module's argument spec, read by its option checks
(``rules.validate_options``) and by the health check's retention preview."""

from __future__ import annotations

from .._engine.retention import log_retention_options

# The schema revisions (alembic_version) of the Prefect releases this collection was tested on, oldest first:
# 3.4.25's head, then each migration up to 3.8.8's head.
TESTED_RELEASES = "Prefect 3.4.25 to 3.8.8"
TESTED_REVISIONS = ("9e83011d1f2a", "a1b2c3d4e5f6", "09a9e091e578", "7218aad17905", "bad1e352c597",
                    "50737cdaee36", "9e9dadc36797", "c8d5f2a71b3e", "d4a7e1c93f52")

PREFECT_PRUNE_ARGUMENT_SPEC = dict(
    # Unset keeps every flow run, as Prefect's own flow run vacuum is off by default.
    flow_run_retention_days=dict(type="int"),
    # Flow runs per transaction; each brings its task runs, states, logs and artifacts.
    flow_run_batch_size=dict(type="int", default=200),
    prune_orphans=dict(type="bool", default=True),
    orphan_scan_window=dict(type="int", default=10000),
    prune_artifact_collections=dict(type="bool", default=True),
    # Prefect's PREFECT_EVENTS_RETENTION_PERIOD.
    event_retention_days=dict(type="int", default=7),
    event_retention_overrides=dict(type="dict", default={"prefect.flow-run.heartbeat": 7}),
    # No level is pruned unless given.
    log_retention_days=dict(type="dict", apply_defaults=True, options=log_retention_options()),
)
