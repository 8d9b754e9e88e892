"""pgtidy repack versus VACUUM FULL on two copies of the same bloated table.

Both copies are shaped like Dagster's event_logs (same columns and secondary indexes), filled with
the same rows, pruned the same way (most rows deleted, then VACUUM ANALYZE, as after a retention
job), so each holds the same live rows in a heap of the same bloated size. Each copy is then
rewritten, one with pgtidy's repack (pg_repack underneath), one with VACUUM FULL, while a writer
keeps inserting into that copy and times every insert. Measured in the same run:

  * bytes reclaimed by repack / bytes reclaimed by VACUUM FULL   (target >= 0.95)
  * the longest insert stall the writer saw during each           (target for repack <= 1 s)

Usage: python bench/repack_vs_vacuum_full.py [--rows N] [--output FILE]
The default (1,000,000 rows, about 580 MB a copy) finishes in about 95 seconds on two cores.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import psycopg  # noqa: E402

from pgserver import PgServer  # noqa: E402

TARGET_RATIO = 0.95
TARGET_STALL_S = 1.0


def collection_import():
    """Import the core as Ansible would see it: ansible_collections/pgtidy/maintenance -> this tree."""
    root = tempfile.mkdtemp(prefix="pgtidy-bench-coll-")
    os.makedirs(os.path.join(root, "ansible_collections", "pgtidy"))
    os.symlink(ROOT, os.path.join(root, "ansible_collections", "pgtidy", "maintenance"))
    sys.path.insert(0, root)
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._repack import repack as _repack
    return _repack, root


def make_copy(conn, table, rows, keep_every):
    conn.execute(f"""
        CREATE TABLE {table} (
            id bigserial PRIMARY KEY,
            run_id varchar(255),
            event text NOT NULL,
            dagster_event_type text,
            timestamp timestamp,
            step_key text,
            asset_key text,
            partition text)""")
    conn.execute(f"CREATE INDEX {table}_run_id_idx ON {table} (run_id, id)")
    conn.execute(f"CREATE INDEX {table}_type_idx ON {table} (dagster_event_type, id)")
    # Deterministic content so both copies are identical row for row.
    conn.execute(f"""
        INSERT INTO {table} (run_id, event, dagster_event_type, timestamp, step_key)
        SELECT 'run-' || (g / 200), '{{"__class__": "EventLogEntry", "level": 20, "message": "'
               || repeat(md5(g::text), 10) || '", "step_key": "step_' || (g % 7) || '"}}',
               CASE WHEN g % 5 = 0 THEN 'STEP_OUTPUT' END, timestamp '2026-01-01' + g * interval '1 second',
               'step_' || (g % 7)
        FROM generate_series(1, {rows}) g""")
    conn.execute(f"DELETE FROM {table} WHERE id % {keep_every} <> 0")
    conn.execute(f"VACUUM ANALYZE {table}")


def size(conn, table):
    return conn.execute(f"SELECT pg_total_relation_size('{table}')").fetchone()[0]


class Writer(threading.Thread):
    def __init__(self, dsn, table):
        super().__init__(daemon=True)
        self.dsn, self.table = dsn, table
        self.stop = threading.Event()
        self.longest_s, self.inserts = 0.0, 0

    def run(self):
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                t0 = time.monotonic()
                conn.execute(f"INSERT INTO {self.table} (run_id, event, timestamp) VALUES ('writer', '{{}}', now())")
                self.longest_s = max(self.longest_s, time.monotonic() - t0)
                self.inserts += 1
                time.sleep(0.01)


def measure(dsn, table, operation):
    with psycopg.connect(dsn, autocommit=True) as conn:
        before = size(conn, table)
    writer = Writer(dsn, table)
    writer.start()
    time.sleep(0.5)  # the writer is in its steady state before the rewrite starts
    t0 = time.monotonic()
    extra = operation()
    elapsed = time.monotonic() - t0
    time.sleep(0.3)
    writer.stop.set()
    writer.join()
    with psycopg.connect(dsn, autocommit=True) as conn:
        after = size(conn, table)
    out = {"size_before": before, "size_after": after, "reclaimed_bytes": before - after,
           "duration_s": round(elapsed, 3), "writer_longest_stall_s": round(writer.longest_s, 4),
           "writer_inserts": writer.inserts}
    out.update(extra or {})
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per copy before pruning (default 1000000)")
    parser.add_argument("--keep-every", type=int, default=4, help="keep one row in N (default 4: 75%% deleted)")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "repack_vs_vacuum_full.json"))
    args = parser.parse_args()
    _repack, coll_root = collection_import()

    started = time.monotonic()
    pg = PgServer(settings={"max_wal_size": "4GB", "checkpoint_timeout": "30min"}).start()
    workdir = tempfile.mkdtemp(prefix="pgtidy-bench-")
    try:
        pg.create_db("bench")
        dsn = pg.dsn("bench")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_repack")
            for table in ("copy_repack", "copy_vacuum_full"):
                make_copy(conn, table, args.rows, args.keep_every)
            live = conn.execute("SELECT count(*) FROM copy_repack").fetchone()[0]
        print(f"two copies of {args.rows} rows, {live} kept each, {size_text(dsn, 'copy_repack')} each"
              f" (setup {time.monotonic() - started:.1f}s)")

        params = {"login_host": "127.0.0.1", "login_port": pg.port, "login_user": "postgres", "login_db": "bench",
                  "ssl_mode": "disable", "lock_file": os.path.join(workdir, "pgtidy.lock"), "lock_wait": 5,
                  "tables": ["copy_repack"], "min_table_size": "0", "min_reclaimable_fraction": 0.1,
                  "repack_command": shutil.which("pg_repack") or os.path.join(pg.bindir, "pg_repack")}

        def repack():
            result = _repack.run_repack(params)
            entry = result["tables"]["public.copy_repack"]
            assert entry["status"] == "repacked", entry
            return {"status": entry["status"], "estimated_reclaimable_bytes": entry["estimated_reclaimable_bytes"],
                    "module_reclaimed_bytes": entry["reclaimed_bytes"]}

        def vacuum_full():
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("VACUUM FULL copy_vacuum_full")

        rp = measure(dsn, "copy_repack", repack)
        vf = measure(dsn, "copy_vacuum_full", vacuum_full)
    finally:
        pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(coll_root, ignore_errors=True)

    ratio = rp["reclaimed_bytes"] / vf["reclaimed_bytes"] if vf["reclaimed_bytes"] else 0.0
    report = {
        "rows": args.rows, "keep_every": args.keep_every,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "repack": rp, "vacuum_full": vf,
        "reclaimed_ratio": round(ratio, 4), "reclaimed_ratio_target": TARGET_RATIO,
        "repack_longest_stall_s": rp["writer_longest_stall_s"], "stall_target_s": TARGET_STALL_S,
        "vacuum_full_longest_stall_s": vf["writer_longest_stall_s"],
        "stall_ratio_repack_over_vacuum_full": round(rp["writer_longest_stall_s"] / vf["writer_longest_stall_s"], 4)
        if vf["writer_longest_stall_s"] else None,
        "meets_targets": ratio >= TARGET_RATIO and rp["writer_longest_stall_s"] <= TARGET_STALL_S,
        "total_s": round(time.monotonic() - started, 1),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as fh:
        json.dump(report, fh, indent=2)
    print(f"reclaimed: repack {rp['reclaimed_bytes']} B, VACUUM FULL {vf['reclaimed_bytes']} B"
          f" -> ratio {ratio:.3f} (target >= {TARGET_RATIO})")
    print(f"longest writer stall: repack {rp['writer_longest_stall_s']:.3f}s, VACUUM FULL"
          f" {vf['writer_longest_stall_s']:.3f}s (target for repack <= {TARGET_STALL_S}s)")
    print(f"rewrite time: repack {rp['duration_s']:.1f}s, VACUUM FULL {vf['duration_s']:.1f}s")
    print(f"targets met: {report['meets_targets']}; JSON: {args.output}")
    return 0 if report["meets_targets"] else 1


def size_text(dsn, table):
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(f"SELECT pg_size_pretty(pg_total_relation_size('{table}'))").fetchone()[0]


if __name__ == "__main__":
    sys.exit(main())
