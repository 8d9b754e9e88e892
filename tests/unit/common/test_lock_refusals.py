"""The lockfile is opened by root in directories other users may reach: what it refuses, and why.

Attacks are staged as the real thing where it matters: files and links planted by another user (``nobody``)
in a world-writable sticky directory like ``/run/lock``. Every refusal must leave the planted target as it was,
take no lock, and name ``lock_file`` and the fix.
"""
from __future__ import annotations

import os
import pathlib
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from ansible_collections.pgtidy.maintenance.plugins.module_utils._common import lock as _lock
from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.errors import LockBusy, LockFileRefused
from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.lock import (
    DEFAULT_LOCK_DIR, DEFAULT_LOCK_FILE, LockFile, describe_holder)

AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="stages another user's files: needs root")
VICTIM_TEXT = b"root's secret, mode 0600\n"


def as_nobody(*argv):
    """Run argv as the unprivileged user ``nobody`` (the attacker of these tests)."""
    subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"] + list(argv),
                   check=True)


@pytest.fixture
def victim(tmp_path):
    """A root-owned 0600 file an attacker would like truncated."""
    path = tmp_path / "victim"
    path.write_bytes(VICTIM_TEXT)
    os.chmod(path, 0o600)
    return path


@pytest.fixture
def reachable():
    """A scratch directory other users can enter (pytest's own is private to root)."""
    path = tempfile.mkdtemp(prefix="pgtidy-locktest-")
    os.chmod(path, 0o755)
    yield pathlib.Path(path)
    shutil.rmtree(path)


@pytest.fixture
def shared_dir(reachable):
    """A directory like /run/lock: world-writable with the sticky bit."""
    path = reachable / "lock"
    path.mkdir()
    os.chmod(path, 0o1777)
    return path


@pytest.fixture
def own_dir(reachable):
    """A directory only its owner can write (root in these tests): where a lock file belongs."""
    path = reachable / "pgtidy"
    path.mkdir()
    os.chmod(path, 0o755)
    return path


def refused(path, *fragments):
    with pytest.raises(LockFileRefused) as err:
        LockFile(str(path), wait=0).acquire()
    message = err.value.message
    assert err.value.kind == "lock_file_refused"
    assert message.startswith("lock_file %s refused: " % path)
    assert err.value.details["lock_file"] == str(path)
    for fragment in fragments:
        assert fragment in message, message
    return message


def assert_untouched(victim):
    assert victim.read_bytes() == VICTIM_TEXT
    assert victim.stat().st_mode & 0o7777 == 0o600 and victim.stat().st_uid == 0


@AS_ROOT
def test_symlink_planted_by_another_user_in_a_shared_directory_is_refused(shared_dir, victim):
    """The reported attack: ``ln -s /tmp/victim /run/lock/pgtidy.lock`` as nobody, then a root run."""
    lock = shared_dir / "pgtidy.lock"
    as_nobody("ln", "-s", str(victim), str(lock))
    message = refused(lock, "is writable by others (mode 1777)", "symbolic link sits at the lock file's name",
                      DEFAULT_LOCK_FILE)
    assert "Nothing was locked or changed" in message
    assert_untouched(victim)
    assert os.path.islink(lock)


def test_symlink_is_never_followed_even_in_a_safe_directory(own_dir, victim):
    """O_NOFOLLOW on its own: the directory passes its checks, the link at the file's name does not."""
    lock = own_dir / "pgtidy.lock"
    os.symlink(victim, lock)
    refused(lock, "it is a symbolic link", "Remove the link")
    assert_untouched(victim)


def test_dangling_symlink_creates_nothing(own_dir, tmp_path):
    target = tmp_path / "created-through-the-link"
    lock = own_dir / "pgtidy.lock"
    os.symlink(target, lock)
    refused(lock, "it is a symbolic link")
    assert not target.exists()


