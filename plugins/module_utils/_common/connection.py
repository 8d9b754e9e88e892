# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connecting to PostgreSQL with the community.postgresql option names (psycopg 3)."""

from __future__ import annotations

from .errors import ConnectionFailed, InvalidRequest
from .units import parse_duration

try:
    import psycopg
    from psycopg import sql
    HAS_PSYCOPG = True
    PSYCOPG_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module through missing_required_lib
    psycopg = None
    sql = None
    HAS_PSYCOPG = False
    PSYCOPG_IMPORT_ERROR = exc

APPLICATION_NAME = "pgtidy"

# One argument spec for every module: the names community.postgresql uses, plus the
# session guards every pgtidy statement runs under.
CONNECTION_ARGUMENT_SPEC = dict(
    login_user=dict(type="str", default="postgres", aliases=["login"]),
    login_password=dict(type="str", default="", no_log=True),
    login_host=dict(type="str", default="", aliases=["host"]),
    login_port=dict(type="int", default=5432, aliases=["port"]),
    login_unix_socket=dict(type="str", default="", aliases=["unix_socket"]),
    login_db=dict(type="str", aliases=["db", "database"]),
    ssl_mode=dict(type="str", default="prefer",
                  choices=["allow", "disable", "prefer", "require", "verify-ca", "verify-full"]),
    ca_cert=dict(type="str", aliases=["ssl_rootcert"]),
    ssl_cert=dict(type="path"),
    ssl_key=dict(type="path"),
    connect_params=dict(type="dict", default={}),
    session_role=dict(type="str"),
    connect_timeout=dict(type="int", default=10),
    lock_timeout=dict(type="str", default="5s"),
    statement_timeout=dict(type="str", default="60s"),
)

_SECRET_KEYS = ("password", "sslpassword")
# PostgreSQL's timeouts are whole milliseconds in an int4.
_MAX_TIMEOUT_MS = 2 ** 31 - 1


def connection_option(params, name):
    """A connection option's value, or its default (CONNECTION_ARGUMENT_SPEC) when it is unset or empty."""
    return CONNECTION_ARGUMENT_SPEC[name]["default"] if params.get(name) in (None, "") else params[name]


def duration_setting(name, value):
    """A PostgreSQL timeout (lock_timeout, statement_timeout; units.parse_duration, a bare number in ms) in whole
    milliseconds for set_config. 0 is no timeout; a value below 1ms is refused, as PostgreSQL could round it to 0."""
    seconds = parse_duration(value, name, bare="ms")
    ms = int(round(seconds * 1000))
    if 0 < seconds < 0.001:
        raise InvalidRequest("%s of %r is less than a millisecond, which PostgreSQL would read as 0 (no timeout);"
                             " use at least 1ms, or 0 for no timeout" % (name, value))
    if ms > _MAX_TIMEOUT_MS:
        raise InvalidRequest("%s of %r is more than PostgreSQL allows (2147483647ms, about 24.8 days)" % (name, value))
    return "%dms" % ms


def conninfo_from_params(params, dbname=None):
    """Map module parameters to libpq keywords. The password stays out of every message."""
    kw = {
        "user": connection_option(params, "login_user"),
        "dbname": dbname or params.get("login_db") or "postgres",
        "sslmode": connection_option(params, "ssl_mode"),
        # 0 (libpq: wait forever) has always meant the default here.
        "connect_timeout": str(params.get("connect_timeout") or connection_option({}, "connect_timeout")),
        "application_name": APPLICATION_NAME,
    }
    host = params.get("login_unix_socket") or params.get("login_host")
    for key, value in (("host", host), ("port", params.get("login_port")), ("password", params.get("login_password")),
                       ("sslrootcert", params.get("ca_cert")), ("sslcert", params.get("ssl_cert")), ("sslkey", params.get("ssl_key"))):
        if value:
            kw[key] = str(value)
    for key, value in (params.get("connect_params") or {}).items():
        kw[str(key)] = str(value)
    return kw


def redact(text, params):
    """Remove every secret the caller gave us from a message (libpq echoes conninfo fragments)."""
    text = str(text)
    secrets = [params.get("login_password")]
    secrets += [v for k, v in (params.get("connect_params") or {}).items() if k in _SECRET_KEYS]
    for secret in secrets:
        if secret:
            text = text.replace(str(secret), "********")
    return text


def connect(params, dbname=None):
    """Open an autocommit session with application_name, lock_timeout and statement_timeout set.

    Autocommit is deliberate: every write pgtidy makes is an explicit short transaction.
    """
    if not HAS_PSYCOPG:
        raise ConnectionFailed("psycopg 3 is required: %s" % PSYCOPG_IMPORT_ERROR)
    lock_timeout = duration_setting("lock_timeout", connection_option(params, "lock_timeout"))
    statement_timeout = duration_setting("statement_timeout", connection_option(params, "statement_timeout"))
    kw = conninfo_from_params(params, dbname)
    target = "%s@%s:%s/%s" % (kw["user"], kw.get("host", "(default socket)"), kw.get("port", "5432"), kw["dbname"])
    try:
        conn = psycopg.connect(autocommit=True, **kw)
    except psycopg.Error as exc:
        raise ConnectionFailed("cannot connect to PostgreSQL as %s: %s"
                               % (target, redact(str(exc).strip(), params)), target=target)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT set_config('lock_timeout', %s, false), set_config('statement_timeout', %s, false),"
                        " set_config('application_name', %s, false)",
                        (lock_timeout, statement_timeout, APPLICATION_NAME))
            if params.get("session_role"):
                cur.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(params["session_role"])))
    except psycopg.Error as exc:
        conn.close()
        raise ConnectionFailed("connected to %s but could not prepare the session: %s"
                               % (target, redact(str(exc).strip(), params)), target=target)
    return conn


def is_local_host(host):
    """Whether the server at ``host`` (login_host or login_unix_socket as given) runs on this machine: the
    default socket (no host), a socket directory, localhost, or a loopback address."""
    host = host or ""
    return host in ("", "localhost", "::1") or host.startswith(("/", "127."))


def server_facts(conn):
    """Small facts every module reports: server version, database, whether it is a standby."""
    with conn.cursor() as cur:
        cur.execute("SELECT current_setting('server_version_num')::int, current_database(), pg_is_in_recovery()")
        version, database, in_recovery = cur.fetchone()
    return {"server_version_num": version, "database": database, "in_recovery": in_recovery}
