"""The lockfile through real ansible-playbook runs and the timers role's own files.

The modules refuse an unsafe lock file with ``error_kind: lock_file_refused`` before anything else (the
connection options point at a closed port: a run that got past the lock would fail with
``connection_failed`` instead). The timers role's tmpfiles entry and backup wrapper are rendered from the role's
templates and used for real: systemd-tmpfiles makes the directory and the file, the service group takes the
lock, and the wrapper serialises with the modules as before.
"""
from __future__ import annotations

import json
import os
import pathlib
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import ROOT, PlaybookRunner, task_result

from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.errors import LockBusy
from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.lock import LockFile

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="stages another user's files and runs as nobody")

VICTIM_TEXT = b"root's secret, mode 0600\n"
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def params(lock_file, **extra):
    """Connection options of a server that is not there: only the lock can stop the run first."""
    base = {"login_host": "127.0.0.1", "login_port": closed_port(), "login_user": "postgres",
            "login_password": "never-used", "login_db": "postgres", "ssl_mode": "disable",
            "lock_file": str(lock_file), "lock_wait": 2}
    base.update(extra)
    return base


def scratch_dir():
    """A scratch directory other users can enter (pytest's own is private to root)."""
    path = tempfile.mkdtemp(prefix="pgtidy-lockfile-")
    os.chmod(path, 0o755)
    return pathlib.Path(path)


def write_victim(path):
    """A root-owned 0600 file an attacker would like truncated."""
    path.write_bytes(VICTIM_TEXT)
    os.chmod(path, 0o600)
    return path


@pytest.fixture(scope="module")
def module_runs(tmp_path_factory):
    """Every case staged first, then one playbook runs each module once per case (ansible-playbook is slow to
    start): {case: (task result, lock file, what else the test needs)}."""
    root = scratch_dir()
    runner = PlaybookRunner(str(tmp_path_factory.mktemp("lockfile-play")))
    cases = {}

    run_lock = root / "lock"  # like /run/lock: world-writable and sticky
    run_lock.mkdir()
    os.chmod(run_lock, 0o1777)
    victim = write_victim(root / "victim")
    planted = run_lock / "pgtidy.lock"
    subprocess.run(NOBODY + ["ln", "-s", str(victim), str(planted)], check=True)
    cases["planted_symlink"] = ("pgtidy.maintenance.dagster_prune", planted, {}, victim)

    private = root / "pgtidy"  # only root can write here
    private.mkdir(mode=0o755)
    foreign = private / "foreign.lock"
    foreign.write_text("")
    os.chown(foreign, pwd.getpwnam("nobody").pw_uid, -1)
    cases["foreign_owner"] = ("pgtidy.maintenance.repack", foreign, {"tables": ["t"]}, None)

    world = private / "world.lock"
    world.write_text("planted\n")
    os.chmod(world, 0o646)
    cases["world_writable"] = ("pgtidy.maintenance.prefect_prune", world, {}, None)

    cases["typo"] = ("pgtidy.maintenance.dagster_prune", root / "pgtdiy" / "pgtidy.lock", {}, None)
    cases["parent_is_a_file"] = ("pgtidy.maintenance.dagster_prune", pathlib.Path("/etc/hostname/pgtidy.lock"),
                                 {}, None)
    cases["safe"] = ("pgtidy.maintenance.dagster_prune", private / "pgtidy.lock", {}, None)

    tasks = [{"name": case, module: params(lock, **extra), "ignore_errors": True}
             for case, (module, lock, extra, unused) in cases.items()]
    play = root / "play.json"
    play.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    proc = runner.run_playbook(str(play))
    results = {case: (task_result(proc.stdout, case), lock, other)
               for case, (module, lock, extra, other) in cases.items()}
    assert all(result for result, unused, unused in results.values()), proc.stdout + proc.stderr
    yield results
    shutil.rmtree(root)


def assert_refused(result, lock_file, *fragments):
    assert result.get("failed") and result.get("error_kind") == "lock_file_refused", result
    assert result["msg"].startswith("lock_file %s refused: " % lock_file), result["msg"]
    assert result.get("lock_file") == str(lock_file)
    for fragment in fragments:
        assert fragment in result["msg"], result["msg"]


def test_planted_symlink_fails_the_run_and_leaves_its_target(module_runs):
    """The reported attack, end to end: nobody plants the link, a root run of a module must not truncate."""
    result, lock, victim = module_runs["planted_symlink"]
    assert_refused(result, lock, "writable by others (mode 1777)", "symbolic link", "/run/pgtidy/pgtidy.lock")
    assert victim.read_bytes() == VICTIM_TEXT and victim.stat().st_mode & 0o7777 == 0o600
    assert os.path.islink(lock)


def test_foreign_owned_lock_file_is_refused_by_repack(module_runs):
    result, lock, unused = module_runs["foreign_owner"]
    assert_refused(result, lock, "it belongs to nobody", "Remove it")


def test_world_writable_lock_file_is_refused_by_prefect_prune(module_runs):
    result, lock, unused = module_runs["world_writable"]
    assert_refused(result, lock, "writable by others (mode 0646)", "chmod o-w")
    assert lock.read_text() == "planted\n"


def test_typo_in_the_lock_directory_is_refused_not_created(module_runs):
    result, lock, unused = module_runs["typo"]
    assert_refused(result, lock, "does not exist", "typo")
    assert not lock.parent.exists()


