"""Run real Prefect flows against a running server and print what was made and Prefect's version, as JSON.

Run with the interpreter of an environment that has ``prefect`` (tests/requirements-prefect.txt, or
tests/requirements-prefect34.txt for the oldest supported release) and PREFECT_API_URL pointing at the
server. The same flows run on every release. The test suite backdates rows afterwards with SQL.
"""
from __future__ import annotations

import asyncio
import json
import sys
import uuid

import prefect
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.orchestration import get_client
from prefect.events import emit_event
from prefect.runtime import flow_run as current_run
from prefect.states import Cancelled, Crashed, Running

MADE: dict[str, list[str]] = {}


def remember(label: str) -> None:
    MADE.setdefault(label, []).append(str(current_run.id))


@task
def extract(n: int) -> list[int]:
    logger = get_run_logger()
    logger.debug("extract debug chatter %d", n)
    logger.info("extracting %d rows", n)
    return list(range(n))


@task
def load(rows: list[int], key: str | None) -> int:
    logger = get_run_logger()
    logger.info("loading %d rows", len(rows))
    logger.warning("a warning worth keeping")
    if key:
        create_markdown_artifact(key=key, markdown="# %d rows" % len(rows), description="rows loaded")
    create_table_artifact(table=[{"rows": len(rows)}], description="unkeyed table")
    return len(rows)


@flow(name="etl")
def etl(n: int, key: str | None, label: str) -> int:
    remember(label)
    get_run_logger().error("an error line that is always kept")
    return load(extract(n), key)


@flow(name="child")
def child(label: str) -> int:
    remember(label)
    get_run_logger().info("child running")
    create_markdown_artifact(key="child-report", markdown="child", description="from a subflow")
    return 1


@flow(name="parent")
def parent(label: str, child_label: str) -> int:
    remember(label)
    get_run_logger().info("parent running")
    return child(child_label) + 1


@flow(name="failing")
def failing(label: str) -> None:
    remember(label)
    get_run_logger().info("about to fail")
    create_markdown_artifact(key="failing-report", markdown="failed", description="from a failed run")
    raise RuntimeError("boom")


async def api_only_runs() -> None:
    """Runs made through the API: one cancelled before it ever started, one still running, one crashed."""
    async with get_client() as client:
        for label, states in (("never_started", [Cancelled()]), ("running", [Running()]),
                              ("crashed", [Running(), Crashed(message="worker lost")])):
            run = await client.create_flow_run(flow=_named_flow(), name=label)
            for state in states:
                await client.set_flow_run_state(run.id, state, force=True)
            MADE.setdefault(label, []).append(str(run.id))


def _named_flow():
    @flow(name="scheduled-elsewhere")
    def placeholder() -> None:
        return None
    return placeholder


async def delete_through_api(run_id: str) -> None:
    async with get_client() as client:
        await client.delete_flow_run(uuid.UUID(run_id))


def main() -> None:
    # Several versions of one key: kept runs, runs that will be old, and a latest version from an old run.
    etl(3, "report", "kept_etl")
    etl(4, "report", "old_etl")
    etl(5, "report", "old_etl")
    etl(2, "only-old", "old_only_key")
    etl(6, None, "kept_etl")
    etl(7, "report", "old_latest")        # the latest "report" version; its run is backdated
    parent("old_parent", "old_child")
    parent("kept_parent", "kept_child")
    try:
        failing("old_failed")
    except RuntimeError:
        pass
    etl(8, "orphan-key", "deleted_by_api")
    asyncio.run(api_only_runs())
    asyncio.run(delete_through_api(MADE["deleted_by_api"][0]))
    for n in range(4):
        emit_event(event="prefect.flow-run.heartbeat", resource={"prefect.resource.id": "pgtidy.test.hb.%d" % n},
                   related=[{"prefect.resource.id": "pgtidy.test.related", "prefect.resource.role": "tag"}])
        emit_event(event="pgtidy.test.custom", resource={"prefect.resource.id": "pgtidy.test.custom.%d" % n},
                   related=[{"prefect.resource.id": "pgtidy.test.related", "prefect.resource.role": "tag"}])
    json.dump({"made": MADE, "prefect_version": prefect.__version__}, sys.stdout)


if __name__ == "__main__":
    main()
