# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``(time, key)`` keyset walk: tables without an increasing integer key (see ``walks.py``)."""

from __future__ import annotations

from .walks import REMAINING_EXACT_LIMIT, KeysetWalk, epoch_like, rule_params

try:
    from psycopg import sql
except ImportError:  # pragma: no cover - the module reports the missing driver
    sql = None


class TimeWalk(KeysetWalk):
    """The ``(time, id)`` keyset along an indexed time column (see the module docstring).

    The cursor is the ``(time, id)`` pair of the last row passed.
    """

    def start(self, state):
        state.cursor = (epoch_like(state.rule.cutoff), None)

    def params(self, state, **extra):
        p = rule_params(state.rule)
        cursor_time, cursor_key = state.cursor
        p.update(cutoff=state.rule.cutoff, cursor_time=cursor_time, cursor_key=cursor_key,
                 scan_limit=state.rule.scan_limit)
        p.update(extra)
        return p

    def key_columns(self, rule):
        return (rule.id_column, rule.time_column)

    def key_range(self, rule, lower_param="cursor"):
        """``(time, id) > cursor AND time < cutoff``, written so an index on the time column serves it."""
        if lower_param == "zero":
            return sql.SQL("t.{ts} < %(cutoff)s").format(ts=sql.Identifier(rule.time_column))
        return sql.SQL(
            "t.{ts} >= %(cursor_time)s AND (t.{ts} > %(cursor_time)s OR t.{id} > %(cursor_key)s)"
            " AND t.{ts} < %(cutoff)s").format(ts=sql.Identifier(rule.time_column), id=sql.Identifier(rule.id_column))

    def order(self, rule, alias="t", descending=False):
        direction = sql.SQL(" DESC" if descending else "")
        return sql.SQL("{a}.{ts}{d}, {a}.{id}{d}").format(
            a=sql.Identifier(alias), ts=sql.Identifier(rule.time_column), id=sql.Identifier(rule.id_column),
            d=direction)

    def batch_statement(self, rule):
        """One capped DELETE along the (time, id) keyset, with the rule's dependents.

        Returns: deleted count, last deleted (time, id), rows examined, last examined (time, id),
        then one count per cascade table.
        """
        idc, tsc, tbl = sql.Identifier(rule.id_column), sql.Identifier(rule.time_column), self.table(rule)
        parts = []
        if rule.scan_limit:
            pred = rule.predicate if rule.predicate is not None else sql.SQL("true")
            parts.append(sql.SQL(
                "win AS (SELECT t.{id}, t.{ts} FROM {tbl} AS t WHERE {rng}"
                " ORDER BY {order} LIMIT %(scan_limit)s)").format(
                id=idc, ts=tsc, tbl=tbl, rng=self.key_range(rule), order=self.order(rule)))
            parts.append(sql.SQL(
                "batch AS (SELECT t.{id}, t.{ts} FROM {tbl} AS t JOIN win ON win.{id} = t.{id}"
                " WHERE t.{ts} < %(cutoff)s AND ({pred}) ORDER BY {order} LIMIT %(limit)s FOR UPDATE OF t SKIP LOCKED)"
            ).format(id=idc, ts=tsc, tbl=tbl, pred=pred, order=self.order(rule)))
            scanned = sql.SQL("(SELECT count(*) FROM win), (SELECT {ts} FROM win ORDER BY {o} LIMIT 1),"
                              " (SELECT {id} FROM win ORDER BY {o} LIMIT 1)").format(
                ts=tsc, id=idc, o=self.order(rule, "win", descending=True))
        else:
            parts.append(sql.SQL(
                "batch AS ({cands} ORDER BY {order} LIMIT %(limit)s FOR UPDATE OF t SKIP LOCKED)").format(
                cands=self.candidates_sql(rule), order=self.order(rule)))
            scanned = sql.SQL("NULL::bigint, NULL, NULL")
        parts.append(sql.SQL(
            "gone AS (DELETE FROM {tbl} AS d USING batch WHERE d.{id} = batch.{id} RETURNING d.{id}, d.{ts})").format(
            tbl=tbl, id=idc, ts=tsc))
        counts = []
        for n, (dep_table, dep_column) in enumerate(rule.cascade):
            name = sql.Identifier("dep%d" % n)
            parts.append(sql.SQL("{name} AS (DELETE FROM {dep} AS c USING gone WHERE c.{col} = gone.{id} RETURNING 1)")
                         .format(name=name, dep=self.table(rule, dep_table), col=sql.Identifier(dep_column), id=idc))
            counts.append(sql.SQL("(SELECT count(*) FROM {})").format(name))
        last = self.order(rule, "gone", descending=True)
        select = sql.SQL("SELECT (SELECT count(*) FROM gone), (SELECT {ts} FROM gone ORDER BY {o} LIMIT 1),"
                         " (SELECT {id} FROM gone ORDER BY {o} LIMIT 1), {scanned}").format(
            ts=tsc, id=idc, o=last, scanned=scanned)
        if counts:
            select = sql.SQL("{}, {}").format(select, sql.SQL(", ").join(counts))
        return sql.SQL("WITH {} {}").format(sql.SQL(", ").join(parts), select)

    def prepare(self, conn, state, id_ranges):
        """Nothing to plan: the keyset starts before the first row."""

    def _window_count_sql(self, rule):
        """Check mode: one batch of a sweeping rule, read only.

        The same window as ``batch_statement`` (``scan_limit`` rows from the cursor) and the same
        first ``limit`` candidates in it; returns the window's size and last (time, id), then the
        candidates' count and last (time, id).
        """
        idc, tsc = sql.Identifier(rule.id_column), sql.Identifier(rule.time_column)
        pred = rule.predicate if rule.predicate is not None else sql.SQL("true")
        return sql.SQL(
            "WITH win AS (SELECT t.* FROM {tbl} AS t WHERE {rng} ORDER BY {order} LIMIT %(scan_limit)s),"
            " cand AS (SELECT t.{id}, t.{ts} FROM win AS t WHERE t.{ts} < %(cutoff)s AND ({pred})"
            " ORDER BY {order} LIMIT %(limit)s)"
            " SELECT (SELECT count(*) FROM win), (SELECT {ts} FROM win ORDER BY {w} LIMIT 1),"
            " (SELECT {id} FROM win ORDER BY {w} LIMIT 1), (SELECT count(*) FROM cand),"
            " (SELECT {ts} FROM cand ORDER BY {c} LIMIT 1), (SELECT {id} FROM cand ORDER BY {c} LIMIT 1)").format(
            tbl=self.table(rule), rng=self.key_range(rule), order=self.order(rule), id=idc, ts=tsc, pred=pred,
            w=self.order(rule, "win", descending=True), c=self.order(rule, "cand", descending=True))

    def _windows(self, conn, state, limit):
        """Candidates of a sweeping rule from the cursor, counted window by window (reads only)."""
        rule = state.rule
        pred = rule.predicate if rule.predicate is not None else sql.SQL("true")
        query = sql.SQL(
            "SELECT count(*) FILTER (WHERE {pred}), count(*), (array_agg(t.{ts} ORDER BY {o}))[1],"
            " (array_agg(t.{id} ORDER BY {o}))[1]"
            " FROM (SELECT t.* FROM {tbl} AS t WHERE {rng} ORDER BY {order} LIMIT %(scan_limit)s) AS t").format(
            pred=pred, ts=sql.Identifier(rule.time_column), id=sql.Identifier(rule.id_column),
            o=self.order(rule, descending=True), tbl=self.table(rule), rng=self.key_range(rule),
            order=self.order(rule))
        total = 0
        cursor_time, cursor_key = state.cursor
        with conn.cursor() as cur:
            while True:
                cur.execute(query, self.params(state, cursor_time=cursor_time, cursor_key=cursor_key))
                found, seen, last_time, last_key = cur.fetchone()
                total += found
                if seen < rule.scan_limit or (limit is not None and total >= limit):
                    return total if limit is None else min(total, limit)
                cursor_time, cursor_key = last_time, last_key

    def count_candidates(self, conn, state, limit, lower_from_cursor=True):
        if state.rule.scan_limit and lower_from_cursor:
            return self._windows(conn, state, limit)
        return KeysetWalk.count_candidates(self, conn, state, limit, lower_from_cursor)

    def precount(self, conn, state, cap):
        return self.count_candidates(conn, state, cap)

    def batch(self, conn, state, limit, upper, check_mode, precounted=None):
        if check_mode:
            return self._count_batch(conn, state, limit, precounted)
        with conn.cursor() as cur:
            cur.execute(self._statement(state.rule, False), self.params(state, limit=limit))
            row = cur.fetchone()
        self._advance(state, row, limit)
        return row[0]

    def _count_batch(self, conn, state, limit, precounted):
        """Check mode: what this batch would delete, without deleting.

        A sweeping rule reads the very window the real batch would read, so its count, the rows
        it examines (``scanned``) and where its cursor goes are those of the real run. Any other
        rule takes its share of the candidates counted up front.
        """
        if not state.rule.scan_limit:
            count = min(limit, (precounted or 0) - state.deleted)
            state.done = count < limit
            return count
        with conn.cursor() as cur:
            cur.execute(self._window_count_sql(state.rule), self.params(state, limit=limit))
            seen, win_time, win_key, count, last_time, last_key = cur.fetchone()
        self._advance(state, (count, last_time, last_key, seen, win_time, win_key), limit)
        return count

    def _advance(self, state, row, limit):
        """After a committed batch: move the keyset cursor and count dependents and examined rows."""
        count, last_time, last_key, seen, win_time, win_key = row[:6]
        for (dep_table, _col), n in zip(state.rule.cascade, row[6:]):
            state.cascaded[dep_table] += n
        if state.rule.scan_limit:
            state.scanned += seen or 0
            if count >= limit and last_time is not None:
                state.cursor = (last_time, last_key)
            elif seen:
                state.cursor = (win_time, win_key)
            if count < limit and (seen or 0) < state.rule.scan_limit:
                state.done = True
        else:
            if last_time is not None:
                state.cursor = (last_time, last_key)
            if count < limit:
                state.done = True

    def remaining(self, conn, state, check_mode, precounted=None):
        if not check_mode:
            return KeysetWalk.remaining(self, conn, state, check_mode)
        left = (precounted or 0) - state.deleted
        if left > REMAINING_EXACT_LIMIT:
            # From the start of the table: in check mode a sweeping rule's cursor moved with its reads.
            state.remaining = max(REMAINING_EXACT_LIMIT + 1,
                                  self.estimate_candidates(conn, state, "zero") - state.deleted)
            state.remaining_exact = False
        else:
            state.remaining = left

    def count_cascaded(self, conn, state, rows):
        """Check mode: dependents of the first ``rows`` candidates, per cascade table."""
        rule = state.rule
        out = {}
        with conn.cursor() as cur:
            for dep_table, dep_column in rule.cascade:
                if rows <= 0:
                    out[dep_table] = 0
                    continue
                query = sql.SQL(
                    "SELECT count(*) FROM {dep} AS c WHERE c.{col} IN"
                    " (SELECT k.{id} FROM ({cands} ORDER BY {order} LIMIT %(rows)s) AS k)").format(
                    dep=self.table(rule, dep_table), col=sql.Identifier(dep_column),
                    id=sql.Identifier(rule.id_column), cands=self.candidates_sql(rule, "zero"),
                    order=self.order(rule))
                cur.execute(query, self.params(state, rows=rows))
                out[dep_table] = cur.fetchone()[0]
        return out

    def finish(self, conn, state, check_mode, budget):
        if check_mode and state.rule.cascade:
            state.cascaded = self.count_cascaded(conn, state, state.deleted)
        return 0
