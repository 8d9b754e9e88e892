"""The embedded default: prune a throwaway, realistic Dagster database with playbooks/prune.yml.

1. starts a private PostgreSQL cluster on 127.0.0.1 (deleted at the end),
2. creates a real Dagster metadata database with ``dagster instance migrate`` and real in-process
   runs (partitioned assets, asset checks, a failed run re-executed from failure, a sensor and a
   schedule with ticks, Python logs at every level, a run still in progress),
3. spreads that history over six months,
4. runs ``ansible-playbook playbooks/prune.yml`` against it (check mode first, then for real),
5. runs ``playbooks/repack.yml`` on ``event_logs`` to give the freed pages back to the OS,
6. prints sizes and rows per category before and after.

``--orchestrator airflow`` does the same for Airflow 3: ``airflow db migrate`` and real in-process DAG runs by
the Airflow of ``.venv-airflow-3`` (tests/airflow/make_history.py: scheduled, manual and asset-triggered runs
over five months, mapped tasks and XComs, a retried task, notes, a run still in progress, audit log rows, jobs,
import errors, an archive table left by ``airflow db clean``), then ``playbooks/prune.yml`` with
``pgtidy_orchestrator=airflow`` (check mode first, then for real), then ``playbooks/health.yml``, and rows
per table before and after. ``--orchestrator prefect`` does the same for Prefect 3.8 (``.venv-prefect``): a real
Prefect server runs the flows of tests/prefect/make_history.py (tasks, logs at every level, artifacts, a subflow,
a failure, events), backdated by two months.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from pgserver import PgServer  # noqa: E402

CATEGORY_SQL = """
SELECT CASE WHEN dagster_event_type IS NULL THEN 'log line: ' ||
              CASE (event::json->>'level')::int WHEN 10 THEN 'DEBUG' WHEN 20 THEN 'INFO' WHEN 30 THEN 'WARNING'
                   WHEN 40 THEN 'ERROR' ELSE 'CRITICAL' END
            ELSE dagster_event_type END AS category, count(*)
