"""The host_python role for real on this host: check mode, a run, a re-run, and then a pgtidy module in a later
play on the interpreter the role chose (Debian's python3-psycopg, or a virtual environment with pip)."""
from __future__ import annotations

import json
import os

import pytest

from conftest import ROOT, conn_params, task_result

ON_DEBIAN = os.path.exists("/etc/debian_version")
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not ON_DEBIAN,
                                reason="installs Debian packages on this host: needs root on Debian")

PIP_PINNED = "psycopg[binary]==3.3.9"  # tests/requirements-health.txt's version: pip finds it in its cache


def prepare_then_health(tmp_path, pg, role_vars):
    """Play 1 applies the role; play 2 runs setup and health_info without naming an interpreter."""
    health = conn_params(pg, "postgres")
    health.pop("lock_wait")
    playbook = [
        {"name": "Prepare", "hosts": "all", "gather_facts": False,
         "roles": [{"role": "pgtidy.maintenance.host_python", "vars": role_vars}]},
        {"name": "Use", "hosts": "all", "gather_facts": False, "tasks": [
            {"name": "interpreter", "ansible.builtin.setup": {"gather_subset": ["!all", "!min", "python"]},
             "register": "facts"},
            {"name": "health", "pgtidy.maintenance.health_info": health, "register": "out"},
        ]},
    ]
    path = tmp_path / ("play-%d.json" % len(list(tmp_path.glob("play-*.json"))))
    path.write_text(json.dumps(playbook))
    return str(path)


def role_task(stdout, name):
    """A role task's host result; the json callback may prefix role tasks with the role's name."""
    data = json.loads(stdout[stdout.index("{"):])
    for play in data["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].split(" : ")[-1] == name:
                return next(iter(task["hosts"].values()))
    raise AssertionError("no task %r in the output" % name)


def role_changes(stdout):
    data = json.loads(stdout[stdout.index("{"):])
    return data["stats"]["localhost"]["changed"], data


@pytest.mark.parametrize("method", ["package", "venv"])
def test_host_python_prepares_the_interpreter_later_plays_use(pg, ansible, tmp_path, method):
    role_vars = {"host_python_method": method}
    expected = "/usr/bin/python3"
    if method == "venv":
        venv = tmp_path / "host-python"
        role_vars.update(host_python_venv_path=str(venv), host_python_pip_packages=[PIP_PINNED])
        expected = str(venv / "bin" / "python")
    playbook = prepare_then_health(tmp_path, pg, role_vars)

    checked = ansible.run_playbook(playbook, check=True)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr
    if method == "venv":
        assert not os.path.exists(expected), "check mode created the virtual environment"
        assert "check mode: psycopg would be installed for %s" % expected in checked.stdout

    first = ansible.run_playbook(playbook)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr
    facts = task_result(first.stdout, "interpreter")["ansible_facts"]
    assert facts["ansible_python"]["executable"] == expected
    health = task_result(first.stdout, "health")
    assert health["available"] is True and health["changed"] is False, health
    report = role_task(first.stdout, "Report the prepared interpreter")["msg"]
    version = report.split(" with psycopg ")[1]
    assert report.startswith(expected) and version.startswith("3.")
    if method == "venv":
        assert version == PIP_PINNED.split("==")[1]
        assert role_changes(first.stdout)[0] >= 1

    again = ansible.run_playbook(playbook)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr
    assert role_changes(again.stdout)[0] == 0, "a re-run changed something"
    assert task_result(again.stdout, "interpreter")["ansible_facts"]["ansible_python"]["executable"] == expected


def test_an_unknown_family_without_package_names_is_refused(ansible, tmp_path):
    playbook = tmp_path / "play.json"
    playbook.write_text(json.dumps([{"hosts": "all", "gather_facts": False, "tasks": [
        {"name": "pretend", "ansible.builtin.set_fact": {"ansible_facts": {"os_family": "Plan9"}}},
        {"name": "prepare", "ansible.builtin.include_role": {"name": "pgtidy.maintenance.host_python"}},
    ]}]))
    proc = ansible.run_playbook(str(playbook), check=True)
    assert proc.returncode != 0
    assert "No psycopg 3 package is known for the Plan9 family" in proc.stdout, proc.stdout[-2000:]
    assert "host_python_method=venv" in proc.stdout


def test_role_documents_exactly_its_defaults():
    import yaml
    role = os.path.join(ROOT, "roles", "host_python")
    with open(os.path.join(role, "defaults", "main.yml")) as fh:
        defaults = yaml.safe_load(fh)
    with open(os.path.join(role, "meta", "argument_specs.yml")) as fh:
        options = yaml.safe_load(fh)["argument_specs"]["main"]["options"]
    assert set(defaults) == set(options)
    assert {k: v["default"] for k, v in options.items()} == defaults
