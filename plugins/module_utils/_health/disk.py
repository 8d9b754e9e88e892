# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Disk space on this host and its growth: the filesystem of the data directory (or ``disk_path``),
the local history file of samples, and the growth per day and days until full drawn from it."""

from __future__ import annotations

import json
import os
import time

from .._common.connection import is_local_host
from .._engine.errors import message_line
from .._common.report import write_atomic
from .gaps import grant_name

from .._common.connection import psycopg  # None without psycopg: the module reports it


def disk_facts(cur, params, user):
    """Free and used space of the data directory when the server is local, or of ``disk_path``.

    When it cannot be measured: ``available`` false, the ``reason`` and the ``fix``.
    """
    path = params.get("disk_path")
    source = "disk_path"
    mount_fix = "set disk_path to a mount, on this host, of the server's data directory"
    if not path:
        host = params.get("login_unix_socket") or params.get("login_host") or ""
        if not is_local_host(host):
            return {"available": False, "reason": "the server is not on this host (%s)" % host, "fix": mount_fix}
        try:
            cur.execute("SELECT current_setting('data_directory')")
            path = cur.fetchone()[0]
        except psycopg.Error as exc:
            return {"available": False, "reason": "cannot read data_directory (%s)" % message_line(exc),
                    "fix": "GRANT pg_read_all_settings TO %s (pg_monitor includes it), or set disk_path"
                           % grant_name(user)}
        source = "data_directory"
        if not os.path.isdir(path):
            return {"available": False, "reason": "data directory %s is not on this host" % path, "fix": mount_fix}
    try:
        st = os.statvfs(path)
    except OSError as exc:
        return {"available": False, "reason": "cannot measure %s: %s" % (path, exc.strerror or exc),
                "fix": "set disk_path to a directory on the server's filesystem that this user can read"}
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    free = st.f_bavail * st.f_frsize
    usable = used + free
    return {"available": True, "path": path, "source": source, "total_bytes": st.f_blocks * st.f_frsize,
            "used_bytes": used, "free_bytes": free,
            "used_percent": round(100.0 * used / usable, 2) if usable else None}


def load_history(path):
    try:
        with open(path) as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        return []
    return [s for s in data.get("samples", []) if isinstance(s, dict) and "ts" in s] if isinstance(data, dict) else []


def update_history(path, sample, keep_days, now=None):
    now = now or time.time()
    samples = [s for s in load_history(path) if s["ts"] >= now - keep_days * 86400]
    samples.append(sample)
    samples = samples[-2000:]
    write_atomic(path, json.dumps({"version": 1, "samples": samples}, indent=1) + "\n", mode=0o600,
                 option="history_file")
    return samples


def growth_per_day(samples, key, window_days=7.0):
    """Least-squares slope of ``key`` over the samples of the last ``window_days`` (bytes per day)."""
    points = [(s["ts"], s[key]) for s in samples if s.get(key) is not None]
    if not points:
        return None
    newest = max(t for t, dummy in points)
    points = [(t, v) for t, v in points if t >= newest - window_days * 86400]
    if len(points) < 2 or points[-1][0] - points[0][0] < 3600:
        return None
    n = len(points)
    mean_t = sum(t for t, dummy in points) / n
    mean_v = sum(v for dummy, v in points) / n
    var = sum((t - mean_t) ** 2 for t, dummy in points)
    if not var:
        return None
    slope = sum((t - mean_t) * (v - mean_v) for t, v in points) / var
    return slope * 86400


def growth_facts(samples, disk):
    out = {"samples": len(samples), "database_bytes_per_day": None, "disk_bytes_per_day": None,
           "days_until_full": None}
    if len(samples) < 2:
        out["reason"] = "fewer than two samples in the history file"
        return out
    out["database_bytes_per_day"] = _round(growth_per_day(samples, "database_bytes"))
    disk_rate = growth_per_day(samples, "disk_used_bytes")
    out["disk_bytes_per_day"] = _round(disk_rate)
    if disk_rate is None:
        out["reason"] = "the history covers less than an hour of the last week"
    elif disk_rate <= 0:
        out["reason"] = "disk usage is not growing"
    elif disk.get("available"):
        out["days_until_full"] = round(disk["free_bytes"] / disk_rate, 1)
    return out


def _round(value):
    return None if value is None else round(value, 1)
