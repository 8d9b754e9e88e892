# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the primary's replication looks like, read from the server: its WAL position, its standbys
(``pg_stat_replication``) and its replication slots that are not active (``pg_replication_slots``).

``ReplicationProbe`` runs the queries; ``Standby`` is one standby as the pacer sees it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Standby:
    """One row of ``pg_stat_replication``, as the prune sees it."""

    pid: int
    name: str
    client: str
    state: object = None
    sync_state: object = None
    slot: object = None
    lag_bytes: object = None            # current WAL position minus the oldest position it reported
    write_lag_s: object = None
    flush_lag_s: object = None
    replay_lag_s: object = None

    @property
    def visible(self):
        """The role may read its positions (pg_read_all_stats): otherwise every column but pid is NULL."""
        return self.state is not None

    @property
    def lag_s(self):
        times = [t for t in (self.write_lag_s, self.flush_lag_s, self.replay_lag_s) if t is not None]
        return max(times) if times else None

    @property
    def label(self):
        return "%r (%s)" % (self.name or "?", self.client)

    def describe(self):
        return {"application_name": self.name, "client": self.client, "state": self.state,
                "sync_state": self.sync_state, "slot": self.slot, "lag_bytes": self.lag_bytes,
                "write_lag_s": self.write_lag_s, "flush_lag_s": self.flush_lag_s,
                "replay_lag_s": self.replay_lag_s}


def _seconds(interval):
    return None if interval is None else round(interval.total_seconds(), 3)


class ReplicationProbe:
    """Reads the primary's WAL position, its standbys and its replication slots (one query each)."""

    STANDBYS = (
        "WITH here AS (SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn() END AS lsn)"
        " SELECT (here.lsn - '0/0'::pg_lsn)::bigint, r.pid, r.application_name,"
        " coalesce(host(r.client_addr), r.client_hostname, CASE WHEN r.state IS NOT NULL THEN 'local socket' END),"
        " r.state, r.sync_state, s.slot_name,"
        " (here.lsn - coalesce(r.replay_lsn, r.flush_lsn, r.write_lsn))::bigint,"
        " r.write_lag, r.flush_lag, r.replay_lag"
        " FROM here LEFT JOIN pg_stat_replication AS r ON true"
        " LEFT JOIN pg_replication_slots AS s ON s.active_pid = r.pid"
        " ORDER BY r.application_name, r.pid")
    INACTIVE_SLOTS = (
        "SELECT to_jsonb(s), (pg_current_wal_lsn() - s.restart_lsn)::bigint FROM pg_replication_slots AS s"
        " WHERE NOT s.active AND s.restart_lsn IS NOT NULL AND NOT pg_is_in_recovery() ORDER BY s.slot_name")

    def __init__(self, conn):
        self.conn = conn

    def read(self):
        """(WAL position as an integer or None on a standby, [Standby, ...])."""
        with self.conn.cursor() as cur:
            cur.execute(self.STANDBYS)
            rows = cur.fetchall()
        lsn = rows[0][0] if rows else None
        standbys = []
        for row in rows:
            if row[1] is None:
                continue
            standbys.append(Standby(pid=row[1], name=row[2] or "", client=row[3] or "not visible",
                                    state=row[4], sync_state=row[5], slot=row[6],
                                    lag_bytes=None if row[7] is None else max(0, int(row[7])),
                                    write_lag_s=_seconds(row[8]), flush_lag_s=_seconds(row[9]),
                                    replay_lag_s=_seconds(row[10])))
        return lsn, standbys

    def inactive_slots(self):
        with self.conn.cursor() as cur:
            cur.execute(self.INACTIVE_SLOTS)
            rows = cur.fetchall()
        out = []
        for slot, retained in rows:
            out.append({"slot_name": slot.get("slot_name"), "slot_type": slot.get("slot_type"),
                        "database": slot.get("database"), "retained_bytes": int(retained or 0),
                        "wal_status": slot.get("wal_status"),
                        "safe_wal_size": None if slot.get("safe_wal_size") is None else int(slot["safe_wal_size"])})
        return out
