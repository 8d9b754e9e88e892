# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Serialisation: the flock lockfile shared with backups, and a database advisory lock.

The lockfile uses flock(2) semantics so that a backup joins simply by running under
``flock /run/pgtidy/pgtidy.lock <backup command>`` (fcntl/lockf locks would not exclude it).

The lockfile is usually opened by root, so it is opened with care: its directory must be writable only by
its owner (root or the user running pgtidy), so nobody else can plant a link or a file of their own there,
replace the file, or remove it while it is held; the file is never reached through a symbolic link
(``O_NOFOLLOW``), and the opened file must be a regular file with one name, owned by root or the running user
and not writable by others. All of that is checked on the opened descriptors, before the file is locked or
written. Only the default directory is created when it is missing: a directory named by ``lock_file`` that
does not exist is a typo to report, not a place to create a second, unshared lock.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import pwd
import socket
import stat
import sys
import time

from .errors import InvalidRequest, LockBusy, LockFileRefused, PgtidyError

DEFAULT_LOCK_DIR = "/run/pgtidy"
DEFAULT_LOCK_FILE = DEFAULT_LOCK_DIR + "/pgtidy.lock"
LOCK_ARGUMENT_SPEC = dict(
    lock_file=dict(type="path", default=DEFAULT_LOCK_FILE),
    lock_wait=dict(type="int", default=300),
)

# The default directory is made like the timers role makes it (root-only writes, anyone may enter); a lockfile
# pgtidy creates is not readable by others, so no other user can open it and hold its lock forever.
_LOCK_DIR_MODE = 0o755
_LOCK_FILE_MODE = 0o640
_FIX = ("Use a lock file in a directory only root (or the user running pgtidy) can write, such as the default "
        + DEFAULT_LOCK_FILE + " (the timers role makes it).")

# Advisory lock key: a fixed class id ('pgty') and one object id per maintenance scope, so
# pgtidy never collides with an application's own advisory locks (they rarely use two keys).
ADVISORY_CLASS_ID = 0x70677479
ADVISORY_OBJECT_ID = 1


