"""The shape of plugins/module_utils: packages by concern, what each may import, and what each module ships.

A module's payload is what AnsiballZ sends with it: the module_utils files its imports reach, transitively,
with the ``__init__.py`` of every package on the way. It is measured here from the source, the way AnsiballZ
finds it (imports, relative or absolute, at any depth of the file).
"""
from __future__ import annotations

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MODULE_UTILS = os.path.join(ROOT, "plugins", "module_utils")
MODULES = os.path.join(ROOT, "plugins", "modules")
PREFIX = "ansible_collections.pgtidy.maintenance.plugins.module_utils"

# Package -> the packages it may import (besides itself).
ALLOWED = {
    "_common": set(),
    "_engine": {"_common"},
    "_dagster": {"_common", "_engine"},
    "_prefect": {"_common", "_engine"},
    "_airflow": {"_common", "_engine"},
    "_repack": {"_common"},
    # The retention preview is the prune's own check mode: see _health/__init__.py.
    "_health": {"_common", "_engine", "_dagster", "_prefect", "_airflow"},
}
MAX_TOP_LEVEL = 8
MAX_FILE_LINES = 600
# repack shipped 3,752 lines (14 files) before the packages, 2,172 once the engine was out of it, and 2,094 since
# what only a prune runs (WAL compression and positions, its errors, retention cutoffs) moved to the engine. From
# 2,097 it went to 1,987 once what only health or a prune runs moved out of _common (message_line, the GRANT spelling
# of a name) and repetition went (one Run.mark for every outcome, the estimate steps on the Run, one bound check
# for the numeric options, one wording of "below the thresholds"): _common 881 (the lockfile's checks 363), _repack
# 1,106. This bound is a ratchet that keeps the payload from growing back.
MAX_REPACK_PAYLOAD = 1990


def lines(path):
    with open(path) as fh:
        return sum(1 for dummy in fh)


def module_path(dotted):
    """The file of a module_utils module given as its dotted name below module_utils ("_common.errors")."""
    base = os.path.join(MODULE_UTILS, *dotted.split("."))
    return base + ".py" if os.path.isfile(base + ".py") else os.path.join(base, "__init__.py")


def imports_of(path, dotted):
    """Dotted names (below module_utils) of the module_utils modules ``path`` imports."""
    with open(path) as fh:
        tree = ast.parse(fh.read(), path)
    package = dotted.split(".")[:-1] if not path.endswith("__init__.py") else dotted.split(".")
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package[:len(package) - (node.level - 1)] if node.level > 1 else list(package)
            target = base + (node.module.split(".") if node.module else [])
        elif node.module and node.module.startswith(PREFIX):
            target = node.module[len(PREFIX):].lstrip(".").split(".") if node.module != PREFIX else []
        else:
            continue
        for alias in node.names:
            candidate = ".".join(target + [alias.name])
            if candidate and os.path.isfile(os.path.join(MODULE_UTILS, *candidate.split(".")) + ".py"):
                found.add(candidate)
            elif target:
                found.add(".".join(target))
    return found


def payload(module_file):
    """{dotted module_utils name: lines} reached from a module file, package __init__ files included."""
    seen = {}
    todo = list(imports_of(module_file, "__module__"))
    while todo:
        dotted = todo.pop()
        if dotted in seen or not dotted:
            continue
        path = module_path(dotted)
        seen[dotted] = lines(path)
        parts = dotted.split(".")
        for i in range(1, len(parts)):
            pkg = ".".join(parts[:i])
            if pkg not in seen:
                todo.append(pkg)
        todo.extend(imports_of(path, dotted))
    return seen


def module_utils_files():
    for folder, _dirs, files in os.walk(MODULE_UTILS):
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(folder, name)


def test_module_utils_is_packages_by_concern():
    top = sorted(n for n in os.listdir(MODULE_UTILS) if not n.startswith(".") and n != "__pycache__")
    assert len(top) <= MAX_TOP_LEVEL, top
    # Every package has its import rule here; the neutral ones and the engine are always there.
    assert not set(top) - {"__init__.py"} - set(ALLOWED), top
    assert {"_common", "_engine", "_repack", "_health"} <= set(top), top


def test_no_file_is_too_long():
    long_files = {os.path.relpath(p, ROOT): lines(p) for p in module_utils_files() if lines(p) > MAX_FILE_LINES}
    assert not long_files, long_files


def test_each_package_imports_only_what_it_may():
    wrong = []
    for path in module_utils_files():
        rel = os.path.relpath(path, MODULE_UTILS)[:-3].replace(os.sep, ".")
        if rel == "__init__":
            continue
        package = rel.split(".")[0]
        for target in imports_of(path, rel):
            other = target.split(".")[0]
            if other != package and other not in ALLOWED[package]:
                wrong.append("%s imports %s" % (rel, target))
    assert not wrong, wrong


@pytest.mark.parametrize("module, forbidden", [
    ("repack", {"_engine", "_dagster", "_prefect", "_airflow", "_health"}),
    ("health_info", {"_repack"}),
    ("dagster_prune", {"_prefect", "_airflow", "_repack", "_health"}),
    ("prefect_prune", {"_dagster", "_airflow", "_repack", "_health"}),
    ("airflow_prune", {"_dagster", "_prefect", "_repack", "_health"}),
])
def test_a_module_ships_only_what_it_runs(module, forbidden):
    if not os.path.exists(os.path.join(MODULES, module + ".py")):
        pytest.skip("%s is not in this tree yet" % module)
    shipped = payload(os.path.join(MODULES, module + ".py"))
    assert shipped, module
    assert not {name.split(".")[0] for name in shipped} & forbidden, sorted(shipped)


def test_repack_payload_is_small():
    shipped = payload(os.path.join(MODULES, "repack.py"))
    total = sum(shipped.values())
    assert total < MAX_REPACK_PAYLOAD, (total, shipped)
