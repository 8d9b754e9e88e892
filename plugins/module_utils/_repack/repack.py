# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pg_repack driver: choose tables worth repacking, check each one before touching it,
run pg_repack one table at a time and say exactly what happened to each.

pg_repack exits 0 when it skips a table (no key, lock timeout, leftovers of an earlier run), so
the exit code proves nothing: every table's outcome comes from pg_repack's stderr *and* from the
table's relfilenode, which a real repack always changes.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time

from .._common.units import LINE_POINTER, PAGE_HEADER, PAGE_SIZE, human_bytes, maxalign, parse_bytes, quoted_name
from .._common.connection import conninfo_from_params, connect, redact, server_facts
from .._common.errors import InvalidRequest, LockBusy, PgtidyError, first_line
from .._common.lock import AdvisoryLock, LockFile
from .._common.report import Metrics, check_output_files
from .indexes import estimate_indexes, index_filenodes, reclaimable_fraction

try:
    import psycopg
    from psycopg import sql
except ImportError:  # pragma: no cover - the module reports the missing driver
    psycopg = None
    sql = None

REPACK_ARGUMENT_SPEC = dict(
    tables=dict(type="list", elements="str", default=[]),
    auto=dict(type="bool", default=False),
    profile=dict(type="str", default="any", choices=["any", "dagster", "prefect"]),
    schema=dict(type="str", default="public"),
    min_table_size=dict(type="str", default="100MiB"),
    min_reclaimable_fraction=dict(type="float", default=0.3),
    min_index_reclaimable_fraction=dict(type="float", default=0.2),
    min_index_size=dict(type="str", default="1MiB"),
    rebuild_indexes=dict(type="bool", default=True),
    estimate_method=dict(type="str", default="auto", choices=["auto", "statistics", "pgstattuple"]),
    max_tables=dict(type="int", default=5),
    max_duration=dict(type="int", default=3600),
    table_timeout=dict(type="int", default=0),
    wait_timeout=dict(type="int", default=60),
    kill_backends=dict(type="bool", default=False),
    jobs=dict(type="int", default=0),
    repack_command=dict(type="str", default="pg_repack"),
    repack_host=dict(type="str"),
    repack_port=dict(type="int"),
    no_superuser_check=dict(type="bool", default=False),
    free_space_check=dict(type="str", default="auto"),
    free_space_margin=dict(type="float", default=0.2),
    cleanup_leftovers=dict(type="bool", default=False),
)

# Tables that grow and churn in each orchestrator's metadata database; the rest stay small.
PROFILE_TABLES = {
    "dagster": ("event_logs", "runs", "run_tags", "job_ticks", "asset_event_tags", "asset_keys",
                "asset_check_executions", "kvs", "snapshots", "bulk_actions", "daemon_heartbeats",
                "concurrency_slots", "pending_steps", "secondary_indexes", "instigators", "dynamic_partitions"),
    "prefect": ("log", "events", "event_resources", "artifact", "artifact_collection", "flow_run",
                "flow_run_state", "task_run", "task_run_state", "flow_run_input", "task_run_state_cache",
                "automation_event_follower", "csrf_token"),
}

TUPLE_HEADER = 23

# Statistics are stale once more rows changed since the last ANALYZE than autovacuum itself tolerates
# before it analyzes a table (the defaults of autovacuum_analyze_scale_factor and _threshold).
STALE_FRACTION = 0.1
STALE_ROWS = 50

# How long pg_repack gets to clean up after SIGINT before it is killed outright.
INTERRUPT_GRACE_S = 30

LOCAL_HOSTS = ("", "localhost", "127.0.0.1", "::1")

# pg_repack (1.4.x) stderr lines we understand; anything else is reported verbatim.
_NO_KEY = re.compile(r'WARNING: relation "(?P<rel>[^"]+)" must have a primary key or not-null unique keys')
_LOCK_TIMEOUT = re.compile(r"INFO: Skipping repack (?P<rel>\S+) due to timeout")
_TRIGGER_LEFT = re.compile(r'WARNING: the table "(?P<rel>[^"]+)" already has a trigger called')
# "repacking table" for a rewrite, "repacking index" for each index given with --index.
_REPACKING = re.compile(r'INFO: repacking (?:table|index|indexes of) "')
_VERSION = re.compile(r"pg_repack\s+(?P<version>\d+(?:\.\d+)+)")


class RepackFailed(PgtidyError):
    """At least one table failed; every other table was still processed and is in the details."""

    kind = "repack_failed"


class VersionMismatch(PgtidyError):
    kind = "version_mismatch"


class RepackUnavailable(PgtidyError):
    """The pg_repack client cannot be run at all."""

    kind = "repack_unavailable"


def _ident(*names):
    return sql.Identifier(*names)


def _given(params, name):
    """The option as given, else the module's default: one place for the defaults, whoever calls the core."""
    value = params.get(name)
    return REPACK_ARGUMENT_SPEC[name]["default"] if value is None else value


def _fraction(params, name):
    value = float(_given(params, name))
    if not 0 <= value <= 1:
        raise InvalidRequest("%s must be between 0 and 1, not %r" % (name, value))
    return value