def _holder_from_proc_locks(fd):
    """The pid and command of a process holding a flock on the file open at ``fd`` (Linux /proc/locks), to name
    a holder that wrote nothing; None when none is found."""
    try:
        st = os.fstat(fd)
        with open("/proc/locks") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    want = "%02x:%02x:%d" % (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    for line in lines:
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fd:00:5678 0 EOF"; blocked waiters carry "->".
        if len(parts) >= 6 and "->" not in parts and parts[1] == "FLOCK" and parts[5].lower() == want:
            pid = int(parts[4])
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as fh:
                    cmd = fh.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
            except OSError:
                cmd = ""
            return {"pid": pid, "command": cmd}
    return None


def describe_holder(fd):
    """What we know of whoever holds the lock file open (and checked) at ``fd``: what it wrote, and what
    /proc/locks says."""
    try:
        info = json.loads(os.pread(fd, 65536, 0).decode("utf-8", "replace").strip() or "{}")
    except (OSError, ValueError):
        info = {}
    live = _holder_from_proc_locks(fd)
    if live and (not isinstance(info, dict) or info.get("pid") != live["pid"]):
        # Written by someone else earlier (or nothing written): trust the kernel's view.
        return live
    return info if isinstance(info, dict) else {}


def _holder_text(info):
    if not info:
        return "another process (it did not identify itself)"
    parts = ["pid %s" % info.get("pid", "?")]
    parts += [form % info[key] for key, form in (("command", "command %r"), ("started", "since %s"), ("host", "on %s"))
              if info.get(key)]
    return ", ".join(parts)


def _user_name(uid):
    try:
        return "%s (uid %d)" % (pwd.getpwuid(uid).pw_name, uid)
    except KeyError:
        return "uid %d" % uid


def _trusted_owner(uid):
    return uid == 0 or uid == os.geteuid()


def _refuse(path, reason, fix=_FIX):
    return LockFileRefused("lock_file %s refused: %s. %s Nothing was locked or changed." % (path, reason, fix),
                           lock_file=path)


def _what_is_there(directory_fd, name):
    """A word on what sits at the lock file's name (for the message only; nothing relies on it)."""
    try:
        st = os.lstat(name, dir_fd=directory_fd)
    except OSError:
        return ""
    if stat.S_ISLNK(st.st_mode):
        return "; a symbolic link sits at the lock file's name now"
    if not _trusted_owner(st.st_uid):
        return "; the lock file there now belongs to %s" % _user_name(st.st_uid)
    return ""


def _open_lock_directory(path, directory):
    """Open and check the lock file's directory; create it only if it is the default one."""
    is_default = os.path.normpath(os.path.abspath(directory)) == DEFAULT_LOCK_DIR
    # The default directory must be the real thing, not a link to somewhere else.
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (os.O_NOFOLLOW if is_default else 0)
    created = False
    for attempt in (1, 2):
        try:
            directory_fd = os.open(directory, flags)
            if created:
                os.fchmod(directory_fd, _LOCK_DIR_MODE)  # exactly this mode, whatever the umask
            return directory_fd
        except FileNotFoundError:
            if not is_default:
                raise _refuse(path, "its directory %s does not exist" % directory,
                              "pgtidy creates only its default directory (%s); check lock_file for a typo (a "
                              "lock nobody else takes does not keep a backup out), or create the directory, "
                              "writable only by its owner (root or the user running pgtidy)." % DEFAULT_LOCK_DIR)
            if attempt == 2:
                break
            try:
                os.mkdir(directory, _LOCK_DIR_MODE)
                created = True
            except FileExistsError:
                pass  # made by a run next to this one: checked like any other below
            except OSError as exc:
                raise _refuse(path, "cannot create its directory %s: %s" % (directory, exc.strerror),
                              "Create %s as root (owned by root, mode 0755; the timers role does it at every "
                              "boot with systemd-tmpfiles), or set lock_file to a file in a directory you own."
                              % directory)
        except (NotADirectoryError, FileExistsError):
            if is_default and os.path.islink(directory):  # O_NOFOLLOW|O_DIRECTORY on a link fails with ENOTDIR
                raise _refuse(path, "its directory %s is a symbolic link" % directory,
                              "Remove the link; pgtidy makes the directory itself (owned by root, mode 0755).")
            raise _refuse(path, "%s is not a directory (the lock file's directory, or a parent of it, is a "
                                "file)" % directory, "Check lock_file: it must name a file in an existing "
                                                     "directory.")
        except OSError as exc:
            raise _refuse(path, "cannot open its directory %s: %s" % (directory, exc.strerror),
                          "Check lock_file and the permissions of its directory.")
    raise _refuse(path, "its directory %s disappeared while it was being created" % directory)


def _check_lock_directory(path, directory, directory_fd):
    st = os.fstat(directory_fd)
    if not _trusted_owner(st.st_uid):
        why = ("belongs to %s, not to root or the user running pgtidy (%s): its owner could replace the lock file or"
               " plant a link in its place" % (_user_name(st.st_uid), _user_name(os.geteuid())))
    elif st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        why = ("is writable by %s (mode %04o): anyone who can write there could plant a link or a file of their own"
               " in its place, or remove it while it is held"
               % ("others" if st.st_mode & stat.S_IWOTH else "its group", stat.S_IMODE(st.st_mode)))
    else:
        return
    raise _refuse(path, "its directory %s %s%s" % (directory, why, _what_is_there(directory_fd, os.path.basename(path))))


def _check_lock_fd(path, fd):
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, "it is not a regular file", "Remove it; pgtidy creates the lock file itself.")
    if st.st_nlink != 1:
        raise _refuse(path, "it has %d names (hard links): it may be another file linked in under this name"
                      % st.st_nlink, "Remove this name (check what else it is first); pgtidy creates the "
                                     "lock file itself.")
    if not _trusted_owner(st.st_uid):
        raise _refuse(path, "it belongs to %s, not to root or the user running pgtidy (%s): another user made "
                            "it, and could hold its lock forever"
                      % (_user_name(st.st_uid), _user_name(os.geteuid())),
                      "Remove it; pgtidy creates the lock file itself (the timers role: root-owned, mode "
                      "0660, group of the service user).")
    if st.st_mode & stat.S_IWOTH:
        raise _refuse(path, "it is writable by others (mode %04o)" % stat.S_IMODE(st.st_mode),
                      "Run: chmod o-w %s" % path)


