"""The planner's own choice for every event_logs batch statement: an index range, never a sequential scan.

The table is big enough (250,000 rows, ANALYZEd) that a sequential scan would be a real option
for the planner, with the event mix and time spread of real Dagster runs (bench/_prune_data.py).
"""
from __future__ import annotations

import os
import sys

import psycopg
import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "bench"))

import _prune_data  # noqa: E402

from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.budget import Budget  # noqa: E402
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.walks import HandlerState, IdWalk  # noqa: E402
from ansible_collections.pgtidy.maintenance.plugins.module_utils._dagster.rules import (  # noqa: E402
    build_rules, validate_options)

ROWS = 250_000
INDEX_SCANS = ("Index Scan", "Index Only Scan", "Bitmap Index Scan")


@pytest.fixture(scope="module")
def big_dagster_db(pg):
    name = "explain_dagster"
    _prune_data.migrate(pg, name)
    with psycopg.connect(pg.dsn(name), autocommit=True) as conn:
        _prune_data.fill(conn, ROWS, log=lambda msg: None)
    yield name
    pg.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


def plan_nodes(node):
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


def event_logs_scans(plan):
    """(node type, alias, index name, index condition) of every node reading event_logs, bitmap children included."""
    out = []
    for node in plan_nodes(plan):
        if node.get("Relation Name") == "event_logs" and node["Node Type"] != "ModifyTable":
            out.append((node["Node Type"], node.get("Alias"), node.get("Index Name"), node.get("Index Cond", "")))
            for child in plan_nodes(node):
                if child is not node and child["Node Type"] == "Bitmap Index Scan":
                    out.append((child["Node Type"], node.get("Alias"), child.get("Index Name"), child.get("Index Cond", "")))
    return out


def explain(conn, statement, params):
    return conn.execute(psycopg.sql.SQL("EXPLAIN (FORMAT JSON) {}").format(statement), params).fetchone()[0][0]["Plan"]


@pytest.mark.newest_major
def test_every_event_logs_batch_reads_an_index_range(pg, big_dagster_db):
    with psycopg.connect(pg.dsn(big_dagster_db)) as conn:
        budget = Budget()
        walk = IdWalk("public")
        rules = [r for r in build_rules(validate_options({}), "public") if r.table == "event_logs"]
        assert len(rules) == 12     # three log levels, eight noise types, superseded planned events
        checked = 0
        for rule in rules:
            state = HandlerState(rule)
            state.boundary = walk.find_boundary(conn, rule)
            assert state.boundary >= ROWS // 3, rule.name    # 7 to 90 days of 180: half the table or more is old
            statement = walk.batch_statement(rule)
            span = 4 * budget.batch_size                      # the engine's first id window
            windows = [(0, span), (state.boundary // 2, state.boundary // 2 + span), (0, state.boundary)]
            for low, high in windows:
                plan = explain(conn, statement, walk.params(state, cursor=low, boundary=high, limit=budget.batch_size))
                scans = event_logs_scans(plan)
                where = "%s window %d..%d: %s" % (rule.name, low, high, scans)
                assert scans, where
                assert not [s for s in scans if s[0] == "Seq Scan"], where
                # the candidate scan (alias t) is driven by an index condition on the id range
                candidate = [s for s in scans if s[1] == "t" and s[0] in INDEX_SCANS]
                assert candidate, where
                assert any("id >" in s[3] and "id <=" in s[3] for s in candidate), where
                checked += 1
        assert checked == 36
