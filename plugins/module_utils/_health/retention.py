# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The retention preview: what the next prune run of the recognised orchestrator would delete,
computed by that prune module's own check-mode path (its option checks, rules and the capped
delete engine counting only)."""

from __future__ import annotations

from .._engine.runner import Runner
from .._engine.budget import Budget
from .._dagster.options import DAGSTER_PRUNE_ARGUMENT_SPEC
from .._prefect.options import PREFECT_PRUNE_ARGUMENT_SPEC
from .._airflow.options import AIRFLOW_PRUNE_ARGUMENT_SPEC

BUDGET_KEYS = ("batch_size", "max_rows")
# The orchestrators health_info previews, each keyed as its prune module's own options; each option not given
# takes that module's default (its argument spec).
RETENTION_KEYS = {
    "dagster": tuple(DAGSTER_PRUNE_ARGUMENT_SPEC) + BUDGET_KEYS,
    "prefect": tuple(PREFECT_PRUNE_ARGUMENT_SPEC) + BUDGET_KEYS,
    "airflow": tuple(AIRFLOW_PRUNE_ARGUMENT_SPEC) + BUDGET_KEYS,
}
ORCHESTRATORS = tuple(RETENTION_KEYS)


def prune_profile(name):
    """The prune profile of an orchestrator: the same option checks and rules its prune module uses."""
    if name == "dagster":
        from .._dagster.rules import DagsterProfile
        return DagsterProfile()
    if name == "prefect":
        from .._prefect.rules import PrefectProfile
        return PrefectProfile()
    if name == "airflow":
        from .._airflow.rules import AirflowProfile
        return AirflowProfile()
    raise ValueError("no prune profile for %r (known: %s)" % (name, ", ".join(ORCHESTRATORS)))


def retention_plan(profile, retention):
    """The (plan, budget) the prune module runs with when ``retention`` are its options: the option checks
    and the budget read the default of every option not given from their argument specs, as the module
    gets them from Ansible."""
    plan = profile.validate_options(retention)
    budget = Budget.from_params({k: v for k, v in retention.items() if k in BUDGET_KEYS})
    return plan, budget


def predict_retention(conn, schema, profile, plan, budget):
    """What the profile's prune module would delete next: its own check-mode path, without its lock.

    The engine in check mode only counts (index-driven, bounded by ``max_rows``); ``extra_steps`` in
    check mode only predicts (Prefect's artifact collections).
    """
    profile.check_schema(conn, schema)
    rules = profile.build_rules(plan, schema, conn)
    # The prune runs as its own role: the preview counts as if that role may delete (health's may not).
    predicted = Runner(conn, schema, budget, check_mode=True, check_privileges=False).run(rules)
    profile.extra_steps(conn, schema, plan, True, predicted)
    return {
        "settings": plan,
        "next_run_rows": predicted["deleted_total"],
        "rows_left_after_next_run": predicted["remaining_total"],
        "next_run_capped": predicted["capped"],
        "max_rows_per_run": budget.max_rows,
        "handlers": {name: {"table": h["table"], "description": h["description"], "cutoff": h["cutoff"],
                            "rows": h["deleted"], "remaining": h["remaining"],
                            "remaining_exact": h.get("remaining_exact", True), "status": h["status"],
                            "error": h["error"]}
                     for name, h in predicted["handlers"].items()},
        "method": "%s_prune's own check-mode prediction (bounded counts, capped at max_rows)" % profile.name,
    }
