# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # Connection: the option names community.postgresql uses, so module_defaults carry over.
    DOCUMENTATION = r'''
options:
  login_user:
    description: The role to connect as.
    type: str
    default: postgres
    aliases: [ login ]
  login_password:
    description: Password of O(login_user). Never logged nor returned.
    type: str
    default: ''
  login_host:
    description:
      - Host running the database. Empty means the local Unix socket.
    type: str
    default: ''
    aliases: [ host ]
  login_port:
    description: Database port.
    type: int
    default: 5432
    aliases: [ port ]
  login_unix_socket:
    description: Directory of the local Unix socket; takes precedence over O(login_host).
    type: str
    default: ''
    aliases: [ unix_socket ]
  login_db:
    description: Database to maintain.
    type: str
    aliases: [ db, database ]
  ssl_mode:
    description: libpq sslmode.
    type: str
    default: prefer
    choices: [ allow, disable, prefer, require, verify-ca, verify-full ]
  ca_cert:
    description: CA certificate(s) to verify the server with (libpq sslrootcert).
    type: str
    aliases: [ ssl_rootcert ]
  ssl_cert:
    description: Client certificate (libpq sslcert).
    type: path
  ssl_key:
    description: Client key (libpq sslkey).
    type: path
  connect_params:
    description: Further libpq connection keywords, for example C(target_session_attrs).
    type: dict
    default: {}
  session_role:
    description: Role to C(SET ROLE) to after connecting.
    type: str
  connect_timeout:
    description: Seconds to wait for the connection.
    type: int
    default: 10
  lock_timeout:
    description:
      - Postgres C(lock_timeout) for every statement, so a statement never queues behind the application's locks.
      - A duration, a number and a unit (C(ms), C(s), C(min), C(h) or C(d); decimals allowed), such as V(500ms),
        V(1.5s) or V(2min); a number without a unit is in milliseconds, as in PostgreSQL. V(0) means no timeout.
    type: str
    default: 5s
  statement_timeout:
    description:
      - Postgres C(statement_timeout) for every statement.
      - A duration, written as for O(lock_timeout).
    type: str
    default: 60s
requirements:
  - psycopg >= 3.1
notes:
  - Every session sets C(application_name=pgtidy), so it is easy to find in C(pg_stat_activity).
'''

    LOCK = r'''
options:
  lock_file:
    description:
      - Lockfile taken with flock semantics before the database is touched. Backups join by running under
        C(flock /run/pgtidy/pgtidy.lock <backup command>), so maintenance and backups never overlap.
      - The holder's pid, command and start time are written into the file.
      - The lockfile is often opened by root, so it is checked before it is locked or written, and refused
        with RV(error_kind=lock_file_refused) (the message names the fix) when its directory is writable by
        group or others (such as C(/run/lock) or C(/tmp)) or belongs to another user than root or the one
        running the module, or when the file is a symbolic link (never followed), not a regular file, has other
        names (hard links), belongs to another user, or is writable by others. A group-writable file is
        accepted (the timers role shares it with its service group).
      - Only the default directory C(/run/pgtidy) is created when missing (owned by the running user, mode
        C(0755)). The directory of any other O(lock_file) must exist; a missing one is refused, so a typo
        cannot create a second lock that no backup takes. A lockfile the module creates has mode C(0640), so
        no other user can open it and hold its lock.
    type: path
    default: /run/pgtidy/pgtidy.lock
  lock_wait:
    description: Seconds to wait for O(lock_file) before ending with a C(busy) result; V(0) does not wait.
    type: int
    default: 300
notes:
  - Inside the database a session advisory lock keeps two hosts from maintaining the same database at once.
'''

    BUDGET = r'''
options:
  batch_size:
    description: Most rows one DELETE transaction removes.
    type: int
    default: 5000
  max_rows:
    description: Most rows one run removes over all handlers; V(0) means no row budget.
    type: int
    default: 1000000
  max_duration:
    description: Seconds after which the run stops between batches; V(0) means no time budget.
    type: int
    default: 1800
  max_wal_bytes:
    description:
      - WAL the run may write (measured with C(pg_current_wal_lsn())), such as V(1GiB) or V(500MB); V(0) means no
        budget. Checked between batches, so a run writes at most this plus one batch.
    type: str
    default: 1GiB
  batch_pause:
    description:
      - Seconds to sleep after every batch, to leave room for the application. O(max_wal_rate) paces by what each
        batch wrote instead, which adapts to the batches' size.
    type: float
    default: 0.0
  max_replica_lag:
    description:
      - Before each batch the run reads C(pg_stat_replication); while any connected standby or logical walsender is
        further behind than this, it pauses. A size (V(256MiB), the WAL position minus the standby's C(replay_lsn), known
        for every standby that reports its position), a duration (V(30s), the largest of C(write_lag), C(flush_lag) and
        C(replay_lag), which PostgreSQL leaves null when a standby is idle and caught up), or both (V(256MiB, 30s)).
        A duration is a number and a unit (C(ms), C(s), C(min), C(h) or C(d); decimals allowed), between 100ms and
        24h; a number without a unit is a size. V(0) turns the check off.
      - When not set, V(256MiB) applies. The positions are shown only to superusers and members of
        C(pg_read_all_stats) (C(pg_monitor) includes it). A set O(max_replica_lag) that the login role cannot
        enforce because standbys are connected whose positions it cannot see fails the run before anything is
        deleted, naming the fix; the default then only warns, and the result says the lag was not watched
        (C(pacing.replicas_watched=false)).
      - Replication slots that are not active and hold more WAL than the size are reported (and warned about)
        before the run starts.
    type: str
  max_lag_wait:
    description:
      - Seconds one pause for replica lag may last. A standby still too far behind after that ends the run with
        RV(capped_by=replica_lag), naming it and its lag; the next run continues. V(0) stops at once.
    type: int
    default: 300
  ignore_replicas:
    description:
      - Standbys (their C(application_name)) whose lag does not pause the run, such as a delayed standby
        (C(recovery_min_apply_delay)) that is always behind by design. They are still reported.
    type: list
    elements: str
    default: []
  max_wal_rate:
    description:
      - WAL the run's transactions may write per second, such as V(8MB); V(0) means no limit. Each batch's WAL is
        paid for at this rate from when the batch began, and the next batch waits until all but a quarter of a
        second of it is paid, so over any span of T seconds the run writes at most T + 0.25 seconds' worth plus one
        batch, and a long pause earns no more credit than that. Measured from the WAL position before and after each
        batch, so WAL other sessions write during a batch counts too.
      - At least V(64kB) when set. The default, V(8MB), is where a concurrent writer's commit latency came back
        near its idle level in the measurements (docs/pacing.md) while the run stays several times faster than a
        batch-200 loop; it caps a run's full O(max_wal_bytes) budget at about two minutes.
    type: str
    default: 8MB
  pause_file:
    description:
      - While this file exists the run pauses between batches, so an operator can slow a running prune without
        stopping it (C(touch) it, later C(rm) it). It is only ever tested with C(lstat), never opened nor followed.
      - The pause ends the run (RV(capped_by=pause_file)) when O(max_duration) runs out; with O(max_duration=0) it
        lasts until the file is gone. The run holds O(lock_file) meanwhile, so backups wait.
      - An absolute path whose directory exists.
    type: path
  wal_compression:
    description:
      - Compression of the full-page images in the run's WAL, set for the prune session only. Deleting old rows
        is the first change of most of their pages since the last checkpoint, so the run's WAL is mostly 8 kB
        page images; compressed they take about a quarter of the space and the run is faster.
      - V(auto) uses C(lz4), else C(zstd), when the server does not compress WAL already and the login role may
        set the parameter (a superuser, or C(GRANT SET ON PARAMETER wal_compression TO <role>) on PostgreSQL 15
        and later); otherwise the server's setting stays and the result's C(wal_compression.note) says why.
      - V(server) keeps the server's setting. V(lz4), V(zstd) and V(pglz) ask for one method; if it cannot be
        set the run fails before anything is deleted.
      - Standbys and WAL archives replay compressed images transparently; a standby needs a server built with
        the same method (the Debian/Ubuntu and PGDG packages have lz4 and zstd).
    type: str
    choices: [auto, server, lz4, zstd, pglz]
    default: auto
'''

    # The prune modules' shared options (PRUNE_ARGUMENT_SPEC beside the module's own).
    PRUNE = r'''
options:
  allow_untested_schema:
    description:
      - The module reads the orchestrator schema's revision (C(alembic_version)) and runs only on the revisions of
        the releases it was tested on (see the notes); on any other it fails with C(error_kind=untested_schema),
        naming the revision found and the tested ones, before anything is touched.
      - V(true) runs on an untested revision anyway, at your risk; the result then says C(schema_tested=false).
    type: bool
    default: false
'''

    REPORT = r'''
options:
  report_file:
    description: Write the result as JSON to this path (atomically).
    type: path
  metrics_file:
    description:
      - Write Prometheus metrics in the node_exporter textfile collector format to this path (atomically).
    type: path
'''

    ATTRIBUTES = r'''
attributes:
  check_mode:
    support: full
    description: Check mode counts candidates with reads only and predicts what a real run reports.
  diff_mode:
    support: full
    description: The diff shows row counts per table before and after.
  action_group:
    support: full
    membership: [ pgtidy.maintenance.all ]
    description: Use C(group/pgtidy.maintenance.all) in C(module_defaults) to set connection options once.
'''
