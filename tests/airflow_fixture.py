"""A real Airflow 3 history on the test cluster, made once per session and cloned per test.

Airflow pins its own SQLAlchemy, Pydantic and FastAPI, so it lives in its own environment
(.venv-airflow-3, locks/environments.txt): PGTIDY_AIRFLOW_PYTHON names that interpreter, and without it
the tests look for that venv. When neither is there the Airflow tests are skipped, or fail if
PGTIDY_REQUIRE_AIRFLOW is set (for CI). The module under test needs only psycopg; Airflow is used to make
the history and to read it back.

``airflow db migrate`` creates the schema; tests/airflow/make_history.py runs the DAGs of tests/airflow/dags
in-process with ``dag.test()`` (scheduled weekly runs, manual runs with notes, a task that succeeds on its
second try, mapped tasks and XComs, asset events consumed by asset-triggered runs, a run left running),
moves each run back in time with SQL, adds audit log rows, jobs, import errors and the archive table an
``airflow db clean`` without --skip-archive leaves, then the rows of the other table families
(tests/airflow/families_history.py: a run whose deferrable sensor is deferred on its trigger, unused triggers,
callbacks, two versions of a DAG, task state, partitioned asset key log rows, web sessions), and reads the
history back. The database becomes the template every test clones
with CREATE DATABASE ... TEMPLATE; tests/airflow/read_back.py reads a database back through Airflow's models.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SCRIPTS = os.path.join(HERE, "airflow")
DAGS = os.path.join(SCRIPTS, "dags")

# The retention the Airflow tests prune with (the fixture's runs are 1 to 155 days old).
RETENTION = {"dag_run_retention_days": 30, "keep_runs_per_dag": 1, "asset_event_retention_days": 30,
             "log_retention_days": 30,
             "job_retention_days": 30, "import_error_retention_days": 30,
             "callback_retention_days": 30, "trigger_retention_days": 30, "dag_version_retention_days": 30,
             "session_retention_days": 30, "task_state_store_retention_days": 30,
             "partitioned_asset_key_log_retention_days": 30}
TABLES = ("dag_run", "task_instance", "task_instance_history", "xcom", "rendered_task_instance_fields",
          "task_map", "dag_run_note", "task_instance_note", "dagrun_asset_event", "asset_event", "log", "job",
          "import_error", "callback", "trigger", "dag_version", "serialized_dag", "dag_code", "session",
          "task_state_store", "asset_partition_dag_run", "partitioned_asset_key_log", "deadline")


def airflow_python():
    configured = os.environ.get("PGTIDY_AIRFLOW_PYTHON")
    if configured:
        return configured
    venv = os.path.join(ROOT, ".venv-airflow-3", "bin", "python")
    if os.path.exists(venv):
        return venv
    if os.environ.get("PGTIDY_REQUIRE_AIRFLOW"):
        pytest.fail("PGTIDY_REQUIRE_AIRFLOW is set but Airflow is not installed: run scripts/bootstrap.sh or set"
                    " PGTIDY_AIRFLOW_PYTHON")
    pytest.skip("Airflow is not installed: run scripts/bootstrap.sh (.venv-airflow-3) or set"
                " PGTIDY_AIRFLOW_PYTHON to a Python with tests/requirements-airflow3.txt installed")


def airflow_env(pg, db, home):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": home,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg.url(db, "postgresql+psycopg2"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": DAGS,
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    })
    return env


def run_airflow(python, args, env, what):
    proc = subprocess.run([python] + args, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError("%s failed:\n%s" % (what, (proc.stderr or proc.stdout)[-4000:]))
    return proc


def run_script(python, script, env, *args):
    """Run one of tests/airflow's scripts; it writes its JSON to a file (Airflow logs to stdout)."""
    fd, path = tempfile.mkstemp(prefix="pgtidy-airflow-", suffix=".json")
    os.close(fd)
    try:
        run_airflow(python, [os.path.join(SCRIPTS, script), path] + list(args), env, script)
        with open(path) as fh:
            return json.load(fh)
    finally:
        os.unlink(path)


def read_back(pg, db, python, home, rerun=()):
    """Every run, task instance, try, XCom and note of ``db``, and each DAG's next run, as Airflow reads them;
    with ``rerun`` (dag id, run id, task id), then that task instance cleared and run again (``"rerun"``)."""
    return run_script(python, "read_back.py", airflow_env(pg, db, home), *rerun)


@pytest.fixture(scope="session")
def airflow_history(pg):
    """The template database, what was made, and Airflow's read-back before any prune."""
    python = airflow_python()
    home = tempfile.mkdtemp(prefix="pgtidy-airflow-home-")
    template = "airflow_tpl_" + uuid.uuid4().hex[:6]
    pg.create_db(template)
    env = airflow_env(pg, template, home)
    try:
        run_airflow(python, ["-m", "airflow", "db", "migrate"], env, "airflow db migrate")
        history = run_script(python, "make_history.py", env)
        pg.psql("VACUUM ANALYZE", template)
        yield {"template": template, "made": history["made"], "before": history["before"], "python": python,
               "home": home}
    finally:
        pg.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % template)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def airflow_db(pg, airflow_history):
    """A fresh copy of the Airflow history for one test."""
    name = "af_" + uuid.uuid4().hex[:10]
    pg.psql('CREATE DATABASE "%s" TEMPLATE "%s"' % (name, airflow_history["template"]))
    yield name
    pg.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


def counts(pg, db):
    return {t: int(pg.psql("SELECT count(*) FROM %s" % t, db)) for t in TABLES}


def run_key(pair):
    """The read-back's key of a run made by make_history.py ([dag_id, run_id])."""
    return "%s/%s" % tuple(pair)
