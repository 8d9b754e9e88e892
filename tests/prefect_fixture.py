"""A real Prefect history on the test cluster, made once per session and release and cloned per test.

Each supported Prefect release the tests drive (``RELEASES``: the newest, 3.8, and the oldest, 3.4)
lives in an environment of its own (Prefect needs a newer SQLAlchemy than dagster-postgres allows,
and 3.4 an older FastAPI than 3.8). A release's interpreter is the one its variable names
(PGTIDY_PREFECT_PYTHON for 3.8, PGTIDY_PREFECT34_PYTHON for 3.4), else the project's own venv
(``.venv-prefect``, ``.venv-prefect-3.4``, built by scripts/bootstrap.sh), else, for 3.8 only, this
interpreter if it imports ``prefect``. When there is none the release's tests are skipped, or fail if
PGTIDY_REQUIRE_PREFECT is set (for CI); an interpreter with another release than the one asked for
fails. The module under test needs only psycopg; Prefect is used to make and to read back.

``prefect_db`` and ``prefect_history`` are 3.8's; a test parametrized over ``prefect_release``
(``PREFECT_RELEASES``, ids ``prefect-3.8`` and ``prefect-3.4``) gets that release's instead.

One Prefect server runs real flows (tasks, logs at every level, several versions of one
artifact key, a subflow, a failure, a run deleted through the API, API-made runs that were
cancelled before starting or are still running, custom and heartbeat events); the server is
stopped, rows are backdated with SQL, and the database becomes the template every test
clones with CREATE DATABASE ... TEMPLATE. Prefect 3.4 has no ``db_vacuum`` service (nothing to
hold back) and emits no flow run heartbeats of its own; the history's heartbeat events are emitted
by the history script on every release.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass

import pytest

from histories import drop_history, history_for, session_histories
from pgserver import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SCRIPTS = os.path.join(HERE, "prefect")


@dataclass(frozen=True)
class Release:
    """A Prefect release the tests drive: where its interpreter is found."""

    name: str                   # "3.8": the installed version must start with "3.8."
    variable: str               # the environment variable naming its interpreter
    venv: str                   # the project's venv for it (locks/environments.txt)
    requirements: str
    db_vacuum: bool             # whether the server has the db_vacuum service (3.5 and later)


RELEASES = {
    "3.8": Release("3.8", "PGTIDY_PREFECT_PYTHON", ".venv-prefect", "tests/requirements-prefect.txt", True),
    "3.4": Release("3.4", "PGTIDY_PREFECT34_PYTHON", ".venv-prefect-3.4", "tests/requirements-prefect34.txt",
                   False),
}
NEWEST = "3.8"
# For tests that run on every release: ``@pytest.mark.parametrize("prefect_release", PREFECT_RELEASES)``. The
# tests of an older release are an xdist group, so that one worker makes its history.
PREFECT_RELEASES = [pytest.param(name, id="prefect-" + name,
                                 marks=[] if name == NEWEST else [pytest.mark.xdist_group("prefect-" + name)])
                    for name in RELEASES]

# Runs whose rows are moved 60 days into the past (terminal: they go at a 30-day retention).
OLD_LABELS = ("old_etl", "old_only_key", "old_latest", "old_parent", "old_child", "old_failed", "never_started",
              "crashed")
# Moved 60 days back too, but must be kept: a subflow whose parent is recent, and a run still RUNNING.
OLD_BUT_KEPT_LABELS = ("kept_child", "running")
# Old runs a release leaves without an end time, which are therefore kept (Prefect's own vacuum keeps them too):
# Prefect 3.4 gives a run cancelled before it started none.
NO_END_TIME = {"3.4": ("never_started",)}


def old_labels(release):
    """The labels of the old runs a 30-day flow run retention deletes on ``release``."""
    return tuple(label for label in OLD_LABELS if label not in NO_END_TIME.get(release, ()))


def prefect_python(release=NEWEST):
    """The interpreter of ``release`` (see the module docstring); skips or fails when there is none."""
    rel = RELEASES[release]
    configured = os.environ.get(rel.variable)
    if configured:
        return configured
    venv = os.path.join(ROOT, rel.venv, "bin", "python")
    if os.path.exists(venv):
        return venv
    if release == NEWEST:
        probe = subprocess.run([sys.executable, "-c", "import prefect"], capture_output=True, check=False)
        if probe.returncode == 0:
            return sys.executable
    missing = ("Prefect %s is not installed: run scripts/bootstrap.sh, or set %s to a Python with %s installed"
               % (release, rel.variable, rel.requirements))
    if os.environ.get("PGTIDY_REQUIRE_PREFECT"):
        pytest.fail("PGTIDY_REQUIRE_PREFECT is set but " + missing)
    pytest.skip(missing)


def prefect_env(pg, db, home, release=NEWEST, **extra):
    env = dict(os.environ)
    for key in list(env):
        if key.startswith("PREFECT_"):
            del env[key]
    env.update({
        "PREFECT_HOME": home,
        "PREFECT_API_DATABASE_CONNECTION_URL": pg.url(db, "postgresql+asyncpg"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "DEBUG",
    })
    if RELEASES[release].db_vacuum:
        # Prefect's own vacuum must not race the module under test.
        env.update({"PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED": "orphans",
                    "PREFECT_SERVER_SERVICES_DB_VACUUM_ORPHAN_CLEANUP_LOOP_SECONDS": "86400"})
    env.update(extra)
    return env


class PrefectServer:
    """``prefect server start`` on a free port; stopped by its process id."""

    def __init__(self, python, env, services=True):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d/api" % self.port
        args = [python, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
        if not services:
            args.append("--no-services")
        self.log = tempfile.NamedTemporaryFile(prefix="prefect-server-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_healthy(self, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.25)
        with open(self.log.name) as fh:
            output = fh.read()[-3000:]
        self.stop()
        raise RuntimeError("Prefect server did not become healthy:\n" + output)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()
        if os.path.exists(self.log.name):
            os.unlink(self.log.name)


def run_script(python, script, env):
    proc = subprocess.run([python, os.path.join(SCRIPTS, script)], env=env, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError("%s failed:\n%s" % (script, proc.stderr[-4000:]))
    return json.loads(proc.stdout)


def read_back(pg, db, python, home, release=NEWEST):
    """Everything Prefect's client shows for ``db`` (a server without services is started for it)."""
    env = prefect_env(pg, db, home, release, PREFECT_API_DATABASE_MIGRATE_ON_START="false")
    server = PrefectServer(python, env, services=False).wait_healthy()
    try:
        return run_script(python, "read_back.py", dict(env, PREFECT_API_URL=server.url))
    finally:
        server.stop()


