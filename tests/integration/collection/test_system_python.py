"""The modules on a managed host's system Python with the distribution's psycopg.

Debian 12's ``python3-psycopg`` (psycopg 3.1.7, the pure-Python implementation over the system libpq) under
``/usr/bin/python3``: the oldest psycopg a supported distribution ships, where every other test runs the
pinned wheel of the test environment. The module tests below are the same functions their own files run;
only the managed host's interpreter differs (``ansible_python_interpreter``).
"""
from __future__ import annotations

# The test functions and fixtures imported below are collected here again, on another server or interpreter.
# pylint: disable=unused-import

import os
import subprocess

import pytest

from conftest import PlaybookRunner

# The tests of other files that run again here, through the system interpreter.
from test_dagster_prune_module import (  # noqa: F401
    test_check_mode_predicts_the_real_run_then_rerun_is_unchanged,
    test_protected_type_fails_naming_it_and_deletes_nothing,
    test_report_and_metrics_files,
    test_wrong_password_is_a_clear_error_without_the_secret,
)
from test_health_flags import (  # noqa: F401
    bloated_db,
    srv,
    test_check_mode_through_ansible_as_a_read_only_monitor,
    test_metrics_and_report_files_through_ansible,
)
from test_health_profiles import test_health_playbook_summary_and_history_on_dagster  # noqa: F401
from test_prefect_prune import test_module_check_diff_run_and_rerun  # noqa: F401
from test_repack_module import test_module_check_then_run_then_rerun  # noqa: F401

SYSTEM_PYTHON = "/usr/bin/python3"


def system_psycopg():
    """The psycopg version the system interpreter imports, or None."""
    if not os.path.exists(SYSTEM_PYTHON):
        return None
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import psycopg; print(psycopg.__version__)"],
                           capture_output=True, text=True, check=False)
    return probe.stdout.strip() if probe.returncode == 0 else None


SYSTEM_PSYCOPG = system_psycopg()


@pytest.fixture(autouse=True)
def _system_psycopg_present():
    if SYSTEM_PSYCOPG:
        return
    message = "%s cannot import psycopg: apt-get install python3-psycopg (tests/apt-hosts.txt)" % SYSTEM_PYTHON
    if os.environ.get("CI"):
        pytest.fail(message)  # CI installs it: a skip there would hide the one run on the old driver
    pytest.skip(message)


@pytest.fixture
def ansible(tmp_path):
    """Playbooks whose managed host (localhost) runs modules with the system Python."""
    return PlaybookRunner(str(tmp_path), python=SYSTEM_PYTHON)


def test_modules_run_on_the_system_python_with_the_distributions_psycopg(ansible):
    """The runs above really used /usr/bin/python3 and Debian's psycopg, not the test environment's."""
    rc, facts, out = ansible.run_task("ansible.builtin.setup", {"gather_subset": ["!all", "!min", "python"]})
    assert rc == 0, out
    assert facts["ansible_facts"]["ansible_python"]["executable"] == SYSTEM_PYTHON
    probe = ("import psycopg, sys; print(sys.executable, psycopg.__version__, psycopg.pq.__impl__,"
             " psycopg.__file__.startswith('/usr/lib/python3/dist-packages/'))")
    rc, ran, out = ansible.run_task("ansible.builtin.command", {"argv": [SYSTEM_PYTHON, "-c", probe]})
    assert rc == 0, out
    executable, version, dummy_impl, from_distribution = ran["stdout"].split()
    assert executable == SYSTEM_PYTHON and version == SYSTEM_PSYCOPG
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
