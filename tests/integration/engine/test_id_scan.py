"""The engine's id walks on a real PostgreSQL: ``IdWalk`` trusts time to grow with the id, ``IdScan`` does not.

A table whose time column moves after a row is written (a session's expiry, extended while it is used) has old rows
behind young ones in id order. ``IdWalk``'s boundary search stops at the first young row it probes; ``IdScan``
walks every id and checks each row's time, in check mode and for real alike."""
from __future__ import annotations

import datetime

import psycopg
import pytest

from conftest import conn_params

from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.budget import Budget
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.runner import Runner
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.walks import IdScan, IdWalk, Rule

ROWS = 3000
# Sessions used again lately (their time is now, far past the rows around them): a stretch in the middle of the
# ids and the newest one.
REFRESHED = (1400, 1600)
YOUNG = REFRESHED[1] - REFRESHED[0] + 1 + 1


@pytest.fixture
def sessions(pg, fresh_db):
    with psycopg.connect(pg.dsn(fresh_db), autocommit=True) as conn:
        conn.execute("CREATE TABLE sessions (id serial PRIMARY KEY, expiry timestamptz NOT NULL)")
        conn.execute("INSERT INTO sessions (expiry) SELECT CASE WHEN g BETWEEN %s AND %s OR g = %s THEN now()"
                     " ELSE now() - interval '100 days' + g * interval '1 minute' END"
                     " FROM generate_series(1, %s) AS g", REFRESHED + (ROWS, ROWS))
        conn.execute("ANALYZE sessions")
    return fresh_db


def prune(pg, db, walk, check_mode, batch_size=500):
    cutoff = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
    rule = Rule(name="sessions", table="sessions", cutoff=cutoff, walk=walk, time_column="expiry")
    budget = Budget.from_params(conn_params(pg, db, batch_size=batch_size, max_rows=0, max_duration=0,
                                            max_wal_bytes="0", max_wal_rate=0, max_replica_lag="0"))
    with psycopg.connect(pg.dsn(db), autocommit=True) as conn:
        return Runner(conn, "public", budget, check_mode=check_mode).run([rule])["handlers"]["sessions"]


def old_rows(pg, db):
    return int(pg.psql("SELECT count(*) FROM sessions WHERE expiry < now() - interval '30 days'", db))


def test_id_scan_deletes_every_old_row_where_id_walk_stops_at_a_young_one(pg, sessions):
    old = old_rows(pg, sessions)
    assert old == ROWS - YOUNG
    # The boundary search meets a refreshed row and takes everything after it for young.
    stopped = prune(pg, sessions, IdWalk("public"), check_mode=True)
    assert 0 < stopped["deleted"] < REFRESHED[0]

    plan = prune(pg, sessions, IdScan("public"), check_mode=True)
    assert plan["deleted"] == old and old_rows(pg, sessions) == old
    done = prune(pg, sessions, IdScan("public"), check_mode=False)
    assert done["status"] == "ok" and done["deleted"] == old and done["batches"] > 1
    assert old_rows(pg, sessions) == 0
    # Every refreshed row stays, and a re-run finds nothing.
    assert int(pg.psql("SELECT count(*) FROM sessions", sessions)) == YOUNG
    again = prune(pg, sessions, IdScan("public"), check_mode=False)
    assert again["deleted"] == 0 and again["remaining"] == 0
