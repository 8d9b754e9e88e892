#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: repack
short_description: Give disk space back to the OS with pg_repack, safely, and report what happened per table
version_added: 0.1.0
description:
  - Runs C(pg_repack) one table at a time to rewrite bloated tables and their indexes without the long exclusive
    lock of C(VACUUM FULL). DELETE and VACUUM free space inside a table; only a rewrite gives it back to the OS.
  - Targets are an explicit O(tables) list, or O(auto=true) to choose among a profile's tables (V(dagster),
    V(prefect), V(airflow), or V(any) table of O(schema)) those at least O(min_table_size) with at least
    O(min_reclaimable_fraction) of their heap estimated reclaimable, largest estimated gain first, within
    O(max_tables) and O(max_duration).
  - The reclaimable space is measured with C(pgstattuple_approx) when the C(pgstattuple) extension is installed in
    the database, else estimated from the planner's statistics (C(pg_class) pages and tuples, C(pg_stats) column
    widths). A rewrite rebuilds the indexes too, so its real gain is usually larger than the heap's estimate.
  - A table whose heap is below the threshold, or which is smaller than O(min_table_size), but some of whose
    B-tree indexes of at least O(min_index_size) each have at least O(min_index_reclaimable_fraction) of their
    size estimated reclaimable (C(pgstatindex) with C(pgstattuple), else the planner's statistics) gets those indexes
    rebuilt alone (C(pg_repack --index), mode V(indexes)), unless O(rebuild_indexes=false).
    A steadily pruned table needs this, because its heap stays compact while its indexes keep pages that only a
    rebuild gives back; in a small table (runs, tags, ticks) the entries of the few rows kept each hold a leaf
    page, so its indexes grow for as long as the rows around them are deleted.
  - The thresholds apply to explicit O(tables) as well, so a re-run does not rewrite a table that is already
    compact; set O(min_reclaimable_fraction=0) and O(min_table_size=0) to force a rewrite.
  - Statistics that are missing (the table was never analyzed) or stale (more rows changed since the last
    C(ANALYZE) than autovacuum tolerates, as right after a big prune) would call a bloated table compact, so a real
    run runs C(ANALYZE) on such a table first (it changes no rows; pg_repack analyzes every table it rewrites
    anyway) and then decides. A table without an estimate is never called below threshold; when C(ANALYZE) is
    refused or fails (a role that does not own the table, a timeout), it is V(skipped) with reason V(no_estimate),
    the error and a fix, with O(auto) too.
  - Every outcome is readable without C(-v). RV(msg) names what happened to each table; everything a person has to
    act on (a whole run skipped, a table skipped or failed for a reason other than V(below_threshold), leftovers)
    is also a warning and in RV(action_needed).
  - Before anything runs, the module checks that the server is not a standby and that the C(pg_repack) extension
    exists in the database (if either fails the whole task ends C(skipped) with C(skip_reason), not failed), that
    the client's C(pg_repack --version) equals the extension version, and per table that it has a primary key or a
    unique index on NOT NULL columns, no invalid index, no leftovers of an interrupted repack, and enough free disk
    for a copy of the table and its indexes plus O(free_space_margin).
  - C(pg_repack) exits 0 when it skips a table, so each table's outcome comes from its output and from whether the
    table's file really changed. Each table ends V(repacked), V(skipped) with a C(reason), V(failed) with an
    C(error), or V(deferred) when a budget stopped the run. The task fails, after every table was processed, only
    when a table failed.
  - Leftovers of an interrupted C(pg_repack) (work tables in the C(repack) schema, C(repack_trigger) triggers on
    user tables, invalid C(index_<oid>) indexes) are reported with the statement that removes them;
    O(cleanup_leftovers=true) runs those statements.
  - Holds the same lockfile as the prune modules, so it never runs during a backup or a prune.
author:
  - pgtidy contributors (@pgtidy)
options:
  tables:
    description:
      - Tables to repack, as V(name) (in O(schema)) or V(schema.name). Each must exist. Mutually exclusive with
        O(auto).
    type: list
    elements: str
    default: []
  auto:
    description: Choose the tables from O(profile) by the thresholds instead of listing them.
    type: bool
    default: false
  profile:
    description:
      - With O(auto=true), which tables are candidates. V(dagster), V(prefect) and V(airflow) consider the tables of that
        orchestrator's metadata schema that grow and churn; V(any) considers every table in O(schema).
    type: str
    default: any
    choices: [any, dagster, prefect, airflow]
  schema:
    description: Schema of the candidate tables and of O(tables) given without a schema.
    type: str
    default: public
  min_table_size:
    description: Smallest table (with indexes and TOAST) worth repacking, such as V(100MiB) or V(2GB); V(0) for any.
    type: str
    default: 100MiB
  min_reclaimable_fraction:
    description:
      - Smallest estimated reclaimable fraction of the heap worth rewriting (between V(0) and V(1)).
      - A heap pruned every week keeps free space that the next week's rows fill again, so a rewrite below about
        that share gives disk back only for a few weeks while it copies the whole table. With Dagster's event log
        pruned weekly the heap settled at an estimated 20 to 30 percent reclaimable, and rewrites at 20 percent
        left it 5 percent smaller on average; hence V(0.3). Index bloat does not refill that way, so indexes have
        their own threshold, O(min_index_reclaimable_fraction).
    type: float
    default: 0.3
  min_index_reclaimable_fraction:
    description:
      - Smallest estimated reclaimable fraction of a B-tree index worth rebuilding it alone (between V(0) and V(1)).
      - The pages an index keeps for the few rows left among many deleted are never reused, so a rebuild's gain
        lasts, and a lower threshold than the heap's keeps that bloat small.
    type: float
    default: 0.2
  min_index_size:
    description:
      - Smallest B-tree index worth rebuilding alone, such as V(1MiB); considered also on tables smaller than
        O(min_table_size), whose heap is never rewritten for it. V(0) considers every index.
      - A rebuild builds the index anew beside the old one without blocking writes and swaps it in under a
        short lock, so rebuilding small indexes costs little; the floor keeps the repack from spending a
        pg_repack run on an index that cannot give back more than a few hundred kilobytes.
    type: str
    default: 1MiB
  rebuild_indexes:
    description:
      - Rebuild alone the B-tree indexes estimated at least O(min_index_reclaimable_fraction) reclaimable, each
        judged on its own, of a table whose heap is below O(min_reclaimable_fraction) or which is smaller than
        O(min_table_size) (C(pg_repack --index)). V(false) considers the
        heap alone.
    type: bool
    default: true
  estimate_method:
    description:
      - How reclaimable space is estimated. V(auto) uses C(pgstattuple_approx) when the C(pgstattuple) extension is
        installed in the database and the planner's statistics otherwise; V(pgstattuple) requires the extension.
    type: str
    default: auto
    choices: [auto, statistics, pgstattuple]
  max_tables:
    description: Most tables one run repacks; the rest are reported V(deferred). V(0) means no limit.
    type: int
    default: 5
  max_duration:
    description: Seconds after which no further table is started; V(0) means no limit.
    type: int
    default: 3600
  table_timeout:
    description:
      - Seconds one C(pg_repack) may run before it is interrupted (SIGINT, so it drops its work objects; killed 30
        seconds later if it has not stopped). V(0) means no limit.
    type: int
    default: 0
  wait_timeout:
    description:
      - C(pg_repack --wait-timeout) in seconds. How long it waits for the locks it needs; after that the table is
        V(skipped) with reason V(lock_timeout) unless O(kill_backends=true).
    type: int
    default: 60
  kill_backends:
    description:
      - Let C(pg_repack) cancel, then terminate, the sessions that block it after O(wait_timeout). By default it
        runs with C(--no-kill-backend) and gives the table up instead.
    type: bool
    default: false
  jobs:
    description: C(pg_repack --jobs), parallel index builds per table; V(0) or V(1) builds them one by one.
    type: int
    default: 0
  repack_command:
    description:
      - The C(pg_repack) client to run, as a path or a command prefix split like a shell would, for example
        V(/usr/lib/postgresql/17/bin/pg_repack) or V(podman exec -e PGPASSWORD postgres pg_repack) when the client
        lives in the database container. The password is passed in the environment (C(PGPASSWORD)), never on the
        command line; with a container prefix forward it with C(-e PGPASSWORD).
    type: str
    default: pg_repack
  repack_host:
    description:
      - Host or socket directory C(pg_repack) connects to, when it differs from what the module uses (for example
        V(/var/run/postgresql) inside the container of O(repack_command)). Defaults to O(login_unix_socket) or
        O(login_host).
    type: str
  repack_port:
    description: Port C(pg_repack) connects to, when it differs from O(login_port).
    type: int
  no_superuser_check:
    description:
      - Pass C(--no-superuser-check) and skip the module's own superuser check, for managed services that grant a
        non-superuser role the C(repack) schema.
    type: bool
    default: false
  free_space_check:
    description:
      - Where the free disk for a copy of each table comes from. V(auto) measures the data directory (or the table's
        tablespace) when the database is on this host, and skips the check with a note in C(free_space) otherwise.
        A path (starting with V(/)) measures that filesystem; a size such as V(200GiB) is taken as the free space;
        V(off) disables the check.
    type: str
    default: auto
  free_space_margin:
    description: Extra fraction of the table's size (with indexes) required free on top of the copy itself.
    type: float
    default: 0.2
  cleanup_leftovers:
    description:
      - Remove leftovers of an interrupted C(pg_repack) before repacking (when no C(pg_repack) is running in the
        database). Without it they are only reported, and their tables are V(skipped).
    type: bool
    default: false
extends_documentation_fragment:
  - pgtidy.maintenance._common
  - pgtidy.maintenance._common.LOCK
  - pgtidy.maintenance._common.REPORT
  - pgtidy.maintenance._common.ATTRIBUTES
attributes:
  check_mode:
    support: full
    description:
      - Check mode runs every pre-check and C(pg_repack --dry-run) per table, and reports the statuses a real run
        would; C(reclaimed_bytes) is then the estimate. Only what cannot be known without trying, such as a lock
        held when the real run comes, can differ.
      - Check mode only reads, so it does not run C(ANALYZE), which writes the planner statistics every query plan
        on the table is made from. A table whose statistics are missing or stale is then V(skipped) with reason
        V(needs_analyze) and a warning; the real run analyzes it first and decides then, so for that table the
        prediction is open. With the C(pgstattuple) extension the measurement needs no statistics and check mode
        predicts it like any other table.
  diff_mode:
    support: full
    description: The diff shows each selected table's size before and after (predicted in check mode).
notes:
  - C(pg_repack) needs a superuser and C(CREATE EXTENSION pg_repack) in each database; the client's version must
    equal the extension's.
  - O(session_role) does not apply to C(pg_repack) itself, which connects as O(login_user).
requirements:
  - pg_repack client (Debian C(postgresql-<major>-repack)) on the host running the module, or reachable through
    O(repack_command)
'''

EXAMPLES = r'''
- name: Repack Dagster's event log once a month, only if it is worth it
  pgtidy.maintenance.repack:
    login_db: dagster
    auto: true
    profile: dagster
    min_table_size: 1GiB
    min_reclaimable_fraction: 0.3
    max_tables: 3
    max_duration: 7200
    metrics_file: /var/lib/node_exporter/textfile/pgtidy_repack.prom

- name: Repack named tables now, whatever the estimate says
  pgtidy.maintenance.repack:
    login_host: db.internal
    login_user: postgres
    login_password: "{{ vault_pg_password }}"
    login_db: prefect
    tables: [log, events, public.event_resources]
    min_table_size: 0
    min_reclaimable_fraction: 0
    wait_timeout: 30

- name: The client lives in the database container
  pgtidy.maintenance.repack:
    login_host: 127.0.0.1
    login_db: dagster
    auto: true
    repack_command: podman exec -e PGPASSWORD postgres pg_repack
    repack_host: /var/run/postgresql
    free_space_check: /srv/postgres/data

- name: What would be repacked, and would pg_repack accept it (nothing is rewritten)
  pgtidy.maintenance.repack:
    login_db: dagster
    auto: true
    profile: dagster
  check_mode: true
  register: plan

- name: Remove the leftovers of an interrupted pg_repack, then repack
  pgtidy.maintenance.repack:
    login_db: dagster
    tables: [event_logs]
    cleanup_leftovers: true
'''

RETURN = r'''
changed:
  description: Whether a table was repacked or leftovers were removed (in check mode, whether they would be).
  returned: always
  type: bool
  sample: true
msg:
  description:
    - What the run did in one line - the tables repacked with the bytes reclaimed, then each table skipped, failed
      or deferred with its reason - or, for a skipped run, why.
    - A table whose indexes alone were rebuilt (C(mode=indexes)) is named as such, with the indexes and why its heap
      was left (below O(min_table_size) or O(min_reclaimable_fraction), with the figures). With O(auto), a profile or
      schema that matched no table says so (and warns).
  returned: always
  type: str
  sample: "repacked public.event_logs (reclaimed 54.7 MiB); skipped public.kvs (no_key); 3 more below the thresholds"
action_needed:
  description:
    - One line per thing a person has to act on, each with its fix; the module also emits them as warnings, which
      Ansible shows without C(-v). Empty when nothing needs anyone.
  returned: success
  type: list
  elements: str
  sample: ["public.kvs skipped (no_key): no primary key nor unique index on NOT NULL columns. Fix: add a primary
           key or a unique index on NOT NULL columns"]
skipped:
  description: Whether the whole run was skipped (no pg_repack extension in the database, or a standby).
  returned: success
  type: bool
  sample: false
skip_reason:
  description: Why the whole run was skipped; empty otherwise.
  returned: success
  type: str
  sample: the pg_repack extension is not installed in database dagster (CREATE EXTENSION pg_repack, as a superuser)
tables:
  description:
    - Per table (V(schema.table)) considered, its C(status) (V(repacked), V(skipped), V(failed), V(deferred)),
      C(reason) (V(no_key), V(lock_timeout), V(invalid_index), V(leftovers), V(insufficient_disk),
      V(below_threshold), V(no_estimate), V(needs_analyze) (check mode only), V(warning), V(error),
      V(interrupted), V(not_rewritten), V(max_tables), V(max_duration)), C(error), C(fix), C(size_before),
      C(size_after) and C(reclaimed_bytes) (table with indexes and TOAST), C(estimated_reclaimable_bytes) (null
      when there is no estimate), C(estimated_reclaimable_fraction), C(estimate_method) (V(pgstattuple),
      V(statistics), or null for a table below O(min_table_size)), C(statistics) (with V(statistics), what this run
      found, V(current), V(stale) or V(missing)), C(analyzed) (this run ran C(ANALYZE) on it before estimating),
      C(duration_s), C(free_space), the C(command) run (no password) and pg_repack's C(output).
    - C(mode) is V(table) (heap and indexes rewritten) or V(indexes) (the indexes in C(rebuild_indexes) rebuilt
      alone; C(rebuild_index_bytes), C(estimated_rebuild_reclaimable_bytes), and C(heap_left), why the heap was not
      rewritten, with the figures). When the indexes were estimated (the
      heap was below the threshold), C(indexes) lists each index with its C(bytes) and
      C(estimated_reclaimable_bytes) (null for indexes that cannot be estimated, such as expression, partial or
      non-B-tree indexes), with C(index_bytes_before), C(estimated_index_reclaimable_bytes) and
      C(estimated_index_reclaimable_fraction).
  returned: success
  type: dict
  sample: {"public.event_logs": {"status": "repacked", "reason": "", "error": "", "size_before": 81920000,
           "size_after": 24576000, "reclaimed_bytes": 57344000, "estimated_reclaimable_bytes": 52000000,
           "estimated_reclaimable_fraction": 0.69, "estimate_method": "statistics", "statistics": "stale",
           "analyzed": true, "duration_s": 4.2}}
repacked:
  description: Tables repacked (in check mode, that would be).
  returned: success
  type: list
  elements: str
  sample: [public.event_logs]
skipped_tables:
  description: Tables skipped, each with its reason in RV(tables).
  returned: success
  type: list
  elements: str
  sample: [public.kvs]
failed_tables:
  description: Tables on which pg_repack failed (the task then fails, after all tables ran).
  returned: always
  type: list
  elements: str
  sample: []
deferred_tables:
  description: Tables worth repacking that O(max_tables) or O(max_duration) left for the next run.
  returned: success
  type: list
  elements: str
  sample: []
reclaimed_bytes:
  description: Bytes given back over all repacked tables (in check mode, the estimate).
  returned: success
  type: int
  sample: 57344000
capped:
  description: Whether a budget left tables for the next run.
  returned: success
  type: bool
  sample: false
capped_by:
  description: The budget that did (V(max_tables) or V(max_duration)), or null.
  returned: success
  type: str
  sample: max_tables
candidates_below_threshold:
  description: With O(auto), how many candidate tables were below the thresholds.
  returned: success
  type: int
  sample: 14
estimate_method:
  description: How reclaimable space was estimated (V(pgstattuple) or V(statistics)).
  returned: success
  type: str
  sample: statistics
leftovers:
  description:
    - Objects left by an interrupted pg_repack that are still there, each with C(kind) (V(work_table),
      V(trigger), V(invalid_index)), C(object), the C(schema) and C(table) it belongs to, and the C(fix) statement.
  returned: success
  type: list
  elements: dict
  sample: [{"kind": "trigger", "object": "repack_trigger on public.event_logs", "schema": "public",
            "table": "event_logs", "fix": "SELECT repack.repack_drop(16421, 4)"}]
leftovers_cleaned:
  description: Leftover objects removed by O(cleanup_leftovers) (in check mode, that would be).
  returned: success
  type: list
  elements: str
  sample: [repack.log_16421]
leftover_cleanup_errors:
  description: Leftover objects O(cleanup_leftovers) could not remove (for example on a lock timeout), with the error.
  returned: when cleanup_leftovers removed leftovers in a real run
  type: list
  elements: dict
  sample: []
repack_version:
  description: The pg_repack client and extension versions found.
  returned: success
  type: dict
  sample: {"client": "1.4.8", "extension": "1.4.8"}
selection:
  description: V(tables) or V(auto).
  returned: success
  type: str
  sample: auto
profile:
  description: The profile used for O(auto).
  returned: success
  type: str
  sample: dagster
schema:
  description: The schema whose tables O(auto) considers (and where unqualified O(tables) are looked up).
  returned: success
  type: str
  sample: public
tables_considered:
  description: How many tables the selection found (with O(auto), the tables of O(profile) in O(schema)).
  returned: success
  type: int
  sample: 16
database:
  description: The database maintained.
  returned: success
  type: str
  sample: dagster
server_version_num:
  description: The server's version number.
  returned: success
  type: int
  sample: 150010
duration_s:
  description: Seconds the run took, including waiting for the lockfile.
  returned: success
  type: float
  sample: 12.5
lock_waited_s:
  description: Seconds spent waiting for the lockfile.
  returned: success
  type: float
  sample: 0.0
check_mode:
  description: Whether this was a check-mode run.
  returned: success
  type: bool
  sample: false
error_kind:
  description:
    - On failure, what went wrong (V(repack_failed), V(version_mismatch), V(repack_unavailable),
      V(connection_failed), V(invalid_request), V(busy), V(lock_file_refused), V(report_file_refused) when the
      directory of O(report_file) or O(metrics_file) does not exist).
  returned: failure
  type: str
  sample: version_mismatch
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.lock import LOCK_ARGUMENT_SPEC
from ansible_collections.pgtidy.maintenance.plugins.module_utils._common.module import (
    argument_spec, require_psycopg, run_guarded)
from ansible_collections.pgtidy.maintenance.plugins.module_utils._repack.options import REPACK_ARGUMENT_SPEC
from ansible_collections.pgtidy.maintenance.plugins.module_utils._repack.report import repack_metrics
from ansible_collections.pgtidy.maintenance.plugins.module_utils._repack.repack import run_repack


def main():
    module = AnsibleModule(argument_spec=argument_spec(LOCK_ARGUMENT_SPEC, REPACK_ARGUMENT_SPEC),
                           supports_check_mode=True)
    require_psycopg(module, missing_required_lib)
    result = run_guarded(
        module, lambda: run_repack(module.params, check_mode=module.check_mode, log=module.debug),
        metrics_for=lambda r: repack_metrics(r, module.params.get("login_db") or "postgres"))
    for line in result["action_needed"]:
        module.warn(line)
    if module._diff:
        selected = {name: t for name, t in result["tables"].items() if t["status"] == "repacked"}
        result["diff"] = {"before": {n: {"size": t["size_before"]} for n, t in selected.items()},
                          "after": {n: {"size": t["size_after"]} for n, t in selected.items()}}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
