"""The environments are built from locks (locks/README.md): every package pinned with its hashes, the direct
requirements' pins the same as the lock's, and the environment the tests run in exactly the lock's package set."""
from __future__ import annotations

import glob
import importlib.metadata
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
LOCKS = os.path.join(ROOT, "locks")


def side_environments():
    """lock name -> requirement file of every environment besides .venv (locks/environments.txt)."""
    table = {}
    with open(os.path.join(LOCKS, "environments.txt")) as fh:
        for line in fh:
            fields = line.split("#", 1)[0].split()
            if fields:
                name, _venv, requirements = fields
                table[name] = requirements
    return table


SIDE = side_environments()


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_files(lock):
    """The requirement files a lock is built from: scripts/lock.sh's selection, read from the tree."""
    if lock in SIDE:
        return [SIDE[lock]]
    files = ["requirements.txt", "requirements-test.txt"]
    files += sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "tests", "requirements-*.txt"))
                    if os.path.relpath(p, ROOT) not in SIDE.values())
    return files


def direct_pins(paths):
    """name -> version of every ``name==version`` (extras allowed) in the requirement files."""
    pins = {}
    for path in paths:
        with open(os.path.join(ROOT, path)) as fh:
            for line in fh:
                line = line.split("#", 1)[0].strip()
                if not line or line.startswith("-"):
                    continue
                match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*==\s*([^\s;]+)", line)
                assert match, "%s: %r is not pinned with ==" % (path, line)
                pins[canonical(match.group(1))] = match.group(2)
    return pins


def read_lock(name):
    """name -> (version, number of hashes) of every package in ``locks/<name>.txt``."""
    with open(os.path.join(LOCKS, name + ".txt")) as fh:
        text = fh.read()
    entries = {}
    for block in re.split(r"\n(?=\S)", text):
        match = re.match(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", block)
        if match:
            entries[canonical(match.group(1))] = (match.group(2), len(re.findall(r"--hash=sha256:[0-9a-f]{64}", block)))
    return entries


@pytest.mark.parametrize("lock", ["main"] + sorted(SIDE))
def test_every_locked_package_is_pinned_with_hashes(lock):
    entries = read_lock(lock)
    assert len(entries) > 20, entries
    unhashed = sorted(name for name, (_version, hashes) in entries.items() if hashes == 0)
    assert not unhashed, "packages without hashes in locks/%s.txt: %s" % (lock, unhashed)


@pytest.mark.parametrize("lock", ["main"] + sorted(SIDE))
def test_direct_requirements_are_the_versions_the_lock_holds(lock):
    """A requirement bumped without `make lock` fails here, not on a user's machine."""
    entries = read_lock(lock)
    pins = direct_pins(requirement_files(lock))
    assert pins
    stale = {name: (version, entries.get(name, (None,))[0]) for name, version in pins.items()
             if entries.get(name, (None,))[0] != version}
    assert not stale, "requirement pin -> lock version (run make lock): %s" % stale


def test_the_installer_is_locked_too():
    assert set(read_lock("pip")) == {"pip"}


def in_project_venv():
    venv = os.path.join(ROOT, ".venv")
    return os.path.isdir(venv) and os.path.samefile(sys.prefix, venv)


@pytest.mark.skipif(not in_project_venv(), reason="runs inside the project's .venv, which scripts/bootstrap.sh builds")
def test_the_test_environment_is_exactly_the_lock():
    """What `make test` runs in holds the lock's packages at the lock's versions, and nothing else but pip."""
    installed = {canonical(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    wanted = {name: version for name, (version, _hashes) in read_lock("main").items()}
    wanted.update({name: version for name, (version, _hashes) in read_lock("pip").items()})
    assert installed == wanted, {
        "not in the lock": sorted(set(installed) - set(wanted)),
        "missing": sorted(set(wanted) - set(installed)),
        "other version": sorted(n for n in set(installed) & set(wanted) if installed[n] != wanted[n])}
