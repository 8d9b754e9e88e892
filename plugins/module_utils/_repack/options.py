# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The repack options: the argument spec (the one place for their defaults), each profile's tables, and the checked ``Plan``."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from .._common.connection import conninfo_from_params
from .._common.errors import InvalidRequest
from .._common.units import parse_bytes

REPACK_ARGUMENT_SPEC = dict(
    tables=dict(type="list", elements="str", default=[]), auto=dict(type="bool", default=False),
    profile=dict(type="str", default="any", choices=["any", "dagster", "prefect", "airflow"]), schema=dict(type="str", default="public"),
    min_table_size=dict(type="str", default="100MiB"), min_reclaimable_fraction=dict(type="float", default=0.3),
    min_index_reclaimable_fraction=dict(type="float", default=0.2), min_index_size=dict(type="str", default="1MiB"),
    rebuild_indexes=dict(type="bool", default=True),
    estimate_method=dict(type="str", default="auto", choices=["auto", "statistics", "pgstattuple"]),
    max_tables=dict(type="int", default=5), max_duration=dict(type="int", default=3600), table_timeout=dict(type="int", default=0),
    wait_timeout=dict(type="int", default=60), kill_backends=dict(type="bool", default=False), jobs=dict(type="int", default=0),
    repack_command=dict(type="str", default="pg_repack"), repack_host=dict(type="str"), repack_port=dict(type="int"),
    no_superuser_check=dict(type="bool", default=False),
    free_space_check=dict(type="str", default="auto"), free_space_margin=dict(type="float", default=0.2),
    cleanup_leftovers=dict(type="bool", default=False),
)

# Tables that grow and churn in each orchestrator's metadata database; the rest stay small.
PROFILE_TABLES = {
    "dagster": ("event_logs", "runs", "run_tags", "job_ticks", "asset_event_tags", "asset_keys", "asset_check_executions", "kvs",
                "snapshots", "bulk_actions", "daemon_heartbeats", "concurrency_slots", "pending_steps", "secondary_indexes",
                "instigators", "dynamic_partitions"),
    "prefect": ("log", "events", "event_resources", "artifact", "artifact_collection", "flow_run", "flow_run_state", "task_run",
                "task_run_state", "flow_run_input", "task_run_state_cache", "automation_event_follower", "csrf_token"),
    "airflow": ("task_instance", "task_instance_history", "dag_run", "xcom", "rendered_task_instance_fields", "log", "job",
                "task_reschedule", "task_map", "asset_event", "dagrun_asset_event", "callback_request", "trigger",
                "serialized_dag", "dag_version", "import_error",
                "dataset_event", "dagrun_dataset_event", "task_fail"),  # the last three: Airflow 2.11's names
}
_COUNTS = ("max_tables", "max_duration", "table_timeout", "jobs")
_SWITCHES = ("kill_backends", "no_superuser_check", "cleanup_leftovers")


@dataclass(frozen=True)
class Plan:
    """The options of one run, checked: sizes in bytes, ``command`` split like a shell, ``free_space``
    ``{"mode": "auto"|"off"}``, ``{"mode": "figure", "bytes": n}`` or ``{"mode": "path", "path": p}``."""

    tables: list
    auto: bool
    profile: str
    schema: str
    min_table_size: int
    min_reclaimable_fraction: float
    min_index_reclaimable_fraction: float
    min_index_size: int
    estimate_method: str
    max_tables: int
    max_duration: int
    table_timeout: int
    wait_timeout: int
    kill_backends: bool
    jobs: int
    command: list
    no_superuser_check: bool
    free_space: dict
    free_space_margin: float
    cleanup_leftovers: bool
    rebuild_indexes: bool

    def below_table_size(self, facts):
        """A table too small for a heap rewrite: only its indexes may be rebuilt."""
        return facts["total_bytes"] < self.min_table_size

    def indexes_may_qualify(self, facts):
        """Whether a table below min_table_size may still have an index worth rebuilding alone: its indexes and TOAST
        together are at least min_index_size (exact sizes: nothing is estimated to know it)."""
        return self.rebuild_indexes and facts["total_bytes"] - facts["heap_bytes"] >= self.min_index_size


def repack_host(params):
    """Where pg_repack connects ('' for the default socket): repack_host, else the module's own host as libpq gets it."""
    return params["repack_host"] if params.get("repack_host") is not None else conninfo_from_params(params).get("host", "")


def _given(params, name):
    """The option as given, else its default in the spec, whoever calls the core."""
    value = params.get(name)
    return REPACK_ARGUMENT_SPEC[name]["default"] if value is None else value


def _within(name, value, low, high=None):
    """``value`` of the option ``name`` when it is at least ``low`` (and at most ``high``); InvalidRequest otherwise."""
    if not (low <= value and (high is None or value <= high)):  # NaN too
        raise InvalidRequest("%s must be %s, not %r" % (name, "%s or more" % low if high is None else "between %s and %s" % (low, high), value))
    return value


def validate_options(params):
    """The ``Plan`` of the parameters, checked before the lockfile is taken: a bad request changes nothing."""
    tables = [t.strip() for t in (params.get("tables") or []) if t and t.strip()]
    auto = bool(params.get("auto"))
    if auto and tables:
        raise InvalidRequest("give either tables or auto: true, not both")
    if not auto and not tables:
        raise InvalidRequest("nothing to repack: list tables, or set auto: true to choose them by profile")
    fraction, index_fraction = (_within(name, float(_given(params, name)), 0, 1)
                                for name in ("min_reclaimable_fraction", "min_index_reclaimable_fraction"))
    margin = _within("free_space_margin", float(_given(params, "free_space_margin")), 0)
    counts = {name: int(_within(name, _given(params, name), 0)) for name in _COUNTS}
    wait_timeout = _within("wait_timeout", int(_given(params, "wait_timeout")), 1)
    try:
        command = shlex.split(_given(params, "repack_command"))
    except ValueError as exc:
        raise InvalidRequest("repack_command cannot be parsed: %s" % exc)
    if not command:
        raise InvalidRequest("repack_command is empty")
    free = _given(params, "free_space_check").strip()
    free_check = ({"mode": "path", "path": free} if free.startswith("/") else {"mode": free} if free in ("auto", "off")
                  else {"mode": "figure", "bytes": parse_bytes(free, "free_space_check")})
    return Plan(
        tables=tables, auto=auto, profile=_given(params, "profile"), schema=_given(params, "schema"),
        min_table_size=parse_bytes(_given(params, "min_table_size"), "min_table_size"), min_reclaimable_fraction=fraction,
        min_index_reclaimable_fraction=index_fraction, min_index_size=parse_bytes(_given(params, "min_index_size"), "min_index_size"),
        estimate_method=_given(params, "estimate_method"), wait_timeout=wait_timeout, command=command, free_space=free_check,
        free_space_margin=margin, rebuild_indexes=bool(_given(params, "rebuild_indexes")),
        **counts, **{name: bool(_given(params, name)) for name in _SWITCHES})
