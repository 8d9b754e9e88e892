# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dagster rules: what may go from a Dagster metadata database, and what never may.

Only an explicit allow-list is ever deleted. Everything else is kept, including event
types a newer Dagster adds. Rows are only deleted for runs that are finished
(SUCCESS, FAILURE, CANCELED): unfinished, suspended or unknown statuses keep all their rows.
"""

from __future__ import annotations

from .._engine.walks import IdWalk, Rule
from .._common.tables import table_row_estimates
from .._engine.retention import utc_cutoff
from .._engine.session import is_connection_lost
from .retirement import TABLES as RUN_TABLES, run_retention_metrics
from .runs import RUNS_RULE, retirement_of, run_retention_rules, validate_run_retention
from .options import DAGSTER_PRUNE_ARGUMENT_SPEC, TESTED_RELEASES, TESTED_REVISIONS, TICK_STATUSES, TICK_TYPES
from .._engine.retention import LOG_LEVELS, check_days, default_of, log_level_settings
from .._common.errors import InvalidRequest, first_line
from .._engine.prune import require_schema

from .._common.connection import psycopg, sql  # None without psycopg: the module reports it

FINISHED_RUN_STATUSES = ("SUCCESS", "FAILURE", "CANCELED")

# Framework noise: not read by run stats, step stats, the asset catalog, partition status,
# asset checks or re-execution. Each type is one handler walking the (type, id) index.
NOISE_EVENT_TYPES = (
    "HANDLED_OUTPUT",
    "LOADED_INPUT",
    "ENGINE_EVENT",
    "STEP_INPUT",
    "RESOURCE_INIT_STARTED",
    "RESOURCE_INIT_SUCCESS",
    "STEP_WORKER_STARTING",
    "STEP_WORKER_STARTED",
)

# Deletable only where it provably cannot matter (see planned_rule).
CONDITIONAL_EVENT_TYPES = ("ASSET_MATERIALIZATION_PLANNED",)

# Never deleted. Asking for any of these is an error, not a silent skip.
PROTECTED_EVENT_TYPES = (
    "ASSET_MATERIALIZATION", "ASSET_OBSERVATION", "ASSET_CHECK_EVALUATION", "ASSET_CHECK_EVALUATION_PLANNED",
    "ASSET_FAILED_TO_MATERIALIZE", "ASSET_HEALTH_CHANGED", "ASSET_WIPED",
    "STEP_START", "STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED", "STEP_UP_FOR_RETRY", "STEP_RESTARTED",
    "STEP_OUTPUT", "STEP_EXPECTATION_RESULT",
    "PIPELINE_ENQUEUED", "PIPELINE_DEQUEUED", "PIPELINE_STARTING", "PIPELINE_START", "PIPELINE_SUCCESS",
    "PIPELINE_FAILURE", "PIPELINE_CANCELING", "PIPELINE_CANCELED", "RUN_ENQUEUED", "RUN_DEQUEUED",
    "RUN_STARTING", "RUN_START", "RUN_SUCCESS", "RUN_FAILURE", "RUN_CANCELING", "RUN_CANCELED",
    "RESOURCE_INIT_FAILURE", "LOGS_CAPTURED", "HOOK_COMPLETED", "HOOK_ERRORED", "HOOK_SKIPPED",
    "ALERT_START", "ALERT_SUCCESS", "ALERT_FAILURE", "OBJECT_STORE_OPERATION", "ASSET_STORE_OPERATION",
    "RUN_WORKER_STARTED", "FRESHNESS_STATE_EVALUATION", "FRESHNESS_STATE_CHANGE",
)

# The tables and columns we rely on; a database without them is not a Dagster database.
REQUIRED_COLUMNS = {
    "event_logs": ("id", "run_id", "event", "dagster_event_type", "timestamp", "asset_key", "partition"),
    "runs": ("run_id", "status"),
    "job_ticks": ("id", "status", "type", "timestamp", "job_origin_id", "selector_id"),
    "asset_keys": ("asset_key",),
    "instigators": ("selector_id",),
}


def _tick_statuses(setting):
    """Every status's days of one instigator type's setting: a number for all, or a mapping (others kept)."""
    if isinstance(setting, dict):
        return dict({status: -1 for status in TICK_STATUSES}, **setting)
    return {status: setting for status in TICK_STATUSES}


def validate_options(params):
    """Turn module options into a checked plan; refuse protected or unknown requests before any delete.

    Every problem in the request is collected and reported at once, in one InvalidRequest, so a
    request is fixed in one go rather than one error per attempt.
    """
    problems = []

    def days(name, value, allow_keep=True):
        try:
            return check_days(name, value, allow_keep)
        except InvalidRequest as exc:
            problems.append(exc.message)
            return None

    def mapping(name):
        value = params.get(name) or {}
        if not isinstance(value, dict):
            problems.append("%s must be a mapping, not %r" % (name, value))
            return {}
        return value

    spec = DAGSTER_PRUNE_ARGUMENT_SPEC
    log_ret = {level: default_of(spec, "log_retention_days", level) for level in LOG_LEVELS}
    given, level_problems = log_level_settings(mapping("log_retention_days"),
                                               "ERROR and CRITICAL log lines are always kept")
    problems.extend(level_problems)
    log_ret.update(given)
    log_ret = {lvl: days("log_retention_days.%s" % lvl, v) for lvl, v in log_ret.items()}

    event_days = days("event_retention_days", params.get("event_retention_days", default_of(spec, "event_retention_days")))
    requested = params.get("event_types")
    if requested is None:
        requested = list(NOISE_EVENT_TYPES)
    bad_protected = [t for t in requested if t in PROTECTED_EVENT_TYPES]
    if bad_protected:
        problems.append("refusing to prune protected Dagster event type(s) %s: the UI, run history or"
                        " re-execution depend on them" % ", ".join(bad_protected))
    allowed = NOISE_EVENT_TYPES + CONDITIONAL_EVENT_TYPES
    unknown = [t for t in requested if t not in allowed and t not in PROTECTED_EVENT_TYPES]
    if unknown:
        problems.append("unknown Dagster event type(s) %s: only %s can be pruned"
                        % (", ".join(unknown), ", ".join(allowed)))
    planned = bool(params.get("prune_superseded_planned", default_of(spec, "prune_superseded_planned"))) \
        or "ASSET_MATERIALIZATION_PLANNED" in requested
    noise = [t for t in requested if t in NOISE_EVENT_TYPES]

    ticks = {kind: _tick_statuses(default_of(spec, "tick_retention_days", kind)) for kind in TICK_TYPES}
    for kind, setting in mapping("tick_retention_days").items():
        if kind not in TICK_TYPES:
            problems.append("unknown instigator type %r in tick_retention_days (use %s)"
                            % (kind, ", ".join(TICK_TYPES)))
            continue
        if isinstance(setting, dict):
            for status, tdays in setting.items():
                if str(status).lower() not in TICK_STATUSES:
                    problems.append("unknown tick status %r in tick_retention_days.%s (use %s)"
                                    % (status, kind, ", ".join(TICK_STATUSES)))
                    continue
                ticks[kind][str(status).lower()] = tdays
        else:  # one number for every status, as dagster.yaml's purge_after_days allows
            ticks[kind] = _tick_statuses(setting)
    ticks = {kind: {st: days("tick_retention_days.%s.%s" % (kind, st), d) for st, d in v.items()}
             for kind, v in ticks.items()}
    runs, run_problems = validate_run_retention(params, check_days)
    problems.extend(run_problems)
    if len(problems) == 1:
        raise InvalidRequest(problems[0], problems=problems)
    if problems:
        raise InvalidRequest("%d problems in the request, nothing was touched: %s"
                             % (len(problems), "; ".join(problems)), problems=problems)
    return {"log_retention_days": log_ret, "event_retention_days": event_days, "event_types": noise,
            "prune_superseded_planned": planned, "tick_retention_days": ticks, "run_retention": runs}


def check_schema(conn, schema):
    """Raise SchemaMismatch unless ``schema`` holds the Dagster tables and columns we rely on."""
    require_schema(conn, schema, REQUIRED_COLUMNS, "Dagster", "Dagster metadata schema", "the Dagster storage")


def _finished_run(schema):
    return sql.SQL("EXISTS (SELECT 1 FROM {runs} AS r WHERE r.run_id = t.run_id"
                   " AND r.status = ANY(%(finished)s))").format(runs=sql.Identifier(schema, "runs"))


def build_rules(plan, schema, now=None):
    """The rules of a plan. With run retention, ``runs_retired`` goes first and every ``event_logs`` rule
    waits for it (``after``), leaving alone the rows of the runs it retires: in a real run those rows are
    gone by then, and in check mode each row is counted once, by the handler that deletes it."""
    newer = _newer_tick_exists(schema)
    tick_retention = [(kind.upper(), status.upper(), utc_cutoff(tdays, now))
                      for kind, statuses in plan["tick_retention_days"].items()
                      for status, tdays in statuses.items() if tdays is not None]
    run_rules = run_retention_rules(plan["run_retention"], schema, newer, lambda d: utc_cutoff(d, now),
                                    tick_retention) if plan.get("run_retention") else []
    retirement = retirement_of(run_rules)
    rules = []
    walk = IdWalk(schema)       # every event_logs and job_ticks rule walks its table by id
    finished = _finished_run(schema)
    common = {"finished": list(FINISHED_RUN_STATUSES)}
    order = {}
    if retirement is not None:
        finished = sql.SQL("{} AND t.run_id <> ALL(%(retiring)s::text[])").format(finished)
        common["retiring"] = retirement.counted_not_deleted
        order["after"] = (RUNS_RULE,)
    for level, days in plan["log_retention_days"].items():
        if days is None:
            continue
        rules.append(Rule(
            walk=walk, name="python_logs_%s" % level, table="event_logs", cutoff=utc_cutoff(days, now),
            predicate=sql.SQL("t.dagster_event_type IS NULL AND (t.event::json ->> 'level') = %(level)s AND {}")
            .format(finished),
            params=dict(common, level=str(LOG_LEVELS[level])),
            description="Python log lines at %s older than %d days" % (level.upper(), days), **order))
    days = plan["event_retention_days"]
    if days is not None:
        for etype in plan["event_types"]:
            rules.append(Rule(
                walk=walk, name="events_%s" % etype.lower(), table="event_logs", cutoff=utc_cutoff(days, now),
                predicate=sql.SQL("t.dagster_event_type = %(etype)s AND {}").format(finished),
                params=dict(common, etype=etype),
                description="%s events older than %d days" % (etype, days), **order))
        if plan["prune_superseded_planned"]:
            rules.append(planned_rule(schema, days, now, retirement, walk))
    for tick_type, tick_status, cutoff in tick_retention:
        kind, status = tick_type.lower(), tick_status.lower()
        rules.append(Rule(
            walk=walk, name="ticks_%s_%s" % (kind, status), table="job_ticks", cutoff=cutoff,
            predicate=sql.SQL("t.type = %(tick_type)s AND t.status = %(tick_status)s AND {}").format(newer),
            params={"tick_type": tick_type, "tick_status": tick_status},
            description="%s ticks with status %s older than %d days, except each instigator's newest tick"
                        % (kind, tick_status, plan["tick_retention_days"][kind][status])))
    return run_rules + rules


def _newer_tick_exists(schema):
    """The tick is not its instigator's newest: the same instigator has a strictly later tick.

    Dagster finds an instigator's ticks by ``selector_id``, or by ``job_origin_id`` for ticks written
    without a selector id (``get_ticks``: newest first by timestamp, no tie-breaker). Its daemon purges
    only right after writing a tick, so an instigator always keeps its latest one; a stopped schedule or
    sensor must too, or the UI shows an older tick, or none, as its last. Ticks tied at the newest
    timestamp all stay, so whichever of them Dagster returns is still there. Split on NULL like
    ``planned_rule``, each probe is one range of (selector_id, timestamp) or (job_origin_id, timestamp).
    """
    ticks = sql.Identifier(schema, "job_ticks")
    return sql.SQL(
        "CASE WHEN t.selector_id IS NULL"
        " THEN EXISTS (SELECT 1 FROM {ticks} AS newer WHERE newer.job_origin_id = t.job_origin_id"
        "   AND newer.timestamp > t.timestamp)"
        " ELSE EXISTS (SELECT 1 FROM {ticks} AS newer WHERE newer.selector_id = t.selector_id"
        "   AND newer.timestamp > t.timestamp) END").format(ticks=ticks)


def newest_ticks(conn, schema):
    """(type, status, timestamp) of every instigator's newest tick(s): the ticks no tick rule deletes.

    Instigators are enumerated by skipping through the (selector_id, timestamp) and
    (job_origin_id, timestamp) indexes, one probe per instigator, so the cost follows the number
    of schedules and sensors, not the number of ticks.
    """
    query = sql.SQL("""
        WITH RECURSIVE selectors AS (
            SELECT min(selector_id) AS id FROM {ticks}
            UNION ALL
            SELECT (SELECT min(selector_id) FROM {ticks} WHERE selector_id > s.id) FROM selectors AS s
            WHERE s.id IS NOT NULL
        ), origins AS (
            SELECT min(job_origin_id) AS id FROM {ticks}
            UNION ALL
            SELECT (SELECT min(job_origin_id) FROM {ticks} WHERE job_origin_id > o.id) FROM origins AS o
            WHERE o.id IS NOT NULL
        )
        SELECT t.type, t.status, t.timestamp FROM selectors AS s
          CROSS JOIN LATERAL (SELECT max(timestamp) AS newest FROM {ticks} WHERE selector_id = s.id) AS m
          JOIN {ticks} AS t ON t.selector_id = s.id AND t.timestamp = m.newest
        UNION ALL
        SELECT t.type, t.status, t.timestamp FROM origins AS o
          CROSS JOIN LATERAL (SELECT max(timestamp) AS newest FROM {ticks} WHERE job_origin_id = o.id) AS m
          JOIN {ticks} AS t ON t.job_origin_id = o.id AND t.timestamp = m.newest AND t.selector_id IS NULL
    """).format(ticks=sql.Identifier(schema, "job_ticks"))
    with conn.cursor() as cur:
        cur.execute(query)
        return cur.fetchall()


def count_kept_newest(newest, tick_rules):
    """Per tick rule: newest ticks past the rule's retention, kept only for being their instigator's newest."""
    counts = {rule.name: 0 for rule in tick_rules}
    for tick_type, status, timestamp in newest:
        for rule in tick_rules:
            if (rule.params["tick_type"], rule.params["tick_status"]) == (tick_type, status) \
                    and timestamp is not None and timestamp < rule.cutoff:
                counts[rule.name] += 1
    return counts


def planned_rule(schema, days, now=None, retirement=None, walk=None):
    """ASSET_MATERIALIZATION_PLANNED rows that no Dagster view can read any more.

    Dagster reads planned events for (a) the latest planned run of an asset / partition and
    (b) failed or in-progress partitions: a partition whose latest planned event has no
    materialization after it. A planned row of a finished run is therefore safe to delete
    when the same asset and partition has BOTH a later planned event (so it is not the
    latest) AND a later materialization (so it cannot be the one that marks a failure).
    """
    events = sql.Identifier(schema, "event_logs")
    params = {"finished": list(FINISHED_RUN_STATUSES)}
    order = {}
    # With run retention, the rows of the runs it retires do not count (see build_rules): neither as
    # candidates nor as the later plan or materialization that makes a plan superseded.
    gone = sql.SQL("")
    if retirement is not None:
        gone = sql.SQL(" AND {a}.run_id <> ALL(%(retiring)s::text[])")
        params["retiring"] = retirement.counted_not_deleted
        order["after"] = (RUNS_RULE,)
    # "partition IS NOT DISTINCT FROM" is no index condition: each probe would walk every later
    # event of the asset. Split on NULL so (asset_key, type, partition, id) or (asset_key, type, id)
    # finds the first later row directly.
    later = sql.SQL(
        "CASE WHEN t.partition IS NULL"
        " THEN EXISTS (SELECT 1 FROM {events} AS {a} WHERE {a}.asset_key = t.asset_key"
        "   AND {a}.dagster_event_type = {etype} AND {a}.partition IS NULL AND {a}.id > t.id{gone})"
        " ELSE EXISTS (SELECT 1 FROM {events} AS {a} WHERE {a}.asset_key = t.asset_key"
        "   AND {a}.dagster_event_type = {etype} AND {a}.partition = t.partition AND {a}.id > t.id{gone}) END")
    predicate = sql.SQL(
        "t.dagster_event_type = 'ASSET_MATERIALIZATION_PLANNED' AND t.asset_key IS NOT NULL AND {finished}"
        " AND {materialized} AND {planned}").format(
        finished=sql.SQL("{}{}").format(_finished_run(schema), gone.format(a=sql.Identifier("t"))),
        materialized=later.format(events=events, a=sql.Identifier("m"), etype=sql.Literal("ASSET_MATERIALIZATION"),
                                  gone=gone.format(a=sql.Identifier("m"))),
        planned=later.format(events=events, a=sql.Identifier("p"),
                             etype=sql.Literal("ASSET_MATERIALIZATION_PLANNED"), gone=gone.format(a=sql.Identifier("p"))))
    return Rule(name="events_asset_materialization_planned_superseded", table="event_logs", walk=walk or IdWalk(schema),
                cutoff=utc_cutoff(days, now), predicate=predicate, params=params, **order,
                description="ASSET_MATERIALIZATION_PLANNED superseded by a later plan and materialization,"
                            " older than %d days" % days)


class DagsterProfile:
    name = "dagster"
    product = "Dagster"
    tested_releases = TESTED_RELEASES
    tested_revisions = TESTED_REVISIONS

    def validate_options(self, params):
        plan = validate_options(params)
        runs = tuple(t for t in RUN_TABLES if t != "event_logs") if plan.get("run_retention") else ()
        self.row_tables = ("event_logs", "job_ticks") + runs
        return plan

    def check_schema(self, conn, schema):
        check_schema(conn, schema)

    def __init__(self):
        self.tick_rules = []
        self.row_tables = ("event_logs", "job_ticks")

    def build_rules(self, plan, schema, conn):
        rules = build_rules(plan, schema)
        # Kept for extra_steps: the kept-newest count must use the very cutoffs the handlers used.
        self.tick_rules = [rule for rule in rules if rule.table == "job_ticks" and "tick_type" in rule.params]
        return rules

    def table_rows(self, conn, schema):
        return table_row_estimates(conn, schema, self.row_tables)

    @staticmethod
    def metrics(m, result, base):
        """The samples of what its own handlers report beyond rows (``_engine.metrics.prune_metrics``)."""
        run_retention_metrics(m, result, base)

    def extra_steps(self, conn, schema, plan, check_mode, result):
        """Report the ticks past retention that stayed as their instigator's newest (``ticks_kept_newest``).

        A real run never deletes a newest tick, so the count is the same before and after it and
        check mode reports what the real run will.
        """
        result["ticks_kept_newest"] = None
        if is_connection_lost(conn):
            return
        try:
            counts = count_kept_newest(newest_ticks(conn, schema), self.tick_rules)
        except psycopg.Error as exc:
            result["ticks_kept_newest_error"] = first_line(exc)
            return
        for name, kept in counts.items():
            if name in result["handlers"]:
                result["handlers"][name]["kept_newest"] = kept
        result["ticks_kept_newest"] = sum(counts.values())