def validate_options(params):
    """Everything checked before the lockfile is taken: a bad request changes nothing."""
    tables = [t.strip() for t in (params.get("tables") or []) if t and t.strip()]
    auto = bool(params.get("auto"))
    if auto and tables:
        raise InvalidRequest("give either tables or auto: true, not both")
    if not auto and not tables:
        raise InvalidRequest("nothing to repack: list tables, or set auto: true to choose them by profile")
    fraction = _fraction(params, "min_reclaimable_fraction")
    index_fraction = _fraction(params, "min_index_reclaimable_fraction")
    margin = float(_given(params, "free_space_margin"))
    if margin < 0:
        raise InvalidRequest("free_space_margin must not be negative")
    for name in ("max_tables", "max_duration", "table_timeout", "jobs"):
        if (params.get(name) or 0) < 0:
            raise InvalidRequest("%s must be 0 or more" % name)
    wait_timeout = int(_given(params, "wait_timeout"))
    if wait_timeout < 1:
        raise InvalidRequest("wait_timeout must be at least 1 second")
    command = params.get("repack_command") or "pg_repack"
    try:
        prefix = shlex.split(command)
    except ValueError as exc:
        raise InvalidRequest("repack_command cannot be parsed: %s" % exc)
    if not prefix:
        raise InvalidRequest("repack_command is empty")
    free = (params.get("free_space_check") or "auto").strip()
    free_check = {"mode": free}
    if free not in ("auto", "off") and not free.startswith("/"):
        free_check = {"mode": "figure", "bytes": parse_bytes(free, "free_space_check")}
    elif free.startswith("/"):
        free_check = {"mode": "path", "path": free}
    return {
        "tables": tables,
        "auto": auto,
        "profile": params.get("profile") or "any",
        "schema": params.get("schema") or "public",
        "min_table_size": parse_bytes(params.get("min_table_size") or 0, "min_table_size"),
        "min_reclaimable_fraction": fraction,
        "min_index_reclaimable_fraction": index_fraction,
        "min_index_size": parse_bytes(_given(params, "min_index_size"), "min_index_size"),
        "estimate_method": params.get("estimate_method") or "auto",
        "max_tables": int(params.get("max_tables") or 0),
        "max_duration": int(params.get("max_duration") or 0),
        "table_timeout": int(params.get("table_timeout") or 0),
        "wait_timeout": wait_timeout,
        "kill_backends": bool(params.get("kill_backends")),
        "jobs": int(params.get("jobs") or 0),
        "command": prefix,
        "no_superuser_check": bool(params.get("no_superuser_check")),
        "free_space": free_check,
        "free_space_margin": margin,
        "cleanup_leftovers": bool(params.get("cleanup_leftovers")),
        "rebuild_indexes": params.get("rebuild_indexes") is not False,
    }


# -- the pg_repack command line ------------------------------------------------------------------

# libpq keywords pg_repack can only receive through the environment (it takes no conninfo string).
_LIBPQ_ENV = {
    "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL", "connect_timeout": "PGCONNECT_TIMEOUT", "target_session_attrs": "PGTARGETSESSIONATTRS",
    "options": "PGOPTIONS", "passfile": "PGPASSFILE", "password": "PGPASSWORD", "gssencmode": "PGGSSENCMODE",
    "krbsrvname": "PGKRBSRVNAME", "service": "PGSERVICE", "sslcompression": "PGSSLCOMPRESSION",
    "requiressl": "PGREQUIRESSL", "channel_binding": "PGCHANNELBINDING",
}


def repack_invocation(params, plan, dbname):
    """(argv prefix without table options, environment). The password only ever goes into the
    environment (PGPASSWORD), never onto the command line where `ps` would show it."""
    kw = conninfo_from_params(params, dbname)
    argv = list(plan["command"])
    host = params.get("repack_host")
    if host is None:
        host = kw.get("host", "")
    port = params.get("repack_port") or kw.get("port")
    if host:
        argv += ["--host", host]
    if port:
        argv += ["--port", str(port)]
    argv += ["--username", kw["user"], "--dbname", kw["dbname"], "--no-password"]
    env = dict(os.environ)
    for key, value in kw.items():
        name = _LIBPQ_ENV.get(key)
        if name:
            env[name] = value
    return argv, env


def client_version(plan, env):
    argv = list(plan["command"]) + ["--version"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
    except FileNotFoundError:
        raise RepackUnavailable("cannot run %r: command not found. Install the pg_repack client (Debian:"
                                " postgresql-<major>-repack) or set repack_command" % plan["command"][0])
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RepackUnavailable("cannot run %s: %s" % (" ".join(argv), exc))
    text = (proc.stdout + proc.stderr).strip()
    match = _VERSION.search(text)
    if proc.returncode != 0 or not match:
        raise RepackUnavailable("%s did not report a pg_repack version (exit %d): %s"
                                % (" ".join(argv), proc.returncode, text[:300]))
    return match.group("version")


# -- reading the database ------------------------------------------------------------------------

def extension_version(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_repack'")
        row = cur.fetchone()
    return row[0] if row else None


def has_pgstattuple(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pgstattuple'")
        row = cur.fetchone()
    return row[0] if row else None


def active_repack_sessions(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT pid, backend_start::text FROM pg_stat_activity WHERE application_name = 'pg_repack'"
                    " AND datname = current_database() AND pid <> pg_backend_pid()")
        return [{"pid": r[0], "since": r[1]} for r in cur.fetchall()]


def find_leftovers(conn):
    """Objects an interrupted pg_repack leaves: its log/copy tables in the ``repack`` schema, the
    trigger on the user table, and invalid ``index_<oid>`` indexes of an index-only repack."""
    found = []
    with conn.cursor() as cur:
        cur.execute(
            "SELECT c.relname, substring(c.relname from '^(?:log|table)_([0-9]+)$')::oid AS target,"
            " t.oid IS NOT NULL AS target_exists, tn.nspname, t.relname"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " LEFT JOIN pg_class t ON t.oid = substring(c.relname from '^(?:log|table)_([0-9]+)$')::oid"
            " LEFT JOIN pg_namespace tn ON tn.oid = t.relnamespace"
            " WHERE n.nspname = 'repack' AND c.relkind = 'r' AND c.relname ~ '^(log|table)_[0-9]+$'"
            " ORDER BY c.relname")
        for relname, target, exists, tschema, tname in cur.fetchall():
            found.append({"kind": "work_table", "object": "repack.%s" % relname, "target_oid": int(target),
                          "schema": tschema, "table": tname, "target_exists": bool(exists)})
        cur.execute(
            "SELECT tg.tgname, n.nspname, c.relname, c.oid FROM pg_trigger tg"
            " JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE tg.tgname ~ 'repack_trigger$' AND NOT tg.tgisinternal ORDER BY 2, 3")
        for tgname, schema, table, oid in cur.fetchall():
            found.append({"kind": "trigger", "object": "%s on %s.%s" % (tgname, schema, table), "trigger": tgname,
                          "target_oid": int(oid), "schema": schema, "table": table, "target_exists": True})
        cur.execute(
            "SELECT n.nspname, i.relname, t.relname, t.oid FROM pg_index x"
            " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
            " JOIN pg_namespace n ON n.oid = i.relnamespace"
            " WHERE NOT x.indisvalid AND i.relname ~ '^index_[0-9]+$' AND n.nspname <> 'repack' ORDER BY 1, 2")
        for schema, index, table, oid in cur.fetchall():
            found.append({"kind": "invalid_index", "object": "%s.%s" % (schema, index), "index": index,
                          "target_oid": int(oid), "schema": schema, "table": table, "target_exists": True})
    for item in found:
        item["fix"] = leftover_fix(item)
    return found


def leftover_fix(item):
    """The statement that removes one leftover (also what cleanup_leftovers runs)."""
    if item["kind"] == "invalid_index":
        return "DROP INDEX CONCURRENTLY IF EXISTS %s" % quoted_name(item["schema"], item["index"])
    if item["target_exists"]:
        # repack_drop(oid, 4) is pg_repack's own cleanup: log table, pk type, trigger, copy table.
        return "SELECT repack.repack_drop(%d, 4)" % item["target_oid"]
    return "DROP TABLE IF EXISTS %s CASCADE" % quoted_name("repack", item["object"].split(".", 1)[1])


def clean_leftovers(conn, leftovers):
    """Remove the leftovers found; return what was cleaned and what could not be."""
    cleaned, errors, done = [], [], set()
    for item in leftovers:
        statement = item["fix"]
        if statement in done:
            cleaned.append(item["object"])
            continue
        try:
            with conn.cursor() as cur:
                if item["kind"] == "invalid_index":
                    cur.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
                        _ident(item["schema"], item["index"])))
                elif item["target_exists"]:
                    cur.execute("SELECT repack.repack_drop(%s::oid, 4)", (item["target_oid"],))
                else:
                    cur.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(
                        _ident("repack", item["object"].split(".", 1)[1])))
            done.add(statement)
            cleaned.append(item["object"])
        except Exception as exc:  # a lock timeout on one table must not stop the others
            errors.append({"object": item["object"], "error": str(exc).strip()})
    return cleaned, errors


