#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: airflow_prune
short_description: Prune an Airflow metadata database in capped transactions, keeping what Airflow still needs
version_added: 0.1.0
description:
  - Deletes old rows from an Airflow 3 or Airflow 2.11 metadata database under pgtidy's lockfile, advisory lock and budgets, in
    short transactions that skip rows Airflow has locked; the work of C(airflow db clean), without its archive
    tables, its unindexed cascades or its long transactions.
  - Finished dag runs (states C(success) and C(failed)) that ended more than O(dag_run_retention_days) ago go
    whole, each in one transaction with every row it owns - task instances, task instance history (earlier
    tries), XComs, rendered fields, task maps, task reschedules, human-in-the-loop details, run and task notes,
    the links to the asset events the run consumed, task state store rows, deadlines and partitioned asset runs.
    The rows that hang off task instances are deleted first, through Airflow's indexes, then the task
    instances, the rows of the run and the run; every row counts against the row budget.
  - Never deleted - a run that is queued or running, or that holds a task instance that is not finished
    (scheduled, queued, running, up for retry, up for reschedule, deferred, restarting, awaiting input); the
    O(keep_runs_per_dag) newest runs of each DAG (by C(run_after), as the grid view orders them); the run of
    each DAG's newest logical date among scheduled and backfill runs and its newest partitioned run (what the
    scheduler and the DAG processor compute the next run from); each DAG's newest asset-triggered run (its
    C(run_after) is the floor of the asset events the next asset-triggered run consumes).
  - Asset events older than O(asset_event_retention_days) that no remaining run consumed, once the runs that
    consumed them are gone (see the option for the events always kept).
  - The audit log (C(log)) older than O(log_retention_days); finished jobs (C(success), C(failed)) whose last
    heartbeat is older than O(job_retention_days), except the newest job of each type and jobs that a task
    instance that is not finished or a trigger refers to; import errors not written again for
    O(import_error_retention_days).
  - Archive tables left by C(airflow db clean) (C(_airflow_deleted__*)) are reported with their rows, and
    dropped only with O(drop_archive_tables).
  - Refuses a database that is not an Airflow metadata schema, a schema revision this collection was not tested
    on (with the revision found), and unsafe or absurd options, before anything is deleted.
author:
  - pgtidy contributors (@pgtidy)
