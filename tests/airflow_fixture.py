"""A real Airflow history on the test cluster, made once per session and release and cloned per test.

Each Airflow release the tests drive (``RELEASES``: Airflow 3.3, and 2.11, the last 2.x release) pins its own
SQLAlchemy, Pydantic and web stack, so it lives in its own environment (.venv-airflow-3, .venv-airflow-2,
locks/environments.txt): PGTIDY_AIRFLOW_PYTHON (3.3) or PGTIDY_AIRFLOW2_PYTHON (2.11) names that interpreter,
and without it the tests look for that venv. When neither is there the release's tests are skipped, or fail if
PGTIDY_REQUIRE_AIRFLOW is set (for CI). The module under test needs only psycopg; Airflow is used to make
the history and to read it back.

``airflow_db`` and ``airflow_history`` are 3.3's; a test parametrized over ``airflow_release``
(``AIRFLOW_RELEASES``, ids ``airflow-3.3`` and ``airflow-2.11``) gets that release's instead. Airflow 2.11's
history is the same history, made by tests/airflow2 with its DAGs written against the 2.x API.

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
import subprocess
import tempfile
import uuid
from dataclasses import dataclass

import pytest

from histories import drop_history, history_for, session_histories

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SCRIPTS = os.path.join(HERE, "airflow")
DAGS = os.path.join(SCRIPTS, "dags")


@dataclass(frozen=True)
class Release:
    """An Airflow release the tests drive: where its interpreter and its history scripts are, and its tables."""

    name: str                   # "2.11": the installed version must start with "2.11."
    variable: str               # the environment variable naming its interpreter
    venv: str                   # the project's venv for it (locks/environments.txt)
    requirements: str
    scripts: str                # make_history.py, read_back.py and dags/
    asset_triggered: str        # dag_run.run_type of an asset- (dataset-) triggered run
    asset_event: str            # the asset (dataset) event table and its links to dag runs
    asset_link: str
    ti_children: tuple          # tables of rows that only 2.11 or only 3 keeps per task instance
    own_tables: tuple = ()      # tables of the other families that only this release's tests count

    @property
    def dags(self):
        return os.path.join(self.scripts, "dags")

    @property
    def tables(self):
        return ("dag_run", "task_instance", "task_instance_history", "xcom", "rendered_task_instance_fields",
                "task_map", "dag_run_note", "task_instance_note", self.asset_link, self.asset_event, "log", "job",
                "import_error") + self.ti_children + self.own_tables


RELEASES = {
    "3.3": Release("3.3", "PGTIDY_AIRFLOW_PYTHON", ".venv-airflow-3", "tests/requirements-airflow3.txt", SCRIPTS,
                   "asset_triggered", "asset_event", "dagrun_asset_event", (),
                   ("callback", "trigger", "dag_version", "serialized_dag", "dag_code", "session", "task_state_store",
                    "asset_partition_dag_run", "partitioned_asset_key_log", "deadline")),
    "2.11": Release("2.11", "PGTIDY_AIRFLOW2_PYTHON", ".venv-airflow-2", "tests/requirements-airflow2.txt",
                    os.path.join(HERE, "airflow2"), "dataset_triggered", "dataset_event", "dagrun_dataset_event",
                    ("task_fail",)),
}
NEWEST = "3.3"
# For tests that run on every release: ``@pytest.mark.parametrize("airflow_release", AIRFLOW_RELEASES)``. Each
# release's tests are an xdist group, so that one worker makes its history.
AIRFLOW_RELEASES = [pytest.param(name, id="airflow-" + name,
                                 marks=[pytest.mark.xdist_group("airflow" if name == NEWEST else "airflow-" + name)])
                    for name in RELEASES]

# The retention the Airflow tests prune with (the fixture's runs are 1 to 155 days old).
RETENTION = {"dag_run_retention_days": 30, "keep_runs_per_dag": 1, "asset_event_retention_days": 30,
             "log_retention_days": 30,
             "job_retention_days": 30, "import_error_retention_days": 30,
             "callback_retention_days": 30, "trigger_retention_days": 30, "dag_version_retention_days": 30,
             "session_retention_days": 30, "task_state_store_retention_days": 30,
             "partitioned_asset_key_log_retention_days": 30}
TABLES = RELEASES[NEWEST].tables


def airflow_python(release=NEWEST):
    """The interpreter of ``release`` (see the module docstring); skips or fails when there is none."""
    rel = RELEASES[release]
    configured = os.environ.get(rel.variable)
    if configured:
        return configured
    venv = os.path.join(ROOT, rel.venv, "bin", "python")
    if os.path.exists(venv):
        return venv
    missing = ("Airflow %s is not installed: run scripts/bootstrap.sh (%s), or set %s to a Python with %s installed"
               % (release, rel.venv, rel.variable, rel.requirements))
    if os.environ.get("PGTIDY_REQUIRE_AIRFLOW"):
        pytest.fail("PGTIDY_REQUIRE_AIRFLOW is set but " + missing)
    pytest.skip(missing)


def check_version(python, release):
    """Refuse an interpreter whose Airflow is not the release asked for."""
    proc = subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('apache-airflow'))"],
                          capture_output=True, text=True, check=False)
    version = proc.stdout.strip()
    if not version.startswith(release + "."):
        pytest.fail("%s has Airflow %s, not %s (%s)"
                    % (python, version or "missing", release, RELEASES[release].variable))


def airflow_env(pg, db, home, release=NEWEST):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": home,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg.url(db, "postgresql+psycopg2"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": RELEASES[release].dags,
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    })
    return env


def run_airflow(python, args, env, what):
    proc = subprocess.run([python] + args, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError("%s failed:\n%s" % (what, (proc.stderr or proc.stdout)[-4000:]))
    return proc


def run_script(python, script, env, *args, release=NEWEST):
    """Run one of the release's scripts (tests/airflow, tests/airflow2); it writes its JSON to a file (Airflow logs
    to stdout)."""
    fd, path = tempfile.mkstemp(prefix="pgtidy-airflow-", suffix=".json")
    os.close(fd)
    try:
        run_airflow(python, [os.path.join(RELEASES[release].scripts, script), path] + list(args), env, script)
        with open(path) as fh:
            return json.load(fh)
    finally:
        os.unlink(path)


def read_back(pg, db, python, home, rerun=(), release=NEWEST):
    """Every run, task instance, try, XCom and note of ``db``, and each DAG's next run, as Airflow reads them;
    with ``rerun`` (dag id, run id, task id), then that task instance cleared and run again (``"rerun"``)."""
    return run_script(python, "read_back.py", airflow_env(pg, db, home, release), *rerun, release=release)


def make_history(pg, release):
    """The template database of ``release``, what was made, and Airflow's read-back before any prune."""
    python = airflow_python(release)
    check_version(python, release)
    home = tempfile.mkdtemp(prefix="pgtidy-airflow-home-")
    template = "airflow_tpl_" + uuid.uuid4().hex[:6]
    pg.create_db(template)
    env = airflow_env(pg, template, home, release)
    try:
        run_airflow(python, ["-m", "airflow", "db", "migrate"], env, "airflow db migrate")
        history = run_script(python, "make_history.py", env, release=release)
        pg.psql("VACUUM ANALYZE", template)
    except BaseException:
        drop_history(pg, {"template": template, "home": home})
        raise
    return {"template": template, "made": history["made"], "before": history["before"], "python": python,
            "home": home, "release": RELEASES[release]}


@pytest.fixture(scope="session")
def airflow_templates():
    """(cluster, release) -> that release's history on that cluster (histories.py)."""
    yield from session_histories()


@pytest.fixture
def airflow_release():
    """The Airflow release of a test: the newest, unless the test is parametrized over ``AIRFLOW_RELEASES``."""
    return NEWEST


@pytest.fixture
def airflow_history(pg, airflow_templates, airflow_release):
    """The template database, what was made, and Airflow's read-back before any prune (of ``airflow_release``)."""
    return history_for(airflow_templates, pg, airflow_release, make_history)


@pytest.fixture
def airflow_db(pg, airflow_history):
    """A fresh copy of the Airflow history for one test."""
    name = "af_" + uuid.uuid4().hex[:10]
    pg.psql('CREATE DATABASE "%s" TEMPLATE "%s"' % (name, airflow_history["template"]))
    yield name
    pg.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


def counts(pg, db, release=NEWEST):
    return {t: int(pg.psql("SELECT count(*) FROM %s" % t, db)) for t in RELEASES[release].tables}


def run_key(pair):
    """The read-back's key of a run made by make_history.py ([dag_id, run_id])."""
    return "%s/%s" % tuple(pair)
