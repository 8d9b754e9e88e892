#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: dagster_prune
short_description: Prune Dagster metadata the UI does not need, in capped short transactions
version_added: 0.1.0
description:
  - Deletes, from a Dagster metadata database on PostgreSQL, only rows on an explicit allow-list past their
    retention. By default runs, run tags, asset materializations and observations, asset checks, step and run
    events are kept; with O(run_retention_days) whole finished runs past their retention are retired with those
    rows (see there), except every run an asset view, a job's newest runs or a re-execution still needs. Asset
    keys, instigators, cursors and backfills are never touched.
  - Python log lines (C(dagster_event_type IS NULL)) by level, each with its own retention; ERROR and CRITICAL
    lines are always kept.
  - Framework noise event types (HANDLED_OUTPUT, LOADED_INPUT, ENGINE_EVENT, STEP_INPUT, RESOURCE_INIT_STARTED,
    RESOURCE_INIT_SUCCESS, STEP_WORKER_STARTING, STEP_WORKER_STARTED) older than O(event_retention_days).
  - ASSET_MATERIALIZATION_PLANNED rows only where the same asset partition has both a later planned event and a
    later materialization, so failed / in-progress partition status and the latest planned run cannot change.
    STEP_OUTPUT is always kept (re-execution from failure reads it).
  - Schedule, sensor and auto-materialize ticks past a retention per tick status, with the semantics of the
    C(retention:) block of C(dagster.yaml), without the daemon.
  - Every schedule's and sensor's newest tick is kept whatever its status and age, as the daemon keeps it (it
    purges only right after writing a new tick), so a stopped instigator still shows its real last tick. The
    newest is what Dagster's C(get_ticks) returns first (latest timestamp; ticks tied at it are all kept), per
    selector id, or per origin id for ticks written without one.
  - Rows of runs that are not finished (anything but SUCCESS, FAILURE, CANCELED) are never deleted.
  - Each DELETE removes at most O(batch_size) rows chosen along an index range; the run stops early at O(max_rows),
    O(max_duration) or O(max_wal_bytes) and reports C(capped=true); the next run continues.
author:
  - pgtidy contributors (@pgtidy)
