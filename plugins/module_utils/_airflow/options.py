# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of airflow_prune and their defaults: the module's argument spec, read by its option checks
(``rules.validate_options``)."""

from __future__ import annotations

# The schema revisions (alembic_version) of the Airflow releases this collection was tested on: the head of
# ``airflow db migrate`` of each (schema.py describes what differs between them).
AIRFLOW_3_REVISION = "d2f4e1b3c5a7"         # Airflow 3.3.2
AIRFLOW_2_REVISION = "5f2621c13b39"         # Airflow 2.11.2, the last 2.x release
TESTED_RELEASES = "Airflow 3.3.2, Airflow 2.11.2"
TESTED_REVISIONS = (AIRFLOW_3_REVISION, AIRFLOW_2_REVISION)

AIRFLOW_PRUNE_ARGUMENT_SPEC = dict(
    # Finished dag runs (success, failed) that ended this many days ago go with every row they own.
    dag_run_retention_days=dict(type="int", default=90),
    # Whatever their age, the newest runs of each DAG stay: the 25 runs Airflow's grid view shows by default.
    keep_runs_per_dag=dict(type="int", default=25),
    # Dag runs per transaction at most; each brings its task instances, tries, XComs and rendered fields, so
    # batch_size (rows) sets the size of most batches and this caps the runs of small ones.
    dag_run_batch_size=dict(type="int", default=250),
    # Asset events no remaining run consumed and no DAG still has to consume (never an asset's newest).
    asset_event_retention_days=dict(type="int", default=90),
    # The audit log (``log``): who triggered, cleared or changed what.
    log_retention_days=dict(type="int", default=90),
    # Finished scheduler, triggerer and DAG processor jobs, by their last heartbeat.
    job_retention_days=dict(type="int", default=30),
    # Import errors the DAG processor has not written again for this long (their file is no longer parsed).
    import_error_retention_days=dict(type="int", default=30),
    # Finished callbacks (success, failed) by creation time, unless a deadline of a remaining run refers to them.
    callback_retention_days=dict(type="int", default=30),
    # Triggers no task instance, asset watcher or callback refers to any more (the triggerer deletes those
    # itself while it runs; these are the ones left when none ran), by creation time.
    trigger_retention_days=dict(type="int", default=7),
    # DAG versions (with their serialized DAG and DAG code) no remaining run refers to, never a DAG's newest.
    dag_version_retention_days=dict(type="int", default=90),
    # Web server sessions (the FAB auth manager's ``session``), by days past their expiry.
    session_retention_days=dict(type="int", default=7),
    # Task state store rows, by days past their ``expires_at`` (rows without one never expire).
    task_state_store_retention_days=dict(type="int", default=1),
    # Partitioned asset key log rows whose partitioned asset run is gone (nothing reads them), by creation time.
    # A number of days, not a secret: "key" in its name is the table's.
    partitioned_asset_key_log_retention_days=dict(type="int", default=7, no_log=False),
    # Archive tables a failed or archiving ``airflow db clean`` left (``_airflow_deleted__*``): reported, and
    # dropped only when this is true.
    drop_archive_tables=dict(type="bool", default=False),
)