options:
  schema:
    description: Schema holding the Airflow tables.
    type: str
    default: public
  dag_run_retention_days:
    description:
      - Days after their end to keep finished dag runs (C(success), C(failed)). V(-1) keeps every run.
    type: int
    default: 90
  keep_runs_per_dag:
    description:
      - The newest runs of each DAG kept whatever their age, as the grid view shows them (25 by default, Airflow's
        C(default_dag_run_display_number)).
    type: int
    default: 25
  dag_run_batch_size:
    description:
      - Dag runs per transaction at most. A batch takes whole runs, about O(batch_size) rows with their task
        instances and everything else they own, so O(batch_size) sets the size of most batches and this caps
        the runs of a batch of small runs.
    type: int
    default: 250
  asset_event_retention_days:
    description:
      - Days to keep asset events (C(asset_event)) that no remaining dag run consumed; V(-1) keeps them all.
      - Never deleted - each asset's newest event, events a DAG scheduled on the asset has still to consume (newer
        than its newest asset-triggered run, or all of them before its first), partitioned events and events of
        an asset alias.
    type: int
    default: 90
  log_retention_days:
    description: Days to keep audit log entries (C(log)); V(-1) keeps them all.
    type: int
    default: 90
  job_retention_days:
    description: Days after their last heartbeat to keep finished jobs (C(job)); V(-1) keeps them all.
    type: int
    default: 30
  import_error_retention_days:
    description:
      - Days to keep an import error the DAG processor has not written again (it rewrites the errors of every file
        it still parses, so an old one belongs to a file no longer parsed); V(-1) keeps them all.
    type: int
    default: 30
  callback_retention_days:
    description:
      - Days to keep finished callbacks (C(callback) in state C(success) or C(failed)) after their creation;
        V(-1) keeps them all.
      - Never deleted - callbacks not finished, and callbacks a deadline of a remaining dag run (or of no run) refers
        to (the deadline would go with them).
    type: int
    default: 30
  trigger_retention_days:
    description:
      - Days after their creation to keep triggers (C(trigger)) that no task instance, earlier try, asset watcher or
        callback refers to any more; V(-1) keeps them all. The triggerer deletes such triggers itself while it runs.
    type: int
    default: 7
  dag_version_retention_days:
    description:
      - Days after their creation to keep DAG versions (C(dag_version), with their C(serialized_dag) and C(dag_code))
        that no remaining dag run, task instance or earlier try refers to; V(-1) keeps them all.
      - Never deleted - each DAG's newest version, and versions whose serialized DAG has deadline alerts. Runs
        after the dag run handler, so the versions of the runs it deletes can go in the same run.
    type: int
    default: 90
  session_retention_days:
    description:
      - Days past their expiry to keep web server sessions (C(session), the FAB auth manager's table); V(-1) keeps
        them all. Skipped, and said so, when the database has no C(session) table.
    type: int
    default: 7
  task_state_store_retention_days:
    description:
      - Days past their C(expires_at) to keep task state store rows (C(task_state_store)); rows without
        C(expires_at) never expire. V(-1) keeps them all.
    type: int
    default: 1
  partitioned_asset_key_log_retention_days:
    description:
      - Days after their creation to keep partitioned asset key log rows (C(partitioned_asset_key_log)) whose
        partitioned asset run is gone (Airflow reads them only through that run); V(-1) keeps them all.
    type: int
    default: 7
  drop_archive_tables:
    description: Drop the C(_airflow_deleted__*) tables C(airflow db clean) left (they are always reported).
    type: bool
    default: false
extends_documentation_fragment:
  - pgtidy.maintenance._common
  - pgtidy.maintenance._common.LOCK
  - pgtidy.maintenance._common.BUDGET
  - pgtidy.maintenance._common.PRUNE
  - pgtidy.maintenance._common.REPORT
  - pgtidy.maintenance._common.ATTRIBUTES
notes:
  - Tested on Airflow 3.3.2 (Alembic revision d2f4e1b3c5a7) and Airflow 2.11.2, the last 2.x release (revision
    5f2621c13b39), PostgreSQL 15, psycopg 3.1 or later and ansible-core 2.16 or later. Any other revision is refused
    with the revision found (O(allow_untested_schema) runs anyway).
  - On Airflow 2.11 the same rules apply to its tables - task instances are found by their key (it has no id),
    runs are dated and ordered by C(execution_date) (it has no C(logical_date) or C(run_after)), asset events are
    its dataset events (C(dataset_event)) and asset-triggered runs its C(dataset_triggered) runs; C(task_fail)
    rows go with their runs; the tables of Airflow 3 only are not read.
  - The dag run handler counts every row it deletes in O(max_rows), task instances and their rows included.
'''

EXAMPLES = r'''
- name: Finished dag runs after 90 days, the audit log after 90, jobs and import errors after 30
  pgtidy.maintenance.airflow_prune:
    login_host: db.internal
    login_user: airflow
    login_password: "{{ vault_airflow_db_password }}"
    login_db: airflow

- name: A shorter history, and the archive tables of an old airflow db clean dropped
  pgtidy.maintenance.airflow_prune:
    login_db: airflow
    dag_run_retention_days: 30
    keep_runs_per_dag: 50
    drop_archive_tables: true
    max_rows: 500000
    metrics_file: /var/lib/node_exporter/textfile/pgtidy_airflow.prom

- name: See what would go (nothing is changed)
  pgtidy.maintenance.airflow_prune:
    login_db: airflow
  check_mode: true
  diff: true
  register: plan
'''

RETURN = r'''
schema_revision:
  description: The Airflow schema's revision (C(alembic_version)); null when the schema has no such table.
  returned: success
  type: str
  sample: d2f4e1b3c5a7
schema_tested:
  description: Whether that revision is one this collection was tested on (false only with O(allow_untested_schema)).
  returned: success
  type: bool
  sample: true
changed:
  description: Whether rows were deleted or archive tables dropped (in check mode, whether they would be).
  returned: always
  type: bool
  sample: true
deleted_total:
  description: Rows deleted by all handlers (in check mode, rows that would be deleted).
  returned: success
  type: int
  sample: 120000
remaining_total:
  description: Rows still past retention when a budget stopped the run (an upper bound for dag runs).
  returned: success
  type: int
  sample: 0
capped:
  description: Whether a budget stopped the run before every handler finished; the next run continues.
  returned: success
  type: bool
  sample: false
capped_by:
  description: The budget that stopped the run (V(max_rows), V(max_duration), V(max_wal_bytes)), or null.
  returned: success
  type: str
  sample: max_rows
handlers:
  description:
    - Per handler the rows deleted, the C(remaining) estimate, C(capped), C(duration_s), C(wal_bytes), C(batches),
      C(longest_batch_s), C(status) (V(ok) or V(failed)) and C(error).
    - C(dag_runs) also reports C(runs_deleted), C(deleted_by_state), C(deleted_by_dag), C(kept_runs),
      C(kept_by_reason) (V(not_finished), V(task_unfinished), V(newest_per_dag), V(scheduler_needs), V(locked)),
      C(rows_by_table) and C(run_ids) (C(dag_id/run_id), at most 1000). C(archive_tables) reports the archive
      tables with their rows and C(dropped).
  returned: success
  type: dict
  sample: {"dag_runs": {"table": "dag_run", "deleted": 5120, "runs_deleted": 200, "kept_runs": 26,
           "kept_by_reason": {"newest_per_dag": 25, "scheduler_needs": 1}, "status": "ok", "error": ""}}
failed_handlers:
  description: Handlers that failed; the others still ran.
  returned: success
  type: list
  elements: str
  sample: []
wal_bytes:
  description: WAL written on the server during the run (includes other sessions' writes).
  returned: success
  type: int
  sample: 5242880
wal_compression:
  description: How the run's WAL page images were compressed (C(requested), C(server), C(used), C(note)).
  returned: success
  type: dict
  sample: {"requested": "auto", "server": "off", "used": "lz4", "note": ""}
duration_s:
  description: Seconds the run took, including waiting for the lockfile.
  returned: success
  type: float
  sample: 3.2
rows_before:
  description: Rows per table before the run (exact below 100,000 rows, else the planner's estimate).
  returned: success
  type: dict
  sample: {"dag_run": 25000, "task_instance": 400000, "xcom": 380000, "log": 90000}
rows_after:
  description: Rows per table after the run (in check mode, the prediction).
  returned: success
  type: dict
  sample: {"dag_run": 20000, "task_instance": 320000, "xcom": 300000, "log": 60000}
retention:
  description: The retention plan that was applied, after validation and defaults.
  returned: success
  type: dict
  sample: {"dag_run_retention_days": 90, "keep_runs_per_dag": 25, "log_retention_days": 90}
budget:
  description: The budgets in force.
  returned: success
  type: dict
  sample: {"batch_size": 5000, "max_rows": 1000000}
database:
  description: The database that was pruned.
  returned: success
  type: str
  sample: airflow
error_kind:
  description:
    - On failure, what went wrong (V(connection_failed), V(schema_mismatch), V(untested_schema),
      V(invalid_request), V(busy), V(standby), V(lock_file_refused)); V(error) for anything else.
  returned: failure
  type: str
  sample: untested_schema
'''


from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.lock import LOCK_ARGUMENT_SPEC
from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.module import argument_spec, require_psycopg
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.budget import BUDGET_ARGUMENT_SPEC
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.module import exit_prune
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.prune import PRUNE_ARGUMENT_SPEC
from ansible_collections.pgtidy.maintenance.plugins.module_utils._airflow.options import AIRFLOW_PRUNE_ARGUMENT_SPEC
from ansible_collections.pgtidy.maintenance.plugins.module_utils._airflow.rules import AirflowProfile


def main():
    spec = argument_spec(LOCK_ARGUMENT_SPEC, BUDGET_ARGUMENT_SPEC, PRUNE_ARGUMENT_SPEC, AIRFLOW_PRUNE_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    require_psycopg(module, missing_required_lib)
    exit_prune(module, AirflowProfile(), "airflow_prune")


if __name__ == "__main__":
    main()