def open_lock_file(path):
    """Open ``path`` for flock after the checks above; returns ``(fd, writable)``.

    Write access is only for the holder record: a file the running user may only read (a root-owned 0644
    file seen by a service user, say, or one on a read-only mount) is locked all the same, without a record.
    """
    directory = os.path.dirname(path) or "."
    name = os.path.basename(path)
    if not name or name in (".", ".."):
        raise _refuse(path, "it does not name a file", "Set lock_file to a file, such as %s." % DEFAULT_LOCK_FILE)
    directory_fd = _open_lock_directory(path, directory)
    try:
        _check_lock_directory(path, directory, directory_fd)
        # O_NONBLOCK: never hang opening a FIFO or a device planted here; O_NOCTTY: never gain a terminal.
        base = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
        writable = True
        try:
            try:
                fd = os.open(name, base | os.O_RDWR | os.O_CREAT, _LOCK_FILE_MODE, dir_fd=directory_fd)
            except OSError as exc:
                if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise
                writable = False
                fd = os.open(name, base | os.O_RDONLY, dir_fd=directory_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _refuse(path, "it is a symbolic link; the lock file is never reached through a link "
                                    "(the link may point at a file someone wants overwritten)",
                              "Remove the link (check where it points first: someone may have planted it); "
                              "pgtidy creates the lock file itself.")
            if exc.errno == errno.ENOENT:
                raise _refuse(path, "it does not exist and its directory %s is not writable by %s"
                              % (directory, _user_name(os.geteuid())),
                              "Create it as root (the timers role does, with systemd-tmpfiles), readable and "
                              "writable by the user running pgtidy.")
            if exc.errno == errno.EISDIR:
                raise _refuse(path, "it is a directory", "Set lock_file to a file, such as %s."
                              % DEFAULT_LOCK_FILE)
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise _refuse(path, "%s may not open it: %s" % (_user_name(os.geteuid()), exc.strerror),
                              "Make it readable and writable by the user running pgtidy (the timers role "
                              "makes it root-owned, mode 0660, in the service user's group).")
            raise _refuse(path, "cannot open it: %s" % exc.strerror, "Check lock_file.")
    finally:
        os.close(directory_fd)
    try:
        _check_lock_fd(path, fd)
    except BaseException:
        os.close(fd)
        raise
    return fd, writable


class _Held:
    """A lock taken by ``with`` and released however the block ends."""

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


class LockFile(_Held):
    """Exclusive flock on ``path``, waiting up to ``wait`` seconds (``lock_wait``, checked here only: 0 does not
    wait); the holder is written into the file. None for either: the spec's default."""

    def __init__(self, path=None, wait=None, job="pgtidy", poll=0.2):
        if wait is not None and (isinstance(wait, bool) or not isinstance(wait, (int, float)) or wait < 0):
            raise InvalidRequest("lock_wait must be 0 (do not wait) or more seconds, not %r" % (wait,))
        self.path = path or LOCK_ARGUMENT_SPEC["lock_file"]["default"]
        self.wait = LOCK_ARGUMENT_SPEC["lock_wait"]["default"] if wait is None else wait
        self.job = job
        self.poll = poll
        self.fd = None
        self.writable = False
        self.waited_s = 0.0

    @classmethod
    def from_params(cls, params, job="pgtidy"):
        """The lockfile of the options ``lock_file`` and ``lock_wait`` (InvalidRequest for a bad lock_wait)."""
        return cls(params.get("lock_file"), params.get("lock_wait"), job=job)

    def acquire(self):
        # Every check comes before the lock is taken and before anything is written (or truncated).
        fd, writable = open_lock_file(self.path)
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
                    holder = describe_holder(fd)
                    os.close(fd)
                    raise LockBusy("lock file %s is held by %s; waited %ds (lock_wait). Nothing was changed."
                                   % (self.path, _holder_text(holder), int(waited)),
                                   holder=holder, lock_file=self.path, waited_s=round(waited, 1))
                time.sleep(min(self.poll, max(0.01, self.wait - waited)))
        self.waited_s = round(time.monotonic() - start, 3)
        self.fd = fd
        self.writable = writable
        if writable:
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
        if self.writable:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)  # leave no stale holder behind for the next reader
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


class AdvisoryLock(_Held):
    """Session advisory lock in the database so two hosts never maintain the same database at once."""

    def __init__(self, conn):
        self.conn = conn
        self.held = False

    def acquire(self):
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s::int4, %s::int4)", (ADVISORY_CLASS_ID, ADVISORY_OBJECT_ID))
            if cur.fetchone()[0]:
                self.held = True
                return self
            cur.execute(
                "SELECT a.pid, a.application_name, a.client_addr::text, a.backend_start::text"
                " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.classid = %s::oid AND l.objid = %s::oid"
                " AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                (ADVISORY_CLASS_ID, ADVISORY_OBJECT_ID))
            holder = dict(zip(("pid", "application_name", "client_addr", "since"), cur.fetchone() or ()))
        raise LockBusy("another pgtidy session is maintaining this database (backend %s from %s, since %s);"
                       " nothing was changed" % (holder.get("pid", "?"), holder.get("client_addr") or "local socket",
                                                 holder.get("since", "?")), holder=holder)

    def release(self):
        if self.held and not self.conn.closed and not self.conn.broken:
            with self.conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s::int4, %s::int4)", (ADVISORY_CLASS_ID, ADVISORY_OBJECT_ID))
        self.held = False
