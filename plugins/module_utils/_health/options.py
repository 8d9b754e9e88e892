# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of a health check and their validation, done in full before any connection."""

from __future__ import annotations

from .._common.errors import InvalidRequest
from .flags import DEFAULT_THRESHOLDS
from .retention import ORCHESTRATORS, RETENTION_KEYS, prune_profile, retention_plan

HEALTH_ARGUMENT_SPEC = dict(
    schema=dict(type="str", default="public"),
    profile=dict(type="str", default="auto", choices=["auto"] + list(ORCHESTRATORS) + ["none"]),
    fail_on_unavailable=dict(type="bool", default=True),
    disk_path=dict(type="path"),
    history_file=dict(type="path"),
    history_days=dict(type="int", default=30),
    top_tables=dict(type="int", default=20),
    top_indexes=dict(type="int", default=20),
    exact_count_limit=dict(type="int", default=1_000_000),
    # Every red-flag threshold, with its default (the guide's): ansible-doc lists them.
    thresholds=dict(type="dict", apply_defaults=True,
                    options={name: dict(type="raw", default=value) for name, value in DEFAULT_THRESHOLDS.items()}),
    dagster_retention=dict(type="dict", default={}),
    prefect_retention=dict(type="dict", default={}),
    airflow_retention=dict(type="dict", default={}),
    # The last real prune's JSON report (its report_file): the measured pace of the drain estimate.
    prune_report_file=dict(type="path"),
)


def validate_options(params):
    """Check every option before connecting; return the thresholds in force and, per orchestrator,
    the (plan, budget) of its retention preview."""
    thresholds = dict(DEFAULT_THRESHOLDS)
    for key, value in (params.get("thresholds") or {}).items():
        if key not in DEFAULT_THRESHOLDS:
            raise InvalidRequest("unknown threshold %r (known: %s)" % (key, ", ".join(sorted(DEFAULT_THRESHOLDS))))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise InvalidRequest("threshold %s must be a number >= 0, not %r" % (key, value))
        thresholds[key] = value
    for name in ("top_tables", "top_indexes", "history_days"):
        value = params.get(name, HEALTH_ARGUMENT_SPEC[name]["default"])
        if value is None or value < 1:
            raise InvalidRequest("%s must be 1 or more" % name)
    if params.get("exact_count_limit", 0) is None or params.get("exact_count_limit", 0) < 0:
        raise InvalidRequest("exact_count_limit must be 0 or more rows")
    for name, known in RETENTION_KEYS.items():
        option = "%s_retention" % name
        unknown = [k for k in (params.get(option) or {}) if k not in known]
        if unknown:
            raise InvalidRequest("unknown key(s) %s in %s (known: %s)"
                                 % (", ".join(map(str, unknown)), option, ", ".join(known)))
    plans = {name: retention_plan(prune_profile(name), params.get("%s_retention" % name) or {})
             for name in ORCHESTRATORS}
    return thresholds, plans
