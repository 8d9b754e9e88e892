# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retention options every prune shares: days and their limits, log levels, keyed dict options, and cutoffs.

An option's default lives in its module's argument spec (``*_ARGUMENT_SPEC``); the option checks read it
from there (``default_of``), so a run of the module and a call of the core with fewer keys (the health
check's retention preview) plan the same. Imports nothing from Ansible.
"""

from __future__ import annotations

import datetime

from .._common.errors import InvalidRequest

MIN_RETENTION_DAYS = 1
MAX_RETENTION_DAYS = 36500

# Python and Prefect log levels by name; ERROR and CRITICAL lines are never pruned.
LOG_LEVELS = {"debug": 10, "info": 20, "warning": 30}
KEPT_LOG_LEVELS = ("error", "critical")


def utc_cutoff(days, now=None):
    """Naive UTC datetime ``days`` ago (orchestrators store naive UTC timestamps)."""
    now = now or datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return now - datetime.timedelta(days=days)


def aware_cutoff(days, now=None):
    """Aware UTC datetime ``days`` ago (for ``timestamp with time zone`` columns); ``now`` aware too."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now - datetime.timedelta(days=days)


def default_of(spec, name, key=None):
    """The default of option ``name`` in ``spec`` (of its suboption ``key``): where every default is read."""
    option = spec[name]
    if key is not None:
        option = option["options"][key]
    return option.get("default")


def check_days(name, value, allow_keep=True):
    """Whole days in range; None (keep) for None or, with ``allow_keep``, -1. A whole float counts as its int."""
    if value is None or (allow_keep and not isinstance(value, bool) and value == -1):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (isinstance(value, float) and not value.is_integer()):
        raise InvalidRequest("%s must be a whole number of days, not %r" % (name, value))
    if value < MIN_RETENTION_DAYS or value > MAX_RETENTION_DAYS:
        raise InvalidRequest("%s=%r is out of range: use %d to %d days%s" % (
            name, value, MIN_RETENTION_DAYS, MAX_RETENTION_DAYS, " or -1 to keep everything" if allow_keep else ""))
    return int(value)


def log_level_settings(setting, protected):
    """{level: value} of a per-level mapping (keys in any case) and the problems of its keys.

    ``protected`` ends the message for ERROR and CRITICAL, which are never pruned.
    """
    levels, problems = {}, []
    for key, value in (setting or {}).items():
        level = str(key).lower()
        if level in KEPT_LOG_LEVELS:
            problems.append("log level %s is protected: %s" % (str(key).upper(), protected))
        elif level not in LOG_LEVELS:
            problems.append("unknown log level %r in log_retention_days (use %s)" % (key, ", ".join(LOG_LEVELS)))
        else:
            levels[level] = value
    return levels, problems


def log_retention_options(defaults=None):
    """The suboptions of ``log_retention_days``: one per prunable level, with its default days."""
    defaults = defaults or {}
    return {level: dict(type="int", default=defaults.get(level, -1)) for level in LOG_LEVELS}


def keyed_options(spec):
    """The dict options of ``spec`` whose keys are fixed (documented as suboptions)."""
    return [name for name, option in spec.items() if option.get("type") == "dict" and option.get("options")]


def request_spec(spec, params, validator):
    """The argument spec to check this request with: ``spec``, or ``spec`` with a keyed dict made plain.

    A keyed dict option shows each key and its default in ansible-doc, and Ansible fills in the defaults
    of the keys not given. A value Ansible's suboption check would refuse (an unknown key, a key in
    upper case, a value of another type) is handed over as the plain dict it is, as before keyed dicts
    had suboptions, so the module's own checks refuse or accept it with their messages: every problem
    at once, naming the valid keys. ``params`` is the request (``_load_params()``; None when there is
    none), ``validator`` Ansible's ``ArgumentSpecValidator``.
    """
    if not params:
        return spec
    out = dict(spec)
    for name in keyed_options(spec):
        value = params.get(name)
        if value is None:
            continue
        if not isinstance(value, dict) or validator(spec[name]["options"]).validate(dict(value)).error_messages:
            out[name] = {k: v for k, v in spec[name].items() if k not in ("options", "apply_defaults")}
    return out
