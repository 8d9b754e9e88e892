"""Tick retention keeps every instigator's newest tick, as Dagster's own purge does.

The daemon purges an instigator's ticks only right after writing a new one, so a schedule or
sensor always keeps its latest tick. A stopped instigator has only old ticks: retention must not
take its last one, or the UI shows an older tick (or none) as its latest.
"""
from __future__ import annotations

import time

import psycopg
import pytest

from conftest import conn_params
import dagster_fixture
from dagster_checks import DAGSTER_RELEASES, release_of
# The fixture dagster_release, which ticks_db reads (pytest finds fixtures among a module's names).
from dagster_checks import release_fixture  # noqa: F401  pylint: disable=unused-import

from ansible_collections.pgtidy.maintenance.plugins.module_utils._dagster.rules import (
    DagsterProfile, build_rules, validate_options)
from ansible_collections.pgtidy.maintenance.plugins.module_utils._engine.prune import run_prune

DAY = 86400.0

# (name, kind, stopped, selector_id written on the ticks, [(days ago, status), ...])
INSTIGATORS = [
    # Stopped long ago: without its newest tick the UI would show none (or, were FAILURE kept, an old FAILURE).
    ("retired_sensor", "SENSOR", True, True,
     [(200, "SUCCESS"), (190, "FAILURE"), (180, "SKIPPED"), (175, "SKIPPED"), (170, "SKIPPED")]),
    # Stopped long ago; schedule retention 30 days for every status would leave no tick at all.
    ("retired_schedule", "SCHEDULE", True, True,
     [(150, "SUCCESS"), (140, "FAILURE"), (130, "SKIPPED"), (120, "SUCCESS")]),
    # Ticks from before Dagster wrote selector ids: found through their origin id.
    ("legacy_sensor", "SENSOR", True, False, [(300, "SKIPPED"), (290, "SKIPPED"), (280, "SKIPPED")]),
    # Still ticking: its old SKIPPED ticks go as before.
    ("busy_sensor", "SENSOR", False, True, [(d + 0.5, "SKIPPED") for d in range(20, 0, -1)] + [(0.05, "SKIPPED")]),
]
# Every tick of the stopped instigators is past retention; the running sensor loses its SKIPPED ticks after 7 days.
RETENTION = {"tick_retention_days": {"schedule": 30,
                                     "sensor": {"skipped": 7, "success": 30, "failure": 30, "started": 30}}}
STOPPED = ("retired_sensor", "retired_schedule", "legacy_sensor")


def _add_instigators_and_ticks(release, home):
    """Instigator states and ticks written by Dagster's instance API, ticks in time order (ids grow with time)."""
    now = time.time()
    instigators, ticks = [], []
    for name, kind, stopped, with_selector, history in INSTIGATORS:
        instigators.append({"name": name, "kind": kind, "stopped": stopped, "last_tick": now - history[-1][0] * DAY,
                            "start": now - 400 * DAY})
        ticks.extend({"name": name, "kind": kind, "status": status, "timestamp": now - days * DAY,
                      "selector": with_selector} for days, status in history)
    release.write_ticks(home, instigators, sorted(ticks, key=lambda t: t["timestamp"]))


