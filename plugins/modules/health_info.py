#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: health_info
short_description: Health facts and red flags of an orchestrator's PostgreSQL database, read-only
version_added: 0.1.0
description:
  - Gathers, with reads only, what an operator needs to see growth and trouble before the disk fills, and never
    changes the database. The result is always C(changed=false).
  - Database size; per table the total, table, index and TOAST size, live and dead tuples, dead-tuple ratio, last
    (auto)vacuum and (auto)analyze, HOT-update ratio and sequential versus index scans; indexes by size with their
    scan counts.
  - The orchestrator it recognises (Dagster by C(event_logs), C(runs), C(job_ticks); Prefect by C(flow_run), C(log),
    C(events); otherwise C(unknown)) with row counts of its heavy tables by category and what the current retention
    would prune. Dagster C(event_logs) is broken down by event type and Python log level with the oldest and newest
    timestamps; below O(exact_count_limit) rows the counts are exact, above it they are the planner's estimates
    (types found through the C((dagster_event_type, id)) index) and the result says so.
  - Connections by state against C(max_connections), the oldest open transaction, sessions idle in transaction,
    prepared transactions, transaction-ID age against the wraparound limit, replication slots and the WAL they
    hold, and the size of C(pg_wal).
  - Free and used space of the data directory when the server runs on this host (or of O(disk_path)), and with a
    O(history_file) the growth per day and the days until the disk is full.
  - C(findings), red flags with a severity and a one-line recommendation, C(summary_lines), a fixed-width
    table for people, and C(msg), one line with the findings by severity and every section not read in full.
  - A section the role cannot read (C(pg_ls_waldir()) without C(pg_monitor)), disk space it cannot measure, and
    sessions of other roles it cannot see are listed once in C(incomplete_sections), C(summary_lines) and C(msg),
    each with the grant or option that fixes it. They are not warnings, so a role kept small on purpose does not
    warn on every run.
  - A server that cannot be reached fails the task by default, after the report and the metrics are written
    (C(available=false), C(pgtidy_health_up 0)), so a bare task or a timer does not stay green while the
    database is down. With O(fail_on_unavailable=false) it is data only (C(available=false) and C(reason)), as
    C(community.postgresql.postgresql_ping) does.
author:
  - pgtidy contributors (@pgtidy)
