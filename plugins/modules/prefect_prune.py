#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: prefect_prune
short_description: Prune a Prefect server database the way Prefect's vacuum service does, capped and check-mode aware
version_added: 0.1.0
description:
  - Does, from outside the Prefect server, the work of Prefect's database vacuum service, under pgtidy's lockfile,
    advisory lock and budgets, in short transactions that skip rows the server has locked.
  - Old flow runs (opt-in with O(flow_run_retention_days)) - runs in a terminal state (COMPLETED, FAILED, CANCELLED,
    CRASHED) whose end time is older than the retention, including runs cancelled before they ever started. Their logs
    and artifacts are deleted in the same transaction; task runs, states and run inputs go by Prefect's own foreign
    key cascades. A subflow goes when it qualifies itself and so do all its parents; a subflow whose parent is kept
    is kept.
  - Orphaned logs and artifacts, whose flow run no longer exists (for example after a run was deleted through the
    API), once they are more than one hour old.
  - Artifact collections whose latest artifact was deleted are re-pointed to the newest remaining artifact of the
    key, or removed when none is left, so the UI's latest artifacts never point at a missing artifact.
  - Events and their resources older than O(event_retention_days), with per-event-type overrides, each capped by the
    global retention; resources whose event is already gone.
  - Optionally DEBUG, INFO or WARNING logs older than a retention per level; ERROR and CRITICAL logs are always kept.
  - Prefect's tables have UUID keys, so most handlers walk an indexed time column with the key as tie-breaker.
    The orphan handlers skip through the distinct flow run ids of the C(flow_run_id) index (one index probe per flow
    run, whatever the number of rows) and delete the rows of those whose flow run is gone; the log level handlers
    walk C(log.level)'s index. A handler whose index is missing, and the one for event resources whose event is
    gone, sweeps its table in windows of O(orphan_scan_window) rows per statement; each handler says how it reads
    in its C(note).
  - Refuses a database that is not a Prefect server schema, and refuses unsafe or absurd options, before anything is
    deleted.
author:
  - pgtidy contributors (@pgtidy)