@AS_ROOT
def test_lock_file_created_first_by_another_user_is_refused_not_waited_on(shared_dir):
    """nobody creates the file first and holds flock on it forever: a clear refusal, not 'busy' after the wait."""
    lock = shared_dir / "pgtidy.lock"
    holder = subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--",
                               "flock", str(lock), "sleep", "30"], start_new_session=True)
    try:
        for unused in range(50):
            if lock.exists():
                break
            time.sleep(0.1)
        started = time.monotonic()
        with pytest.raises(LockFileRefused) as err:
            LockFile(str(lock), wait=5).acquire()
        assert time.monotonic() - started < 2  # refused before the wait, not after it
        assert "is writable by others" in err.value.message and "belongs to nobody" in err.value.message
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()


@AS_ROOT
def test_foreign_owned_lock_file_is_refused(own_dir):
    """Even in a directory only root can write, a lock file owned by another user is not trusted."""
    lock = own_dir / "pgtidy.lock"
    lock.write_text("")
    nobody = pwd.getpwnam("nobody")
    os.chown(lock, nobody.pw_uid, nobody.pw_gid)
    refused(lock, "it belongs to nobody (uid %d)" % nobody.pw_uid, "Remove it")
    assert lock.read_text() == ""


def test_world_writable_lock_file_is_refused_and_left_as_it_was(own_dir):
    lock = own_dir / "pgtidy.lock"
    lock.write_text("someone's content\n")
    os.chmod(lock, 0o666)
    refused(lock, "writable by others (mode 0666)", "chmod o-w %s" % lock)
    assert lock.read_text() == "someone's content\n"  # not truncated: checks come before any write


def test_group_writable_lock_file_is_accepted(own_dir):
    """The timers role shares the lock with its service group (root-owned, 0660)."""
    lock = own_dir / "pgtidy.lock"
    lock.write_text("")
    os.chmod(lock, 0o660)
    with LockFile(str(lock), wait=0) as held:
        assert describe_holder(held.fd)["pid"] == os.getpid()


def test_hard_link_to_another_file_is_refused(own_dir, victim):
    lock = own_dir / "pgtidy.lock"
    os.link(victim, lock)
    refused(lock, "it has 2 names (hard links)")
    assert_untouched(victim)


def test_fifo_is_refused_without_hanging(own_dir):
    lock = own_dir / "pgtidy.lock"
    os.mkfifo(lock, 0o600)
    refused(lock, "it is not a regular file")


@pytest.mark.parametrize("mode, who", [(0o775, "its group"), (0o777, "others"), (0o1777, "others")])
def test_directory_writable_by_others_is_refused(tmp_path, mode, who):
    directory = tmp_path / "locks"
    directory.mkdir()
    os.chmod(directory, mode)
    lock = directory / "pgtidy.lock"
    refused(lock, "its directory %s is writable by %s (mode %04o)" % (directory, who, mode), DEFAULT_LOCK_FILE)
    assert not lock.exists()


@AS_ROOT
def test_directory_owned_by_another_user_is_refused(tmp_path):
    directory = tmp_path / "locks"
    directory.mkdir()
    os.chmod(directory, 0o755)
    os.chown(directory, pwd.getpwnam("nobody").pw_uid, -1)
    lock = directory / "pgtidy.lock"
    refused(lock, "its directory %s belongs to nobody" % directory)
    assert not lock.exists()


def test_missing_directory_of_a_given_lock_file_is_an_error_not_created(tmp_path):
    """A typo in lock_file must not create a second, unshared lock (the backup holds the real one)."""
    lock = tmp_path / "pgtidy-typo" / "pgtidy.lock"
    refused(lock, "its directory %s does not exist" % lock.parent, "check lock_file for a typo")
    assert not lock.parent.exists()


def test_parent_that_is_a_file_names_lock_file():
    """Was: ``[Errno 17] File exists: '/etc/hostname'`` without naming lock_file."""
    message = refused("/etc/hostname/pgtidy.lock", "/etc/hostname is not a directory", "Check lock_file")
    assert "Errno" not in message


