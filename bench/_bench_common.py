"""What every benchmark in bench/ shares: statistics, the WAL position, worker processes, the machine
record, and the collection on the import path of a worker."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MACHINE_SETTINGS = ("fsync", "synchronous_commit", "full_page_writes", "shared_buffers", "max_wal_size",
                    "checkpoint_timeout", "wal_compression")


def percentile(values, q):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100.0 * (len(ordered) - 1))))]


def median(values):
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


def lsn(conn):
    return int(conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0])


def spawn(worker, mode, args, python=None):
    """``worker`` (a script of bench/) run as ``mode`` with JSON ``args`` in a process of its own."""
    return subprocess.Popen([python or sys.executable, worker, mode, json.dumps(args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc):
    """The JSON a worker printed last; its stderr's end when it failed."""
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError("worker failed (%s): %s" % (proc.returncode, err.strip()[-3000:]))
    return json.loads(out.strip().splitlines()[-1])


def machine(conn):
    mem = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    return {"nproc": os.cpu_count(), "ram_gib": round(mem / 2 ** 30, 1), "platform": platform.platform(),
            "python": platform.python_version(), "postgres": conn.execute("SHOW server_version").fetchone()[0],
            "settings": dict(conn.execute("SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
                                          (list(MACHINE_SETTINGS),)).fetchall())}


def peak_rss_mb():
    """VmHWM: the high-water mark of this process image (ru_maxrss would carry the parent's over exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def collection_on_path():
    """The collection importable as ansible_collections.pgtidy.maintenance in a worker.

    PGTIDY_BENCH_COLLECTION names another checkout of the collection, to compare engine versions.
    """
    root = tempfile.mkdtemp(prefix="pgtidy-bench-coll-")
    os.makedirs(os.path.join(root, "ansible_collections", "pgtidy"))
    source = os.environ.get("PGTIDY_BENCH_COLLECTION") or ROOT
    os.symlink(os.path.abspath(source), os.path.join(root, "ansible_collections", "pgtidy", "maintenance"))
    sys.path.insert(0, root)


def option_value(text):
    """A module option's value as written on a command line: JSON when it parses (numbers, lists, dicts), else text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def set_options(parser, items, options=None):
    """The ``--set OPTION=VALUE`` arguments as module options (a value is read as JSON when it parses, else kept as
    text) added to ``options``; a malformed one is a usage error."""
    options = dict(options or {})
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error("--set takes OPTION=VALUE, not %r" % item)
        options[key] = option_value(value)
    return options


def paced(rate, stop):
    """Yields ``rate`` times a second, on a fixed schedule (a late tick does not push the next ones back), until
    ``stop`` is not empty: the pace of every bench writer."""
    next_at = time.monotonic()
    while not stop:
        now = time.monotonic()
        if now < next_at:
            time.sleep(next_at - now)
            continue
        next_at += 1.0 / rate
        yield