options:
  schema:
    description: Schema holding the Prefect tables.
    type: str
    default: public
  flow_run_retention_days:
    description:
      - Days after their end time to keep flow runs in a terminal state. Unset or V(-1) keeps every flow run (the
        default, as Prefect's own flow run vacuum is off by default).
    type: int
  flow_run_batch_size:
    description:
      - Flow runs per transaction. Each brings its task runs, states, logs and artifacts, so this is smaller than
        O(batch_size); the smaller of the two applies.
    type: int
    default: 200
  prune_orphans:
    description: Delete logs and artifacts whose flow run no longer exists.
    type: bool
    default: true
  orphan_scan_window:
    description:
      - Flow run ids examined per statement by the orphan handlers, and rows examined per statement by the handlers
        that sweep (event resources whose event is gone; any handler whose index is missing).
    type: int
    default: 10000
  prune_artifact_collections:
    description: Re-point or remove artifact collections whose latest artifact is gone.
    type: bool
    default: true
  event_retention_days:
    description: Days to keep events and their resources (Prefect's default is 7); V(-1) keeps all events.
    type: int
    default: 7
  event_retention_overrides:
    description:
      - Days to keep events of a given type, as Prefect's C(PREFECT_SERVER_SERVICES_DB_VACUUM_EVENT_RETENTION_OVERRIDES)
        (which counts seconds). Fractions of a day are allowed down to one hour. Each override is capped by
        O(event_retention_days).
    type: dict
    default: {"prefect.flow-run.heartbeat": 7}
  log_retention_days:
    description:
      - Days to keep logs per level, for sites that keep runs long but not their chatter; V(-1) keeps that level.
        Naming V(error) or V(critical) is an error.
    type: dict
    suboptions:
      debug:
        description: Days to keep DEBUG logs.
        type: int
        default: -1
      info:
        description: Days to keep INFO logs.
        type: int
        default: -1
      warning:
        description: Days to keep WARNING logs.
        type: int
        default: -1
extends_documentation_fragment:
  - pgtidy.maintenance._common
  - pgtidy.maintenance._common.LOCK
  - pgtidy.maintenance._common.BUDGET
  - pgtidy.maintenance._common.PRUNE
  - pgtidy.maintenance._common.REPORT
  - pgtidy.maintenance._common.ATTRIBUTES
notes:
  - Tested on Prefect 3.4.25 to 3.8.8 (Alembic revisions 9e83011d1f2a to d4a7e1c93f52), PostgreSQL 15 to 18, psycopg 3.1 or later and
    ansible-core 2.16 or later.
  - O(max_rows) counts the rows of the handlers' own tables; dependent rows deleted with them (C(cascaded)) are
    bounded by O(flow_run_batch_size) and by O(max_wal_bytes).
'''

EXAMPLES = r'''
- name: Events past Prefect's default retention, orphans and stale artifact collections
  pgtidy.maintenance.prefect_prune:
    login_host: db.internal
    login_user: prefect
    login_password: "{{ vault_prefect_db_password }}"
    login_db: prefect

- name: Also delete finished flow runs after 30 days, heartbeats after a day, DEBUG logs after 3 days
  pgtidy.maintenance.prefect_prune:
    login_db: prefect
    flow_run_retention_days: 30
    event_retention_days: 14
    event_retention_overrides:
      prefect.flow-run.heartbeat: 1
    log_retention_days: {debug: 3}
    max_rows: 500000
    max_wal_bytes: 512MiB
    metrics_file: /var/lib/node_exporter/textfile/pgtidy_prefect.prom

- name: See what would go (nothing is changed)
  pgtidy.maintenance.prefect_prune:
    login_db: prefect
    flow_run_retention_days: 30
  check_mode: true
  diff: true
  register: plan
'''

RETURN = r'''
schema_revision:
  description: The orchestrator schema's revision (C(alembic_version)); null when the schema has no such table.
  returned: success
  type: str
  sample: d4a7e1c93f52
schema_tested:
  description: Whether that revision is one this collection was tested on (false only with O(allow_untested_schema)).
  returned: success
  type: bool
  sample: true
changed:
  description: Whether rows were deleted or collections re-pointed (in check mode, whether they would be).
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
    - C(cascaded) counts dependent rows deleted with the handler's rows in the same transactions (logs and artifacts
      of flow runs, resources of events). C(scanned) counts what a handler examined to find its candidates, flow run
      ids for the orphan handlers (one per distinct flow run, so a re-run on a clean database examines as many as
      there are flow runs, not log rows), rows for the handlers that sweep. C(note) says how a handler reads.
      C(artifact_collections) also reports C(repointed).
  returned: success
  type: dict
  sample: {"old_flow_runs": {"table": "flow_run", "deleted": 200, "cascaded": {"log": 5400, "artifact": 120},
           "remaining": 0, "capped": false, "duration_s": 0.4, "wal_bytes": 2812000, "batches": 1,
           "longest_batch_s": 0.4, "status": "ok", "error": ""},
           "artifact_collections": {"table": "artifact_collection", "deleted": 3, "repointed": 1, "status": "ok"}}
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
  sample: {"flow_run": 25000, "log": 1800000, "artifact": 9000, "artifact_collection": 40, "events": 4000000,
           "event_resources": 11000000}
rows_after:
  description: Rows per table after the run (in check mode, the prediction).
  returned: success
  type: dict
  sample: {"flow_run": 20000, "log": 1500000, "artifact": 8000, "artifact_collection": 38, "events": 900000,
           "event_resources": 2500000}
retention:
  description: The retention plan that was applied, after validation and defaults.
  returned: success
  type: dict
  sample: {"flow_run_retention_days": 90, "event_retention_days": 7,
           "event_retention_overrides": {"prefect.flow-run.heartbeat": 7}}
budget:
  description: The budgets in force.
  returned: success
  type: dict
  sample: {"batch_size": 5000, "max_rows": 1000000}
database:
  description: The database that was pruned.
  returned: success
  type: str
  sample: prefect
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
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.budget import BUDGET_ARGUMENT_SPEC
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.module import exit_prune
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.prune import PRUNE_ARGUMENT_SPEC
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.retention import request_spec
from ansible_collections.pgtidy.maintenance.plugins.module_utils._prefect.options import PREFECT_PRUNE_ARGUMENT_SPEC
from ansible_collections.pgtidy.maintenance.plugins.module_utils._prefect.rules import PrefectProfile


def main():
    spec = argument_spec(LOCK_ARGUMENT_SPEC, BUDGET_ARGUMENT_SPEC, PRUNE_ARGUMENT_SPEC, PREFECT_PRUNE_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=request_spec(spec, _load_params(), ArgumentSpecValidator),
                           supports_check_mode=True)
    require_psycopg(module, missing_required_lib)
    exit_prune(module, PrefectProfile(), "prefect_prune")


if __name__ == "__main__":
    main()
