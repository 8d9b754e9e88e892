"""The pure parts of the pg_repack driver: reading its output, options, estimates, the command line."""
from __future__ import annotations

import pytest

from ansible_collections.pgtidy.maintenance.plugins.module_utils._repack import catalog, client, estimate, options, report
from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.errors import InvalidRequest

# Lines as pg_repack 1.4.8 prints them on stderr.
NO_KEY = 'INFO: repacking table "public.a"\nWARNING: relation "public.a" must have a primary key or not-null unique' \
         ' keys\n'
TIMEOUT = 'INFO: repacking table "public.a"\nWARNING: timed out, do not cancel conflicting backends\n' \
          'INFO: Skipping repack public.a due to timeout\n'
TRIGGER = 'INFO: repacking table "public.a"\nWARNING: the table "public.a" already has a trigger called' \
          ' "repack_trigger"\nDETAIL: The trigger was probably installed during a previous attempt\n'
OK = 'INFO: repacking table "public.a"\n'
DRY = 'INFO: Dry run enabled, not executing repack\nINFO: repacking table "public.a"\n'
MISSING = 'ERROR: pg_repack failed with error: pg_repack 1.4.8 is not installed in the database\n'


@pytest.mark.parametrize("rc,output,rewritten,dry,expected", [
    (0, OK, True, False, ("repacked", "")),
    (0, NO_KEY, False, False, ("skipped", "no_key")),
    (0, TIMEOUT, False, False, ("skipped", "lock_timeout")),
    (0, TRIGGER, False, False, ("skipped", "leftovers")),
    (0, OK, False, False, ("failed", "not_rewritten")),
    (21, MISSING, False, False, ("failed", "error")),
    (0, DRY, False, True, ("repacked", "")),
    (0, "INFO: Dry run enabled, not executing repack\n" + NO_KEY, False, True, ("skipped", "no_key")),
    (0, 'INFO: repacking table "public.a"\nWARNING: something new\n', False, False, ("skipped", "warning")),
])
def test_classify_output(rc, output, rewritten, dry, expected):
    assert client.classify_output(rc, output, rewritten, dry_run=dry)[:2] == expected


def test_failed_output_keeps_the_error_lines():
    status, reason, error = client.classify_output(21, MISSING, False)
    assert error == MISSING.strip()


@pytest.mark.parametrize("params,fragment", [
    ({}, "nothing to repack"),
    ({"tables": ["a"], "auto": True}, "not both"),
    ({"auto": True, "min_reclaimable_fraction": 1.5}, "between 0 and 1"),
    ({"auto": True, "min_index_reclaimable_fraction": -0.1}, "min_index_reclaimable_fraction must be between"),
    ({"auto": True, "min_index_size": "a lot"}, "min_index_size"),
    ({"auto": True, "wait_timeout": 0}, "wait_timeout"),
    ({"auto": True, "max_tables": -1}, "max_tables"),
    ({"auto": True, "repack_command": "pg_repack 'unclosed"}, "cannot be parsed"),
    ({"auto": True, "free_space_check": "lots"}, "free_space_check"),
])
def test_bad_options_are_refused(params, fragment):
    with pytest.raises(InvalidRequest) as err:
        options.validate_options(params)
    assert fragment in err.value.message


def test_heap_and_index_thresholds_are_separate():
    plan = options.validate_options({"auto": True})
    assert (plan.min_reclaimable_fraction, plan.min_index_reclaimable_fraction, plan.min_index_size) == \
        (0.3, 0.2, 1024 ** 2)
    plan = options.validate_options({"auto": True, "min_reclaimable_fraction": 0, "min_index_size": "0"})
    assert (plan.min_reclaimable_fraction, plan.min_index_reclaimable_fraction, plan.min_index_size) == \
        (0.0, 0.2, 0)


