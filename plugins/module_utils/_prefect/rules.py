# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prefect rules: the work of Prefect's db_vacuum service, done from outside under budgets.

Prefect's tables have UUID keys, so most rules walk an indexed time column with the key as
tie-breaker (the engine's ``TimeWalk``). Rules no time index serves bring their own walks
(``walks.py``): orphaned logs and artifacts skip through the distinct flow run ids of
their ``flow_run_id`` index, logs by level walk ``log.level``'s index, and the sweep for event
resources whose event is gone trails the events handlers. Logs and artifacts have no foreign key to
``flow_run``: deleting a flow run deletes its logs and artifacts in the same transaction
(``cascade``), while task runs, states and inputs go by Prefect's own ``ON DELETE CASCADE``.
Event resources go with their events the same way where ``event_resources.event_id`` is indexed;
where it is not (Prefect 3.4), the resources sweep that trails the events handlers deletes them.
Artifact collections whose latest artifact is gone are re-pointed (or removed) once the batches are
done (``CollectionWalk``), a handler like the others.

Candidates never overlap between handlers, so check mode can add up per-handler counts and
predict the real run: level-based log retention leaves logs of flow runs the flow-run
handler owns, the orphan sweeps only see rows whose flow run is already gone, the
global event rule leaves types that have their own (shorter) retention, and the resources sweep
counts the resources of the events the events handlers counted only where they leave them to it.
"""

from __future__ import annotations

import datetime
import functools

from .._engine.timewalk import TimeWalk
from .._engine.walks import Rule, Walk
from .walks import EventsWalk, LevelWalk, OrphanSkipWalk, TrailingSweep
from .._common.tables import table_row_estimates
from .._engine.retention import utc_cutoff
from .._common.errors import InvalidRequest
from .._engine.prune import require_schema
from .._engine.retention import LOG_LEVELS, MAX_RETENTION_DAYS, check_days, default_of, log_level_settings
from .options import PREFECT_PRUNE_ARGUMENT_SPEC, TESTED_RELEASES, TESTED_REVISIONS

from .._common.connection import psycopg, sql  # None without psycopg: the module reports it

TERMINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED", "CRASHED")
# Rows younger than this are never orphans: a client may write logs while its run is being created.
ORPHAN_GRACE = datetime.timedelta(hours=1)
MAX_SUBFLOW_DEPTH = 100

MIN_OVERRIDE_DAYS = 1.0 / 24              # one hour, as Prefect requires of its retention periods

REQUIRED_COLUMNS = {
    "flow_run": ("id", "state_type", "end_time", "parent_task_run_id"),
    "task_run": ("id", "flow_run_id"),
    "log": ("id", "flow_run_id", "level", "timestamp"),
    "artifact": ("id", "key", "flow_run_id", "created", "updated", "data", "description", "type",
                 "task_run_id", "metadata_"),
    "artifact_collection": ("id", "key", "latest_id"),
    "events": ("id", "event", "occurred"),
    "event_resources": ("id", "event_id", "occurred"),
}
ROW_TABLES = ("flow_run", "log", "artifact", "artifact_collection", "events", "event_resources")


def _override_days(name, value):
    """Days of an event type's override: fractions allowed, down to one hour."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequest("%s must be a number of days, not %r" % (name, value))
    if value < MIN_OVERRIDE_DAYS or value > MAX_RETENTION_DAYS:
        raise InvalidRequest("%s=%r is out of range: use %g to %d days" % (
            name, value, MIN_OVERRIDE_DAYS, MAX_RETENTION_DAYS))
    return value


def validate_options(params):
    """Module options -> a checked plan. Everything is refused here, before the database is touched."""
    spec = PREFECT_PRUNE_ARGUMENT_SPEC
    flow_days = check_days("flow_run_retention_days", params.get("flow_run_retention_days"))
    batch = params.get("flow_run_batch_size", default_of(spec, "flow_run_batch_size"))
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 10000:
        raise InvalidRequest("flow_run_batch_size must be between 1 and 10000 flow runs per transaction")

    event_days = check_days("event_retention_days", params.get("event_retention_days",
                                                               default_of(spec, "event_retention_days")))
    overrides_in = params.get("event_retention_overrides")
    if overrides_in is None:
        overrides_in = default_of(spec, "event_retention_overrides")
    if not isinstance(overrides_in, dict):
        raise InvalidRequest("event_retention_overrides must map event types to days")
    overrides = {}
    for event_type, days in overrides_in.items():
        if not isinstance(event_type, str) or not event_type.strip() or event_type != event_type.strip():
            raise InvalidRequest("event_retention_overrides: %r is not an event type name" % (event_type,))
        days = _override_days("event_retention_overrides[%s]" % event_type, days)
        if event_days is not None:
            days = min(days, event_days)      # capped by the global retention, as Prefect does
        overrides[event_type] = days

    given, problems = log_level_settings(params.get("log_retention_days"),
                                         "ERROR and CRITICAL logs are kept with their flow run")
    if problems:
        raise InvalidRequest(problems[0])
    log_days = {}
    for level, days in given.items():
        days = check_days("log_retention_days.%s" % level, days)
        if days is not None:
            log_days[level] = days

    window = params.get("orphan_scan_window", default_of(spec, "orphan_scan_window"))
    if isinstance(window, bool) or not isinstance(window, int) or not 100 <= window <= 1_000_000:
        raise InvalidRequest("orphan_scan_window must be between 100 and 1000000 rows per statement")
    return {
        "flow_run_retention_days": flow_days,
        "flow_run_batch_size": batch,
        "prune_orphans": bool(params.get("prune_orphans", default_of(spec, "prune_orphans"))),
        "orphan_scan_window": window,
        "prune_artifact_collections": bool(params.get("prune_artifact_collections",
                                                      default_of(spec, "prune_artifact_collections"))),
        "event_retention_days": event_days,
        "event_retention_overrides": overrides if event_days is not None else {},
        "log_retention_days": log_days,
    }


def check_schema(conn, schema):
    """Raise SchemaMismatch unless ``schema`` holds the Prefect tables and columns the rules use."""
    require_schema(conn, schema, REQUIRED_COLUMNS, "Prefect", "Prefect server schema", "the Prefect database")


def leading_index_columns(conn, schema):
    """{(table, column)} for every valid index whose first key column is that column, and
    {(table, "first,second")} for its first two."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT c.relname, a.attname, b.attname FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
            " LEFT JOIN pg_attribute b ON b.attrelid = i.indrelid AND i.indnkeyatts > 1 AND b.attnum = i.indkey[1]"
            " WHERE n.nspname = %s AND i.indisvalid AND c.relname = ANY(%s)", (schema, list(REQUIRED_COLUMNS)))
        out = set()
        for table, first, second in cur.fetchall():
            out.add((table, first))
            if second:
                out.add((table, "%s,%s" % (first, second)))
        return out


def flow_run_candidate(schema, alias):
    """SQL: the flow run ``alias`` may go. Terminal, ended before %(flow_cutoff)s, and so is every ancestor.

    Prefect's vacuum takes only top-level runs and reaches subflows in later cycles, once
    deleting the parent's task run has cut them loose. Requiring every ancestor to qualify
    selects the same runs in one pass, so a re-run has nothing left to do.
    """
    a = sql.Identifier(alias)
    return sql.SQL(
        "{a}.state_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED') AND {a}.end_time IS NOT NULL"
        " AND {a}.end_time < %(flow_cutoff)s"
        " AND NOT EXISTS (WITH RECURSIVE up(ok, parent_task_run_id, depth) AS ("
        "   SELECT p.state_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED') AND p.end_time < %(flow_cutoff)s,"
        "          p.parent_task_run_id, 1"
        "   FROM {task_run} AS tr JOIN {flow_run} AS p ON p.id = tr.flow_run_id WHERE tr.id = {a}.parent_task_run_id"
        "   UNION ALL"
        "   SELECT p.state_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED') AND p.end_time < %(flow_cutoff)s,"
        "          p.parent_task_run_id, up.depth + 1"
        "   FROM up JOIN {task_run} AS tr ON tr.id = up.parent_task_run_id"
        "   JOIN {flow_run} AS p ON p.id = tr.flow_run_id"
        "   WHERE up.ok AND up.depth < {depth})"
        " SELECT 1 FROM up WHERE NOT coalesce(up.ok, false))").format(
        a=a, task_run=sql.Identifier(schema, "task_run"), flow_run=sql.Identifier(schema, "flow_run"),
        depth=sql.Literal(MAX_SUBFLOW_DEPTH))


def _orphan(schema, alias="t"):
    return sql.SQL("{a}.flow_run_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {fr} AS f WHERE f.id = {a}.flow_run_id)"
                   ).format(a=sql.Identifier(alias), fr=sql.Identifier(schema, "flow_run"))


def _aware_cutoff(days, now=None):
    """Prefect stores timestamptz: compare with an aware UTC datetime, whatever the session TimeZone."""
    return utc_cutoff(days, now).replace(tzinfo=datetime.timezone.utc)


def _now(now=None):
    return now or datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def build_rules(plan, schema, indexed, now=None):
    """The handlers of one run. ``indexed``: {(table, column)} with an index led by that column."""
    now = _now(now)
    rules = []
    window = plan["orphan_scan_window"]
    flow_days = plan["flow_run_retention_days"]
    flow_cutoff = _aware_cutoff(flow_days, now) if flow_days is not None else None
    time_walk = TimeWalk(schema)

    def walk(table, column, note=""):
        """Scan window and note for a walk along ``table.column``: bounded windows when nothing indexes it."""
        if (table, column) in indexed:
            return {"scan_limit": 0, "note": note}
        missing = "no index on %s.%s: swept in windows of %d rows" % (table, column, window)
        return {"scan_limit": window, "note": "; ".join(n for n in (note, missing) if n)}

    def cascade(pairs):
        kept = tuple(p for p in pairs if p in indexed)
        dropped = ["%s.%s" % p for p in pairs if p not in indexed]
        note = ("no index on %s: those rows are left to the orphan sweeps" % ", ".join(dropped)) if dropped else ""
        return kept, note

    if flow_days is not None:
        deps, note = cascade((("log", "flow_run_id"), ("artifact", "flow_run_id")))
        rules.append(Rule(
            name="old_flow_runs", table="flow_run", cutoff=flow_cutoff, walk=time_walk,
            time_column="end_time",
            predicate=flow_run_candidate(schema, "t"), params={"flow_cutoff": flow_cutoff}, cascade=deps,
            batch_limit=plan["flow_run_batch_size"],
            description="flow runs in a terminal state (%s) that ended more than %d days ago, with their logs and"
                        " artifacts; subflows when they and all their parents qualify"
                        % (", ".join(TERMINAL_STATES), flow_days),
            **walk("flow_run", "end_time", note)))

    if plan["prune_orphans"]:
        orphan_cutoff = (now - ORPHAN_GRACE).replace(tzinfo=datetime.timezone.utc)
        for name, table, time_column, what in (("orphaned_logs", "log", "timestamp", "logs"),
                                               ("orphaned_artifacts", "artifact", "updated", "artifacts")):
            description = "%s whose flow run no longer exists (older than one hour)" % what
            if (table, "flow_run_id") in indexed:
                rules.append(Rule(
                    name=name, table=table, cutoff=orphan_cutoff, walk=OrphanSkipWalk(schema, window),
                    time_column=time_column, scan_limit=window, description=description,
                    note="walks the distinct flow run ids of %s.flow_run_id's index, %d per statement"
                         " ('scanned' counts them), and deletes the rows of those without a flow run"
                         % (table, window)))
            else:
                rules.append(Rule(
                    name=name, table=table, cutoff=orphan_cutoff, walk=time_walk, time_column=time_column,
                    predicate=_orphan(schema), scan_limit=window, description=description,
                    note="no index on %s.flow_run_id: swept along %s.%s in windows of %d rows"
                         % (table, table, time_column, window)))

    for level, days in sorted(plan["log_retention_days"].items(), key=lambda kv: LOG_LEVELS[kv[0]]):
        # Logs of flow runs the flow-run handler owns are left to it, so counts never overlap.
        owned = sql.SQL("")
        params = {"level": LOG_LEVELS[level]}
        if flow_cutoff is not None:
            owned = sql.SQL(" AND NOT ({})").format(flow_run_candidate(schema, "f"))
            params["flow_cutoff"] = flow_cutoff
        kept_runs = sql.SQL(
            "t.flow_run_id IS NULL OR EXISTS (SELECT 1 FROM {fr} AS f WHERE f.id = t.flow_run_id{owned})").format(
            fr=sql.Identifier(schema, "flow_run"), owned=owned)
        description = "%s logs older than %d days (ERROR and CRITICAL are kept)" % (level.upper(), days)
        if ("log", "level,timestamp") in indexed:
            rules.append(Rule(
                name="logs_%s" % level, table="log", cutoff=_aware_cutoff(days, now), walk=time_walk,
                time_column="timestamp", params=params, description=description,
                predicate=sql.SQL("t.level = %(level)s AND ({})").format(kept_runs),
                note="walks an index on log (level, timestamp): reads the candidates only"))
        elif ("log", "level") in indexed:
            rules.append(Rule(
                name="logs_%s" % level, table="log", cutoff=_aware_cutoff(days, now),
                walk=LevelWalk(schema), after=("old_flow_runs",) if flow_days is not None else (),
                time_column="timestamp",
                predicate=kept_runs, params=params, description=description,
                note="walks log.level's index after old_flow_runs: reads the rows of this level only, those"
                     " still inside the retention at least once per run (an index on log (level, timestamp)"
                     " would read the candidates only)"))
        else:
            rules.append(Rule(
                name="logs_%s" % level, table="log", cutoff=_aware_cutoff(days, now), walk=time_walk,
                time_column="timestamp", params=params, scan_limit=window, description=description,
                predicate=sql.SQL("t.level = %(level)s AND ({})").format(kept_runs),
                note="no index on log.level: swept along log.timestamp in windows of %d rows" % window))

    event_days = plan["event_retention_days"]
    if event_days is not None:
        rules.extend(_event_rules(schema, plan, now, event_days, cascade, walk, window))

    if plan["prune_artifact_collections"]:
        rules.append(Rule(
            name="artifact_collections", table="artifact_collection", cutoff=None,
            walk=CollectionWalk(schema, plan, now),
            description="artifact collections whose latest artifact is gone: re-pointed to the newest"
                        " remaining version of the key, else removed"))
    return rules


def _event_rules(schema, plan, now, event_days, cascade, walk, window):
    """The events handlers (one per overridden event type, then the rest) and the sweep that trails them.

    Where ``event_resources.event_id`` is indexed, an events batch deletes its events' resources with
    them and the sweep finds orphans only. Where it is not (Prefect 3.4), the events go alone and the
    sweep deletes their resources too, once they are older than its cutoff; in check mode the events
    are still there, so the sweep counts the resources of the events the handlers counted as gone (a
    parameter read per statement, ``EventsWalk.counted_all``): the count of the real run.
    """
    deps, note = cascade((("event_resources", "event_id"),))
    events_walk = EventsWalk(schema)
    rules = []
    leaders = []            # (handler name, cutoff, alias -> SQL test of its events)
    for n, (event_type, days) in enumerate(sorted(plan["event_retention_overrides"].items())):
        name = "events_override_%d" % (n + 1)
        cutoff = (now - datetime.timedelta(days=days)).replace(tzinfo=datetime.timezone.utc)
        rules.append(Rule(
            name=name, table="events", cutoff=cutoff, walk=events_walk,
            time_column="occurred", predicate=sql.SQL("t.event = %(event_type)s"),
            params={"event_type": event_type}, cascade=deps,
            description="%s events older than %g days, with their resources" % (event_type, days),
            **walk("events", "event", note)))
        leaders.append((name, cutoff, functools.partial(_is_type, event_type)))
    overridden = sorted(plan["event_retention_overrides"])
    old_cutoff = _aware_cutoff(event_days, now)
    rules.append(Rule(
        name="old_events", table="events", cutoff=old_cutoff, walk=events_walk,
        time_column="occurred",
        predicate=sql.SQL("NOT (t.event = ANY(%(overridden)s))") if overridden else None,
        params={"overridden": overridden} if overridden else {}, cascade=deps,
        description="events older than %d days, with their resources" % event_days,
        **walk("events", "occurred", note)))
    leaders.append(("old_events", old_cutoff, functools.partial(_not_of_types, overridden)))

    gone = sql.SQL("NOT EXISTS (SELECT 1 FROM {ev} AS e WHERE e.id = t.event_id)").format(
        ev=sql.Identifier(schema, "events"))
    sweep_params = {}
    sweep_note = ("no index finds resources without their event: swept along event_resources.occurred"
                  " in windows of %d rows, behind the events handlers (what they have passed is all"
                  " that can be left)" % window)
    if not deps:
        # The events handlers leave their resources here. In check mode their events are still there: an
        # event counts as gone when its handler counted all its candidates as gone, or it is among the first
        # ones (in the walk's order) its handler counted before a budget stopped the run. In a real run
        # nothing is counted (``EventsWalk``) and the sweep sees which events are gone.
        counted = []
        events = sql.Identifier(schema, "events")
        for n, (name, cutoff, test) in enumerate(leaders):
            every, first, cut = ("counted_all_%d" % n, "counted_first_%d" % n, "events_cutoff_%d" % n)
            sweep_params[every] = functools.partial(events_walk.counted_all, name)
            sweep_params[first] = functools.partial(events_walk.counted_first, name)
            sweep_params[cut] = cutoff
            counted.append(sql.SQL(
                "({every} AND e.occurred < {cut} AND {test_e}) OR e.id IN (SELECT c.id FROM {events} AS c"
                " WHERE c.occurred < {cut} AND {test_c} ORDER BY c.occurred, c.id LIMIT {first})").format(
                every=sql.Placeholder(every), first=sql.Placeholder(first), cut=sql.Placeholder(cut),
                test_e=test("e"), test_c=test("c"), events=events))
        gone = sql.SQL("NOT EXISTS (SELECT 1 FROM {ev} AS e WHERE e.id = t.event_id AND NOT ({counted}))").format(
            ev=events, counted=sql.SQL(" OR ").join(counted))
        sweep_note += ("; the events handlers leave their resources to it (no index on event_resources.event_id):"
                       " it deletes those of the events they deleted too")
    rules.append(Rule(
        name="orphaned_event_resources", table="event_resources", cutoff=old_cutoff,
        walk=TrailingSweep(schema), after=tuple(name for name, _c, _t in leaders), time_column="occurred",
        predicate=gone, params=sweep_params, scan_limit=window, note=sweep_note,
        description="event resources older than %d days whose event is gone" % event_days))
    return rules


def _is_type(event_type, alias):
    """SQL: the event ``alias`` is of ``event_type``."""
    return sql.SQL("{}.event = {}").format(sql.Identifier(alias), sql.Literal(event_type))


def _not_of_types(event_types, alias):
    """SQL: the event ``alias`` is of none of ``event_types`` (always true for none)."""
    if not event_types:
        return sql.SQL("true")
    return sql.SQL("NOT ({}.event IN ({}))").format(
        sql.Identifier(alias), sql.SQL(", ").join(sql.Literal(t) for t in event_types))


# -- artifact collections --------------------------------------------------------------------------

def _doomed_artifact(schema, plan, alias, now):
    """SQL + params: artifact ``alias`` is deleted by this run's rules (for the check-mode prediction)."""
    a = sql.Identifier(alias)
    parts, params = [], {}
    if plan["prune_orphans"]:
        parts.append(sql.SQL("({orphan} AND {a}.updated < %(orphan_cutoff)s)").format(
            orphan=_orphan(schema, alias), a=a))
        params["orphan_cutoff"] = (_now(now) - ORPHAN_GRACE).replace(tzinfo=datetime.timezone.utc)
    if plan["flow_run_retention_days"] is not None:
        parts.append(sql.SQL("EXISTS (SELECT 1 FROM {fr} AS f WHERE f.id = {a}.flow_run_id AND {cand})").format(
            fr=sql.Identifier(schema, "flow_run"), a=a, cand=flow_run_candidate(schema, "f")))
        params["flow_cutoff"] = _aware_cutoff(plan["flow_run_retention_days"], now)
    if not parts:
        return sql.SQL("false"), params
    return sql.SQL("({})").format(sql.SQL(" OR ").join(parts)), params


def predict_collections(conn, schema, plan, limit, now=None):
    """Check mode: collections whose latest artifact is gone or will go -> (re-pointed, removed)."""
    doomed_latest, params = _doomed_artifact(schema, plan, "l", now)
    doomed_next, dummy = _doomed_artifact(schema, plan, "n", now)
    art = sql.Identifier(schema, "artifact")
    query = sql.SQL(
        "SELECT count(*) FILTER (WHERE has_next), count(*) FILTER (WHERE NOT has_next) FROM ("
        " SELECT EXISTS (SELECT 1 FROM {art} AS n WHERE n.key = c.key AND NOT {doomed_next}) AS has_next"
        " FROM {coll} AS c LEFT JOIN {art} AS l ON l.id = c.latest_id"
        " WHERE l.id IS NULL OR {doomed_latest} LIMIT %(limit)s) AS s").format(
        art=art, coll=sql.Identifier(schema, "artifact_collection"), doomed_next=doomed_next,
        doomed_latest=doomed_latest)
    params["limit"] = limit
    with conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchone()


def reconcile_collections(conn, schema, batch_size, limit):
    """Re-point collections whose latest artifact is gone to the newest remaining version, else remove them.

    One short transaction per batch; collections the application has locked are skipped.
    Returns (re-pointed, removed, left over when ``limit`` stopped us).
    """
    coll = sql.Identifier(schema, "artifact_collection")
    art = sql.Identifier(schema, "artifact")
    stale = sql.SQL("SELECT c.id, c.key FROM {coll} AS c WHERE NOT EXISTS (SELECT 1 FROM {art} AS a"
                    " WHERE a.id = c.latest_id) ORDER BY c.id LIMIT %s FOR UPDATE OF c SKIP LOCKED").format(
        coll=coll, art=art)
    # The newest version by created, as Prefect's own vacuum and artifact deletion pick it.
    repoint = sql.SQL(
        "UPDATE {coll} AS c SET latest_id = n.id, data = n.data, description = n.description, type = n.type,"
        " created = n.created, updated = n.updated, flow_run_id = n.flow_run_id, task_run_id = n.task_run_id,"
        " metadata_ = n.metadata_"
        " FROM (SELECT a.* FROM {art} AS a WHERE a.key = %s ORDER BY a.created DESC LIMIT 1) AS n"
        " WHERE c.id = %s").format(coll=coll, art=art)
    remove = sql.SQL("DELETE FROM {coll} WHERE id = %s").format(coll=coll)
    repointed = removed = 0
    seen = set()
    while True:
        room = limit - repointed - removed if limit else batch_size
        if room <= 0:
            break
        with conn.transaction():
            with conn.cursor() as cur:
                cur.execute(stale, (min(batch_size, room),))
                rows = [r for r in cur.fetchall() if r[0] not in seen]
                for coll_id, key in rows:
                    seen.add(coll_id)
                    cur.execute(repoint, (key, coll_id))
                    if cur.rowcount:
                        repointed += 1
                    else:
                        cur.execute(remove, (coll_id,))
                        removed += cur.rowcount
        if len(rows) < min(batch_size, room):
            break
    left = 0
    if limit and repointed + removed >= limit:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("SELECT count(*) FROM {coll} AS c WHERE NOT EXISTS (SELECT 1 FROM {art} AS a"
                                " WHERE a.id = c.latest_id)").format(coll=coll, art=art))
            left = cur.fetchone()[0]
    return repointed, removed, left


