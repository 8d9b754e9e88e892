"""The managed host's interpreter: what the ``system_python`` tests run on, and a host without the driver.

Tests marked ``system_python`` (tests/conftest.py) run a second time with ``ansible_python_interpreter`` being
``/usr/bin/python3`` and Debian 12's ``python3-psycopg`` (psycopg 3.1.7, the pure-Python implementation over
the system libpq): the oldest psycopg a supported distribution ships, where every other test runs the pinned
wheel of the test environment.
"""
from __future__ import annotations

import os
import subprocess

import pytest

from conftest import SYSTEM_PYTHON, PlaybookRunner, system_psycopg


@pytest.mark.system_python
def test_modules_run_on_the_interpreter_the_test_id_names(ansible, host_python, request):
    """The playbooks of ``[system-python]`` tests really use /usr/bin/python3 and Debian's psycopg, and those of
    ``[venv-python]`` the test environment's."""
    assert request.node.callspec.id == ("system-python" if host_python == SYSTEM_PYTHON else "venv-python")
    rc, facts, out = ansible.run_task("ansible.builtin.setup", {"gather_subset": ["!all", "!min", "python"]})
    assert rc == 0, out
    assert facts["ansible_facts"]["ansible_python"]["executable"] == host_python
    probe = ("import psycopg, sys; print(sys.executable, psycopg.__version__, psycopg.pq.__impl__,"
             " psycopg.__file__.startswith('/usr/lib/python3/dist-packages/'))")
    rc, ran, out = ansible.run_task("ansible.builtin.command", {"argv": [host_python, "-c", probe]})
    assert rc == 0, out
    executable, version, dummy_impl, from_distribution = ran["stdout"].split()
    assert executable == host_python
    if host_python != SYSTEM_PYTHON:
        assert from_distribution == "False", ran["stdout"]
        return
    assert version == system_psycopg()
    if os.path.exists("/etc/debian_version") and open("/etc/debian_version").read().startswith("12"):
        assert version == "3.1.7" and from_distribution == "True", ran["stdout"]


def test_a_host_without_psycopg_gets_the_install_hint(tmp_path, lock_file):
    """An interpreter without the driver: the module fails with missing_required_lib, naming psycopg."""
    bare = tmp_path / "bare"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(bare)], check=True)
    runner = PlaybookRunner(str(tmp_path), python=str(bare / "bin" / "python"))
    rc, res, out = runner.run_task("pgtidy.maintenance.health_info", {"login_db": "postgres"})
    assert rc != 0
    assert "psycopg >= 3.1" in res["msg"] and "Failed to import the required Python library" in res["msg"], res