def backdate(pg, db, made):
    """Move chosen runs (with their task runs, logs, artifacts) and events into the past."""
    old = [i for label in OLD_LABELS + OLD_BUT_KEPT_LABELS for i in made.get(label, [])]
    ids = "ARRAY[%s]::uuid[]" % ",".join("'%s'" % i for i in old)
    shift = "interval '60 days'"
    statements = [
        "UPDATE flow_run SET created = created - {s}, start_time = start_time - {s}, end_time = end_time - {s},"
        " expected_start_time = expected_start_time - {s} WHERE id = ANY({ids})",
        "UPDATE task_run SET created = created - {s}, start_time = start_time - {s}, end_time = end_time - {s}"
        " WHERE flow_run_id = ANY({ids})",
        "UPDATE log SET timestamp = timestamp - {s}, created = created - {s} WHERE flow_run_id = ANY({ids})",
        "UPDATE artifact SET created = created - {s}, updated = updated - {s} WHERE flow_run_id = ANY({ids})",
        # The cancelled run never started; Prefect still gave it an end time.
        "UPDATE flow_run SET start_time = NULL WHERE id = '%s'" % made["never_started"][0],
        # A kept top-level run that ended 20 days ago: inside a 30-day retention.
        "UPDATE flow_run SET end_time = end_time - interval '20 days' WHERE id = '%s'" % made["kept_etl"][1],
        # Rows of the run deleted through the API are orphans, past the one-hour grace.
        "UPDATE log SET timestamp = timestamp - interval '2 hours' WHERE flow_run_id = '%s'"
        % made["deleted_by_api"][0],
        "UPDATE artifact SET updated = updated - interval '2 hours' WHERE flow_run_id = '%s'"
        % made["deleted_by_api"][0],
        # DEBUG chatter of a kept run, two days old: for log retention by level.
        "UPDATE log SET timestamp = timestamp - interval '2 days' WHERE level = 10 AND flow_run_id = '%s'"
        % made["kept_etl"][0],
    ]
    # Events: two heartbeats 10 days old (past a 7-day override), two 3 days old; two custom events
    # 10 days old (inside a 14-day retention) and two 20 days old; one of those loses its event row.
    ages = {"pgtidy.test.hb.0": 10, "pgtidy.test.hb.1": 10, "pgtidy.test.hb.2": 3, "pgtidy.test.hb.3": 3,
            "pgtidy.test.custom.0": 10, "pgtidy.test.custom.1": 10, "pgtidy.test.custom.2": 20,
            "pgtidy.test.custom.3": 20}
    for resource, days in ages.items():
        statements.append(
            "UPDATE events SET occurred = occurred - interval '%d days' WHERE resource_id = '%s'" % (days, resource))
        statements.append(
            "UPDATE event_resources SET occurred = occurred - interval '%d days' WHERE event_id IN"
            " (SELECT id FROM events WHERE resource_id = '%s')" % (days, resource))
    statements.append("DELETE FROM events WHERE resource_id = 'pgtidy.test.custom.3'")
    pg.psql(";\n".join(s.format(s=shift, ids=ids) for s in statements), db)


