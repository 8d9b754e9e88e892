# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pg_repack client: its command line and environment, its version, one run, and what its output says. It exits 0
when it skips a table (no key, lock timeout, leftovers of an earlier run), so the exit code proves nothing: a table's
outcome comes from its output *and* from its relfilenode, which a real repack always changes."""

from __future__ import annotations

import os
import re
import signal
import subprocess

from .._common.connection import conninfo_from_params
from .._common.errors import PgtidyError
from .._common.units import quoted_name
from .options import repack_host

# How long pg_repack gets to clean up after SIGINT before it is killed outright.
INTERRUPT_GRACE_S = 30

# libpq keywords pg_repack can only receive through the environment (it takes no conninfo string).
_LIBPQ_ENV = {
    "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY", "sslcrl": "PGSSLCRL",
    "connect_timeout": "PGCONNECT_TIMEOUT", "target_session_attrs": "PGTARGETSESSIONATTRS", "options": "PGOPTIONS",
    "passfile": "PGPASSFILE", "password": "PGPASSWORD", "gssencmode": "PGGSSENCMODE", "krbsrvname": "PGKRBSRVNAME",
    "service": "PGSERVICE", "sslcompression": "PGSSLCOMPRESSION", "requiressl": "PGREQUIRESSL", "channel_binding": "PGCHANNELBINDING",
}

# pg_repack (1.4.x) stderr lines we understand; anything else is reported verbatim.
_NO_KEY = re.compile(r'WARNING: relation "(?P<rel>[^"]+)" must have a primary key or not-null unique keys')
_LOCK_TIMEOUT = re.compile(r"INFO: Skipping repack (?P<rel>\S+) due to timeout")
_TRIGGER_LEFT = re.compile(r'WARNING: the table "(?P<rel>[^"]+)" already has a trigger called')
# "repacking table" for a rewrite, "repacking index" for each index given with --index.
_REPACKING = re.compile(r'INFO: repacking (?:table|index|indexes of) "')
_VERSION = re.compile(r"pg_repack\s+(?P<version>\d+(?:\.\d+)+)")


class RepackUnavailable(PgtidyError):
    """The pg_repack client cannot be run at all."""

    kind = "repack_unavailable"


class VersionMismatch(PgtidyError):
    kind = "version_mismatch"


def repack_invocation(params, plan, dbname):
    """(argv prefix without table options, environment). The password only ever goes into the environment
    (PGPASSWORD), never onto the command line where `ps` would show it."""
    kw = conninfo_from_params(params, dbname)
    argv = list(plan.command)
    host = repack_host(params)
    port = params.get("repack_port") or kw.get("port")
    if host:
        argv += ["--host", host]
    if port:
        argv += ["--port", str(port)]
    argv += ["--username", kw["user"], "--dbname", kw["dbname"], "--no-password"]
    env = dict(os.environ)
    env.update((_LIBPQ_ENV[key], value) for key, value in kw.items() if key in _LIBPQ_ENV)
    return argv, env


def table_argv(argv_base, plan, facts, indexes=None, check_mode=False):
    """The command line for one table, or for its ``indexes`` alone (pg_repack takes --index without --table, builds
    each index anew and swaps it in); names quoted as SQL quotes them."""
    argv = list(argv_base)
    for index in indexes or ():
        argv += ["--index", quoted_name(facts["schema"], index)]
    if not indexes:
        argv += ["--table", quoted_name(facts["schema"], facts["table"])]
    argv += ["--wait-timeout", str(plan.wait_timeout)]
    if plan.jobs > 1 and not indexes:
        argv += ["--jobs", str(plan.jobs)]
    if not plan.kill_backends:
        argv.append("--no-kill-backend")
    if plan.no_superuser_check:
        argv.append("--no-superuser-check")
    return argv + ["--dry-run"] if check_mode else argv


def check_client(plan, env, extension, database):
    """``{"client": version, "extension": version}``; RepackUnavailable when the client does not run or tell its
    version, VersionMismatch when it is not the extension's."""
    argv = list(plan.command) + ["--version"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
    except FileNotFoundError:
        raise RepackUnavailable("cannot run %r: command not found. Install the pg_repack client (Debian:"
                                " postgresql-<major>-repack) or set repack_command" % plan.command[0])
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RepackUnavailable("cannot run %s: %s" % (" ".join(argv), exc))
    text = (proc.stdout + proc.stderr).strip()
    match = _VERSION.search(text)
    if proc.returncode != 0 or not match:
        raise RepackUnavailable("%s did not report a pg_repack version (exit %d): %s" % (" ".join(argv), proc.returncode, text[:300]))
    versions = {"client": match.group("version"), "extension": extension}
    if versions["client"] != extension:
        raise VersionMismatch(
            "pg_repack client %s (%s) does not match the pg_repack extension %s in database %s: install the client of version %s,"
            " or ALTER EXTENSION pg_repack UPDATE after upgrading the server package"
            % (versions["client"], " ".join(plan.command), extension, database, extension), repack_version=versions)
    return versions


def run_pg_repack(argv, env, timeout):
    """Run pg_repack; on timeout interrupt it (SIGINT lets it drop its temporary objects), then kill.
    Returns (returncode, stderr text, interrupted)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        out, err = proc.communicate(timeout=timeout or None)
        return proc.returncode, (out or "") + (err or ""), False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=INTERRUPT_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        return proc.returncode, (out or "") + (err or ""), True


def classify_output(returncode, output, rewritten, dry_run=False):
    """(status, reason, error) of one table from pg_repack's output and whether the table was rewritten."""
    if returncode != 0:
        errors = [line for line in output.splitlines() if "ERROR" in line or "FATAL" in line]
        return "failed", "error", ("\n".join(errors) or output.strip() or "pg_repack exited %d" % returncode)
    for pattern, reason in ((_NO_KEY, "no_key"), (_LOCK_TIMEOUT, "lock_timeout"), (_TRIGGER_LEFT, "leftovers")):
        if pattern.search(output):
            return "skipped", reason, ""
    warnings = "\n".join(line for line in output.splitlines() if line.startswith("WARNING"))
    if dry_run:
        if _REPACKING.search(output) and not warnings:
            return "repacked", "", ""
        return "skipped", "warning", warnings or output.strip()
    if rewritten:
        return "repacked", "", ""
    if warnings:
        return "skipped", "warning", warnings
    return "failed", "not_rewritten", "pg_repack exited 0 but the table was not rewritten: %s" % (output.strip() or "(no output)")