_TABLE_FACTS_SQL = """
SELECT c.oid, n.nspname, c.relname, c.relkind, c.relpages, c.reltuples, c.relfilenode,
       pg_relation_size(c.oid) AS heap_bytes,
       pg_total_relation_size(c.oid) AS total_bytes,
       COALESCE((SELECT substring(o from '^fillfactor=([0-9]+)$')::int
                 FROM unnest(c.reloptions) o WHERE o LIKE 'fillfactor=%%'), 100) AS fillfactor,
       (SELECT count(*) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
         AS ncols,
       (SELECT count(*) FROM pg_stats s WHERE s.schemaname = n.nspname AND s.tablename = c.relname
          AND NOT s.inherited) AS nstats,
       (SELECT COALESCE(sum(s.avg_width * (1 - s.null_frac)), 0) FROM pg_stats s
          WHERE s.schemaname = n.nspname AND s.tablename = c.relname AND NOT s.inherited) AS data_width,
       (SELECT bool_or(s.null_frac > 0) FROM pg_stats s WHERE s.schemaname = n.nspname
          AND s.tablename = c.relname AND NOT s.inherited) AS has_nulls,
       EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = c.oid AND x.indisvalid AND x.indisunique
               AND x.indpred IS NULL AND x.indexprs IS NULL
               AND (x.indisprimary OR NOT EXISTS (
                     SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                     AND a.attnum = ANY (x.indkey) AND NOT a.attnotnull))) AS has_key,
       ARRAY(SELECT i.relname::text FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
             WHERE x.indrelid = c.oid AND NOT x.indisvalid AND i.relname !~ '^index_[0-9]+$'
             ORDER BY 1) AS invalid_indexes,
       CASE WHEN c.reltablespace = 0 THEN '' ELSE pg_tablespace_location(c.reltablespace) END AS tablespace_path,
       COALESCE(pg_stat_get_mod_since_analyze(c.oid), 0) AS mod_since_analyze
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
"""

_FACT_KEYS = ("oid", "schema", "table", "relkind", "relpages", "reltuples", "relfilenode", "heap_bytes",
              "total_bytes", "fillfactor", "ncols", "nstats", "data_width", "has_nulls", "has_key",
              "invalid_indexes", "tablespace_path", "mod_since_analyze")


def _facts(cur, where, args):
    cur.execute(_TABLE_FACTS_SQL + where, args)
    return [dict(zip(_FACT_KEYS, row)) for row in cur.fetchall()]


def resolve_tables(conn, plan):
    """Facts of the tables to consider: the explicit list (each must exist) or the profile's tables."""
    with conn.cursor() as cur:
        if plan["tables"]:
            result = []
            for name in plan["tables"]:
                schema, dummy, table = name.rpartition(".")
                schema = schema or plan["schema"]
                rows = _facts(cur, " WHERE n.nspname = %s AND c.relname = %s", (schema, table))
                if not rows:
                    raise InvalidRequest("table %s.%s does not exist in this database; nothing was repacked"
                                         % (schema, table), table="%s.%s" % (schema, table))
                if rows[0]["relkind"] not in ("r", "m"):
                    raise InvalidRequest("%s.%s is not a plain table (relkind %s); pg_repack cannot repack it"
                                         % (schema, table, rows[0]["relkind"]))
                if rows[0] not in result:
                    result.append(rows[0])
            return result
        if plan["profile"] == "any":
            return _facts(cur, " WHERE n.nspname = %s AND c.relkind = 'r' ORDER BY c.relname", (plan["schema"],))
        return _facts(cur, " WHERE n.nspname = %s AND c.relkind = 'r' AND c.relname = ANY(%s) ORDER BY c.relname",
                      (plan["schema"], list(PROFILE_TABLES[plan["profile"]])))


def statistics_state(facts):
    """Whether the planner's statistics describe the table as it is now: ``current``, ``stale`` (more rows
    changed since the last ANALYZE than autovacuum tolerates, as after a big prune) or ``missing``."""
    if _statistics_missing(facts):
        return "missing"
    if facts["mod_since_analyze"] > STALE_FRACTION * facts["reltuples"] + STALE_ROWS:
        return "stale"
    return "current"


def _statistics_missing(facts):
    reltuples = facts["reltuples"]
    return reltuples is None or reltuples < 0 or (reltuples > 0 and not facts["nstats"])


def _statistics_problem(facts, state):
    if state == "missing":
        return "the table has no planner statistics (never analyzed)"
    return ("the planner statistics are stale: %d rows changed since the last ANALYZE, which counted %d"
            % (facts["mod_since_analyze"], facts["reltuples"]))


def analyze_table(conn, facts):
    """ANALYZE one table. Returns what PostgreSQL said when it refused or failed, '' when it ran.

    A role that may not analyze the table gets a WARNING, not an error, so warnings are collected too.
    ANALYZE changes no rows; it samples the table and rewrites its planner statistics.
    """
    said = []

    def keep(diag):
        if diag.severity_nonlocalized == "WARNING" and diag.message_primary:
            said.append(diag.message_primary)

    conn.add_notice_handler(keep)
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("ANALYZE {}").format(_ident(facts["schema"], facts["table"])))
    except psycopg.Error as exc:
        said.append(first_line(exc))
    finally:
        conn.remove_notice_handler(keep)
    return "; ".join(said)


