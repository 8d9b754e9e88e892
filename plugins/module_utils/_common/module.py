# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every pgtidy module's main() shares. It calls methods of the AnsibleModule it is
given but imports nothing from Ansible, so the core stays importable without it."""

from __future__ import annotations

import traceback

from .connection import CONNECTION_ARGUMENT_SPEC, HAS_PSYCOPG, PSYCOPG_IMPORT_ERROR

from .errors import PgtidyError, ReportFileRefused, classify, first_line
from .report import REPORT_ARGUMENT_SPEC, check_output_files, write_json_report


def argument_spec(*parts, **own):
    spec = dict(CONNECTION_ARGUMENT_SPEC)
    for part in parts:
        spec.update(part)
    spec.update(REPORT_ARGUMENT_SPEC)
    spec.update(own)
    return spec


def require_psycopg(module, missing_required_lib):
    if not HAS_PSYCOPG:
        module.fail_json(msg=missing_required_lib("psycopg >= 3.1"), exception=str(PSYCOPG_IMPORT_ERROR))


def write_outputs(module, result, metrics=None):
    """JSON report and Prometheus textfile, if asked for. A failure here is a warning, not a lost run."""
    for option, what, write in (("report_file", "report", lambda path: write_json_report(path, result)),
                                ("metrics_file", "metrics", None if metrics is None else metrics.write)):
        if module.params.get(option) and write is not None:
            try:
                write(module.params[option])
            except OSError as exc:      # ReportFileRefused is one too, and its text is its message
                module.warn("could not write the %s: %s" % (what, exc))


def run_guarded(module, work, metrics_for=None):
    """Run ``work()`` -> result dict; write report and metrics; exit or fail with a clear message."""
    try:
        # A report or metrics file whose directory is missing (a typo) is refused before any work.
        check_output_files(module.params)
        result = work()
    except Exception as exc:  # pylint: disable=broad-except
        # pgtidy's own errors carry their kind and message; a database error outside any handler (a
        # statement timeout while reading the catalog, a lost connection) or a defect gets a kind and a fix
        # from classify: the task never ends with a bare traceback.
        if isinstance(exc, PgtidyError):
            failure = dict(exc.details, error_kind=exc.kind, msg=exc.message)
        else:
            kind, fix = classify(exc)
            failure = {"error_kind": kind, "fix": fix, "msg": "%s. Fix: %s" % (first_line(exc), fix)}
        failure.update(failed=True, changed=False)
        if not isinstance(exc, ReportFileRefused):      # a refused output file: nothing to write it to
            write_outputs(module, failure, metrics_for(failure) if metrics_for else None)
        if failure["error_kind"] == "internal_error":
            failure["exception"] = traceback.format_exc()
        module.fail_json(**failure)
        return
    write_outputs(module, result, metrics_for(result) if metrics_for else None)
    return result
