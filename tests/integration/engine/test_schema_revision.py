"""The prune modules run only on the orchestrator schema revisions they were tested on (alembic_version).

Real Dagster and Prefect databases, migrated by the orchestrators themselves, through real ansible-playbook.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import conn_params
from prefect_fixture import prefect_python
from dagster_checks import AGGRESSIVE, q, release_of
from prefect_fixture import RETENTION as PREFECT_RETENTION, counts

from ansible_collections.pgtidy.maintenance.plugins.module_utils._dagster.options import (
    TESTED_REVISIONS as DAGSTER_REVISIONS)
from ansible_collections.pgtidy.maintenance.plugins.module_utils._prefect.options import (
    TESTED_REVISIONS as PREFECT_REVISIONS)

DAGSTER = "pgtidy.maintenance.dagster_prune"
PREFECT = "pgtidy.maintenance.prefect_prune"


def test_dagster_at_its_tested_revision_runs_and_an_unknown_revision_is_refused(pg, dagster_db, ansible, lock_file):
    db = dagster_db["db"]
    revision = q(pg, db, "SELECT version_num FROM alembic_version")[0][0]
    assert revision == DAGSTER_REVISIONS[-1], "the test environment's Dagster is the newest tested release"
    args = conn_params(pg, db, lock_file=lock_file, **AGGRESSIVE)
    rc, check, out = ansible.run_task(DAGSTER, args, check=True)
    assert rc == 0, out
    assert check["schema_revision"] == revision and check["schema_tested"] is True
    rows = q(pg, db, "SELECT count(*) FROM event_logs")[0][0]

    # A newer Dagster than this collection knows: refused before anything is touched, in both modes.
    q(pg, db, "UPDATE alembic_version SET version_num = 'f00dfeedbeef'")
    for check_mode in (True, False):
        rc, refused, out = ansible.run_task(DAGSTER, args, check=check_mode)
        assert rc != 0 and refused["error_kind"] == "untested_schema", out
        assert "f00dfeedbeef" in refused["msg"] and "Dagster 1.9.13 to 1.13.27" in refused["msg"]
        assert "allow_untested_schema" in refused["msg"]
    assert q(pg, db, "SELECT count(*) FROM event_logs")[0][0] == rows

    # Accepting the risk runs, and says so.
    rc, accepted, out = ansible.run_task(DAGSTER, dict(args, allow_untested_schema=True))
    assert rc == 0, out
    assert accepted["schema_tested"] is False and accepted["schema_revision"] == "f00dfeedbeef"
    assert accepted["deleted_total"] == check["deleted_total"] > 0
    assert "not one this collection was tested on" in accepted["msg"]
    assert any("f00dfeedbeef" in w for w in accepted.get("warnings", [])), accepted.get("warnings")


def test_a_schema_without_alembic_version_is_untested(pg, dagster_db, ansible, lock_file):
    db = dagster_db["db"]
    q(pg, db, "DROP TABLE alembic_version")
    rc, refused, out = ansible.run_task(DAGSTER, conn_params(pg, db, lock_file=lock_file, **AGGRESSIVE), check=True)
    assert rc != 0 and refused["error_kind"] == "untested_schema", out
    assert "no alembic_version table" in refused["msg"]


def test_health_info_reports_the_revision(pg, dagster_db, ansible):
    db = dagster_db["db"]
    args = conn_params(pg, db)
    args.pop("lock_wait")
    rc, health, out = ansible.run_task("pgtidy.maintenance.health_info", args)
    assert rc == 0, out
    assert health["orchestrator"]["schema_revision"] == {
        "revision": DAGSTER_REVISIONS[-1], "tested": True, "tested_releases": "Dagster 1.9.13 to 1.13.27"}


def test_prefect_at_its_tested_revision_runs_and_an_unknown_revision_is_refused(pg, prefect_db, ansible, lock_file):
    revision = pg.psql("SELECT version_num FROM alembic_version", prefect_db).strip()
    assert revision == PREFECT_REVISIONS[-1], "the test environment's Prefect is the newest tested release"
    args = conn_params(pg, prefect_db, lock_file=lock_file, **PREFECT_RETENTION)
    rc, check, out = ansible.run_task(PREFECT, args, check=True)
    assert rc == 0 and check["schema_revision"] == revision and check["schema_tested"] is True, out
    before = counts(pg, prefect_db)
    pg.psql("UPDATE alembic_version SET version_num = 'f00dfeedbeef'", prefect_db)
    rc, refused, out = ansible.run_task(PREFECT, args)
    assert rc != 0 and refused["error_kind"] == "untested_schema", out
    assert "Prefect 3.4.25 to 3.8.8" in refused["msg"]
    assert counts(pg, prefect_db) == before


def migration_chain(folder):
    """revision -> down_revision of every Alembic migration file in ``folder``."""
    chain = {}
    for name in os.listdir(folder):
        if name.endswith(".py"):
            with open(os.path.join(folder, name)) as fh:
                text = fh.read()
            rev = re.search(r"^revision\s*(?::\s*str)?\s*=\s*[\"']([^\"']+)", text, re.M)
            down = re.search(r"^down_revision\s*(?::[^=]+)?=\s*[\"']([^\"']+)", text, re.M)
            if rev:
                chain[rev.group(1)] = down.group(1) if down else None
    return chain


def orchestrator_migrations(python, code):
    return subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout.strip()


DAGSTER_MIGRATIONS = ("import dagster, os;"
                      " print(os.path.join(os.path.dirname(dagster.__file__), '_core/storage/alembic/versions'))")


@pytest.mark.parametrize("name, revisions, python, code", [
    ("dagster", DAGSTER_REVISIONS, sys.executable, DAGSTER_MIGRATIONS),
    ("prefect", PREFECT_REVISIONS, None,
     "import prefect, os; print(os.path.join(os.path.dirname(prefect.__file__),"
     " 'server/database/_migrations/versions/postgresql'))"),
])
def test_tested_revisions_are_one_migration_chain_up_to_the_installed_head(name, revisions, python, code):
    """Each tested revision migrates from the one before it, and the newest is the head the tests run on."""
    chain = migration_chain(orchestrator_migrations(python or prefect_python(), code))
    assert revisions[-1] in chain and revisions[-1] not in chain.values(), name     # the installed head
    for older, newer in zip(revisions, revisions[1:]):
        assert chain[newer] == older, (name, newer, chain.get(newer), older)


def test_the_oldest_tested_dagster_revision_is_the_head_of_the_oldest_supported_release():
    """Dagster 1.9.13's own migrations (its environment, locks/environments.txt) end at the first tested revision,
    the one its ``dagster instance migrate`` writes (tests/integration/dagster checks that on a real database)."""
    chain = migration_chain(orchestrator_migrations(release_of("1.9").python, DAGSTER_MIGRATIONS))
    assert DAGSTER_REVISIONS[0] in chain and DAGSTER_REVISIONS[0] not in chain.values(), DAGSTER_REVISIONS


def test_the_oldest_tested_prefect_revision_is_the_head_of_the_oldest_supported_release():
    """Prefect 3.4.25's own migrations (its environment, locks/environments.txt) end at the first tested revision,
    the one its ``prefect server database upgrade`` writes (tests/integration/prefect checks that on a real
    database)."""
    code = ("import prefect, os; print(os.path.join(os.path.dirname(prefect.__file__),"
            " 'server/database/_migrations/versions/postgresql'))")
    chain = migration_chain(orchestrator_migrations(prefect_python("3.4"), code))
    assert PREFECT_REVISIONS[0] in chain and PREFECT_REVISIONS[0] not in chain.values(), PREFECT_REVISIONS