def test_free_space_check_forms():
    assert options.validate_options({"auto": True, "free_space_check": "2GiB"}).free_space == \
        {"mode": "figure", "bytes": 2 * 1024 ** 3}
    assert options.validate_options({"auto": True, "free_space_check": "/srv/pg"}).free_space == \
        {"mode": "path", "path": "/srv/pg"}
    assert options.validate_options({"auto": True}).free_space == {"mode": "auto"}


def test_command_prefix_is_split_like_a_shell():
    plan = options.validate_options({"auto": True, "repack_command": "podman exec -e PGPASSWORD 'my pg' pg_repack"})
    assert plan.command == ["podman", "exec", "-e", "PGPASSWORD", "my pg", "pg_repack"]


def test_password_only_in_the_environment():
    params = {"login_host": "db.example", "login_port": 6432, "login_user": "admin", "login_password": "hunter2",
              "login_db": "dagster", "ssl_mode": "require", "connect_params": {"target_session_attrs": "read-write"},
              "auto": True, "repack_command": "podman exec -e PGPASSWORD pg pg_repack", "repack_host": "/run/pg"}
    argv, env = client.repack_invocation(params, options.validate_options(params), "dagster")
    assert "hunter2" not in " ".join(argv)
    assert env["PGPASSWORD"] == "hunter2" and env["PGSSLMODE"] == "require"
    assert env["PGTARGETSESSIONATTRS"] == "read-write"
    assert argv[:6] == ["podman", "exec", "-e", "PGPASSWORD", "pg", "pg_repack"]
    assert argv[argv.index("--host") + 1] == "/run/pg" and argv[argv.index("--port") + 1] == "6432"
    assert argv[argv.index("--dbname") + 1] == "dagster" and "--no-password" in argv


@pytest.mark.parametrize("params, host, local", [
    ({}, "", True),
    ({"login_unix_socket": "/var/run/postgresql", "login_host": "db.internal"}, "/var/run/postgresql", True),
    ({"login_host": "127.0.1.1"}, "127.0.1.1", True),
    ({"login_host": "db.internal"}, "db.internal", False),
    ({"connect_params": {"host": "db.internal"}}, "db.internal", False),
    ({"login_host": "db.internal", "repack_host": "/var/run/postgresql"}, "/var/run/postgresql", True),
    ({"login_host": "127.0.0.1", "repack_host": ""}, "", True),
])
def test_pg_repack_host_is_judged_where_it_connects(params, host, local, tmp_path):
    """pg_repack's --host and the free-space check's 'is the server on this host' read one answer."""
    params = dict(params, auto=True)
    plan = options.validate_options(params)
    argv, dummy = client.repack_invocation(params, plan, "dagster")
    assert (argv[argv.index("--host") + 1] if "--host" in argv else "") == host
    free, source = catalog.free_space(None, plan, params, {"tablespace_path": str(tmp_path)})
    assert (free is not None) is local, source


def _facts(**kw):
    facts = {"reltuples": 10000.0, "nstats": 3, "ncols": 3, "has_nulls": False, "data_width": 100,
             "fillfactor": 100, "heap_bytes": 1000 * 8192, "mod_since_analyze": 0}
    facts.update(kw)
    return facts


def test_statistics_estimate():
    # 23-byte header -> 24, + 100 bytes of data -> 128 aligned, + 4 line pointer = 132 bytes a row:
    # 61 rows a page, 164 pages for 10000 rows, so 836 of 1000 pages are reclaimable.
    assert estimate.estimate_from_statistics(_facts()) == (1000 - 164) * 8192
    # A fillfactor of 50 halves the rows a page holds: 30 a page, 334 pages.
    assert estimate.estimate_from_statistics(_facts(fillfactor=50)) == (1000 - 334) * 8192
    assert estimate.estimate_from_statistics(_facts(reltuples=1e6)) == 0
    assert estimate.estimate_from_statistics(_facts(reltuples=-1)) is None
    assert estimate.estimate_from_statistics(_facts(nstats=0)) is None


