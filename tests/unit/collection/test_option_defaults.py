"""Every option's default has one home, its module's argument spec: DOCUMENTATION (with its doc fragments) says
the same, keyed dicts document each key as a suboption, and the option checks and the health check's retention
preview read the spec's defaults, so a module run and the preview plan alike."""
from __future__ import annotations

import importlib
import os

import pytest
import yaml

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.pgtidy.maintenance.plugins.doc_fragments._common import ModuleDocFragment
from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.errors import InvalidRequest
from ansible_collections.pgtidy.maintenance.plugins.module_utils._airflow import rules as _airflow
from ansible_collections.pgtidy.maintenance.plugins.module_utils._airflow.options import AIRFLOW_PRUNE_ARGUMENT_SPEC
from ansible_collections.pgtidy.maintenance.plugins.module_utils._dagster import rules as _dagster
from ansible_collections.pgtidy.maintenance.plugins.module_utils._dagster.options import DAGSTER_PRUNE_ARGUMENT_SPEC
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine import retention as _retention
from ansible_collections.pgtidy.maintenance.plugins.module_utils._health import options as _health_options
from ansible_collections.pgtidy.maintenance.plugins.module_utils._health.flags import DEFAULT_THRESHOLDS
from ansible_collections.pgtidy.maintenance.plugins.module_utils._prefect import rules as _prefect
from ansible_collections.pgtidy.maintenance.plugins.module_utils._prefect.options import PREFECT_PRUNE_ARGUMENT_SPEC
from ansible_collections.pgtidy.maintenance.plugins.module_utils._repack import options as _repack

MODULES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))),
                           "plugins", "modules")
MODULES = sorted(f[:-3] for f in os.listdir(MODULES_DIR) if f.endswith(".py") and not f.startswith("_"))
PKG = "ansible_collections.pgtidy.maintenance.plugins.modules."


class _Captured(Exception):
    pass


def module_spec(name, monkeypatch, request=None):
    """The argument spec a module's main() hands to AnsibleModule (as validate-modules reads it); ``request``
    stands for the module's arguments."""
    module = importlib.import_module(PKG + name)
    seen = {}

    def fake(**kwargs):
        seen.update(kwargs)
        raise _Captured()

    monkeypatch.setattr(module, "AnsibleModule", fake)
    if hasattr(module, "_load_params"):
        monkeypatch.setattr(module, "_load_params", lambda: request)
    with pytest.raises(_Captured):
        module.main()
    return seen["argument_spec"]


def documented_options(name):
    """The module's documented options, those of its doc fragments included."""
    module = importlib.import_module(PKG + name)
    doc = yaml.safe_load(module.DOCUMENTATION)
    options = {}
    for fragment in doc.get("extends_documentation_fragment", []):
        attribute = fragment.split(".")[3] if fragment.count(".") == 3 else "DOCUMENTATION"
        options.update(yaml.safe_load(getattr(ModuleDocFragment, attribute)).get("options") or {})
    options.update(doc["options"])
    return options


def differences(doc, spec, where=""):
    """Where the documented options and the spec disagree on names, types, defaults or suboptions."""
    out = []
    if set(doc) != set(spec):
        out.append("%s: documented %s, spec %s"
                   % (where or "options", sorted(set(doc) - set(spec)), sorted(set(spec) - set(doc))))
    for name in sorted(set(doc) & set(spec)):
        d, s = doc[name], spec[name]
        here = where + name
        if d.get("type", "str") != s.get("type", "str"):
            out.append("%s: type %r documented, %r in the spec" % (here, d.get("type"), s.get("type")))
        if d.get("default") != s.get("default"):
            out.append("%s: default %r documented, %r in the spec" % (here, d.get("default"), s.get("default")))
        if bool(d.get("suboptions")) != bool(s.get("options")):
            out.append("%s: suboptions documented %s, in the spec %s"
                       % (here, bool(d.get("suboptions")), bool(s.get("options"))))
        elif d.get("suboptions"):
            out.extend(differences(d["suboptions"], s["options"], here + "."))
    return out


@pytest.mark.parametrize("name", MODULES)
def test_documented_defaults_are_the_spec_defaults(name, monkeypatch):
    assert differences(documented_options(name), module_spec(name, monkeypatch)) == []


def test_keyed_dicts_document_their_keys():
    prune_keyed = {"log_retention_days", "tick_retention_days", "run_retention_days"}
    assert set(_retention.keyed_options(DAGSTER_PRUNE_ARGUMENT_SPEC)) == prune_keyed
    assert _retention.keyed_options(PREFECT_PRUNE_ARGUMENT_SPEC) == ["log_retention_days"]
    thresholds = _health_options.HEALTH_ARGUMENT_SPEC["thresholds"]["options"]
    assert {k: v["default"] for k, v in thresholds.items()} == DEFAULT_THRESHOLDS


def ansible_params(spec, given):
    """What a module gets from Ansible for ``given``: defaults filled in, suboptions' included."""
    result = ArgumentSpecValidator(spec).validate(dict(given))
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


