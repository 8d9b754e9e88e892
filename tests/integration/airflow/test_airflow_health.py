"""health_info and repack on a real Airflow database (3.3 and 2.11): the profile is recognised, the Airflow tables are
reported, the retention preview is airflow_prune's own check mode (the same rows per handler, through real
ansible-playbook), and repack's airflow profile rewrites the pruned tables with Airflow reading back the same."""
from __future__ import annotations

import shutil

import pytest

from airflow_fixture import AIRFLOW_RELEASES, RETENTION, read_back
from conftest import assert_agree, conn_params, preview_and_check

from ansible_collections.pgtidy.maintenance.plugins.module_utils._airflow.rules import AirflowProfile
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.prune import run_prune
from ansible_collections.pgtidy.maintenance.plugins.module_utils._repack import repack as _repack
from ansible_collections.pgtidy.maintenance.plugins.module_utils._repack.options import PROFILE_TABLES

# Each release's history is built once, on the worker of that release's xdist group (its parameter's mark).
pytestmark = pytest.mark.parametrize("airflow_release", AIRFLOW_RELEASES)

OPTIONS = [
    {},
    dict(RETENTION),
    dict(RETENTION, keep_runs_per_dag=1, max_rows=40),
]


def health(pg, db, ansible, **extra):
    args = conn_params(pg, db, **extra)
    args.pop("lock_wait")
    rc, result, out = ansible.run_task("pgtidy.maintenance.health_info", args, check=True)
    assert rc == 0, out
    return result


def test_health_recognises_airflow_and_reports_its_tables(pg, airflow_db, ansible, airflow_history):
    result = health(pg, airflow_db, ansible)
    assert result["profile"] == "airflow"
    facts = result["orchestrator"]
    made_runs = int(pg.psql("SELECT count(*) FROM dag_run", airflow_db))
    assert facts["dag_run"]["rows"] == made_runs and facts["dag_run"]["exact"]
    assert sum(facts["dag_run"]["by_state"].values()) == made_runs
    assert facts["task_instance"]["by_state"]["success"] > 0
    assert facts["schema_revision"]["revision"] == pg.psql("SELECT version_num FROM alembic_version", airflow_db)
    assert facts["schema_revision"]["tested"] is True
    assert facts["retention"]["handlers"], facts["retention"]
    assert facts["xcom"] == {"rows": int(pg.psql("SELECT count(*) FROM xcom", airflow_db)), "exact": True}
    handlers = set(facts["retention"]["handlers"])
    assert {"dag_runs", "asset_events", "audit_log"} <= handlers, handlers


@pytest.mark.parametrize("options", OPTIONS, ids=["defaults", "test-retention", "capped"])
def test_airflow_preview_is_the_prune_check_mode(pg, airflow_db, ansible, lock_file, options):
    preview, check = preview_and_check(pg, airflow_db, ansible, lock_file, "airflow", options)
    assert_agree(preview, check)
    if options:
        assert check["deleted_total"] > 0, check["handlers"]
    if options.get("max_rows"):
        assert check["capped"] and preview["next_run_capped"]


def test_repack_airflow_profile_rewrites_pruned_airflow_tables_only(
        pg, airflow_db, airflow_history, lock_file, airflow_release):
    done = run_prune(conn_params(pg, airflow_db, lock_file=lock_file, **RETENTION), AirflowProfile())
    assert done["deleted_total"] > 0
    pg.psql("CREATE EXTENSION pg_repack", airflow_db)
    pg.psql("CREATE TABLE unrelated AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 5000) g",
            airflow_db)
    pg.psql("ALTER TABLE unrelated ADD PRIMARY KEY (id); DELETE FROM unrelated WHERE id % 2 = 0", airflow_db)
    pg.psql("VACUUM ANALYZE", airflow_db)
    before = read_back(pg, airflow_db, airflow_history["python"], airflow_history["home"], release=airflow_release)
    params = conn_params(pg, airflow_db, lock_file=lock_file, auto=True, profile="airflow", min_table_size="0",
                         min_reclaimable_fraction=0.2, max_tables=20, wait_timeout=2,
                         repack_command=shutil.which("pg_repack") or "/usr/lib/postgresql/15/bin/pg_repack")
    result = _repack.run_repack(params)
    considered = {name.split(".", 1)[1] for name in result["tables"]}
    assert considered and considered <= set(PROFILE_TABLES["airflow"]), considered
    assert "unrelated" not in considered
    assert "task_instance" in considered, considered
    assert result["repacked"], result["tables"]
    assert read_back(pg, airflow_db, airflow_history["python"], airflow_history["home"],
                     release=airflow_release) == before