options:
  schema:
    description: Schema holding the orchestrator's tables.
    type: str
    default: public
  profile:
    description: Orchestrator profile; V(auto) recognises it by its tables, V(none) skips the orchestrator facts.
    type: str
    default: auto
    choices: [ auto, dagster, prefect, airflow, none ]
  fail_on_unavailable:
    description:
      - Fail the task when the server cannot be reached. The JSON report and the metrics are written first and say
        the server is down (C(available=false), C(pgtidy_health_up 0)).
      - V(false) returns C(available=false) with the C(reason) and ends C(ok), for plays that only gather facts.
    type: bool
    default: true
  disk_path:
    description:
      - Path on this host whose filesystem holds the database (for example a mount of the server's volume).
      - Without it the data directory is measured when the server is local (Unix socket or a loopback address and the
        directory exists here); otherwise disk facts are C(available=false) with the C(reason) and the C(fix), and
        C(disk) is listed in C(incomplete_sections).
    type: path
  history_file:
    description:
      - JSON file on this host where each run appends a sample (time, database size, disk used and free). With two or
        more samples over at least an hour the result has the growth per day and the days until the disk is full
        (least squares over the last seven days).
      - Written in check mode too; it is a local record of this check, not a change to the database.
      - Its directory must exist; a missing one is refused before the server is contacted (V(report_file_refused)),
        as are those of O(report_file) and O(metrics_file).
    type: path
  history_days:
    description: Days of samples kept in O(history_file).
    type: int
    default: 30
  top_tables:
    description: How many of the largest tables C(tables) lists (red flags consider every table).
    type: int
    default: 20
  top_indexes:
    description: How many of the largest indexes C(indexes) lists.
    type: int
    default: 20
  exact_count_limit:
    description:
      - Tables with more rows than this (by the planner's estimate) are not counted row by row; their numbers are the
        planner's estimates and are marked C(exact=false).
    type: int
    default: 1000000
  thresholds:
    description:
      - Overrides of the red-flag thresholds, by name; each is a number >= 0, and those not given keep their default.
        Defaults follow the Prefect database maintenance guide (disk > 80%, dead tuples > 50% / > 100% of live ones,
        that is > 33% / > 50% of all the table's tuples, autovacuum not run for 24 hours on an active table).
      - The thresholds in force are returned as C(thresholds).
    type: dict
    suboptions:
      disk_used_warning_percent:
        description: Percent of the filesystem used above which C(disk_used) warns.
        type: raw
        default: 80
      disk_used_critical_percent:
        description: Percent of the filesystem used above which C(disk_used) is critical.
        type: raw
        default: 90
      days_until_full_warning:
        description: Days until the disk is full (at the recent growth rate) below which C(disk_days_until_full) warns.
        type: raw
        default: 30
      days_until_full_critical:
        description: Days until the disk is full below which C(disk_days_until_full) is critical.
        type: raw
        default: 7
      dead_ratio_warning_percent:
        description: Percent of a table's tuples that are dead (dead / (live + dead)) above which C(dead_tuples) warns.
        type: raw
        default: 33
      dead_ratio_critical_percent:
        description: Percent of a table's tuples that are dead above which C(dead_tuples) is critical.
        type: raw
        default: 50
      min_dead_tuples:
        description: Dead tuples a table needs before C(dead_tuples) and C(autovacuum_stale) consider it.
        type: raw
        default: 1000
      autovacuum_stale_hours:
        description: Hours without an (auto)vacuum, on a table past its autovacuum trigger, before C(autovacuum_stale) warns.
        type: raw
        default: 24
      connections_warning_percent:
        description: Percent of C(max_connections) in use from which C(connections) warns.
        type: raw
        default: 80
      connections_critical_percent:
        description: Percent of C(max_connections) in use from which C(connections) is critical.
        type: raw
        default: 90
      long_transaction_warning_seconds:
        description: Age in seconds of the oldest open transaction from which C(long_transaction) warns.
        type: raw
        default: 300
      long_transaction_critical_seconds:
        description: Age in seconds of the oldest open transaction from which C(long_transaction) is critical.
        type: raw
        default: 3600
      idle_in_transaction_warning_seconds:
        description: Seconds a session may sit idle in transaction before C(idle_in_transaction) warns.
        type: raw
        default: 60
      xid_age_warning_percent:
        description: Transaction-ID age, in percent of the wraparound limit, from which C(xid_wraparound) warns.
        type: raw
        default: 50
      xid_age_critical_percent:
        description: Transaction-ID age, in percent of the wraparound limit, from which C(xid_wraparound) is critical.
        type: raw
        default: 75
      slot_retained_wal_critical_bytes:
        description: WAL bytes a replication slot holds from which C(replication_slot) is critical.
        type: raw
        default: 1073741824
      hot_table_min_updates:
        description: Updates a table needs before C(hot_update_table) considers it.
        type: raw
        default: 10000
      hot_table_updates_per_row:
        description: Updates per live row a table needs before C(hot_update_table) considers it.
        type: raw
        default: 10
      unused_index_min_bytes:
        description: Size in bytes from which a never-scanned index is reported as unused.
        type: raw
        default: 10485760
  dagster_retention:
    description:
      - The retention the Dagster prune runs with, keyed as the options of M(pgtidy.maintenance.dagster_prune)
        (C(log_retention_days), C(event_retention_days), C(event_types), C(prune_superseded_planned),
        C(tick_retention_days), C(run_retention_days), C(keep_runs_per_job), C(retire_run_ticks), C(batch_size), C(max_rows));
        defaults are that module's defaults. With C(run_retention_days) the preview includes the handler
        C(runs_retired) (rows of whole runs that would be retired).
      - The prediction is that module's own check-mode prediction, so it matches what its next run deletes.
    type: dict
    default: {}
  prefect_retention:
    description:
      - The retention the Prefect prune runs with, keyed as the options of M(pgtidy.maintenance.prefect_prune)
        (C(flow_run_retention_days), C(flow_run_batch_size), C(event_retention_days), C(event_retention_overrides),
        C(log_retention_days), C(prune_orphans), C(orphan_scan_window), C(prune_artifact_collections),
        C(batch_size), C(max_rows)); defaults are that module's defaults.
      - The prediction is that module's own check-mode prediction.
    type: dict
    default: {}
  airflow_retention:
    description:
      - The retention the Airflow prune runs with, keyed as the options of M(pgtidy.maintenance.airflow_prune)
        (C(dag_run_retention_days), C(keep_runs_per_dag), C(dag_run_batch_size), C(asset_event_retention_days),
        C(log_retention_days), C(job_retention_days), C(import_error_retention_days), C(drop_archive_tables),
        C(batch_size), C(max_rows)); defaults are that module's defaults.
      - The prediction is that module's own check-mode prediction.
    type: dict
    default: {}
  prune_report_file:
    description:
      - The JSON report of the last real prune (the C(report_file) of M(pgtidy.maintenance.dagster_prune), M(pgtidy.maintenance.prefect_prune) or
        M(pgtidy.maintenance.airflow_prune)),
        read for the pace it measured - rows deleted per second, its pacing pauses included, and WAL bytes per row.
        C(orchestrator.drain_estimate) turns the backlog into the time and WAL draining it takes at that pace.
      - Without it, or when the last report is of a check-mode run, a failed run or one that deleted nothing,
        the estimate gives the backlog and the runs it needs, and says in C(note) that no pace was measured yet.
    type: path
extends_documentation_fragment:
  - pgtidy.maintenance._common
  - pgtidy.maintenance._common.REPORT
  - pgtidy.maintenance._common.ATTRIBUTES
attributes:
  check_mode:
    support: full
    description: The module only reads; check mode returns the same facts.
  diff_mode:
    support: none
    description: The module changes nothing, so there is no diff.
notes:
  - Takes no lockfile and no advisory lock, so a running backup or prune never delays it.
  - Sessions of other roles show their state only to superusers and members of C(pg_read_all_stats);
    C(pg_ls_waldir()) needs C(pg_monitor) and the data directory C(pg_read_all_settings) (both in C(pg_monitor)).
    A section the role cannot read is left null and listed in C(incomplete_sections) with the grant that fixes it;
    everything else is still gathered.
  - Ansible prints the C(msg) of a failed task, but not of an C(ok) one without C(-v); register the result and
    print C(msg) or C(summary_lines) (as C(playbooks/health.yml) does) to see sections not read in full.
  - Query texts of other sessions are not returned (they can hold secrets); C(pid), user, application and ages are.
'''

EXAMPLES = r'''
- name: Health of the Dagster database, with metrics for node_exporter
  pgtidy.maintenance.health_info:
    login_host: db.internal
    login_user: monitor
    login_password: "{{ vault_monitor_password }}"
    login_db: dagster
    history_file: /var/lib/pgtidy/health-history.json
    metrics_file: /var/lib/node_exporter/textfile/pgtidy_health.prom
    report_file: /var/lib/pgtidy/health.json
    disk_path: /mnt/pgdata
  register: health

- name: Print the summary (with the sections not read in full and their fixes)
  ansible.builtin.debug:
    msg: "{{ health.summary_lines }}"

- name: Fail when anything is critical
  ansible.builtin.assert:
    that: health.findings_by_severity.critical == 0
    fail_msg: "{{ health.findings | selectattr('severity', 'equalto', 'critical') | map(attribute='message') }}"

- name: Stricter thresholds and the retention the prune job uses
  pgtidy.maintenance.health_info:
    login_db: dagster
    thresholds:
      disk_used_warning_percent: 70
      idle_in_transaction_warning_seconds: 30
    dagster_retention:
      log_retention_days: {debug: 3, info: 14, warning: 60}
      event_retention_days: 14

- name: Facts only - a server that is down is data, not a failed task
  pgtidy.maintenance.health_info:
    login_db: dagster
    fail_on_unavailable: false
  register: health

- name: Say so
  ansible.builtin.debug:
    msg: "{{ health.msg }}"
  when: not health.available
'''

RETURN = r'''
changed:
  description: Always false; the module only reads.
  returned: always
  type: bool
  sample: false
available:
  description: Whether the server answered. When false, C(reason) says why and only the findings are returned.
  returned: always
  type: bool
  sample: true
reason:
  description: Why the server could not be reached (the password never appears).
  returned: when available is false
  type: str
  sample: 'cannot connect to PostgreSQL as postgres@db.internal:5432/dagster: connection refused'
msg:
  description:
    - One line - the findings by severity and every section not read in full with its fix - or, when the server
      cannot be reached, that it is unavailable and why.
  returned: always
  type: str
  sample: "health of dagster: 0 critical, 1 warning, 0 info finding(s); incomplete: wal unavailable
    (fix: GRANT pg_monitor TO monitor)"
incomplete_sections:
  description:
    - What the check could not read in full, once each - C(section) (for example V(wal), V(disk), V(connections),
      V(dagster retention), V(history)), C(status) (V(unavailable) or V(partial)), C(reason) and C(fix), the grant
      or option that fixes it. Empty when everything was read.
  returned: when available
  type: list
  elements: dict
  sample: [{"section": "wal", "status": "unavailable", "reason": "permission denied for function pg_ls_waldir",
            "fix": "GRANT pg_monitor TO monitor"},
           {"section": "disk", "status": "unavailable", "reason": "the server is not on this host (db.internal)",
            "fix": "set disk_path to a mount, on this host, of the server's data directory"}]
check_mode:
  description: Whether the module ran in check mode (the facts are the same).
  returned: always
  type: bool
  sample: false
database:
  description: The database and server settings the checks use.
  returned: when available
  type: dict
  sample: {"name": "dagster", "size_bytes": 5368709120, "server_version": "15.8", "max_connections": 100,
           "autovacuum": true, "in_recovery": false, "stats_reset": null, "user": "monitor"}
tables:
  description:
    - The largest O(top_tables) tables with C(total_bytes), C(table_bytes), C(index_bytes), C(toast_bytes),
      C(live_tuples), C(dead_tuples), C(dead_ratio_percent) (dead / (live + dead), 0 to 100), C(hot_update_percent),
      C(seq_scan), C(idx_scan),
      C(seq_scan_percent), C(last_vacuum), C(last_autovacuum), C(last_analyze), C(last_autoanalyze),
      C(autovacuum_enabled), C(fillfactor), C(autovacuum_trigger_dead_tuples) and the table's storage C(options).
  returned: when available
  type: list
  elements: dict
  sample: [{"schema": "public", "name": "event_logs", "total_bytes": 4294967296, "dead_ratio_percent": 3.2,
            "hot_update_percent": null, "seq_scan": 12, "idx_scan": 90210}]
table_count:
  description: Number of user tables in the database.
  returned: when available
  type: int
  sample: 22
indexes:
  description: The largest O(top_indexes) indexes with C(size_bytes), C(scans), C(is_unique), C(is_primary), C(is_valid).
  returned: when available
  type: list
  elements: dict
  sample: [{"schema": "public", "table": "event_logs", "name": "idx_step_key", "size_bytes": 734003200, "scans": 0}]
connections:
  description:
    - Client connections C(by_state), C(total), C(max_connections), C(used_percent), the C(oldest_transaction)
      (pid, user, application, state, age) and the sessions C(idle_in_transaction), and C(prepared_transactions).
    - C(sees_all_sessions) is false for a role without C(pg_read_all_stats); it sees only its own sessions, the
      C(hidden_sessions) of other roles are left out, and C(connections) is listed in C(incomplete_sections).
  returned: when available
  type: dict
  sample: {"total": 12, "by_state": {"active": 2, "idle": 9, "idle in transaction": 1}, "max_connections": 100,
           "used_percent": 12.0, "oldest_transaction": {"pid": 4242, "age_seconds": 612.5}, "idle_in_transaction": []}
xid:
  description: Transaction-ID age of the oldest database (C(max_age)) against the wraparound limit.
  returned: when available
  type: dict
  sample: {"max_age": 201000000, "max_age_database": "dagster", "wraparound_percent": 9.36,
           "autovacuum_freeze_max_age": 200000000}
replication_slots:
  description: Replication slots with C(active), C(wal_status) and the WAL each holds (C(retained_wal_bytes)).
  returned: when available
  type: list
  elements: dict
  sample: [{"name": "old_replica", "type": "physical", "active": false, "wal_status": "extended",
            "retained_wal_bytes": 21474836480}]
wal:
  description: Size and number of files of C(pg_wal), C(wal_level), C(max_wal_size), C(max_slot_wal_keep_size).
  returned: when available and readable
  type: dict
  sample: {"size_bytes": 1073741824, "files": 64, "wal_level": "replica"}
disk:
  description:
    - Filesystem of the data directory or O(disk_path); C(available=false) with a C(reason) and a C(fix) when it
      cannot be measured here.
  returned: when available
  type: dict
  sample: {"available": true, "path": "/var/lib/postgresql/15/main", "total_bytes": 107374182400,
           "used_bytes": 85899345920, "free_bytes": 21474836480, "used_percent": 80.0}
growth:
  description: From O(history_file), C(database_bytes_per_day), C(disk_bytes_per_day), C(days_until_full), C(samples).
  returned: when history_file is set
  type: dict
  sample: {"samples": 14, "database_bytes_per_day": 52428800.0, "disk_bytes_per_day": 60000000.0,
           "days_until_full": 357.9}
profile:
  description: The orchestrator recognised, V(dagster), V(prefect), V(airflow) or V(unknown).
  returned: when available
  type: str
  sample: dagster
orchestrator:
  description:
    - For Dagster C(event_logs) (C(rows), C(exact), C(method), C(by_event_type) with rows and oldest / newest,
      C(log_lines_by_level)), C(runs) and C(job_ticks) by status, and C(retention) (what the next prune run deletes,
      per handler, and what is left after it).
    - For Prefect C(events) by event, C(log) by level, C(flow_run) by state type, and C(retention) (the same shape).
    - For Airflow C(dag_run), C(task_instance) and C(job) by state, C(xcom) and the audit C(log), and C(retention)
      (the same shape).
    - C(retention) is null, with the reason in C(incomplete_sections), when the schema lacks tables or columns the
      prune rules use.
    - C(drain_estimate) (with C(retention)) - C(backlog_rows) and C(backlog_by_table) (the rows the current retention
      would prune, the next run's and those after it), C(backlog_exact), C(runs_needed) at C(max_rows_per_run),
      C(measured) (the pace read from O(prune_report_file) - C(rows_per_s), C(wal_bytes_per_row), C(rows),
      C(seconds), C(measured_at) - or null), C(work_seconds) and C(wal_bytes) (null without a measured pace), and
      C(note).
  returned: when a profile is recognised
  type: dict
  sample: {"event_logs": {"rows": 250000, "exact": true, "by_event_type": {"LOG": {"rows": 120000,
           "oldest": "2025-01-02T03:04:05", "newest": "2025-06-01T00:00:00"}}, "log_lines_by_level": {"DEBUG": 90000}},
           "retention": {"next_run_rows": 80000, "rows_left_after_next_run": 0, "next_run_capped": false}}
findings:
  description: Red flags, most severe first, each with C(severity) (critical, warning, info), C(check), C(object),
    C(message), C(recommendation), C(value) and C(threshold).
  returned: always
  type: list
  elements: dict
  sample: [{"severity": "critical", "check": "dead_tuples", "object": "public.job_executions",
            "message": "48211 dead tuples, 4821% of 1000 live", "recommendation": "VACUUM (ANALYZE) public.job_executions",
            "value": 4821.1, "threshold": 50}]
findings_by_severity:
  description: Number of findings per severity.
  returned: always
  type: dict
  sample: {"critical": 1, "warning": 2, "info": 0}
summary_lines:
  description: A readable fixed-width summary (sizes, top tables, orchestrator categories, findings), one string a line.
  returned: always
  type: list
  elements: str
  sample: ["pgtidy health: dagster (dagster profile), PostgreSQL 15.8", "  database 5.0 GB | disk 80% used, 20.0 GB free"]
thresholds:
  description: The thresholds in force after O(thresholds) overrides.
  returned: when available
  type: dict
  sample: {"disk_used_warning_percent": 80, "dead_ratio_warning_percent": 33}
schema:
  description: The schema the orchestrator tables were looked for in.
  returned: when available
  type: str
  sample: public
duration_s:
  description: Seconds the checks took.
  returned: always
  type: float
  sample: 0.42
error_kind:
  description:
    - On failure, what went wrong (V(connection_failed) when the server cannot be reached and O(fail_on_unavailable)
      is true, V(invalid_request), V(report_file_refused) when the directory of O(report_file), O(metrics_file) or
      O(history_file) does not exist).
  returned: failure
  type: str
  sample: connection_failed
'''

from ansible.module_utils.basic import AnsibleModule, _load_params, missing_required_lib
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.pgtidy.maintenance.plugins.module_utils._health.health import (
    HEALTH_ARGUMENT_SPEC, health_metrics, run_health)
from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.module import (
    argument_spec, require_psycopg, run_guarded)
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.retention import request_spec


def main():
    spec = argument_spec(HEALTH_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=request_spec(spec, _load_params(), ArgumentSpecValidator),
                           supports_check_mode=True)
    require_psycopg(module, missing_required_lib)
    result = run_guarded(
        module, lambda: run_health(module.params, check_mode=module.check_mode),
        metrics_for=lambda r: health_metrics(r, "health_info", module.params.get("login_db") or "postgres"))
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
