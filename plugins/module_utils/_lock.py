# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Serialisation: the flock lockfile shared with backups, and a database advisory lock.

The lockfile uses flock(2) semantics so that a backup joins simply by running under
``flock /run/lock/pgtidy.lock <backup command>`` (fcntl/lockf locks would not exclude it).
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import socket
import sys
import time

from ._errors import LockBusy, PgtidyError

DEFAULT_LOCK_FILE = "/run/lock/pgtidy.lock"
LOCK_ARGUMENT_SPEC = dict(
    lock_file=dict(type="path", default=DEFAULT_LOCK_FILE),
    lock_wait=dict(type="int", default=300),
)

# Advisory lock key: a fixed class id ('pgty') and one object id per maintenance scope, so
# pgtidy never collides with an application's own advisory locks (they rarely use two keys).
ADVISORY_CLASS_ID = 0x70677479
ADVISORY_OBJECT_ID = 1


def _holders_from_proc_locks(path):
    """Find the pids holding a flock on ``path`` (Linux /proc/locks), to name a holder that wrote nothing."""
    try:
        st = os.stat(path)
        with open("/proc/locks") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    want = "%02x:%02x:%d" % (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    holders = []
    for line in lines:
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fd:00:5678 0 EOF"; blocked waiters carry "->".
        if len(parts) < 6 or "->" in parts or parts[1] != "FLOCK":
            continue
        if parts[5].lower() == want:
            pid = int(parts[4])
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as fh:
                    cmd = fh.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
            except OSError:
                cmd = ""
            holders.append({"pid": pid, "command": cmd})
    return holders


def describe_holder(path):
    """What we know of whoever holds the lockfile: what it wrote, and what /proc/locks says."""
    info = {}
    try:
        with open(path) as fh:
            text = fh.read().strip()
        if text:
            info = json.loads(text)
    except (OSError, ValueError):
        info = {}
    holders = _holders_from_proc_locks(path)
    if holders:
        live = holders[0]
        if info.get("pid") != live["pid"]:
            # Written by someone else earlier (or nothing written): trust the kernel's view.
            info = {"pid": live["pid"], "command": live["command"]}
    return info


def _holder_text(info):
    if not info:
        return "another process (it did not identify itself)"
    parts = ["pid %s" % info.get("pid", "?")]
    if info.get("command"):
        parts.append("command %r" % info["command"])
    if info.get("started"):
        parts.append("since %s" % info["started"])
    if info.get("host"):
        parts.append("on %s" % info["host"])
    return ", ".join(parts)


class LockFile:
    """Exclusive flock on ``path``, waiting up to ``wait`` seconds; the holder is written into the file."""

    def __init__(self, path=DEFAULT_LOCK_FILE, wait=300, job="pgtidy", poll=0.2):
        if wait is None or wait < 0:
            raise PgtidyError("lock_wait must be 0 or more seconds, not %r" % (wait,))
        self.path = path
        self.wait = wait
        self.job = job
        self.poll = poll
        self.fd = None
        self.waited_s = 0.0

    def acquire(self):
        directory = os.path.dirname(self.path) or "."
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o755, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise PgtidyError("cannot open lock file %s: %s" % (self.path, exc.strerror))
        start = time.monotonic()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise PgtidyError("cannot lock %s: %s" % (self.path, exc.strerror))
                waited = time.monotonic() - start
                if waited >= self.wait:
                    holder = describe_holder(self.path)
                    os.close(fd)
                    raise LockBusy("lock file %s is held by %s; waited %ds (lock_wait). Nothing was changed."
                                   % (self.path, _holder_text(holder), int(waited)),
                                   holder=holder, lock_file=self.path, waited_s=round(waited, 1))
                time.sleep(min(self.poll, max(0.01, self.wait - waited)))
        self.waited_s = round(time.monotonic() - start, 3)
        self.fd = fd
        record = {
            "pid": os.getpid(),
            "command": " ".join(sys.argv) or self.job,
            "job": self.job,
            "host": socket.gethostname(),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        return self

    def release(self):
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)  # leave no stale holder behind for the next reader
        except OSError:
            pass
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


class AdvisoryLock:
    """Session advisory lock in the database so two hosts never maintain the same database at once."""

    def __init__(self, conn, object_id=ADVISORY_OBJECT_ID):
        self.conn = conn
        self.object_id = object_id
        self.held = False

    def acquire(self):
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s::int4, %s::int4)", (ADVISORY_CLASS_ID, self.object_id))
            if cur.fetchone()[0]:
                self.held = True
                return self
            cur.execute(
                "SELECT a.pid, a.application_name, a.client_addr::text, a.backend_start::text"
                " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.classid = %s::oid AND l.objid = %s::oid"
                " AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                (ADVISORY_CLASS_ID, self.object_id))
            row = cur.fetchone()
        holder = {}
        if row:
            holder = {"pid": row[0], "application_name": row[1], "client_addr": row[2], "since": row[3]}
        raise LockBusy("another pgtidy session is maintaining this database (backend %s from %s, since %s);"
                       " nothing was changed" % (holder.get("pid", "?"), holder.get("client_addr") or "local socket",
                                                 holder.get("since", "?")), holder=holder)

    def release(self):
        if self.held and not self.conn.closed and not self.conn.broken:
            with self.conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s::int4, %s::int4)", (ADVISORY_CLASS_ID, self.object_id))
        self.held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
