"""The roles, run for real: molecule scenarios (molecule/repack_image, molecule/timers) driven from pytest.

repack_image builds with podman on this machine from a locally made PostgreSQL base image; timers is applied to
a Debian host with systemd as PID 1 in a podman container, whose jobs prune a real Dagster database served by
the test cluster on this machine (the container shares the host network).
"""
from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(os.path.dirname(HERE))
ROOT = os.path.dirname(TESTS)
sys.path.insert(0, TESTS)

from roles_support import containers  # noqa: E402

BIN = os.path.dirname(sys.executable)


def _why_not():
    if os.geteuid() != 0:
        return "needs root (podman with vfs storage, debootstrap)"
    missing = containers.missing_tools()
    if missing:
        return "needs %s (apt-get install podman buildah runc debootstrap)" % ", ".join(missing)
    if not os.path.exists(os.path.join(BIN, "molecule")):
        return "needs molecule (tests/requirements-roles.txt)"
    probe = containers.podman("info", check=False)
    if probe.returncode != 0:
        return "podman does not work here: %s" % probe.stderr.strip()[-300:]
    return None


_REASON = _why_not()
pytestmark = [
    pytest.mark.skipif(_REASON is not None, reason=_REASON or ""),
    # The two longest tests (about ten minutes together, mostly waiting on containers): one worker runs them
    # while the others run the rest of the suite (see pytest_collection_modifyitems in conftest.py).
    pytest.mark.xdist_group("containers"),
]


@pytest.fixture(scope="session")
def collection_snapshot(tmp_path_factory):
    """A copy of the collection for the roles to run from and to ship to hosts.

    The timers role builds the collection it installs from its own copy; a snapshot keeps that content fixed for
    the whole scenario, so the idempotence step compares like with like even while the work tree changes.
    """
    root = tmp_path_factory.mktemp("collections")
    target = root / "ansible_collections" / "pgtidy" / "maintenance"
    shutil.copytree(ROOT, target, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv*", ".pytest_cache", "__pycache__", ".molecule", ".ansible", "output", "results", ".work", "*.tar.gz"))
    return str(root)


def run_molecule(scenario, tmp_path, collections_root, extra_env):
    env = containers.podman_env()
    env.update({
        # containers.podman / community.docker come from the ``ansible`` package's site-packages copy,
        # which ansible-core finds on its own.
        "ANSIBLE_COLLECTIONS_PATH": collections_root,
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
        "PATH": BIN + os.pathsep + env.get("PATH", ""),
        "PGTIDY_TEST_PYTHON": sys.executable,
        "PGTIDY_TEST_WORK": str(tmp_path),
        "NO_COLOR": "1",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "MOLECULE_NO_LOG": "false",
    })
    env.update(extra_env)
    log = tmp_path / ("molecule-%s.log" % scenario)
    with open(log, "w") as fh:
        proc = subprocess.run([os.path.join(BIN, "molecule"), "test", "-s", scenario], cwd=ROOT, env=env,
                              stdout=fh, stderr=subprocess.STDOUT, text=True, check=False)
    output = log.read_text()
    assert proc.returncode == 0, "molecule test -s %s failed (log %s):\n%s" % (scenario, log, output[-6000:])
    return output


@pytest.fixture(scope="session")
def postgres_base_image():
    return containers.postgres_base()


@pytest.fixture(scope="session")
def systemd_host_image():
    return containers.systemd_host()


def test_repack_image_builds_verifies_is_idempotent_and_removes(postgres_base_image, collection_snapshot, tmp_path):
    pinned = containers.podman("run", "--rm", "--entrypoint", "cat", postgres_base_image,
                               "/etc/pgtidy-test-pg-repack-version").stdout.strip()
    assert pinned.startswith("1.4.8"), pinned
    # Start from no image, as on a fresh build host (an interrupted earlier run may have left one).
    containers.podman("rmi", "--force", "localhost/pgtidy-test/postgres-repack:pg15-repack", check=False)
    output = run_molecule("repack_image", tmp_path, collection_snapshot, {
        "PGTIDY_TEST_PG_BASE": postgres_base_image,
        "PGTIDY_TEST_PG_REPACK_VERSION": pinned,
    })
    # converge built (changed), idempotence found nothing to do, verify passed.
    assert '"built": true' in output
    assert "Idempotence completed successfully" in output or "idempotence: Executed: Successful" in output


class _Webhook(http.server.BaseHTTPRequestHandler):
    received = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Webhook)
    _Webhook.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d/pgtidy" % server.server_port, _Webhook.received
    finally:
        server.shutdown()


