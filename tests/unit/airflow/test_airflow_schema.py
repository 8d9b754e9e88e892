"""The description of each tested Airflow release (``_airflow/schema.py``): which release a schema is read as, and
that the descriptions agree with the revisions the module accepts. What each description says of a real schema is
checked against real databases of both releases (tests/integration/airflow)."""
from __future__ import annotations

from ansible_collections.pgtidy.maintenance.plugins.module_utils._airflow import options, schema


def shape(release):
    return {table: set(columns) for table, columns in release.required_columns().items()}


def test_every_tested_revision_has_its_description_and_no_other():
    assert sorted(r.revision for r in schema.RELEASES) == sorted(options.TESTED_REVISIONS)
    for release in schema.RELEASES:
        assert release.name in options.TESTED_RELEASES


def test_the_revision_chooses_the_release_whatever_the_columns_say():
    assert schema.release_for(schema.AIRFLOW_2.revision, shape(schema.AIRFLOW_3)) is schema.AIRFLOW_2
    assert schema.release_for(schema.AIRFLOW_3.revision, {}) is schema.AIRFLOW_3


def test_an_untested_revision_is_read_as_the_release_its_tables_say():
    assert schema.release_for("0000deadbeef", shape(schema.AIRFLOW_2)) is schema.AIRFLOW_2
    assert schema.release_for(None, shape(schema.AIRFLOW_3)) is schema.AIRFLOW_3
    # Neither shape: the newest, whose schema check then names what is missing.
    assert schema.release_for("0000deadbeef", {"dag_run": {"id"}}) is schema.NEWEST
    assert set(schema.described_tables()) >= set(shape(schema.AIRFLOW_2)) | set(shape(schema.AIRFLOW_3))


def test_2_11_keys_task_instances_by_their_key_and_knows_datasets():
    rel = schema.AIRFLOW_2
    assert not rel.ti_id and all(how in ("ti_key", "run_id") for _t, how, _c in rel.ti_children)
    assert "id" not in rel.required_columns()["task_instance"]
    assert rel.table("asset_event") == "dataset_event" and rel.asset_triggered == "dataset_triggered"
    assert "execution_date" in rel.required_columns()["dag_run"]
    assert not {"hitl_detail", "deadline", "task_state_store", "asset_partition_dag_run"} & set(rel.run_tables)


def test_runs_are_deleted_children_first():
    for release in schema.RELEASES:
        tables = release.run_tables
        assert tables[-1] == "dag_run" and len(set(tables)) == len(tables)
        ti = tables.index("task_instance")
        assert all(tables.index(t) < ti for t, _h, _c in release.ti_children)
