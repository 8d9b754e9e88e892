"""What the Dagster tests check on a database: the retention options that prune hard, and the rows pgtidy must
never delete, read with SQL independently of the implementation; and the Dagster release a test runs on.

Release: a test runs on the newest supported Dagster (installed in .venv, driven in process) unless it is
parametrized over ``DAGSTER_RELEASES``, which adds the oldest, Dagster 1.9, from its own environment (see
tests/dagster_fixture.py). Each release's history is built once per session and cloned for every test. The
fixtures below are imported by the test modules that use them (``dagster_db`` there replaces the newest-only
one of tests/conftest.py); each test's ``dagster_db["release"]`` reads its database back through that
release's own API.
"""
from __future__ import annotations

import os
import uuid

import psycopg
import pytest

# Puts the collection on sys.path.
from conftest import COLLECTIONS_ROOT  # noqa: F401  pylint: disable=unused-import
import dagster_fixture

from ansible_collections.pgtidy.maintenance.plugins.module_utils._dagster.rules import NOISE_EVENT_TYPES

AGGRESSIVE = {
    "log_retention_days": {"debug": 1, "info": 1, "warning": 1},
    "event_retention_days": 1,
    "tick_retention_days": {"sensor": {"skipped": 1, "failure": 1}, "schedule": {"skipped": 1}},
}


def q(pg, db, sql):
    with psycopg.connect(pg.dsn(db), autocommit=True) as conn:
        cur = conn.execute(sql)
        return cur.fetchall() if cur.description else None


def protected_fingerprint(pg, db):
    """Every row pgtidy must never delete, as (table, count, checksum)."""
    noise = ",".join("'%s'" % t for t in NOISE_EVENT_TYPES + ("ASSET_MATERIALIZATION_PLANNED",))
    return q(pg, db, f"""
        SELECT 'events', count(*), md5(string_agg(id::text, ',' ORDER BY id)) FROM event_logs
          WHERE dagster_event_type IS NOT NULL AND dagster_event_type NOT IN ({noise})
        UNION ALL SELECT 'error_logs', count(*), md5(string_agg(id::text, ',' ORDER BY id)) FROM event_logs
          WHERE dagster_event_type IS NULL AND (event::json->>'level')::int >= 40
        UNION ALL SELECT 'unfinished_run_rows', count(*), md5(string_agg(e.id::text, ',' ORDER BY e.id))
          FROM event_logs e JOIN runs r USING (run_id) WHERE r.status NOT IN ('SUCCESS', 'FAILURE', 'CANCELED')
        UNION ALL SELECT 'runs', count(*), md5(string_agg(run_id || status, ',' ORDER BY run_id)) FROM runs
        UNION ALL SELECT 'run_tags', count(*), md5(string_agg(key || value, ',' ORDER BY id)) FROM run_tags
        UNION ALL SELECT 'asset_keys', count(*), md5(string_agg(asset_key, ',' ORDER BY asset_key)) FROM asset_keys
        UNION ALL SELECT 'instigators', count(*), md5(string_agg(selector_id, ',' ORDER BY selector_id))
          FROM instigators
        UNION ALL SELECT 'kvs', count(*), md5(coalesce(string_agg(key, ',' ORDER BY key), '')) FROM kvs
        UNION ALL SELECT 'asset_check_executions', count(*), md5(string_agg(id::text, ',' ORDER BY id))
          FROM asset_check_executions
    """)


def noise_left(pg, db, days=1):
    noise = ",".join("'%s'" % t for t in NOISE_EVENT_TYPES)
    return q(pg, db, f"""
        SELECT count(*) FROM event_logs e JOIN runs r USING (run_id)
        WHERE r.status IN ('SUCCESS', 'FAILURE', 'CANCELED') AND e.timestamp < now() at time zone 'utc' - interval '{days} days'
          AND (e.dagster_event_type IN ({noise})
               OR (e.dagster_event_type IS NULL AND (e.event::json->>'level')::int < 40))""")[0][0]


# ``@pytest.mark.parametrize("dagster_release", DAGSTER_RELEASES)``: the test runs on each release, ids naming it.
# The older release's tests share one xdist group, so that one worker builds its history.
DAGSTER_RELEASES = [
    pytest.param("newest", id="dagster-1.13"),
    pytest.param("1.9", id="dagster-1.9", marks=pytest.mark.xdist_group("dagster-1.9")),
]


def release_of(name):
    """The ``dagster_fixture.Release`` of a parameter; an older release that is not installed skips the test
    (fails it under CI, where every environment is built)."""
    if name == "newest":
        return dagster_fixture.newest()
    try:
        return dagster_fixture.side_release(name)
    except dagster_fixture.ReleaseMissing as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(name="dagster_release")
def release_fixture():
    """The release of a test: the newest, unless the test is parametrized over ``DAGSTER_RELEASES``."""
    return "newest"


# (cluster port, release) -> the older release's template. Kept outside pytest's fixture cache: a session fixture
# that depends on ``pg`` is rebuilt whenever the test's PostgreSQL major changes, and the history takes a minute.
_SIDE_TEMPLATES = {}


@pytest.fixture(name="dagster_side_templates", scope="session")
def side_templates_fixture(tmp_path_factory):
    """The history of an older release on a cluster, built on first use through that release's own python."""
    def template(pg, name):
        key = (pg.port, name)
        if key not in _SIDE_TEMPLATES:
            release = release_of(name)
            db = "dagster%s_template" % name.replace(".", "")
            home = str(tmp_path_factory.mktemp("dagster-%s-home" % name))
            pg.create_db(db)
            manifest = release.build(home, pg.port, db, password=pg.password or "",
                                     rounds=int(os.environ.get("PGTIDY_TEST_DAGSTER_ROUNDS", "4")))
            with psycopg.connect(pg.dsn(db), autocommit=True) as conn:
                dagster_fixture.backdate(conn, days=180)
                conn.execute("VACUUM ANALYZE")
            _SIDE_TEMPLATES[key] = {"home": home, "db": db, "manifest": manifest, "release": release}
        return _SIDE_TEMPLATES[key]
    return template


@pytest.fixture(name="dagster_db")
def release_db_fixture(pg, dagster_release, request, tmp_path):
    """A private copy of the release's Dagster database, with its own DAGSTER_HOME sharing the run storage."""
    if dagster_release == "newest":
        template = dict(request.getfixturevalue("dagster_template"), release=dagster_fixture.newest())
    else:
        params = getattr(request.node, "callspec", None)
        params = params.params if params else {}
        if params.get("pg") is not None or params.get("host_python") not in (None, "venv-python"):
            pytest.skip("an older Dagster runs on the default PostgreSQL major with the test environment's python;"
                        " the other majors and interpreters are tested with the newest")
        template = request.getfixturevalue("dagster_side_templates")(pg, dagster_release)
    name = "dg_" + uuid.uuid4().hex[:10]
    pg.psql('CREATE DATABASE "%s" TEMPLATE "%s"' % (name, template["db"]))
    home = str(tmp_path / "dagster-home")
    dagster_fixture.write_instance_yaml(home, pg.port, name, password=pg.password or "")
    os.symlink(os.path.join(template["home"], "storage"), os.path.join(home, "storage"))
    yield {"db": name, "home": home, "manifest": template["manifest"], "release": template["release"]}
    pg.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
