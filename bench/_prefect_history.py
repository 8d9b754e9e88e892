"""Real Prefect flow runs for the Prefect prune benchmark: the rows it copies to make a large database.

Run with an interpreter that has ``prefect`` (tests/requirements-prefect.txt) and PREFECT_API_URL pointing
at a running server. Prints the ids of the flow runs it made, as JSON. The benchmark then replicates every
row these runs wrote (flow runs, states, task runs, logs, artifacts, events, event resources) by SQL
(bench/_prefect_data.py).

The flows are shaped like a small data platform's: an ETL flow of five tasks that log at every level and
write a keyed report and an unkeyed table artifact, a parent flow with a subflow, and a flow that fails.
Each run also sends two heartbeat events, as runs started by a worker do.
"""
from __future__ import annotations

import json
import sys

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event
from prefect.runtime import flow_run as current_run

MADE: list[str] = []


def heartbeat() -> None:
    run_id = str(current_run.id)
    emit_event(event="prefect.flow-run.heartbeat",
               resource={"prefect.resource.id": "prefect.flow-run.%s" % run_id,
                         "prefect.resource.name": current_run.name},
               related=[{"prefect.resource.id": "prefect.flow.%s" % current_run.flow_name,
                         "prefect.resource.role": "flow"}])


@task
def extract(n: int) -> list[int]:
    logger = get_run_logger()
    logger.debug("connecting to the source, batch %d", n)
    logger.info("extracting %d rows", n)
    return list(range(n))


@task
def transform(rows: list[int]) -> list[int]:
    logger = get_run_logger()
    logger.debug("transforming %d rows", len(rows))
    return [r * 2 for r in rows]


@task
def validate(rows: list[int]) -> int:
    logger = get_run_logger()
    logger.debug("validating %d rows", len(rows))
    if len(rows) % 3 == 0:
        logger.warning("%d rows look suspicious", len(rows))
    return len(rows)


@task
def load(rows: list[int], key: str) -> int:
    logger = get_run_logger()
    logger.info("loading %d rows", len(rows))
    create_markdown_artifact(key=key, markdown="# Loaded\n\n%d rows" % len(rows), description="rows loaded")
    return len(rows)


@task
def notify(count: int) -> None:
    get_run_logger().info("notified: %d rows", count)


@flow(name="etl")
def etl(n: int, key: str) -> int:
    MADE.append(str(current_run.id))
    heartbeat()
    rows = transform(extract(n))
    count = validate(rows)
    loaded = load(rows, key)
    if n % 2 == 0:
        create_table_artifact(table=[{"rows": count}], description="row counts")
    notify(loaded)
    heartbeat()
    return loaded


@flow(name="child")
def child() -> int:
    MADE.append(str(current_run.id))
    get_run_logger().info("child running")
    return len(extract(3))


@flow(name="parent")
def parent() -> int:
    MADE.append(str(current_run.id))
    heartbeat()
    get_run_logger().info("parent running")
    total = child() + 1
    heartbeat()
    return total


@flow(name="failing")
def failing() -> None:
    MADE.append(str(current_run.id))
    heartbeat()
    get_run_logger().info("about to fail")
    extract(2)
    raise RuntimeError("source unavailable")


def main() -> None:
    for n in range(1, 9):
        etl(n, "report-%d" % (n % 3))
    parent()
    try:
        failing()
    except RuntimeError:
        pass
    json.dump(MADE, sys.stdout)


if __name__ == "__main__":
    main()