FROM event_logs GROUP BY 1 ORDER BY 2 DESC, 1
"""


def sizes(conn):
    rows = dict(conn.execute(CATEGORY_SQL).fetchall())
    size = conn.execute("SELECT pg_total_relation_size('event_logs'), pg_database_size(current_database()),"
                        " (SELECT count(*) FROM job_ticks), (SELECT count(*) FROM runs)").fetchone()
    return rows, size


def pretty(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return "%.0f %s" % (n, unit) if unit == "B" else "%.1f %s" % (n, unit)
        n /= 1024.0
    return "%.1f TiB" % n


def playbook(pg, db, lock_file, check, name="prune.yml", extra=()):
    with tempfile.TemporaryDirectory(prefix="pgtidy-demo-collections-") as collections:
        _playbook_in(collections, pg, db, lock_file, check, name, extra)


def _playbook_in(collections, pg, db, lock_file, check, name, extra):
    os.makedirs(os.path.join(collections, "ansible_collections", "pgtidy"))
    os.symlink(ROOT, os.path.join(collections, "ansible_collections", "pgtidy", "maintenance"))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
           os.path.join(ROOT, "playbooks", name),
           "-e", "pgtidy_login_host=127.0.0.1",
           "-e", "pgtidy_login_port=%d" % pg.port, "-e", "pgtidy_login_db=%s" % db,
           "-e", "pgtidy_ssl_mode=disable", "-e", "pgtidy_lock_file=%s" % lock_file]
    for item in extra:
        cmd += ["-e", item]
    if check:
        cmd += ["--check"]
    print("\n$ ansible-playbook -i localhost, -c local playbooks/%s%s -e pgtidy_login_db=%s ..."
          % (name, " --check" if check else "", db), flush=True)
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)


def has_pg_repack():
    return bool(shutil.which("pg_repack") or os.path.exists("/usr/lib/postgresql/15/bin/pg_repack"))


def demo_dagster(pg, work, args):
    import psycopg

    import dagster_fixture
    pg.create_db("dagster")
    home = dagster_fixture.write_instance_yaml(os.path.join(work, "dagster_home"), pg.port, "dagster")
    print("creating the Dagster schema with `dagster instance migrate` ...", flush=True)
    dagster_fixture.migrate(home)
    print("recording real Dagster runs (%d rounds, about a minute) ..." % args.rounds, flush=True)
    devnull = open(os.devnull, "w")
    saved = os.dup(2)
    os.dup2(devnull.fileno(), 2)  # Dagster's console logger is loud; the database keeps every line
    try:
        dagster_fixture.build_history(home, rounds=args.rounds, ticks_per_instigator=60)
    finally:
        os.dup2(saved, 2)
    with psycopg.connect(pg.dsn("dagster"), autocommit=True) as conn:
        dagster_fixture.backdate(conn, days=180)
        conn.execute("VACUUM ANALYZE")
        before_rows, before_size = sizes(conn)

    lock_file = os.path.join(work, "pgtidy.lock")
    # Noise pruning plus run retention: finished runs older than 90 days go whole, except those an
    # asset view, a job's newest runs or a re-execution still need.
    retention = ['{"pgtidy_dagster_run_retention_days": {"success": 90, "failure": 90, "canceled": 90}}',
                 "pgtidy_dagster_keep_runs_per_job=5"]
    playbook(pg, "dagster", lock_file, check=True, extra=retention)
    playbook(pg, "dagster", lock_file, check=False, extra=retention)

    with psycopg.connect(pg.dsn("dagster"), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE event_logs")
        after_rows, after_size = sizes(conn)
        # What the repack_image role's init script does in a real deployment.
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_repack")
    repacked = None
    if has_pg_repack():
        playbook(pg, "dagster", lock_file, check=False, name="repack.yml",
                 extra=['{"pgtidy_repack_tables": ["event_logs"]}', "pgtidy_repack_min_table_size=0",
                        "pgtidy_repack_min_reclaimable_fraction=0", "pgtidy_repack_free_space_check=off"])
        with psycopg.connect(pg.dsn("dagster"), autocommit=True) as conn:
            repacked = sizes(conn)[1]
    print("\nevent_logs by category (rows)           before      after")
    for cat in sorted(set(before_rows) | set(after_rows), key=lambda c: -before_rows.get(c, 0)):
        print("  %-34s %10d %10d" % (cat, before_rows.get(cat, 0), after_rows.get(cat, 0)))
    print("  %-34s %10d %10d" % ("total", sum(before_rows.values()), sum(after_rows.values())))
    print("job_ticks rows                         %10d %10d" % (before_size[2], after_size[2]))
    print("runs                                   %10d %10d" % (before_size[3], after_size[3]))
    print("event_logs size on disk                %10s %10s" % (pretty(before_size[0]), pretty(after_size[0])))
    print("database size on disk                  %10s %10s" % (pretty(before_size[1]), pretty(after_size[1])))
    print("(DELETE frees space inside the table for reuse; pg_repack gives it back to the operating system.)")
    if repacked:
        print("event_logs size after pg_repack        %10s" % pretty(repacked[0]))
        print("database size after pg_repack          %10s" % pretty(repacked[1]))


# The retention of the Airflow and Prefect demos (module option: value), given to the prune as the named
# pgtidy_<orchestrator>_* variables and to health_info as its <orchestrator>_retention. Airflow: finished runs
# older than 90 days go with everything they own, except each DAG's two newest runs (the audit log, jobs and
# import errors with the module's defaults). Prefect: finished flow runs older than 30 days, events older than
# 14 days.
RETENTION = {"airflow": {"dag_run_retention_days": 90, "keep_runs_per_dag": 2},
             "prefect": {"flow_run_retention_days": 30, "event_retention_days": 14}}
# What each demo counts runs by, and how it names the audit-style tables in its summary.
RUNS_BY_STATE = {"airflow": ("dag runs by state", "SELECT state, count(*) FROM dag_run GROUP BY 1 ORDER BY 1"),
                 "prefect": ("flow runs by state", "SELECT state_type, count(*) FROM flow_run GROUP BY 1 ORDER BY 1")}
LABELS = {"airflow": {"log": "log (the audit log)"}, "prefect": {"log": "log (flow and task run logs)"}}


def python_or_exit(title, find, venv, variable, requirements):
    """The interpreter ``find`` gives (the one the tests use), or exit saying how to install it."""
    import pytest
    try:
        python = find()
    except (pytest.skip.Exception, pytest.fail.Exception):
        python = None
    if python and os.path.exists(python):
        return python
    missing = "%s (%s) does not exist" % (variable, python) if python else "%s is missing" % venv
    sys.exit("The %s demo needs %s, and %s.\n"
             "Build %s with `bash scripts/bootstrap.sh` (what `make setup` runs), or set %s to a Python with %s"
             " installed." % (title.split()[0], title, missing, venv, variable, requirements))


def orchestrator_python(orchestrator):
    if orchestrator == "airflow":
        import airflow_fixture
        return python_or_exit("Airflow 3.3.2", airflow_fixture.airflow_python, ".venv-airflow-3",
                              "PGTIDY_AIRFLOW_PYTHON", "tests/requirements-airflow3.txt")
    import prefect_fixture
    release = prefect_fixture.RELEASES[prefect_fixture.NEWEST]
    return python_or_exit("Prefect %s" % release.name, prefect_fixture.prefect_python, release.venv,
                          release.variable, release.requirements)


def airflow_history(pg, work, python):
    """Airflow's schema and history in database ``airflow``: (database, the fixture module, a note)."""
    import airflow_fixture
    db = "airflow"
    pg.create_db(db)
    home = os.path.join(work, "airflow_home")
    os.makedirs(home)
    env = airflow_fixture.airflow_env(pg, db, home)
    print("creating the Airflow schema with `airflow db migrate` ...", flush=True)
    airflow_fixture.run_airflow(python, ["-m", "airflow", "db", "migrate"], env, "airflow db migrate")
    print("recording real Airflow DAG runs over five months with dag.test() ...", flush=True)
    history = airflow_fixture.run_script(python, "make_history.py", env)
    note = ("%d dag runs written by Airflow itself, schema revision %s"
            % (len(history["before"]["runs"]), pg.psql("SELECT version_num FROM alembic_version", db)))
    return db, airflow_fixture, note