options:
  schema:
    description: Schema holding the Dagster tables (for schema-qualified installs).
    type: str
    default: public
  log_retention_days:
    description:
      - Days to keep Python log lines per level; V(-1) keeps that level. Keys not given keep their default.
      - ERROR and CRITICAL lines are always kept; naming them is an error.
    type: dict
    suboptions:
      debug:
        description: Days to keep DEBUG lines.
        type: int
        default: 7
      info:
        description: Days to keep INFO lines.
        type: int
        default: 30
      warning:
        description: Days to keep WARNING lines.
        type: int
        default: 90
  event_retention_days:
    description: Days to keep the framework noise event types; V(-1) keeps them all.
    type: int
    default: 30
  event_types:
    description:
      - Noise event types to prune. Defaults to the whole allow-list. Naming a protected or unknown type fails before
        anything is deleted.
    type: list
    elements: str
  prune_superseded_planned:
    description: Prune ASSET_MATERIALIZATION_PLANNED rows superseded by a later plan and a later materialization.
    type: bool
    default: true
  tick_retention_days:
    description:
      - Days to keep ticks per instigator type and status (V(skipped), V(success), V(failure), V(started)), as in
        C(dagster.yaml)'s C(retention.<type>.purge_after_days). Each type takes a number, which applies to every
        status, or a mapping of status to days, where a status not named is kept; V(-1) keeps. A type not given
        keeps Dagster's default.
      - Each instigator's newest tick is kept even when past its retention (see RV(ticks_kept_newest)).
    type: dict
    suboptions:
      schedule:
        description: Schedule ticks. Dagster keeps them all by default.
        type: raw
        default: -1
      sensor:
        description: Sensor ticks. Dagster keeps SKIPPED ticks 7 days and every other status by default.
        type: raw
        default: {skipped: 7}
      auto_materialize:
        description: Auto-materialize ticks. Dagster keeps SKIPPED ticks 7 days and every other status by default.
        type: raw
        default: {skipped: 7}
  run_retention_days:
    description:
      - Retire whole finished runs past a retention per run status, measured from the run's end time; V(-1) or
        a missing key keeps runs of that status. Off by default (every run is kept).
      - Retiring a run removes its C(runs) row, C(run_tags), C(event_logs) rows and the C(asset_event_tags) of its
        asset events (what C(DagsterInstance.delete_run) removes), its C(asset_check_executions) rows, and the job
        and execution-plan snapshots no remaining run refers to. A run and its re-execution group go in one
        transaction or not at all.
      - Never retired, so every asset view stays the same - runs that are not finished; a run holding the newest
        materialization, observation, planned or check event of an asset (per partition) or the newest execution
        of an asset check; the run the asset catalog names as an asset's last run; a run holding a plan for a
        range of partitions; runs of a backfill that is not finished; runs still holding concurrency slots; a
        run of a re-execution group (C(dagster/root_run_id)) unless the whole group may go; the newest
        O(keep_runs_per_job) finished runs of each job. The result counts the kept runs per reason.
    type: dict
    suboptions:
      success:
        description: Days to keep runs that succeeded.
        type: int
      failure:
        description: Days to keep runs that failed.
        type: int
      canceled:
        description: Days to keep runs that were canceled.
        type: int
  keep_runs_per_job:
    description:
      - With O(run_retention_days), the newest N finished runs of every job are kept whatever their age, so each
        job's page keeps its recent history. The default is a page of Dagster's run list. At least 1, because
        a job's newest run keeps the job snapshot that a new run of unchanged code reuses.
    type: int
    default: 25
  retire_run_ticks:
    description:
      - With O(run_retention_days), also delete the schedule and sensor ticks whose launched runs are all gone,
        once they are older than the shortest run retention. Such a tick only links to runs that no longer
        exist, and Dagster's default tick retention keeps schedule ticks and successful sensor ticks forever,
        so without this the C(job_ticks) table grows without end (see docs/dagster-runs.md).
      - A tick stays while it is V(STARTED), while any run it launched or reserved still exists, and when it is
        its schedule's or sensor's newest tick. Ticks that launched nothing are left to O(tick_retention_days),
        and so are the ticks past the O(tick_retention_days) of their type and status, so that each tick is
        deleted and counted (in check mode too) by one handler.
      - Reported as the handler C(ticks_of_retired_runs). V(false) keeps every tick that O(tick_retention_days)
        keeps.
    type: bool
    default: true
extends_documentation_fragment:
  - pgtidy.maintenance._common
  - pgtidy.maintenance._common.LOCK
  - pgtidy.maintenance._common.BUDGET
  - pgtidy.maintenance._common.PRUNE
  - pgtidy.maintenance._common.REPORT
  - pgtidy.maintenance._common.ATTRIBUTES
notes:
  - Tested on Dagster 1.9.13 to 1.13.27 (Alembic revisions 7e2f3204cf8e to 29b539ebc72a), PostgreSQL 15 to 18, psycopg 3.1 or later and
    ansible-core 2.16 or later.
'''

EXAMPLES = r'''
- name: Prune a Dagster database with the default retention
  pgtidy.maintenance.dagster_prune:
    login_host: db.internal
    login_user: dagster
    login_password: "{{ vault_dagster_db_password }}"
    login_db: dagster

- name: Aggressive retention, small transactions, a WAL budget for a busy primary
  pgtidy.maintenance.dagster_prune:
    login_db: dagster
    schema: dagster
    log_retention_days: {debug: 3, info: 14, warning: 60}
    event_retention_days: 14
    tick_retention_days:
      schedule: {skipped: 30}
      sensor: {skipped: 3, failure: 30}
    batch_size: 2000
    max_rows: 500000
    max_wal_bytes: 512MiB
    batch_pause: 0.05
    metrics_file: /var/lib/node_exporter/textfile/pgtidy_dagster.prom

- name: Keep the database flat - retire old runs with all their rows, keep what the asset views show
  pgtidy.maintenance.dagster_prune:
    login_db: dagster
    run_retention_days: {success: 90, failure: 180, canceled: 30}
    keep_runs_per_job: 25

- name: See what would go (nothing is deleted)
  pgtidy.maintenance.dagster_prune:
    login_db: dagster
  check_mode: true
  diff: true
  register: plan
'''

RETURN = r'''
schema_revision:
  description: The orchestrator schema's revision (C(alembic_version)); null when the schema has no such table.
  returned: success
  type: str
  sample: 29b539ebc72a