class CollectionWalk(Walk):
    """Artifact collections whose latest artifact is gone: re-pointed to the newest remaining version, else removed.

    Not a DELETE of candidates batch by batch but work once the batches are done (``finish``), when the
    artifacts that go are gone: in short transactions of its own, at most the budget's ``max_rows``
    collections a run; check mode predicts it. Re-pointing updates and deletes collections, so a role
    that may not fails before any batch, in check mode too.
    """

    finish_owns_transactions = True

    def __init__(self, schema, plan, now):
        super().__init__(schema)
        self.plan = plan
        self.now = now

    def start(self, state):
        state.own = 0                   # collections re-pointed

    def prepare(self, conn, state, id_ranges):
        state.done = True               # no batches: the work is done in ``finish``

    def privileges(self, rule):
        return [(rule.table, priv) for priv in ("SELECT", "UPDATE", "DELETE")]

    def remaining(self, conn, state, check_mode, precounted=None):
        state.remaining, state.remaining_exact = None, False        # it failed before it could look

    def finish(self, conn, state, check_mode, budget):
        started = datetime.datetime.now()
        limit = budget.max_rows or 0
        try:
            if check_mode:
                repointed, removed = predict_collections(conn, self.schema, self.plan, limit or None, self.now)
                left = 0
            else:
                repointed, removed, left = reconcile_collections(conn, self.schema, budget.batch_size, limit)
        except psycopg.Error:
            state.remaining, state.remaining_exact = None, False        # a failed re-pointing: backlog unknown
            raise
        finally:
            state.duration_s = (datetime.datetime.now() - started).total_seconds()
        state.own = state.updated = repointed
        state.remaining, state.remaining_exact = left, True
        state.done = not left
        state.capped_by = "max_rows" if left else ""
        return removed

    def report(self, state):
        return {"repointed": state.own}


class PrefectProfile:
    name = "prefect"
    product = "Prefect"
    tested_releases = TESTED_RELEASES
    tested_revisions = TESTED_REVISIONS

    def __init__(self, now=None):
        self.now = now

    def validate_options(self, params):
        return validate_options(params)

    def check_schema(self, conn, schema):
        check_schema(conn, schema)

    def build_rules(self, plan, schema, conn):
        # Every statement of a run is short, but the planner prices the subflow and orphan checks high
        # enough to compile them with JIT, which takes longer (seconds) than running them (milliseconds).
        with conn.cursor() as cur:
            cur.execute("SELECT set_config('jit', 'off', false)")
        return build_rules(plan, schema, leading_index_columns(conn, schema), self.now)

    def table_rows(self, conn, schema):
        return table_row_estimates(conn, schema, ROW_TABLES)

    def extra_steps(self, conn, schema, plan, check_mode, result):
        """Nothing beyond the handlers: artifact collections are one (``CollectionWalk``)."""