def test_parent_that_is_a_file_names_lock_file(module_runs):
    result, lock, unused = module_runs["parent_is_a_file"]
    assert_refused(result, lock, "/etc/hostname is not a directory")
    assert "Errno" not in result["msg"]


def test_a_safe_lock_file_gets_past_the_lock(module_runs):
    """The control: the same run with a lock file in a private directory reaches the (missing) server."""
    result, lock, unused = module_runs["safe"]
    assert result.get("failed") and result.get("error_kind") == "connection_failed", result


@pytest.fixture(scope="module")
def timers_render(tmp_path_factory):
    """The role's tmpfiles entry and backup wrapper, rendered by Ansible from the role's templates."""
    root = scratch_dir()
    (root / "run").mkdir(mode=0o755)
    lock = root / "run" / "pgtidy" / "pgtidy.lock"
    templates = os.path.join(ROOT, "roles", "timers", "templates")
    render = {"hosts": "localhost", "gather_facts": False,
              "vars": {"timers_lock_file": str(lock), "timers_group": "nogroup",
                       "_timers_tmpfiles": str(root / "pgtidy.conf")},
              "tasks": [{"name": "render %s" % src, "ansible.builtin.template": {
                  "src": os.path.join(templates, src), "dest": str(root / dest), "mode": mode}}
                  for src, dest, mode in [("tmpfiles.conf.j2", "pgtidy.conf", "0644"),
                                          ("pgtidy-backup.j2", "pgtidy-backup", "0755")]]}
    play = root / "render.json"
    play.write_text(json.dumps([render]))
    proc = PlaybookRunner(str(tmp_path_factory.mktemp("render-play"))).run_playbook(str(play))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield {"lock": lock, "wrapper": str(root / "pgtidy-backup"), "tmpfiles": str(root / "pgtidy.conf")}
    shutil.rmtree(root)


@pytest.fixture
def timers_files(timers_render):
    """What systemd-tmpfiles makes at boot from the role's entry, fresh for each test."""
    lock = timers_render["lock"]
    if os.path.lexists(lock):
        lock.unlink()
    subprocess.run(["systemd-tmpfiles", "--create", timers_render["tmpfiles"]], check=True)
    return timers_render


@pytest.fixture
def victim(tmp_path):
    return write_victim(tmp_path / "victim")


def test_role_tmpfiles_make_a_root_only_directory_the_service_group_can_lock(timers_files):
    lock = timers_files["lock"]
    directory = os.lstat(lock.parent)
    assert directory.st_uid == 0 and directory.st_mode & 0o7777 == 0o755
    st = os.lstat(lock)
    assert st.st_uid == 0 and st.st_gid == pwd.getpwnam("nobody").pw_gid and st.st_mode & 0o7777 == 0o660
    # The service user (here nobody, in the file's group) takes it and writes its record; root too.
    script = ("import sys\n"
              "from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.lock import LockFile\n"
              "with LockFile(sys.argv[1], wait=0, job='prune') as held:\n"
              "    assert held.writable\n"
              "    print(open(sys.argv[1]).read())\n")
    run = subprocess.run(NOBODY + [sys.executable, "-c", script, str(lock)], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)), cwd="/",
                         check=False)
    assert run.returncode == 0 and '"job": "prune"' in run.stdout, run.stderr
    with LockFile(str(lock), wait=0):
        pass


def test_backup_wrapper_and_modules_serialise_as_before(timers_files, ansible):
    lock, wrapper = timers_files["lock"], timers_files["wrapper"]
    backup = subprocess.Popen([wrapper, "sleep", "30"], start_new_session=True)
    try:
        time.sleep(0.5)
        with pytest.raises(LockBusy) as err:
            LockFile(str(lock), wait=0).acquire()
        assert "sleep 30" in err.value.message
        # Through a module: busy, naming the backup, not a refusal of the lock file.
        rc, result, out = ansible.run_task("pgtidy.maintenance.dagster_prune", params(lock, lock_wait=1))
        assert rc != 0 and result.get("error_kind") == "busy" and "sleep 30" in result["msg"], out
    finally:
        os.killpg(backup.pid, signal.SIGKILL)
        backup.wait()
    # A short backup: the job waits for it, then holds the lock, and a backup waits for the job.
    short = subprocess.Popen([wrapper, "sleep", "1"])
    time.sleep(0.3)
    held = LockFile(str(lock), wait=20).acquire()
    try:
        assert short.poll() == 0 and held.waited_s > 0.3
        waiting = subprocess.run([wrapper, "true"], env=dict(os.environ, PGTIDY_BACKUP_LOCK_WAIT="1"),
                                 check=False)
        assert waiting.returncode != 0  # flock gave up after a second: the job still held the lock
    finally:
        held.release()
    assert subprocess.run([wrapper, "true"], check=False).returncode == 0


@pytest.mark.parametrize("dangling", [False, True])
def test_backup_wrapper_refuses_a_link_in_place_of_the_lock_file(timers_files, victim, tmp_path, dangling):
    lock, wrapper = timers_files["lock"], timers_files["wrapper"]
    target = tmp_path / "would-be-created" if dangling else victim
    lock.unlink()
    lock.symlink_to(target)
    run = subprocess.run([wrapper, "true"], capture_output=True, text=True, check=False)
    assert run.returncode == 1 and "is not a regular file" in run.stderr and "systemd-tmpfiles --create" in run.stderr
    assert not (tmp_path / "would-be-created").exists()
    assert victim.read_bytes() == VICTIM_TEXT