def prefect_history(pg, work, python):
    """Prefect's schema and history in database ``prefect`` (a real server running real flows): (database, the
    fixture module, a note)."""
    import prefect_fixture
    print("creating the Prefect schema and running real flows against a Prefect server ...", flush=True)
    history = prefect_fixture.make_history(pg, prefect_fixture.NEWEST)
    shutil.rmtree(history["home"], ignore_errors=True)
    pg.psql('ALTER DATABASE "%s" RENAME TO prefect' % history["template"])
    note = ("%d flow runs written by Prefect %s itself"
            % (int(pg.psql("SELECT count(*) FROM flow_run", "prefect")), history["version"]))
    return "prefect", prefect_fixture, note


def database_sizes(pg, db, orchestrator, fixture):
    rows = fixture.counts(pg, db)
    states = dict(line.split("|") for line in pg.psql(RUNS_BY_STATE[orchestrator][1], db).splitlines())
    size = [int(v) for v in pg.psql(
        "SELECT (SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class AS c"
        "  WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace),"
        " pg_database_size(current_database())", db).split("|")]
    return rows, states, size


def demo_orchestrator(pg, work, orchestrator, python):
    """Airflow's or Prefect's own history, pruned by prune.yml (check mode, then for real), repacked with the
    orchestrator's repack profile, and reported on by health.yml."""
    make = airflow_history if orchestrator == "airflow" else prefect_history
    db, fixture, note = make(pg, work, python)
    pg.psql("VACUUM ANALYZE", db)
    before = database_sizes(pg, db, orchestrator, fixture)

    lock_file = os.path.join(work, "pgtidy.lock")
    retention = RETENTION[orchestrator]
    options = ["pgtidy_orchestrator=%s" % orchestrator] + [
        "pgtidy_%s_%s=%s" % (orchestrator, key, value) for key, value in retention.items()]
    playbook(pg, db, lock_file, check=True, extra=options)
    playbook(pg, db, lock_file, check=False, extra=options)
    pg.psql("VACUUM ANALYZE", db)
    after = database_sizes(pg, db, orchestrator, fixture)
    repacked = None
    if has_pg_repack():
        # The tables of the orchestrator's repack profile that the prune left with the most free space.
        pg.psql("CREATE EXTENSION IF NOT EXISTS pg_repack", db)
        playbook(pg, db, lock_file, check=False, name="repack.yml",
                 extra=["pgtidy_repack_profile=%s" % orchestrator, "pgtidy_repack_min_table_size=0",
                        "pgtidy_repack_min_reclaimable_fraction=0.2", "pgtidy_repack_free_space_check=off"])
        repacked = database_sizes(pg, db, orchestrator, fixture)[2]
    # The health report, with the same retention for its preview of the next prune.
    playbook(pg, db, lock_file, check=False, name="health.yml",
             extra=[json.dumps({"pgtidy_health_info_options": {"%s_retention" % orchestrator: retention}})])

    print("\n%-38s %7s %10s" % ("%s tables (rows)" % orchestrator.capitalize(), "before", "after"))
    for table in fixture.TABLES:
        print("  %-34s %10d %10d" % (LABELS[orchestrator].get(table, table), before[0][table], after[0][table]))
    print(RUNS_BY_STATE[orchestrator][0])
    for state in sorted(set(before[1]) | set(after[1])):
        print("  %-34s %10s %10s" % (state, before[1].get(state, 0), after[1].get(state, 0)))
    print("tables' size on disk                   %10s %10s" % (pretty(before[2][0]), pretty(after[2][0])))
    print("database size on disk                  %10s %10s" % (pretty(before[2][1]), pretty(after[2][1])))
    print("(%s; DELETE frees space inside the tables for reuse, pg_repack gives it back to the operating system.)"
          % note)
    if repacked:
        print("tables' size after pg_repack           %10s" % pretty(repacked[0]))
        print("database size after pg_repack          %10s" % pretty(repacked[1]))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orchestrator", choices=("dagster", "airflow", "prefect"), default="dagster",
                        help="whose database to make and prune (default dagster)")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of real Dagster runs to record (default 6)")
    parser.add_argument("--keep", action="store_true", help="leave the cluster's directory behind")
    args = parser.parse_args()

    python = orchestrator_python(args.orchestrator) if args.orchestrator != "dagster" else None
    work = tempfile.mkdtemp(prefix="pgtidy-demo-")
    os.chmod(work, 0o755)  # the server runs as the postgres user when we are root
    pg = PgServer(base_dir=os.path.join(work, "pg"), keep=args.keep)
    os.makedirs(pg.base, exist_ok=True)
    print("starting a throwaway PostgreSQL on 127.0.0.1:%d ..." % pg.port, flush=True)
    pg.start()
    try:
        if python:
            demo_orchestrator(pg, work, args.orchestrator, python)
        else:
            demo_dagster(pg, work, args)
    finally:
        pg.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