def make_history(pg, release):
    """A template database with ``release``'s history: the dict ``prefect_history`` gives a test."""
    python = prefect_python(release)
    home = tempfile.mkdtemp(prefix="pgtidy-prefect-home-")
    template = "prefect%s_tpl_%s" % (release.replace(".", ""), uuid.uuid4().hex[:6])
    pg.create_db(template)
    try:
        env = prefect_env(pg, template, home, release)
        subprocess.run([python, "-m", "prefect", "server", "database", "upgrade", "-y"], env=env, check=True,
                       capture_output=True)
        server = PrefectServer(python, env).wait_healthy()
        try:
            out = run_script(python, "make_history.py", dict(env, PREFECT_API_URL=server.url))
            wait_for_events(pg, template)
        finally:
            server.stop()
        if not out["prefect_version"].startswith(release + "."):
            pytest.fail("%s runs Prefect %s, not %s: point %s at an environment with %s"
                        % (python, out["prefect_version"], release, RELEASES[release].variable,
                           RELEASES[release].requirements))
        made = out["made"]
        backdate(pg, template, made)
        before = read_back(pg, template, python, home, release)
    except BaseException:
        drop_history(pg, {"template": template, "home": home})
        raise
    return {"template": template, "made": made, "before": before, "python": python, "home": home,
            "release": release, "version": out["prefect_version"]}


@pytest.fixture(scope="session")
def prefect_templates():
    """(cluster, release) -> that release's history on that cluster (histories.py)."""
    yield from session_histories()


@pytest.fixture
def prefect_release():
    """The Prefect release of a test: the newest, unless the test is parametrized over ``PREFECT_RELEASES``."""
    return NEWEST


@pytest.fixture
def prefect_history(pg, prefect_templates, prefect_release):
    """The template database, the ids of what was made, and Prefect's read-back before any prune."""
    return history_for(prefect_templates, pg, prefect_release, make_history)


def wait_for_events(pg, db, timeout=30):
    """The event persister writes in the background: wait until our custom events are stored."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pg.psql("SELECT count(*) FROM events WHERE resource_id LIKE 'pgtidy.test.%'", db) == "8":
            return
        time.sleep(0.5)
    raise RuntimeError("the Prefect server did not persist the test events")


@pytest.fixture
def prefect_db(pg, prefect_history):
    """A fresh copy of the Prefect history for one test."""
    name = "pf_" + uuid.uuid4().hex[:10]
    pg.psql('CREATE DATABASE "%s" TEMPLATE "%s"' % (name, prefect_history["template"]))
    yield name
    pg.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


# The retention the Prefect tests prune with, and the tables they count.
RETENTION = {"flow_run_retention_days": 30, "event_retention_days": 14,
             "event_retention_overrides": {"prefect.flow-run.heartbeat": 7}}
TABLES = ("flow_run", "task_run", "log", "artifact", "artifact_collection", "events", "event_resources")


def counts(pg, db):
    return {t: int(pg.psql("SELECT count(*) FROM %s" % t, db)) for t in TABLES}
