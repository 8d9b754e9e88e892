# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""main() of a prune module, once its argument spec is built. Imports nothing from Ansible: it calls
methods of the AnsibleModule it is given."""

from __future__ import annotations

from .._common.module import run_guarded
from .metrics import prune_metrics
from .prune import run_prune


def exit_prune(module, profile, job):
    """main() of a prune module once its argument spec is built: run, report, exit or fail.

    A run in which a handler failed fails the task, with the whole result (what every handler did), after
    the report and the metrics were written.
    """
    result = run_guarded(
        module, lambda: run_prune(module.params, profile, check_mode=module.check_mode, log=module.debug),
        metrics_for=lambda r: prune_metrics(r, job, module.params.get("login_db") or "postgres",
                                            more=getattr(profile, "metrics", None)))
    if module._diff:
        result["diff"] = {"before": {"rows": result["rows_before"]}, "after": {"rows": result["rows_after"]}}
    if result.get("schema_tested") is False:
        module.warn("schema revision %s was not tested with this collection (tested: %s); run because"
                    " allow_untested_schema is set" % (result.get("schema_revision") or "unknown",
                                                       profile.tested_releases))
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)
