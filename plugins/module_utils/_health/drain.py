# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How long draining the backlog takes: the retention preview's rows past retention, per table, at the pace
the last real prune run measured (its JSON report, ``prune_report_file``), never at an assumed one.

Without such a report (no run yet, a check-mode run, a run that deleted nothing) the estimate says so and
gives only the backlog and the number of runs the row budget needs.
"""

from __future__ import annotations

import json
import math
import os
import time

from .._engine.metrics import measured_rate, sum_by_table


def read_measurement(path):
    """(measurement, note): the pace of the run that wrote the JSON report at ``path``, or None and why not."""
    if not path:
        return None, ("no measured rate: prune_report_file is not set (point it at the prune's report_file; the"
                      " timers role does)")
    try:
        with open(path) as fh:
            report = json.load(fh)
        mtime = os.path.getmtime(path)
    except FileNotFoundError:
        return None, "no measured rate yet: %s does not exist (no prune has run with that report_file)" % path
    except (OSError, ValueError) as exc:
        return None, "no measured rate: %s cannot be read (%s)" % (path, exc)
    if not isinstance(report, dict):
        return None, "no measured rate: %s is not a prune report" % path
    rate = measured_rate(report)
    if rate is None:
        why = ("a check-mode run" if report.get("check_mode") else "a failed run" if report.get("failed")
               else "a run that deleted nothing")
        return None, "no measured rate yet: the last report (%s) is of %s" % (path, why)
    rate.update(report_file=path, measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mtime)),
                capped_by=report.get("capped_by"))
    return rate, None


def drain_estimate(retention, measurement, note=None):
    """The backlog per table (rows the current retention would delete, the next run's and those after it) and,
    with a measurement, the time and WAL draining it takes at that pace, and the runs the row budget needs."""
    tables, unknown = sum_by_table(retention.get("handlers") or {},
                                   lambda handler: handler["rows"] + handler["remaining"])
    backlog = sum(tables.values())
    max_rows = retention.get("max_rows_per_run") or 0
    estimate = {
        "backlog_rows": backlog,
        "backlog_by_table": tables,
        "backlog_unknown_handlers": unknown,
        "backlog_exact": not unknown and all(h.get("remaining_exact", True)
                                             for h in (retention.get("handlers") or {}).values()),
        "max_rows_per_run": max_rows,
        "runs_needed": (math.ceil(backlog / max_rows) if max_rows else 1) if backlog else 0,
        "measured": measurement,
        "work_seconds": None,
        "wal_bytes": None,
        "note": note,
    }
    if measurement:
        estimate["work_seconds"] = round(backlog / measurement["rows_per_s"], 1)
        estimate["wal_bytes"] = int(backlog * measurement["wal_bytes_per_row"])
        values = (measurement["rows_per_s"], measurement["rows"], measurement["measured_at"], estimate["runs_needed"])
        estimate["note"] = ("at the pace the last run measured (%s rows/s over %d rows, pacing included, %s);"
                            " a drain adds the pause between runs (timers_prune_drain_interval) to each of the"
                            " %d runs" % values)
    return estimate