@pytest.mark.parametrize("facts,state", [
    (_facts(), "current"),
    (_facts(mod_since_analyze=1050), "current"),   # what autovacuum tolerates: 10 % of the rows + 50
    (_facts(mod_since_analyze=1051), "stale"),     # e.g. a prune since the last ANALYZE
    (_facts(reltuples=-1, nstats=0), "missing"),   # never vacuumed nor analyzed
    (_facts(nstats=0), "missing"),                 # vacuumed (reltuples known) but never analyzed
    (_facts(reltuples=0, nstats=0), "current"),    # analyzed with no rows left: there is nothing to sample
    (_facts(reltuples=0, nstats=0, mod_since_analyze=51), "stale"),
])
def test_statistics_state(facts, state):
    assert estimate.statistics_state(facts) == state


def test_a_table_analyzed_empty_is_all_reclaimable():
    assert estimate.estimate_from_statistics(_facts(reltuples=0, nstats=0)) == 1000 * 8192


def _table(status, reason="", error="", fix=""):
    return {"status": status, "reason": reason, "error": error, "fix": fix}


def test_outcome_messages_name_every_table_and_warn_only_where_someone_must_act():
    result = {"check_mode": False, "repacked": ["public.a"], "reclaimed_bytes": 3 * 1024 ** 2,
              "candidates_below_threshold": 2, "leftovers": [], "tables": {
                  "public.a": _table("repacked"),
                  "public.b": _table("skipped", "below_threshold", "5% of the heap estimated reclaimable"),
                  "public.c": _table("skipped", "no_key", fix="add a primary key"),
                  "public.d": _table("skipped", "no_estimate", "ANALYZE refused", "run ANALYZE public.d"),
                  "public.e": _table("deferred", "max_tables")}}
    msg, action = report.outcome_messages(result)
    assert msg == ("repacked public.a (reclaimed 3.0 MiB); skipped public.b (below_threshold), public.c (no_key),"
                   " public.d (no_estimate); deferred to the next run public.e (max_tables); 2 more below the"
                   " thresholds")
    assert action == ["public.c skipped (no_key): no primary key nor unique index on NOT NULL columns."
                      " Fix: add a primary key",
                      "public.d skipped (no_estimate): ANALYZE refused. Fix: run ANALYZE public.d"]
    check, dummy = report.outcome_messages(dict(result, check_mode=True, repacked=[], tables={}))
    assert check.startswith("nothing would be repacked")


def test_a_skipped_run_says_why_in_msg_and_as_a_warning():
    result = {"skipped": True, "skip_reason": "the pg_repack extension is not installed in database d"}
    assert report.outcome_messages(result) == (result["skip_reason"], [result["skip_reason"]])


def test_leftover_fixes():
    assert catalog.leftover_fix({"kind": "trigger", "target_exists": True, "target_oid": 16421}) == \
        "SELECT repack.repack_drop(16421, 4)"
    assert catalog.leftover_fix({"kind": "work_table", "target_exists": False, "target_oid": 1,
                                 "object": "repack.log_1"}) == 'DROP TABLE IF EXISTS "repack"."log_1" CASCADE'
    assert catalog.leftover_fix({"kind": "invalid_index", "schema": "public", "index": "index_9",
                                 "target_exists": True}) == 'DROP INDEX CONCURRENTLY IF EXISTS "public"."index_9"'
    # Quoted as the executed statement quotes it (psycopg.sql.Identifier), a quote in a name doubled.
    assert catalog.leftover_fix({"kind": "invalid_index", "schema": 'My "Odd" Schema', "index": "index_9",
                                 "target_exists": True}) == \
        'DROP INDEX CONCURRENTLY IF EXISTS "My ""Odd"" Schema"."index_9"'


def test_metrics_of_a_skipped_run():
    text = report.repack_metrics({"skipped": True, "skip_reason": "no extension", "tables": {}}, "dagster").render()
    assert 'pgtidy_repack_skipped{database="dagster",job="repack"} 1' in text
    assert 'pgtidy_repack_tables{database="dagster",job="repack",status="repacked"} 0' in text
