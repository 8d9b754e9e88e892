# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reports every module can leave behind: a JSON report and Prometheus textfile metrics.

Both are written atomically (temporary file in the same directory, then rename) so that a
reader such as node_exporter's textfile collector never sees half a file. The directory must exist:
a missing one is refused (ReportFileRefused, ``error_kind: report_file_refused``), never created.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time

from ._errors import ReportFileRefused

REPORT_ARGUMENT_SPEC = dict(
    report_file=dict(type="path"),
    metrics_file=dict(type="path"),
)

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


# The options naming a file a module writes on the host it runs on, and what each file is for the messages.
OUTPUT_FILE_OPTIONS = (("report_file", "the JSON report"), ("metrics_file", "the metrics"),
                       ("history_file", "the health history"))


def refuse_missing_directory(path, option="report_file"):
    """Raise ReportFileRefused unless the directory ``path`` goes into exists (and is a directory).

    pgtidy creates no directory for its reports, as it creates none for a lock_file it is given: a typo in
    the path would otherwise put the file where nothing reads it, and the alert watching the real place
    would go quiet instead of firing."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(directory):
        return
    what = "is not a directory" if os.path.exists(directory) else "does not exist"
    raise ReportFileRefused(
        "%s %s refused: its directory %s %s. pgtidy creates no directory for it: check %s for a typo, or create"
        " the directory (writable by the user running the module) before the run. Nothing was written there."
        % (option, path, directory, what, option), refused_option=option, refused_file=path)


def check_output_files(params, options=None):
    """Refuse, before anything else happens, output files whose directory is missing: call it before the
    database is touched, so a refused report costs no work."""
    for option, dummy in OUTPUT_FILE_OPTIONS:
        if (options is None or option in options) and params.get(option):
            refuse_missing_directory(params[option], option)


def write_atomic(path, text, mode=0o644, option="report_file"):
    directory = os.path.dirname(os.path.abspath(path))
    refuse_missing_directory(path, option)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json_report(path, result):
    write_atomic(path, json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")


def _escape_label(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_value(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


class Metrics:
    """Collects gauges (name, help, labelled samples) and renders the text exposition format."""

    def __init__(self, prefix="pgtidy"):
        self.prefix = prefix
        self._families = {}

    def gauge(self, name, help_text, value, **labels):
        if value is None:
            return
        full = "%s_%s" % (self.prefix, name)
        if not _METRIC_NAME.match(full):
            raise ValueError("bad metric name %r" % full)
        for key in labels:
            if not _LABEL_NAME.match(key):
                raise ValueError("bad label name %r" % key)
        family = self._families.setdefault(full, {"help": help_text, "samples": []})
        family["samples"].append((tuple(sorted(labels.items())), value))

    def render(self):
        lines = []
        for name in sorted(self._families):
            family = self._families[name]
            lines.append("# HELP %s %s" % (name, family["help"].replace("\\", "\\\\").replace("\n", " ")))
            lines.append("# TYPE %s gauge" % name)
            for labels, value in family["samples"]:
                if labels:
                    text = ",".join('%s="%s"' % (k, _escape_label(v)) for k, v in labels)
                    lines.append("%s{%s} %s" % (name, text, _format_value(value)))
                else:
                    lines.append("%s %s" % (name, _format_value(value)))
        return "\n".join(lines) + "\n"

    def write(self, path):
        write_atomic(path, self.render(), option="metrics_file")


def prune_metrics(result, job, database):
    """Metrics for a prune result (dagster_prune / prefect_prune)."""
    m = Metrics()
    base = {"job": job, "database": database}
    ok = not result.get("failed")
    m.gauge("run_success", "1 if the last run succeeded, 0 if it failed.", ok, **base)
    m.gauge("run_timestamp_seconds", "Unix time the last run finished.", time.time(), **base)
    if ok and not result.get("check_mode"):
        m.gauge("last_success_timestamp_seconds", "Unix time of the last successful run.", time.time(), **base)
    m.gauge("run_duration_seconds", "Duration of the last run.", result.get("duration_s", 0), **base)
    m.gauge("run_capped", "1 if a budget stopped the last run early.", bool(result.get("capped")), **base)
    m.gauge("run_wal_bytes", "WAL written during the last run.", result.get("wal_bytes", 0), **base)
    for name, handler in sorted((result.get("handlers") or {}).items()):
        labels = dict(base, handler=name, table=handler.get("table", ""))
        m.gauge("rows_pruned", "Rows deleted (or, in check mode, that would be) by handler in the last run.",
                handler.get("deleted", 0), **labels)
        m.gauge("rows_remaining", "Estimated rows still past retention after the last run.",
                handler.get("remaining", 0), **labels)
        m.gauge("handler_duration_seconds", "Time spent by handler in the last run.",
                handler.get("duration_s", 0), **labels)
        m.gauge("handler_failed", "1 if the handler failed in the last run.",
                handler.get("status") == "failed", **labels)
    pacing_metrics(m, result, base)
    runs = (result.get("handlers") or {}).get("runs_retired")
    if runs:
        m.gauge("runs_retired", "Whole runs retired (or, in check mode, that would be) in the last run.",
                runs.get("runs_retired", 0), **base)
        for reason, count in sorted((runs.get("kept_by_reason") or {}).items()):
            m.gauge("runs_kept_past_retention", "Runs past their retention kept in the last run, by reason.",
                    count, reason=reason, **base)
    return m


def pacing_metrics(m, result, base):
    """How the run paced itself: time paused by reason, the highest replica lag seen, the WAL rate reached."""
    if result.get("capped") and result.get("capped_by"):
        m.gauge("run_capped_by", "1 for the budget or pacing limit that stopped the last run early.", 1,
                reason=result["capped_by"], **base)
    pacing = result.get("pacing")
    if not pacing:
        return
    for reason, seconds in sorted((pacing.get("paused_s") or {}).items()):
        m.gauge("paused_seconds", "Seconds the last run paused between batches, by reason.", seconds,
                reason=reason, **base)
    if pacing.get("replicas_visible") is not None:
        m.gauge("replica_lag_visible", "1 if the login role could see every standby's position in the last run"
                " (0: replica lag was not watched).", bool(pacing["replicas_visible"]), **base)
    m.gauge("replica_lag_max_bytes", "Highest replica lag in bytes seen before a batch of the last run.",
            pacing.get("max_replica_lag_bytes"), **base)
    m.gauge("replica_lag_max_seconds", "Highest replica lag in seconds (write/flush/replay lag) seen in the last run.",
            pacing.get("max_replica_lag_s"), **base)
    limits = pacing.get("limits") or {}
    m.gauge("replica_lag_limit_bytes", "max_replica_lag in bytes (0: none).", limits.get("max_replica_lag_bytes"),
            **base)
    m.gauge("wal_rate_limit_bytes_per_second", "max_wal_rate (0: unlimited).", limits.get("max_wal_rate"), **base)
    m.gauge("wal_rate_bytes_per_second", "WAL the last run's batches wrote per second of their span, pauses included.",
            pacing.get("wal_rate_bytes_s"), **base)
    m.gauge("wal_rate_peak_bytes_per_second", "Highest WAL rate of the last run over any 5 seconds.",
            pacing.get("wal_rate_peak_bytes_s"), **base)
    for slot in pacing.get("inactive_slots") or ():
        m.gauge("inactive_slot_retained_wal_bytes", "WAL kept on disk by a replication slot that is not active,"
                " seen before the last run.", slot.get("retained_bytes"), slot=slot.get("slot_name") or "", **base)
