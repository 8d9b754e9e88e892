# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dagster run retention: whole old runs retired, every asset view kept.

Retiring a run removes what ``DagsterInstance.delete_run`` removes (the ``runs`` row, its
``run_tags``, its ``event_logs`` rows and the ``asset_event_tags`` of its asset events) and
what ``delete_run`` leaves behind that nothing can read once the run is gone: its
``asset_check_executions`` rows, and the job and execution-plan snapshots no remaining run
(nor the lineage of a remaining job snapshot) refers to.

A finished run past its status's retention is still kept when retiring it would change
what Dagster shows or can re-execute (``KEEP_REASONS``). A re-execution group (the runs
sharing a ``dagster/root_run_id``) goes whole or stays whole, in one transaction.
"""

from __future__ import annotations

from .._common.errors import InvalidRequest
from .._engine.retention import utc_cutoff
from .._engine.retention import default_of
from .._engine.walks import IdWalk, Rule
from .retirement import RUN_STATUSES, RUNS_RULE, RunRetirement
from .options import DAGSTER_PRUNE_ARGUMENT_SPEC

try:
    from psycopg import sql
except ImportError:  # pragma: no cover - the module reports the missing driver
    sql = None

MAX_KEEP_RUNS_PER_JOB = 100_000

KEEP_REASONS = {
    "status_kept": "its status is kept forever (run_retention_days -1 or not set)",
    "newest_per_job": "one of the newest keep_runs_per_job finished runs of its job",
    "latest_asset_event": "holds the newest materialization, observation, planned or check event of an asset"
                          " (partition)",
    "latest_check_execution": "holds the newest execution of an asset check",
    "asset_last_run": "the asset catalog names it as an asset's last run",
    "ranged_plan": "holds a plan for a range of partitions (partition status reads it)",
    "backfill_in_progress": "belongs to a backfill that is not finished",
    "concurrency_slots": "still holds concurrency slots or pending steps",
    "not_finished": "a run of its re-execution group is not finished",
    "reexecution_group": "another run of its re-execution group must be kept",
    "locked": "its row was locked by the application; the next run retries",
}


def validate_run_retention(params, check_days):
    """The run-retention part of the plan, or None when it is off. Returns (plan, problems).

    A status without days (missing, or None as Ansible fills in the keys not given) keeps its runs;
    a mapping with none is off, as no mapping is.
    """
    problems = []
    setting = params.get("run_retention_days")
    keep = params.get("keep_runs_per_job")
    default_keep = default_of(DAGSTER_PRUNE_ARGUMENT_SPEC, "keep_runs_per_job")
    if isinstance(setting, dict):
        setting = {status: value for status, value in setting.items() if value is not None}
    if not setting:
        # The module's spec passes the default on every run: only another value is a mistake here.
        if keep not in (None, default_keep) and params.get("run_retention_days") is None:
            problems.append("keep_runs_per_job only applies with run_retention_days")
        return None, problems
    if not isinstance(setting, dict):
        problems.append("run_retention_days must be a mapping of run status to days, e.g."
                        " {success: 90, failure: 180, canceled: 30}")
        return None, problems
    days = {}
    for status, value in setting.items():
        key = str(status).lower()
        if key not in RUN_STATUSES:
            problems.append("unknown run status %r in run_retention_days (use %s)"
                            % (status, ", ".join(RUN_STATUSES)))
            continue
        try:
            days[key] = check_days("run_retention_days.%s" % key, value)
        except InvalidRequest as exc:
            problems.append(str(exc))
    if keep is None:
        keep = default_keep
    if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= MAX_KEEP_RUNS_PER_JOB:
        problems.append("keep_runs_per_job must be a whole number from 1 to %d, not %r: the newest run of a job"
                        " keeps its job snapshot, which a new run of the same code reuses"
                        % (MAX_KEEP_RUNS_PER_JOB, keep))
    retire_ticks = params.get("retire_run_ticks")
    if retire_ticks is None:
        retire_ticks = default_of(DAGSTER_PRUNE_ARGUMENT_SPEC, "retire_run_ticks")
    if not isinstance(retire_ticks, bool):
        problems.append("retire_run_ticks must be true or false, not %r" % (retire_ticks,))
    for status in RUN_STATUSES:
        days.setdefault(status, None)
    return {"days": days, "keep_runs_per_job": keep, "retire_run_ticks": retire_ticks is not False}, problems


def run_retention_rules(plan, schema, newer_tick, cutoff=utc_cutoff, tick_retention=()):
    """The rules of run retention: runs, then the ticks of retired runs. ``cutoff(days)`` is the clock.

    Empty when no status has a retention; ``newer_tick`` is the SQL test that a tick is not its
    instigator's newest; ``tick_retention`` the (type, status, cutoff) of every tick retention rule, whose
    ticks are theirs to delete and count.
    """
    cutoffs = {RUN_STATUSES[s]: cutoff(d) for s, d in plan["days"].items() if d is not None}
    if not cutoffs:
        return []
    described = ", ".join("%s %d days" % (s, d) for s, d in plan["days"].items() if d is not None)
    retirement = RunRetirement(schema, cutoffs, plan["keep_runs_per_job"])
    rules = [Rule(name=RUNS_RULE, table="runs", cutoff=max(cutoffs.values()), time_column="end_time",
                  walk=retirement,
                  description="finished runs past run retention (%s), newest %d per job kept, with all their rows"
                              % (described, plan["keep_runs_per_job"]))]
    if plan.get("retire_run_ticks"):
        days = min(d for d in plan["days"].values() if d is not None)
        covered = list(zip(*tick_retention)) or [(), (), ()]
        rules.append(Rule(
            name="ticks_of_retired_runs", table="job_ticks", cutoff=cutoff(days),
            predicate=_retired_run_ticks_predicate(schema, newer_tick), walk=RetiredRunTicks(schema),
            params={"retiring": retirement.counted_not_deleted, "covered_type": list(covered[0]),
                    "covered_status": list(covered[1]), "covered_cutoff": list(covered[2])}, after=(RUNS_RULE,),
            description="finished ticks older than %d days whose launched runs are all retired, except each"
                        " instigator's newest tick" % days,
            note="runs after runs_retired; counts the runs it retires (or, in check mode, would retire) as gone"))
    return rules


def retirement_of(rules):
    """The ``RunRetirement`` among ``rules``, or None when run retention is off."""
    for rule in rules:
        if isinstance(rule.walk, RunRetirement):
            return rule.walk
    return None


# The run ids a tick body names: those it launched, and those it reserved for runs it was about to
# launch. Lax JSON path with a type filter: a missing key or a JSON null names nothing.
_TICK_RUN_IDS = ('$.run_ids[*] ? (@.type() == "string")', '$.reserved_run_ids[*] ? (@.type() == "string")')


def _retired_run_ticks_predicate(schema, newer_tick):
    """Ticks that launched runs of which none is left.

    A schedule or sensor tick lists the runs it launched in its JSON body; once run retention has
    retired them all, the tick's links lead nowhere and, under Dagster's default tick retention
    (schedule and successful sensor ticks kept forever), the table would grow without end. A tick
    goes only when it is finished (not STARTED), names at least one run, none of its launched or
    reserved runs exists any more (``%(retiring)s``: runs this run retires count as gone), and its
    instigator has a later tick (``newer_tick``), so every schedule and sensor keeps its newest tick.
    Ticks that launched nothing (skipped ones) are left to ``tick_retention_days``, and so are the ticks
    past a tick retention rule's cutoff for their type and status (``%(covered_*)s``): that rule deletes
    them, so check mode counts each once, as the real run deletes it once.
    """
    named = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT jsonb_path_query(t.tick_body::jsonb, {}) #>> '{{}}'").format(sql.Literal(path))
        for path in _TICK_RUN_IDS)
    # ``= ANY (ARRAY(...))``: the tick's ids are read once and each is looked up in runs' unique run_id index.
    # Written as ``IN (subquery)`` the planner anti-joined every tick with every run, re-reading the JSON
    # for each pair (minutes for a few thousand ticks).
    return sql.SQL(
        "t.status <> 'STARTED' AND t.tick_body IS NOT NULL"
        " AND jsonb_path_exists(t.tick_body::jsonb, {launched})"
        " AND NOT EXISTS (SELECT 1 FROM {runs} AS r WHERE r.run_id = ANY (ARRAY({named}))"
        " AND r.run_id <> ALL(%(retiring)s::text[]))"
        " AND NOT EXISTS (SELECT 1 FROM unnest(%(covered_type)s::text[], %(covered_status)s::text[],"
        " %(covered_cutoff)s::timestamp[]) AS c(type, status, cutoff)"
        " WHERE c.type = t.type AND c.status = t.status AND t.timestamp < c.cutoff)"
        " AND {newer}").format(launched=sql.Literal(_TICK_RUN_IDS[0]), runs=sql.Identifier(schema, "runs"),
                               named=named, newer=newer_tick)


class RetiredRunTicks(IdWalk):
    """The id walk of ``job_ticks`` for the ticks of retired runs.

    A tick can go once its runs are gone: the rule waits for ``runs_retired`` (``after``) and treats
    the runs check mode counted as retired as gone (``retiring``). It keeps its own cursor rather than
    the table's shared frontier, which the other tick rules would otherwise wait on.
    """

    def shared_frontier(self, rule):
        return None
