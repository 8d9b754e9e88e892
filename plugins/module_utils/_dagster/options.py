# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of dagster_prune and their defaults: the module's argument spec, read by its option checks
(``rules.validate_options``) and by the health check's retention preview."""

from __future__ import annotations

from .._engine.retention import log_retention_options

# The schema revisions (alembic_version) of the Dagster releases this collection was tested on, oldest first:
# 1.9.13's head, then each migration up to 1.13.27's head.
TESTED_RELEASES = "Dagster 1.9.13 to 1.13.27"
TESTED_REVISIONS = ("7e2f3204cf8e", "f495c27d5019", "29b539ebc72a")

TICK_TYPES = ("schedule", "sensor", "auto_materialize")
TICK_STATUSES = ("skipped", "success", "failure", "started")
RUN_STATUS_KEYS = ("success", "failure", "canceled")

DAGSTER_PRUNE_ARGUMENT_SPEC = dict(
    log_retention_days=dict(type="dict", apply_defaults=True,
                            options=log_retention_options({"debug": 7, "info": 30, "warning": 90})),
    event_retention_days=dict(type="int", default=30),
    event_types=dict(type="list", elements="str"),
    prune_superseded_planned=dict(type="bool", default=True),
    # Dagster's own defaults when dagster.yaml has no retention block: a number applies to every status,
    # a mapping names statuses (the others are kept), -1 keeps.
    tick_retention_days=dict(type="dict", apply_defaults=True, options=dict(
        schedule=dict(type="raw", default=-1),
        sensor=dict(type="raw", default={"skipped": 7}),
        auto_materialize=dict(type="raw", default={"skipped": 7}),
    )),
    # Off unless given: no key has a default, a missing one keeps its runs.
    run_retention_days=dict(type="dict", options={status: dict(type="int") for status in RUN_STATUS_KEYS}),
    # The runs list and a job's run history show 25 runs to a page: a job run rarely keeps a full first page.
    keep_runs_per_job=dict(type="int", default=25),
    retire_run_ticks=dict(type="bool", default=True),
)
