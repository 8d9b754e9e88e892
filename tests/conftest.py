"""Shared fixtures: a real PostgreSQL cluster, connection parameters, and real ansible-playbook runs."""
from __future__ import annotations

import atexit
import dataclasses
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


# -- what runs on which server and interpreter -------------------------------------------------------------------
# Unmarked tests run on the default major (Debian 12's PostgreSQL 15, or PGTIDY_PG_MAJOR) through the test
# environment's Python. ``@pytest.mark.every_major`` runs a test on every supported major and
# ``@pytest.mark.newest_major`` on the default and the newest only (PGTIDY_PG_FULL_MATRIX=1: on every major too),
# ``pg`` (and whatever is built on it) being that major's cluster; ``@pytest.mark.system_python`` runs a test a
# second time with the managed host's interpreter being the system Python. Test ids say which: ``[pg17]``,
# ``[system-python]``, ``[pg15-venv-python]``.
SUPPORTED_MAJORS = (15, 16, 17, 18)
DEFAULT_MAJOR = int(os.environ.get("PGTIDY_PG_MAJOR") or SUPPORTED_MAJORS[0])
SYSTEM_PYTHON = "/usr/bin/python3"
HOST_PYTHONS = {"venv-python": sys.executable, "system-python": SYSTEM_PYTHON}


def other_majors(marker):
    """The majors besides the default that a test with this marker runs on; PGTIDY_PG_MAJORS=16,18 narrows them."""
    wanted = os.environ.get("PGTIDY_PG_MAJORS")
    majors = [int(m) for m in wanted.replace(",", " ").split()] if wanted else list(SUPPORTED_MAJORS)
    if marker == "newest_major" and os.environ.get("PGTIDY_PG_FULL_MATRIX") != "1":
        majors = [m for m in majors if m == SUPPORTED_MAJORS[-1]]
    return [m for m in majors if m != DEFAULT_MAJOR]


def pytest_configure(config):
    config.addinivalue_line("markers", "every_major: run on every supported PostgreSQL major (pg15 ... pg18)")
    config.addinivalue_line("markers", "newest_major: run on the default and the newest PostgreSQL major (pg15, "
                                       "pg18); on every major with PGTIDY_PG_FULL_MATRIX=1")
    config.addinivalue_line("markers", "system_python: run again with the managed host's system Python "
                                       "(%s and the distribution's psycopg)" % SYSTEM_PYTHON)
    # Each other major's tests are a group (pytest-xdist's marker), also when xdist is not loaded.
    config.addinivalue_line("markers", "xdist_group(name): run the tests of one group on one xdist worker")


def pytest_generate_tests(metafunc):
    """Parametrize ``pg`` (session scope) and ``host_python`` for marked tests. The default major's parameter is
    None, the very key the unmarked tests' ``pg`` is cached under: they share one instance of ``pg`` and of every
    fixture built on it. Each other major is an xdist group, so one worker starts its cluster and builds its
    templates."""
    server_markers = [m for m in ("every_major", "newest_major") if metafunc.definition.get_closest_marker(m)]
    if len(server_markers) > 1:
        raise pytest.UsageError("%s: every_major or newest_major, not both" % metafunc.definition.nodeid)
    server_marker = server_markers[0] if server_markers else None
    system_python = metafunc.definition.get_closest_marker("system_python") is not None
    if not (server_marker or system_python):
        return
    argnames = []
    if server_marker:
        if "pg" not in metafunc.fixturenames:
            raise pytest.UsageError("%s is marked %s but uses no pg fixture"
                                    % (metafunc.definition.nodeid, server_marker))
        argnames.append("pg")
    if system_python:
        if "host_python" not in metafunc.fixturenames:
            raise pytest.UsageError("%s is marked system_python but runs no playbook (ansible fixture)"
                                    % metafunc.definition.nodeid)
        argnames.append("host_python")
    params = []
    for major in ([None] + other_majors(server_marker)) if server_marker else [None]:
        # The system Python runs on the default major only: what it tests is the driver, not the server.
        for python in (list(HOST_PYTHONS) if major is None else ["venv-python"]) if system_python else [None]:
            values = ([major] if server_marker else []) + ([python] if system_python else [])
            label = "-".join((["pg%s" % (major or DEFAULT_MAJOR)] if server_marker else []) +
                             ([python] if system_python else []))
            marks = [pytest.mark.xdist_group("pg%s" % major)] if major else []
            params.append(pytest.param(*values, id=label, marks=marks))
    metafunc.parametrize(argnames, params, indirect=True, scope="session")


def major_of(item):
    callspec = getattr(item, "callspec", None)
    return (callspec.params.get("pg") if callspec else None) or 0