@pytest.mark.parametrize("validate, spec, given", [
    (_dagster.validate_options, DAGSTER_PRUNE_ARGUMENT_SPEC, {}),
    (_dagster.validate_options, DAGSTER_PRUNE_ARGUMENT_SPEC, {"log_retention_days": {"debug": 3}}),
    (_dagster.validate_options, DAGSTER_PRUNE_ARGUMENT_SPEC, {"log_retention_days": {"info": -1}}),
    (_dagster.validate_options, DAGSTER_PRUNE_ARGUMENT_SPEC,
     {"tick_retention_days": {"sensor": {"failure": 30}, "schedule": 14}}),
    (_dagster.validate_options, DAGSTER_PRUNE_ARGUMENT_SPEC, {"tick_retention_days": {"auto_materialize": -1}}),
    (_dagster.validate_options, DAGSTER_PRUNE_ARGUMENT_SPEC, {"run_retention_days": {"success": 90}}),
    (_dagster.validate_options, DAGSTER_PRUNE_ARGUMENT_SPEC,
     {"run_retention_days": {"failure": 30}, "keep_runs_per_job": 3, "retire_run_ticks": False}),
    (_dagster.validate_options, DAGSTER_PRUNE_ARGUMENT_SPEC, {"run_retention_days": {}}),
    (_prefect.validate_options, PREFECT_PRUNE_ARGUMENT_SPEC, {}),
    (_prefect.validate_options, PREFECT_PRUNE_ARGUMENT_SPEC, {"log_retention_days": {"debug": 3}}),
    (_prefect.validate_options, PREFECT_PRUNE_ARGUMENT_SPEC,
     {"flow_run_retention_days": 30, "event_retention_days": 14, "event_retention_overrides": {"a.b": 1}}),
    (_airflow.validate_options, AIRFLOW_PRUNE_ARGUMENT_SPEC, {}),
    (_airflow.validate_options, AIRFLOW_PRUNE_ARGUMENT_SPEC, {"dag_run_retention_days": 30, "keep_runs_per_dag": 2}),
    (_repack.validate_options, _repack.REPACK_ARGUMENT_SPEC, {"auto": True}),
    (_repack.validate_options, _repack.REPACK_ARGUMENT_SPEC, {"tables": ["t"], "max_tables": 0, "profile": "airflow"}),
])
def test_the_core_plans_a_partial_request_as_ansible_fills_it(validate, spec, given):
    """The preview hands the core only the keys given; the module hands it what Ansible filled in."""
    assert validate(dict(given)) == validate(ansible_params(spec, given))


def test_the_preview_plans_what_the_module_runs_with():
    dagster = {"log_retention_days": {"debug": 3}, "tick_retention_days": {"sensor": 2}, "max_rows": 10}
    prefect = {"log_retention_days": {"info": 5}, "flow_run_retention_days": 9}
    thresholds, plans = _health_options.validate_options(
        ansible_params(_health_options.HEALTH_ARGUMENT_SPEC,
                       {"dagster_retention": dagster, "prefect_retention": prefect, "thresholds": {"min_dead_tuples": 5}}))
    assert thresholds == dict(DEFAULT_THRESHOLDS, min_dead_tuples=5)
    dagster.pop("max_rows")
    assert plans["dagster"][0] == _dagster.validate_options(ansible_params(DAGSTER_PRUNE_ARGUMENT_SPEC, dagster))
    assert plans["prefect"][0] == _prefect.validate_options(ansible_params(PREFECT_PRUNE_ARGUMENT_SPEC, prefect))
    assert plans["dagster"][1].max_rows == 10 and plans["prefect"][1].batch_size == 5000


@pytest.mark.parametrize("name, option, value", [
    ("dagster_prune", "log_retention_days", {"trace": 3}),
    ("dagster_prune", "log_retention_days", {"DEBUG": 3}),
    ("dagster_prune", "log_retention_days", {"debug": 1.5}),
    ("dagster_prune", "run_retention_days", {"succes": 30}),
    ("dagster_prune", "tick_retention_days", {"timer": 5}),
    ("prefect_prune", "log_retention_days", {"error": 3}),
    ("health_info", "thresholds", {"disk_used_percent": 80}),
])
def test_a_value_ansible_would_refuse_reaches_the_module_checks_as_before(name, option, value, monkeypatch):
    """Keys Ansible does not know go to the module's own checks as a plain dict: pgtidy's message, every problem."""
    strict = module_spec(name, monkeypatch)
    given = module_spec(name, monkeypatch, request={option: value})
    assert "options" in strict[option] and "options" not in given[option]
    assert given[option]["type"] == "dict"
    assert {k: v for k, v in given.items() if k != option} == {k: v for k, v in strict.items() if k != option}
    good = module_spec(name, monkeypatch, request={option: {}})
    assert good == strict


@pytest.mark.parametrize("params, fragment", [
    ({"log_retention_days": {"trace": 3}}, "unknown log level 'trace' in log_retention_days (use debug, info, warning)"),
    ({"log_retention_days": {"ERROR": 3}}, "log level ERROR is protected"),
])
def test_both_prunes_name_the_log_levels_alike(params, fragment):
    for validate in (_dagster.validate_options, _prefect.validate_options):
        with pytest.raises(InvalidRequest) as err:
            validate(params)
        assert fragment in err.value.message


def test_days_are_checked_alike():
    assert _retention.check_days("x", -1) is None and _retention.check_days("x", None) is None
    assert _retention.check_days("x", 7.0) == 7
    for bad, fragment in ((0, "out of range"), (36501, "out of range"), (True, "whole number"), (1.5, "whole number"),
                          ("7", "whole number")):
        with pytest.raises(InvalidRequest, match=fragment):
            _retention.check_days("x", bad)
    assert _dagster.LOG_LEVELS is _prefect.LOG_LEVELS is _retention.LOG_LEVELS
