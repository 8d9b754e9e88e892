#!/bin/sh
# First start: initialise PGDATA, run /docker-entrypoint-initdb.d/* against a socket-only server, then start
# PostgreSQL in the foreground - the contract of the official postgres image's entrypoint.
set -eu
if [ "$(id -u)" = 0 ]; then
    mkdir -p "${PGDATA}" /var/run/postgresql
    chown postgres:postgres "${PGDATA}" /var/run/postgresql
    chmod 700 "${PGDATA}"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ "${1:-}" = postgres ] && [ ! -s "${PGDATA}/PG_VERSION" ]; then
    export POSTGRES_USER="${POSTGRES_USER:-postgres}"
    export POSTGRES_DB="${POSTGRES_DB:-${POSTGRES_USER}}"
    initdb -D "${PGDATA}" -U "${POSTGRES_USER}" --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    pg_ctl -D "${PGDATA}" -w -o "-c listen_addresses=''" start >/dev/null
    if [ "${POSTGRES_DB}" != postgres ]; then
        createdb -U "${POSTGRES_USER}" "${POSTGRES_DB}"
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        case "${f}" in
            *.sh) echo "running ${f}"; if [ -x "${f}" ]; then "${f}"; else . "${f}"; fi ;;
            *.sql) echo "running ${f}"; psql -v ON_ERROR_STOP=1 -U "${POSTGRES_USER}" -d "${POSTGRES_DB}" -f "${f}" ;;
        esac
    done
    pg_ctl -D "${PGDATA}" -m fast -w stop >/dev/null
    echo "PostgreSQL init process complete; ready for start up."
fi
exec "$@"