schema_tested:
  description: Whether that revision is one this collection was tested on (false only with O(allow_untested_schema)).
  returned: success
  type: bool
  sample: true
changed:
  description: Whether rows were deleted (in check mode, whether rows would be).
  returned: always
  type: bool
  sample: true
deleted_total:
  description: Rows deleted by all handlers (in check mode, rows that would be deleted).
  returned: success
  type: int
  sample: 120000
remaining_total:
  description: Rows still past retention when a budget stopped the run (sum of the handlers' estimates).
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
    - Per handler (one rule under the run's budgets) the rows deleted, the C(remaining) estimate, C(capped),
      C(duration_s), C(wal_bytes), C(batches), C(longest_batch_s), C(status) (V(ok) or V(failed)) and C(error).
    - The run retention handler C(runs_retired) reports C(runs_retired), C(retired_by_status), C(retired_by_job),
      C(rows_by_table) (rows per table it deleted), C(run_ids) (the first 1000 retired, C(run_ids_truncated)),
      C(kept_runs) and C(kept_by_reason) for runs past retention that were kept, and C(oldest_kept) (run id,
      job, status, end time and reasons of the oldest of them). In check mode the same keys predict the run.
    - Tick handlers also report C(kept_newest), the ticks past their retention kept as their instigator's newest.
  returned: success
  type: dict
  sample: {"python_logs_debug": {"table": "event_logs", "deleted": 5000, "remaining": 0, "capped": false,
           "duration_s": 0.21, "wal_bytes": 812000, "batches": 2, "longest_batch_s": 0.15, "status": "ok", "error": ""}}
ticks_kept_newest:
  description:
    - Ticks past their retention that were kept because each is its schedule's or sensor's newest tick (the
      tick the Dagster UI shows as the last one); the same in check mode and in the real run.
    - Null when it could not be counted (see RV(ticks_kept_newest_error)); nothing is deleted on that account.
  returned: success
  type: int
  sample: 3
ticks_kept_newest_error:
  description: Why RV(ticks_kept_newest) could not be counted.
  returned: when the count failed
  type: str
  sample: "QueryCanceled: canceling statement due to statement timeout"
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
  description:
    - How the run's WAL page images were compressed. C(requested) is the option, C(server) the server's
      setting, C(used) what the session ran with, C(note) why the server's setting was kept, if it was.
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
  sample: {"event_logs": 250000, "job_ticks": 4000}
rows_after:
  description: Rows per table after the run (in check mode, the prediction).
  returned: success
  type: dict
  sample: {"event_logs": 130000, "job_ticks": 3100}
retention:
  description: The retention plan that was applied, after validation and defaults.
  returned: success
  type: dict
  sample: {"event_retention_days": 30}
budget:
  description: The budgets in force.
  returned: success
  type: dict
  sample: {"batch_size": 5000, "max_rows": 1000000}
database:
  description: The database that was pruned.
  returned: success
  type: str
  sample: dagster
error_kind:
  description:
    - On failure, what went wrong (V(connection_failed), V(schema_mismatch), V(invalid_request), V(busy), V(standby),
      V(lock_file_refused)); V(error) for anything else.
  returned: failure
  type: str
  sample: busy
'''

from ansible.module_utils.basic import AnsibleModule, _load_params, missing_required_lib
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.lock import LOCK_ARGUMENT_SPEC
from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.module import argument_spec, require_psycopg
from ansible_collections.pgtidy.maintenance.plugins.module_utils._dagster.options import DAGSTER_PRUNE_ARGUMENT_SPEC
from ansible_collections.pgtidy.maintenance.plugins.module_utils._dagster.rules import DagsterProfile
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.budget import BUDGET_ARGUMENT_SPEC
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.module import exit_prune
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.prune import PRUNE_ARGUMENT_SPEC
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.retention import request_spec


def main():
    spec = argument_spec(LOCK_ARGUMENT_SPEC, BUDGET_ARGUMENT_SPEC, PRUNE_ARGUMENT_SPEC, DAGSTER_PRUNE_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=request_spec(spec, _load_params(), ArgumentSpecValidator),
                           supports_check_mode=True)
    require_psycopg(module, missing_required_lib)
    exit_prune(module, DagsterProfile(), "dagster_prune")


if __name__ == "__main__":
    main()