def estimate_from_statistics(facts):
    """Reclaimable heap bytes from the planner's statistics (pg_class + pg_stats widths).

    The expected tuple is header + null bitmap + the average column widths, MAXALIGNed, plus
    its line pointer; pages hold as many as the fillfactor allows. Whatever the heap holds
    beyond the pages the live rows need is counted as reclaimable. Needs an analyzed table
    (None without statistics); an analyzed table without rows is all reclaimable.
    """
    if _statistics_missing(facts):
        return None
    header = TUPLE_HEADER + (((facts["ncols"] + 7) // 8) if facts["has_nulls"] else 0)
    tuple_bytes = maxalign(maxalign(header) + float(facts["data_width"])) + LINE_POINTER
    usable = (PAGE_SIZE - PAGE_HEADER) * facts["fillfactor"] / 100.0
    per_page = max(1, int(usable // tuple_bytes))
    expected_pages = -(-int(facts["reltuples"]) // per_page)
    return max(0, facts["heap_bytes"] - expected_pages * PAGE_SIZE)


def estimate_with_pgstattuple(conn, facts, schema_of_ext):
    """Reclaimable heap bytes measured by pgstattuple_approx (free + dead space, less the
    fillfactor reserve a fresh copy keeps free). Reads the pages the visibility map cannot skip."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT approx_free_space + dead_tuple_len FROM {}.pgstattuple_approx(%s::regclass)")
                    .format(_ident(schema_of_ext)), (facts["oid"],))
        free = cur.fetchone()[0]
    reserve = facts["heap_bytes"] * (100 - facts["fillfactor"]) / 100.0
    return max(0, int(free - reserve))


def free_space(conn, plan, params, facts):
    """Free bytes where the table lives, or None with the reason when it cannot be known."""
    mode = plan["free_space"]["mode"]
    if mode == "off":
        return None, "free_space_check is off"
    if mode == "figure":
        return plan["free_space"]["bytes"], "given figure"
    if mode == "path":
        path = plan["free_space"]["path"]
    else:
        host = params.get("repack_host") if params.get("repack_host") is not None else (
            params.get("login_unix_socket") or params.get("login_host") or "")
        if not (host in LOCAL_HOSTS or host.startswith("/")):
            return None, "database host %s is not local; set free_space_check to a path or a figure" % host
        path = facts.get("tablespace_path")
        if not path:
            with conn.cursor() as cur:
                cur.execute("SELECT current_setting('data_directory', true)")
                path = cur.fetchone()[0]
    if not path or not os.path.exists(path):
        return None, "path %s is not visible from here; set free_space_check to a path or a figure" % path
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize, "statvfs %s" % path


# -- one pg_repack run ---------------------------------------------------------------------------

def run_pg_repack(argv, env, timeout):
    """Run pg_repack; on timeout interrupt it (SIGINT lets it drop its temporary objects), then kill.
    Returns (returncode, stderr text, interrupted)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        out, err = proc.communicate(timeout=timeout or None)
        return proc.returncode, (out or "") + (err or ""), False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=INTERRUPT_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        return proc.returncode, (out or "") + (err or ""), True


def classify_output(returncode, output, rewritten, dry_run=False):
    """(status, reason, error) of one table from pg_repack's output and whether the table was rewritten."""
    if returncode != 0:
        errors = [line for line in output.splitlines() if "ERROR" in line or "FATAL" in line]
        return "failed", "error", ("\n".join(errors) or output.strip() or "pg_repack exited %d" % returncode)
    if _NO_KEY.search(output):
        return "skipped", "no_key", ""
    if _LOCK_TIMEOUT.search(output):
        return "skipped", "lock_timeout", ""
    if _TRIGGER_LEFT.search(output):
        return "skipped", "leftovers", ""
    warnings = [line for line in output.splitlines() if line.startswith("WARNING")]
    if dry_run:
        if _REPACKING.search(output) and not warnings:
            return "repacked", "", ""
        return "skipped", "warning", "\n".join(warnings) or output.strip()
    if rewritten:
        return "repacked", "", ""
    if warnings:
        return "skipped", "warning", "\n".join(warnings)
    return "failed", "not_rewritten", ("pg_repack exited 0 but the table was not rewritten: %s"
                                       % (output.strip() or "(no output)"))


SKIP_FIXES = {
    "no_key": "add a primary key or a unique index on NOT NULL columns",
    "lock_timeout": "another session held a conflicting lock for longer than wait_timeout; retry later,"
                    " raise wait_timeout, or set kill_backends: true",
    "invalid_index": "rebuild or drop the invalid index (REINDEX INDEX CONCURRENTLY ... or DROP INDEX ...)",
    "leftovers": "remove the leftovers of an interrupted pg_repack (see leftovers[].fix) or set"
                 " cleanup_leftovers: true",
    "insufficient_disk": "free disk space, or repack a smaller table first",
    "below_threshold": "none needed: not worth a rewrite now (min_table_size, min_reclaimable_fraction; set both"
                       " to 0 to force one)",
    "interrupted": "pg_repack ran past table_timeout and was interrupted; raise table_timeout",
}

# What each reason means, for the one-line warnings when the table's own error is empty.
REASON_TEXT = {
    "no_key": "no primary key nor unique index on NOT NULL columns",
    "lock_timeout": "pg_repack gave up waiting for a lock after wait_timeout",
    "invalid_index": "the table has an invalid index",
    "leftovers": "leftovers of an interrupted pg_repack are on the table",
    "insufficient_disk": "not enough free disk for a copy",
    "warning": "pg_repack printed a warning",
}

# Outcomes nobody has to act on: the table is simply not worth a rewrite now.
QUIET_REASONS = ("below_threshold",)


def outcome_messages(result):
    """(msg, action_needed) of a run: one line saying what happened to every table, and one line per
    thing a person has to act on (a whole run skipped, a table skipped or failed for a reason that has
    a fix, leftovers). The module shows the second as warnings: Ansible prints warnings without -v,
    but neither the msg of an ok task nor anything of a skipped one."""
    if result.get("skipped"):
        return result["skip_reason"], [result["skip_reason"]]
    check = result.get("check_mode")
    tables = result.get("tables") or {}
    parts = []
    if result["repacked"]:
        parts.append("%s (%s %s)" % (_what_was_repacked(result["repacked"], tables, check),
                                     "estimated" if check else "reclaimed", human_bytes(result["reclaimed_bytes"])))
    else:
        parts.append("nothing would be repacked" if check else "nothing repacked")
    unmatched = _nothing_matched(result)
    if unmatched:
        parts[-1] += ": " + unmatched
    for status, label in (("skipped", "skipped"), ("failed", "failed"), ("deferred", "deferred to the next run")):
        named = ["%s (%s)" % (name, t["reason"]) for name, t in tables.items() if t["status"] == status]
        if named:
            parts.append("%s %s" % (label, ", ".join(named)))
    if result.get("candidates_below_threshold"):
        parts.append("%d more below the thresholds" % result["candidates_below_threshold"])
    if result.get("leftovers"):
        parts.append("%d leftovers of an interrupted pg_repack (see leftovers)" % len(result["leftovers"]))
    action = []
    for name, t in tables.items():
        if t["status"] in ("skipped", "failed") and t["reason"] not in QUIET_REASONS:
            what = (t.get("error") or REASON_TEXT.get(t["reason"]) or t["reason"]).strip().replace("\n", " / ")
            action.append("%s %s (%s): %s. Fix: %s" % (name, t["status"], t["reason"], what,
                                                       t.get("fix") or "see the output in tables"))
    if unmatched:
        action.append("%s. Fix: check profile and schema (or list tables)" % unmatched)
    for item in result.get("leftovers") or []:
        action.append("leftover of an interrupted pg_repack: %s. Fix: %s (or cleanup_leftovers: true)"
                      % (item["object"], item["fix"]))
    for item in result.get("leftover_cleanup_errors") or []:
        action.append("could not remove %s: %s" % (item["object"], item["error"]))
    return "; ".join(parts), action


def _what_was_repacked(names, tables, check):
    """``repacked public.a, public.b``, and for a table whose indexes alone were rebuilt (mode ``indexes``)
    that only they were, which, and why its heap was left as it is."""
    whole = [n for n in names if (tables.get(n) or {}).get("mode") != "indexes"]
    said = ["%s %s" % ("would repack" if check else "repacked", ", ".join(whole))] if whole else []
    for name in names:
        entry = tables.get(name) or {}
        if entry.get("mode") == "indexes":
            said.append("%s %s (%s), not its heap: %s" % (
                "would rebuild only the indexes of" if check else "rebuilt only the indexes of", name,
                ", ".join(entry.get("rebuild_indexes") or []) or "its indexes",
                entry.get("heap_left") or "its heap was not worth a rewrite"))
    return "; ".join(said)


def _nothing_matched(result):
    """When auto found no table at all to consider: the profile (or schema) matched nothing, which is not
    the same as every table being compact, and usually means a wrong profile or schema."""
    if result.get("selection") != "auto" or result.get("tables_considered", 1):
        return ""
    profile, schema = result.get("profile") or "any", result.get("schema") or "public"
    if profile == "any":
        return "schema %s has no tables" % schema
    return "profile %s matched no table in schema %s (it repacks %s tables: %s)" % (
        profile, schema, profile.capitalize(), ", ".join(PROFILE_TABLES[profile]))


def _qualified(facts):
    return "%s.%s" % (facts["schema"], facts["table"])


def _current_facts(conn, oid):
    with conn.cursor() as cur:
        rows = _facts(cur, " WHERE c.oid = %s", (oid,))
    return rows[0] if rows else None


def run_repack(params, check_mode=False, log=None):
    """One repack run; returns the result dict, raises PgtidyError subclasses to stop early."""
    started = time.monotonic()
    plan = validate_options(params)
    check_output_files(params)  # a report or metrics file nobody would read: refused before the lockfile
    if params.get("lock_wait") is not None and params["lock_wait"] < 0:
        raise InvalidRequest("lock_wait must be 0 or more seconds")
    lockfile = LockFile(params.get("lock_file"), params.get("lock_wait", 300),
                        job="repack")
    with lockfile:
        conn = connect(params)
        try:
            result = _run_locked(conn, params, plan, check_mode, log or (lambda msg: None))
        finally:
            conn.close()
    result["lock_waited_s"] = lockfile.waited_s
    result["duration_s"] = round(time.monotonic() - started, 3)
    result["msg"], result["action_needed"] = outcome_messages(result)
    if result["failed_tables"]:
        details = dict(result)
        summary = details.pop("msg")
        raise RepackFailed("pg_repack failed on %s; the other tables were processed: %s"
                           % (", ".join(result["failed_tables"]), summary), **details)
    return result


def _base_result(facts, plan, check_mode):
    return {
        "changed": False, "check_mode": check_mode, "skipped": False, "skip_reason": "",
        "database": facts["database"], "server_version_num": facts["server_version_num"],
        "tables": {}, "repacked": [], "skipped_tables": [], "failed_tables": [], "deferred_tables": [],
        "reclaimed_bytes": 0, "capped": False, "capped_by": None, "leftovers": [], "leftovers_cleaned": [],
        "candidates_below_threshold": 0, "estimate_method": None, "repack_version": {},
        "selection": "auto" if plan["auto"] else "tables", "profile": plan["profile"], "schema": plan["schema"],
        "tables_considered": 0,
    }


def _run_locked(conn, params, plan, check_mode, log):
    facts = server_facts(conn)
    result = _base_result(facts, plan, check_mode)
    if facts["in_recovery"]:
        result.update(skipped=True, skip_reason="the server is a standby (in recovery); repack the primary")
        return result
    ext = extension_version(conn)
    if ext is None:
        result.update(skipped=True, skip_reason="the pg_repack extension is not installed in database %s"
                      " (CREATE EXTENSION pg_repack, as a superuser)" % facts["database"])
        return result
    argv_base, env = repack_invocation(params, plan, facts["database"])
    client = client_version(plan, env)
    result["repack_version"] = {"client": client, "extension": ext}
    if client != ext:
        raise VersionMismatch(
            "pg_repack client %s (%s) does not match the pg_repack extension %s in database %s: install the"
            " client of version %s, or ALTER EXTENSION pg_repack UPDATE after upgrading the server package"
            % (client, " ".join(plan["command"]), ext, facts["database"], ext),
            repack_version=result["repack_version"])
    if not plan["no_superuser_check"]:
        with conn.cursor() as cur:
            cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            row = cur.fetchone()
        if not row or not row[0]:
            raise InvalidRequest("pg_repack needs a superuser; connect as one, or set no_superuser_check: true"
                                 " where the role was granted the repack schema (managed services)")

    with AdvisoryLock(conn):
        running = active_repack_sessions(conn)
        if running:
            raise LockBusy("a pg_repack is already running in database %s (backend %s since %s); nothing was"
                           " repacked" % (facts["database"], running[0]["pid"], running[0]["since"]),
                           sessions=running)
        leftovers = find_leftovers(conn)
        if leftovers and plan["cleanup_leftovers"] and not check_mode:
            cleaned, errors = clean_leftovers(conn, leftovers)
            result["leftovers_cleaned"] = cleaned
            result["leftover_cleanup_errors"] = errors
            leftovers = find_leftovers(conn)
        elif leftovers and plan["cleanup_leftovers"]:
            result["leftovers_cleaned"] = [item["object"] for item in leftovers]  # predicted
            leftovers = []
        result["leftovers"] = leftovers
        left_on = {item["target_oid"] for item in leftovers}

        candidates = _select(conn, plan, params, result, left_on, check_mode)
        _process(conn, plan, params, argv_base, env, candidates, result, check_mode, log)
    result["changed"] = bool(result["repacked"]) or bool(result["leftovers_cleaned"])
    return result


def _select(conn, plan, params, result, left_on, check_mode):
    """Pre-checks and estimates for every table considered; returns the ordered run list."""
    pgstattuple_schema = has_pgstattuple(conn) if plan["estimate_method"] in ("auto", "pgstattuple") else None
    if plan["estimate_method"] == "pgstattuple" and not pgstattuple_schema:
        raise InvalidRequest("estimate_method is pgstattuple but the pgstattuple extension is not installed"
                             " in this database (CREATE EXTENSION pgstattuple), or use estimate_method: statistics")
    result["estimate_method"] = "pgstattuple" if pgstattuple_schema else "statistics"
    role = params.get("session_role") or params.get("login_user") or "postgres"
    runnable = []
    considered = resolve_tables(conn, plan)
    result["tables_considered"] = len(considered)
    for facts in considered:
        name = _qualified(facts)
        entry = {
            "schema": facts["schema"], "table": facts["table"], "status": None, "reason": "", "error": "",
            "fix": "", "size_before": facts["total_bytes"], "size_after": facts["total_bytes"],
            "heap_bytes_before": facts["heap_bytes"], "reclaimed_bytes": 0,
            "estimated_reclaimable_bytes": None, "estimated_reclaimable_fraction": 0.0,
            "estimate_method": None, "statistics": None, "analyzed": False,
            "duration_s": 0.0, "output": "",
        }
        small = _below_table_size(plan, facts)
        if small and not _indexes_may_qualify(plan, facts):
            # Too small to matter: its size is exact, so no estimate (no scan, no ANALYZE) is spent on it.
            if plan["auto"]:
                result["candidates_below_threshold"] += 1
            else:
                _skip(result, name, entry, "below_threshold",
                      detail="%d bytes, below min_table_size%s" % (
                          facts["total_bytes"], " and its indexes below min_index_size" if plan["rebuild_indexes"]
                          else ""))
            continue
        facts, problem = _estimate(conn, plan, facts, entry, pgstattuple_schema, check_mode, role)
        if problem:
            # Not knowing is not "below threshold": say so, in auto mode too, with what to do about it.
            reason, detail, fix = problem
            _skip(result, name, entry, reason, detail=detail, fix=fix)
            continue
        estimate = entry["estimated_reclaimable_bytes"]
        fraction = (float(estimate) / facts["heap_bytes"]) if (estimate is not None and facts["heap_bytes"]) else 0.0
        entry["estimated_reclaimable_fraction"] = round(fraction, 4)
        entry["mode"] = "table"
        if small or (plan["min_reclaimable_fraction"] and fraction < plan["min_reclaimable_fraction"]):
            if _index_estimate(conn, plan, facts, entry, pgstattuple_schema, name):
                entry["mode"] = "indexes"
                entry["heap_left"] = _heap_left(plan, facts, entry, fraction)
            elif plan["auto"]:
                result["candidates_below_threshold"] += 1
                continue
            else:
                _skip(result, name, entry, "below_threshold", detail=_below_detail(plan, facts, entry, fraction))
                continue
        result["tables"][name] = entry
        entry["_facts"] = facts
        runnable.append(entry)
    runnable.sort(key=lambda e: (-(_gain(e) or 0), e["schema"], e["table"]))
    for entry in runnable:
        facts = entry["_facts"]
        if facts["oid"] in left_on:
            _skip(result, _qualified(facts), entry, "leftovers")
        elif not facts["has_key"]:
            _skip(result, _qualified(facts), entry, "no_key")
        elif facts["invalid_indexes"]:
            _skip(result, _qualified(facts), entry, "invalid_index",
                  detail="invalid: %s" % ", ".join(facts["invalid_indexes"]))
    return [e for e in runnable if e["status"] is None]


def _below_table_size(plan, facts):
    """A table too small for a heap rewrite: only its indexes may be rebuilt."""
    return facts["total_bytes"] < plan["min_table_size"]


def _indexes_may_qualify(plan, facts):
    """Whether a table below min_table_size may still have an index worth rebuilding alone: its indexes and
    TOAST together are at least min_index_size (the exact sizes, so nothing is estimated to know)."""
    return plan["rebuild_indexes"] and facts["total_bytes"] - facts["heap_bytes"] >= plan["min_index_size"]


def _below_detail(plan, facts, entry, fraction):
    if _below_table_size(plan, facts):
        said = "%d bytes, below min_table_size" % facts["total_bytes"]
    else:
        said = "%.0f%% of the heap estimated reclaimable, below min_reclaimable_fraction" % (fraction * 100)
    sized = [i for i in entry.get("indexes", []) if i["bytes"] >= plan["min_index_size"]]
    if sized:
        said += "; of each index of at least min_index_size at most %.0f%%, below min_index_reclaimable_fraction" % (
            100 * max(reclaimable_fraction(i) for i in sized))
    elif "indexes" in entry:
        said += "; every index below min_index_size"
    return said


def _heap_left(plan, facts, entry, fraction):
    """Why only the indexes of the table are rebuilt, with the figures: what a person reads in msg."""
    if _below_table_size(plan, facts):
        said = "its %s (with indexes and TOAST) is below min_table_size %s" % (
            human_bytes(facts["total_bytes"]), human_bytes(plan["min_table_size"]))
        if entry.get("estimated_reclaimable_bytes"):
            said += ", though an estimated %s (%.0f %%) of its heap is reclaimable" % (
                human_bytes(entry["estimated_reclaimable_bytes"]), fraction * 100)
        return said
    return "an estimated %.0f %% of its heap is reclaimable, below min_reclaimable_fraction %.0f %%" % (
        fraction * 100, plan["min_reclaimable_fraction"] * 100)


def _gain(entry):
    """What repacking the entry is estimated to give back: the heap's, or the indexes' in ``indexes`` mode."""
    if entry.get("mode") == "indexes":
        return entry.get("estimated_rebuild_reclaimable_bytes")
    return entry["estimated_reclaimable_bytes"]


def _index_estimate(conn, plan, facts, entry, pgstattuple_schema, name):
    """Whether some of the table's B-tree indexes of at least min_index_size are each at least
    min_index_reclaimable_fraction reclaimable.

    Fills the entry with every index's estimate and the ones to rebuild (``rebuild_indexes``): each index
    is judged on its own, so a large index with little to give back is not rebuilt because a neighbour
    is bloated, nor does it hide that neighbour's bloat."""
    if not plan["rebuild_indexes"]:
        return False
    try:
        indexes, total, reclaimable = estimate_indexes(conn, facts, pgstattuple_schema)
    except psycopg.Error as exc:
        entry["index_estimate_error"] = "%s: %s" % (name, first_line(exc))
        return False
    chosen = [i for i in indexes if i["bytes"] and i["bytes"] >= plan["min_index_size"]
              and reclaimable_fraction(i) >= plan["min_index_reclaimable_fraction"]]
    gain = sum(i["estimated_reclaimable_bytes"] for i in chosen)
    entry.update(indexes=indexes, index_bytes_before=total, estimated_index_reclaimable_bytes=reclaimable,
                 estimated_index_reclaimable_fraction=round(float(reclaimable) / total, 4) if total else 0.0,
                 rebuild_indexes=[i["index"] for i in chosen], rebuild_index_bytes=sum(i["bytes"] for i in chosen),
                 estimated_rebuild_reclaimable_bytes=gain)
    return bool(chosen)


def _estimate(conn, plan, facts, entry, pgstattuple_schema, check_mode, role):
    """Put the reclaimable estimate into the entry. Returns (facts, problem): facts re-read after an ANALYZE,
    and (reason, detail, fix) when there is no estimate to decide on.

    Statistics that are missing or stale (a big prune since the last ANALYZE) would call a bloated table
    compact, so a real run ANALYZEs the table first: it samples at most 300 x default_statistics_target
    pages and changes no rows, and pg_repack ANALYZEs every table it rewrites anyway. Check mode does
    not, because ANALYZE writes the planner statistics every query plan on the table is made from.
    With min_reclaimable_fraction 0 nothing depends on the estimate, so nothing is analyzed for it (for a
    table below min_table_size, min_index_reclaimable_fraction 0).
    """
    name = _qualified(facts)
    if pgstattuple_schema:
        entry["estimate_method"] = "pgstattuple"
        try:
            entry["estimated_reclaimable_bytes"] = estimate_with_pgstattuple(conn, facts, pgstattuple_schema)
        except psycopg.Error as exc:
            return facts, ("no_estimate", "pgstattuple_approx(%s) failed: %s" % (name, first_line(exc)),
                           "GRANT pg_stat_scan_tables TO %s (pgstattuple_approx needs it), or set"
                           " estimate_method: statistics" % quoted_name(role))
        return facts, None
    entry["estimate_method"] = "statistics"
    state = entry["statistics"] = statistics_state(facts)
    # Below min_table_size only the indexes are judged, so only their threshold decides.
    decisive = "min_index_reclaimable_fraction" if _below_table_size(plan, facts) else "min_reclaimable_fraction"
    if state != "current" and plan[decisive]:
        why = _statistics_problem(facts, state)
        if check_mode:
            return facts, ("needs_analyze", "%s; check mode does not run ANALYZE (it writes planner statistics),"
                                            " so whether the real run repacks the table is not known yet" % why,
                           "nothing to do for the real run, which runs ANALYZE %s first and then decides; for a"
                           " check-mode estimate run ANALYZE %s beforehand, or CREATE EXTENSION pgstattuple"
                           % (_shown(facts), _shown(facts)))
        refused = analyze_table(conn, facts)
        after = _current_facts(conn, facts["oid"]) or facts
        if statistics_state(after) != "current":
            if not refused:
                refused = ("it ran, but role %s sees no column statistics (pg_stats shows only the columns a role"
                           " may SELECT)" % role)
            return facts, ("no_estimate", "%s, and ANALYZE %s did not give any: %s" % (why, name, refused),
                           _no_estimate_fix(_shown(facts), quoted_name(role), refused))
        entry["analyzed"] = True
        facts = after
    entry["estimated_reclaimable_bytes"] = estimate_from_statistics(facts)
    return facts, None


def _shown(facts):
    """The table's name in SQL shown to people: quoted as the executed SQL quotes it."""
    return quoted_name(facts["schema"], facts["table"])


def _no_estimate_fix(name, role, said):
    """The fix of a table without an estimate; ``name`` and ``role`` as SQL spells them (quoted_name)."""
    if "timeout" in said:
        return ("ANALYZE %s waited or ran longer than lock_timeout / statement_timeout allow: raise them, or run"
                " ANALYZE %s before the repack" % (name, name))
    return ("run ANALYZE %s as its owner or a superuser before the repack, or let the module do it: connect as"
            " one, or on PostgreSQL 17+ GRANT MAINTAIN ON %s TO %s (or the pg_maintain role); or CREATE EXTENSION"
            " pgstattuple and GRANT pg_stat_scan_tables TO %s to measure the table instead"
            % (name, name, role, role))


def _skip(result, name, entry, reason, detail="", fix=""):
    entry.update(status="skipped", reason=reason, fix=fix or SKIP_FIXES.get(reason, ""))
    if detail:
        entry["error"] = detail
    entry.pop("_facts", None)
    result["tables"][name] = entry
    if name not in result["skipped_tables"]:
        result["skipped_tables"].append(name)


def _process(conn, plan, params, argv_base, env, candidates, result, check_mode, log):
    started = time.monotonic()
    done = 0
    for entry in candidates:
        facts = entry.pop("_facts")
        name = _qualified(facts)
        capped_by = None
        if plan["max_tables"] and done >= plan["max_tables"]:
            capped_by = "max_tables"
        elif plan["max_duration"] and time.monotonic() - started >= plan["max_duration"]:
            capped_by = "max_duration"
        if capped_by:
            entry.update(status="deferred", reason=capped_by)
            result["deferred_tables"].append(name)
            result["capped"], result["capped_by"] = True, result["capped_by"] or capped_by
            continue
        free, free_source = free_space(conn, plan, params, facts)
        copied = entry.get("rebuild_index_bytes") if entry.get("mode") == "indexes" else facts["total_bytes"]
        needed = int(copied * (1 + plan["free_space_margin"]))
        entry["free_space"] = {"free_bytes": free, "needed_bytes": needed, "source": free_source}
        if free is not None and free < needed:
            _skip(result, name, entry, "insufficient_disk",
                  detail="needs %d bytes (%s + %d%% margin), %d free (%s)"
                         % (needed, "indexes" if entry.get("mode") == "indexes" else "table + indexes",
                            int(plan["free_space_margin"] * 100), free, free_source))
            continue
        done += 1
        _repack_one(conn, plan, params, argv_base, env, facts, entry, result, check_mode, log)


def _repack_one(conn, plan, params, argv_base, env, facts, entry, result, check_mode, log):
    name = _qualified(facts)
    only_indexes = entry.get("mode") == "indexes"
    if only_indexes:
        # pg_repack takes --index alone (not with --table): each index is built anew and swapped in.
        argv = list(argv_base)
        for index in entry["rebuild_indexes"]:
            argv += ["--index", sql.Identifier(facts["schema"], index).as_string(conn)]
        argv += ["--wait-timeout", str(plan["wait_timeout"])]
    else:
        target = sql.Identifier(facts["schema"], facts["table"]).as_string(conn)
        argv = argv_base + ["--table", target, "--wait-timeout", str(plan["wait_timeout"])]
        if plan["jobs"] > 1:
            argv += ["--jobs", str(plan["jobs"])]
    if not plan["kill_backends"]:
        argv.append("--no-kill-backend")
    if plan["no_superuser_check"]:
        argv.append("--no-superuser-check")
    if check_mode:
        argv.append("--dry-run")
    indexes_before = index_filenodes(conn, facts["oid"]) if only_indexes and not check_mode else None
    entry["command"] = argv
    log("pgtidy repack: %s" % " ".join(argv))
    t0 = time.monotonic()
    returncode, output, interrupted = run_pg_repack(argv, env, plan["table_timeout"])
    entry["duration_s"] = round(time.monotonic() - t0, 3)
    output = redact(output, params)
    entry["output"] = output.strip()[-2000:]
    entry["returncode"] = returncode
    if interrupted:
        status, reason, error = "failed", "interrupted", "pg_repack ran longer than table_timeout (%ds)" \
            " and was interrupted" % plan["table_timeout"]
        entry["fix"] = SKIP_FIXES["interrupted"]
    else:
        after = None if check_mode else _current_facts(conn, facts["oid"])
        if only_indexes:
            rewritten = bool(after and index_filenodes(conn, facts["oid"]) != indexes_before)
        else:
            rewritten = bool(after and after["relfilenode"] != facts["relfilenode"])
        status, reason, error = classify_output(returncode, output, rewritten, dry_run=check_mode)
        if after:
            entry["size_after"] = after["total_bytes"]
            entry["reclaimed_bytes"] = facts["total_bytes"] - after["total_bytes"]
    if check_mode and status == "repacked":
        entry["size_after"] = facts["total_bytes"] - (_gain(entry) or 0)
        entry["reclaimed_bytes"] = _gain(entry) or 0
    entry.update(status=status, reason=reason, error=error)
    if reason in SKIP_FIXES and not entry.get("fix"):
        entry["fix"] = SKIP_FIXES[reason]
    if status == "repacked":
        result["repacked"].append(name)
        result["reclaimed_bytes"] += entry["reclaimed_bytes"]
    elif status == "skipped":
        result["skipped_tables"].append(name)
    else:
        result["failed_tables"].append(name)
        if not check_mode:
            # A failed or interrupted run may leave objects behind; say so now, with the fix.
            known = {item["object"] for item in result["leftovers"]}
            for item in find_leftovers(conn):
                if item["target_oid"] == facts["oid"] and item["object"] not in known:
                    result["leftovers"].append(item)


# -- metrics ------------------------------------------------------------------------------------

def repack_metrics(result, database, job="repack"):
    """Prometheus gauges for a repack result (successful, skipped or failed)."""
    m = Metrics()
    base = {"job": job, "database": database}
    ok = not result.get("failed")
    now = time.time()
    m.gauge("run_success", "1 if the last run succeeded, 0 if it failed.", ok, **base)
    m.gauge("run_timestamp_seconds", "Unix time the last run finished.", now, **base)
    if ok and not result.get("check_mode"):
        m.gauge("last_success_timestamp_seconds", "Unix time of the last successful run.", now, **base)
    m.gauge("run_duration_seconds", "Duration of the last run.", result.get("duration_s", 0), **base)
    m.gauge("run_capped", "1 if a budget stopped the last run early.", bool(result.get("capped")), **base)
    m.gauge("repack_skipped", "1 if the whole repack run was skipped (no extension, standby).",
            bool(result.get("skipped")), **base)
    m.gauge("repack_reclaimed_bytes", "Bytes given back to the OS by the last repack run.",
            result.get("reclaimed_bytes", 0), **base)
    m.gauge("repack_leftovers", "Objects left behind by an interrupted pg_repack, found by the last run.",
            len(result.get("leftovers") or []), **base)
    counts = {"repacked": 0, "skipped": 0, "failed": 0, "deferred": 0}
    for name, table in sorted((result.get("tables") or {}).items()):
        status = table.get("status") or "skipped"
        counts[status] = counts.get(status, 0) + 1
        labels = dict(base, table=name)
        m.gauge("repack_table_reclaimed_bytes", "Bytes reclaimed per table by the last repack run.",
                table.get("reclaimed_bytes", 0), **labels)
        m.gauge("repack_table_size_bytes", "Table size (with indexes and TOAST) after the last repack run.",
                table.get("size_after", 0), **labels)
        m.gauge("repack_table_duration_seconds", "Time pg_repack took per table in the last run.",
                table.get("duration_s", 0), **labels)
        m.gauge("repack_table_status", "1 for the status of each table in the last run.", 1,
                status=status, reason=table.get("reason") or "", **labels)
    for status, count in sorted(counts.items()):
        m.gauge("repack_tables", "Tables per status in the last repack run.", count, status=status, **base)
    return m
