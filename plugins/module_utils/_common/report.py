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

from .errors import ReportFileRefused

REPORT_ARGUMENT_SPEC = dict(
    report_file=dict(type="path"),
    metrics_file=dict(type="path"),
)

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


# The options naming a file a module writes on the host it runs on.
OUTPUT_FILE_OPTIONS = ("report_file", "metrics_file", "history_file")


def refuse_missing_directory(path, option="report_file"):
    """The directory ``path`` goes into; ReportFileRefused unless it exists (and is a directory).

    pgtidy creates no directory for its reports, as it creates none for a lock_file it is given: a typo in
    the path would otherwise put the file where nothing reads it, and the alert watching the real place
    would go quiet instead of firing."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(directory):
        return directory
    what = "is not a directory" if os.path.exists(directory) else "does not exist"
    raise ReportFileRefused(
        "%s %s refused: its directory %s %s. pgtidy creates no directory for it: check %s for a typo, or create"
        " the directory (writable by the user running the module) before the run. Nothing was written there."
        % (option, path, directory, what, option), refused_option=option, refused_file=path)


def check_output_files(params):
    """Refuse, before anything else happens, output files whose directory is missing: call it before the
    database is touched, so a refused report costs no work."""
    for option in OUTPUT_FILE_OPTIONS:
        if params.get(option):
            refuse_missing_directory(params[option], option)


def write_atomic(path, text, mode=0o644, option="report_file"):
    directory = refuse_missing_directory(path, option)
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
                text = ",".join('%s="%s"' % (k, _escape_label(v)) for k, v in labels)
                lines.append("%s%s %s" % (name, "{%s}" % text if text else "", _format_value(value)))
        return "\n".join(lines) + "\n"

    def write(self, path):
        write_atomic(path, self.render(), option="metrics_file")