@pytest.fixture
def dagster_database(pg, tmp_path):
    """A Dagster metadata database with real runs, backdated so the default retention has work to do."""
    import psycopg
    import dagster_fixture
    name = "roles_" + uuid.uuid4().hex[:8]
    pg.create_db(name)
    home = dagster_fixture.write_instance_yaml(str(tmp_path / "dagster_home"), pg.port, name)
    dagster_fixture.migrate(home)
    dagster_fixture.build_history(home, rounds=1, ticks_per_instigator=5)
    with psycopg.connect(pg.dsn(name), autocommit=True) as conn:
        dagster_fixture.backdate(conn, days=120, keep_recent_runs=2)
    try:
        yield name
    finally:
        pg.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


@pytest.fixture
def systemd_host(systemd_host_image):
    name = "pgtidy-molecule-host-%d" % os.getpid()
    containers.podman("rm", "--force", name, check=False)
    containers.podman("run", "--detach", "--name", name, "--hostname", "pgtidy-host", "--systemd=always",
                      systemd_host_image)
    try:
        state = ""
        for _attempt in range(60):
            state = containers.podman("exec", name, "systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(1)
        assert state in ("running", "degraded"), "systemd did not come up in the container: %r" % state
        yield name
    finally:
        containers.podman("rm", "--force", name, check=False)


def backlog_rows(pg, database):
    """Rows the timers' prune (Dagster's default retention) would delete with no row budget: check mode."""
    from conftest import conn_params
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._dagster.rules import DagsterProfile
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.prune import run_prune
    return run_prune(conn_params(pg, database, max_rows=0), DagsterProfile(), check_mode=True)["deleted_total"]


def test_timers_install_drain_notify_kill_switch_busy_and_remove(
        pg, dagster_database, systemd_host, webhook, collection_snapshot, tmp_path):
    url, received = webhook
    backlog = backlog_rows(pg, dagster_database)
    # A third of the backlog per run: the run started by hand is capped and the drain needs at least two more.
    assert backlog >= 30, backlog
    packages = ["ansible-core==2.19.14", "psycopg[binary]==3.3.9"]
    output = run_molecule("timers", tmp_path, collection_snapshot, {
        "PGTIDY_TEST_HOST": systemd_host,
        "PGTIDY_TEST_PG_PORT": str(pg.port),
        "PGTIDY_TEST_DB": dagster_database,
        "PGTIDY_TEST_PSQL": os.path.join(pg.bindir, "psql"),
        "PGTIDY_TEST_WHEELHOUSE": containers.wheelhouse(packages),
        "PGTIDY_TEST_WEBHOOK_URL": url,
        "PGTIDY_TEST_MAX_ROWS": str(backlog // 3),
    })
    assert "verify: Executed: Successful" in output or "Verifier completed successfully" in output
    # The failed run (verify points the jobs at a closed port) reached the webhook with its journal.
    failures = [p for p in received if p.get("event") == "pgtidy_job_failed"]
    assert len(failures) == 1, received
    assert failures[0]["job"] == "prune" and failures[0]["unit"] == "pgtidy-prune.service"
    assert any("pgtidy prune: failed" in line for line in failures[0]["journal"]), failures[0]["journal"]