def test_directory_as_lock_file_is_refused(own_dir):
    (own_dir / "pgtidy.lock").mkdir()
    refused(own_dir / "pgtidy.lock", "it is a directory")


def test_created_lock_file_is_private_and_serialises_with_flock(own_dir):
    """The normal case: created 0640 (no other user can open it and hold the lock), excludes flock(1)."""
    lock = own_dir / "pgtidy.lock"
    with LockFile(str(lock), wait=0, job="repack"):
        st = lock.stat()
        assert st.st_mode & 0o777 == 0o640 and st.st_uid == os.geteuid()
        assert subprocess.run(["flock", "-n", str(lock), "true"], check=False).returncode != 0
    assert subprocess.run(["flock", "-n", str(lock), "true"], check=False).returncode == 0
    assert lock.read_text() == ""


def test_busy_names_the_holder_read_through_the_checked_descriptor(own_dir):
    lock = own_dir / "pgtidy.lock"
    holder = subprocess.Popen(["flock", str(lock), "sleep", "20"], start_new_session=True)
    try:
        time.sleep(0.3)
        with pytest.raises(LockBusy) as err:
            LockFile(str(lock), wait=0).acquire()
        assert err.value.details["holder"]["pid"] == holder.pid
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()


@AS_ROOT
def test_read_only_lock_file_is_still_locked_without_a_record(own_dir):
    """A service user that may only read a root-owned file still excludes flock(1); it just writes no record."""
    lock = own_dir / "pgtidy.lock"
    lock.write_text("")
    os.chmod(lock, 0o644)
    script = ("import subprocess, sys\n"
              "from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.lock import LockFile\n"
              "with LockFile(sys.argv[1], wait=0) as held:\n"
              "    assert not held.writable\n"
              "    sys.exit(subprocess.run(['flock', '-n', sys.argv[1], 'true']).returncode)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    run = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--",
                          sys.executable, "-c", script, str(lock)], env=env, check=False,
                         capture_output=True, text=True, cwd="/")
    assert run.returncode == 1, run.stderr  # flock(1) was kept out while nobody held it read-only
    assert lock.read_text() == ""


@pytest.mark.parametrize("umask", [0, 0o077])
def test_default_directory_is_made_root_only_when_missing(monkeypatch, tmp_path, umask):
    """Only the default directory is created: owned by the running user, exactly 0755 whatever the umask (never
    group/other-writable, always enterable by a service user); the file is never open to others."""
    default_dir = tmp_path / "run-pgtidy"
    monkeypatch.setattr(_lock, "DEFAULT_LOCK_DIR", str(default_dir))
    old_umask = os.umask(umask)
    try:
        with LockFile(str(default_dir / "pgtidy.lock"), wait=0):
            st = os.lstat(default_dir)
            assert st.st_uid == os.geteuid() and st.st_mode & 0o7777 == 0o755
            assert os.stat(default_dir / "pgtidy.lock").st_mode & 0o777 == 0o640 & ~umask
    finally:
        os.umask(old_umask)


def test_default_directory_that_is_a_link_is_refused(monkeypatch, tmp_path):
    real = tmp_path / "elsewhere"
    real.mkdir()
    default_dir = tmp_path / "run-pgtidy"
    default_dir.symlink_to(real)
    monkeypatch.setattr(_lock, "DEFAULT_LOCK_DIR", str(default_dir))
    refused(default_dir / "pgtidy.lock", "its directory %s is a symbolic link" % default_dir)
    assert list(real.iterdir()) == []


def test_default_path_lives_in_a_directory_of_its_own():
    assert DEFAULT_LOCK_FILE == "/run/pgtidy/pgtidy.lock" and os.path.dirname(DEFAULT_LOCK_FILE) == DEFAULT_LOCK_DIR
    assert not DEFAULT_LOCK_FILE.startswith("/run/lock/")


def test_setpriv_is_there():
    assert shutil.which("setpriv"), "setpriv (util-linux) stages the other user in these tests"