@pytest.fixture
def ticks_db(pg, fresh_db, tmp_path, dagster_release):
    release = release_of(dagster_release)
    home = dagster_fixture.write_instance_yaml(str(tmp_path / "dagster-home"), pg.port, fresh_db,
                                               password=pg.password or "")
    release.migrate(home)
    _add_instigators_and_ticks(release, home)
    with psycopg.connect(pg.dsn(fresh_db), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM job_ticks WHERE selector_id IS NULL").fetchone()[0] == 3
        conn.execute("VACUUM ANALYZE job_ticks")
    return {"db": fresh_db, "home": home, "release": release}


def ticks_by_instigator(ticks_db, limit=None):
    """What the UI reads: ``get_ticks(origin_id, selector_id)``, newest first, as (id, status, timestamp)."""
    return ticks_db["release"].read(ticks_db["home"], "ticks", ticks={"limit": limit})


@pytest.mark.parametrize("dagster_release", DAGSTER_RELEASES)
def test_stopped_instigators_keep_their_newest_tick(pg, ticks_db, lock_file, same_cutoffs):
    latest_before = ticks_by_instigator(ticks_db, limit=1)
    all_before = ticks_by_instigator(ticks_db)
    assert all(latest_before[name] for name in STOPPED)
    params = conn_params(pg, ticks_db["db"], lock_file=lock_file, **RETENTION)

    check = run_prune(params, DagsterProfile(), check_mode=True)
    real = run_prune(params, DagsterProfile())

    latest_after = ticks_by_instigator(ticks_db, limit=1)
    all_after = ticks_by_instigator(ticks_db)
    # Dagster shows the same latest tick for every instigator, and a stopped one keeps exactly that tick.
    assert latest_after == latest_before
    for name in STOPPED:
        assert all_after[name] == latest_before[name], name
    # The running sensor still loses its SKIPPED ticks past 7 days; its newest is recent anyway.
    assert all_after["busy_sensor"] == [t for t in all_before["busy_sensor"] if t[2] > time.time() - 7 * DAY]
    assert real["handlers"]["ticks_sensor_skipped"]["deleted"] == 2 + 2 + 14
    assert real["handlers"]["ticks_sensor_success"]["deleted"] == 1
    assert real["handlers"]["ticks_sensor_failure"]["deleted"] == 1
    assert real["handlers"]["ticks_schedule_success"]["deleted"] == 1

    # The result says how many ticks past retention were kept for being their instigator's newest.
    assert real["ticks_kept_newest"] == 3
    assert real["handlers"]["ticks_sensor_skipped"]["kept_newest"] == 2     # retired and legacy sensors
    assert real["handlers"]["ticks_schedule_success"]["kept_newest"] == 1
    assert real["handlers"]["ticks_schedule_failure"]["kept_newest"] == 0
    # Check mode predicted exactly that.
    assert check["ticks_kept_newest"] == 3
    assert {k: (h["deleted"], h.get("kept_newest")) for k, h in check["handlers"].items()} == \
        {k: (h["deleted"], h.get("kept_newest")) for k, h in real["handlers"].items()}
    assert check["deleted_total"] == real["deleted_total"] == (2 + 2 + 14) + 1 + 1 + 3

    again = run_prune(params, DagsterProfile())
    assert again["changed"] is False and again["deleted_total"] == 0
    assert again["ticks_kept_newest"] == 3


def test_newest_tick_lookups_are_index_conditions(pg, ticks_db):
    """The "is there a newer tick" probe is one index range per row: (selector_id, timestamp), or
    (job_origin_id, timestamp) for ticks without a selector id, never every tick of the instigator."""
    rule = next(r for r in build_rules(validate_options(RETENTION), "public") if r.name == "ticks_sensor_skipped")
    statement = psycopg.sql.SQL(
        "EXPLAIN (FORMAT JSON) SELECT t.id FROM {} AS t WHERE t.id > 0 AND t.id <= 5000 AND t.timestamp < %(cutoff)s"
        " AND {}").format(psycopg.sql.Identifier("public", "job_ticks"), rule.predicate)
    with psycopg.connect(pg.dsn(ticks_db["db"]), autocommit=True) as conn:
        # On a handful of rows every index costs the same; give the planner the shape of a real table:
        # 40 instigators ticking 500 times each, 4 of them from before selector ids.
        conn.execute("INSERT INTO job_ticks (job_origin_id, selector_id, status, type, timestamp, tick_body)"
                     " SELECT 'origin-' || (g % 40), CASE WHEN g % 40 < 4 THEN NULL ELSE 'selector-' || (g % 40) END,"
                     " 'SKIPPED', 'SENSOR', now() - make_interval(secs => 60 * (20000 - g)), '{}'"
                     " FROM generate_series(1, 20000) AS g")
        conn.execute("ANALYZE job_ticks")
        plan = conn.execute(statement, dict(rule.params, cutoff=rule.cutoff)).fetchone()[0][0]["Plan"]

    def nodes(node):
        yield node
        for child in node.get("Plans", []):
            yield from nodes(child)

    def bare(cond):
        return cond.replace("::text", "").replace("(", "").replace(")", "")

    # EXPLAIN names the second subquery's alias newer_1.
    probes = {n.get("Index Name"): bare(n.get("Index Cond", "")) for n in nodes(plan)
              if n.get("Relation Name") == "job_ticks" and str(n.get("Alias")).startswith("newer")}
    assert set(probes) == {"idx_tick_selector_timestamp", "idx_job_tick_timestamp"}, probes
    assert "selector_id = t.selector_id" in probes["idx_tick_selector_timestamp"], probes
    assert "job_origin_id = t.job_origin_id" in probes["idx_job_tick_timestamp"], probes
    for cond in probes.values():
        assert '"timestamp" > t."timestamp"' in cond, probes