def group_for_xdist(config, items):
    """``--dist loadgroup`` keeps an ``xdist_group`` on one worker by the ``@group`` suffix of its items' node ids.
    pytest-xdist 3.8 appends it to ``item._nodeid``, which pytest 9.2 no longer reads (the id is ``item._id``):
    without this, every group (each major's tests, the containers, each orchestrator release) is spread over both
    workers, and each worker builds what the group shares."""
    if not config.getoption("loadgroup", default=False):
        return
    for item in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        if names and "@" not in item.nodeid.rsplit("]", 1)[-1]:
            # The same structured id, written with the suffix (as pytest-xdist meant it to be written).
            node_id = dataclasses.replace(item._id)  # pylint: disable=protected-access
            object.__setattr__(node_id, "_str_cache", "%s@%s" % (item.nodeid, "_".join(names)))
            item._id = node_id  # pylint: disable=protected-access


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Start the container tests first: under ``-n 2 --dist loadgroup`` one worker spends the suite's longest
    stretch on them while the other works through everything else, instead of that stretch coming last. Then
    keep each module's tests of one major together (after pytest's own grouping by session parameter): switching
    ``pg`` costs nothing (the clusters are pooled), rebuilding a module's fixtures on another major does."""
    first_seen = {}
    for item in items:
        first_seen.setdefault(item.module.__name__ if item.module else item.nodeid, len(first_seen))

    def key(item):
        containers = item.get_closest_marker("xdist_group") is not None and not major_of(item)
        return (0 if containers else 1, first_seen[item.module.__name__ if item.module else item.nodeid],
                major_of(item))
    items.sort(key=key)
    group_for_xdist(config, items)


# The session clusters' settings.
PG_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "200"}


class Clusters:
    """The session's clusters, one per major, each started when a test first asks for its major and stopped when
    the session ends; and what is costly to build on each (the Dagster template). pytest finalizes a
    session-scoped parametrized fixture whenever the parameter changes; ``pg`` and ``dagster_template`` only look
    their value up here, so a change of major costs nothing."""

    def __init__(self, tmp_path_factory):
        self.tmp_path_factory = tmp_path_factory
        self.servers = {}
        self.templates = {}

    def server(self, major):
        if major not in self.servers:
            try:
                server = PgServer(major=major, settings=dict(PG_SETTINGS))
            except RuntimeError as exc:
                if os.environ.get("CI"):
                    pytest.fail(str(exc))  # CI installs every major: a skip there would hide the runs on it
                pytest.skip(str(exc))
            self.servers[major] = server.start()
        return self.servers[major]

    def dagster_template(self, server):
        if server.port not in self.templates:
            self.templates[server.port] = build_dagster_template(server, self.tmp_path_factory)
        return self.templates[server.port]

    def stop(self):
        for server in self.servers.values():
            server.stop()


@pytest.fixture(scope="session")
def clusters(tmp_path_factory):
    pool = Clusters(tmp_path_factory)
    try:
        yield pool
    finally:
        pool.stop()


@pytest.fixture(scope="session")
def pg(request, clusters):
    """The session's cluster of the test's major (the default major for unmarked tests); tests create their own
    databases in it."""
    return clusters.server(getattr(request, "param", None))


@pytest.fixture(scope="session")
def host_python(request):
    """The managed host's interpreter for playbooks: the test environment's Python, or (``system_python``
    tests) the system Python with the distribution's psycopg."""
    name = getattr(request, "param", None) or "venv-python"
    if name == "system-python" and not system_psycopg():
        message = "%s cannot import psycopg: apt-get install python3-psycopg (tests/apt-hosts.txt)" % SYSTEM_PYTHON
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it: a skip there would hide the one run on the old driver
        pytest.skip(message)
    return HOST_PYTHONS[name]


def system_psycopg():
    """The psycopg version the system interpreter imports, or None."""
    if not os.path.exists(SYSTEM_PYTHON):
        return None
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import psycopg; print(psycopg.__version__)"],
                           capture_output=True, text=True, check=False)
    return probe.stdout.strip() if probe.returncode == 0 else None


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


# health_info's retention preview against the prune module's check mode, both through ansible-playbook with
# the same options (the health and orchestrator tests compare them).
def preview_and_check(pg, db, ansible, lock_file, orchestrator, options):
    health_args = conn_params(pg, db, profile=orchestrator, **{"%s_retention" % orchestrator: options})
    health_args.pop("lock_wait")
    rc, health, out = ansible.run_task("pgtidy.maintenance.health_info", health_args, check=True)
    assert rc == 0, out
    preview = health["orchestrator"]["retention"]
    assert preview is not None, health.get("incomplete_sections")
    rc, check, out = ansible.run_task("pgtidy.maintenance.%s_prune" % orchestrator,
                                      conn_params(pg, db, lock_file=lock_file, **options), check=True)
    assert rc == 0, out
    return preview, check


def assert_agree(preview, check):
    assert preview["settings"] == check["retention"]
    assert {name: h["rows"] for name, h in preview["handlers"].items()} == \
        {name: h["deleted"] for name, h in check["handlers"].items()}
    assert preview["next_run_rows"] == check["deleted_total"]
    assert preview["rows_left_after_next_run"] == check["remaining_total"]
    assert preview["next_run_capped"] == check["capped"]
    assert preview["max_rows_per_run"] == check["budget"]["max_rows"]


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
def ansible(tmp_path, host_python):
    """ansible-playbook runs whose managed host (localhost) runs modules with ``host_python``."""
    return PlaybookRunner(str(tmp_path), python=host_python)


def write(path, text):
    with open(path, "w") as fh:
        fh.write(textwrap.dedent(text))
    return path


@pytest.fixture(scope="session")
def dagster_template(pg, clusters):
    """A real Dagster metadata database with months of history, built once per cluster; tests clone it."""
    return clusters.dagster_template(pg)


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
