"""Read a Prefect database back through Prefect's own client and print it as JSON.

Run with an interpreter that has ``prefect``; PREFECT_API_DATABASE_CONNECTION_URL names the
database and PREFECT_API_URL is unset, so the client serves Prefect's API in-process.
"""
from __future__ import annotations

import asyncio
import json
import sys

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId


async def read() -> dict:
    out: dict = {"flow_runs": {}, "latest_artifacts": {}}
    async with get_client() as client:
        runs = await client.read_flow_runs(limit=200)
        for run in runs:
            logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])),
                                          limit=200)
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])), limit=200)
            out["flow_runs"][str(run.id)] = {
                "name": run.name,
                "state": run.state_type.value if run.state_type else None,
                "parent_task_run_id": str(run.parent_task_run_id) if run.parent_task_run_id else None,
                "logs": sorted([log.level, log.message, str(log.task_run_id)] for log in logs),
                "artifacts": sorted([a.key or "", str(a.id), a.description or ""] for a in artifacts),
            }
        for collection in await client.read_latest_artifacts(limit=200):
            latest = None
            try:
                latest = await client.read_artifacts(artifact_filter=ArtifactFilter(
                    id={"any_": [collection.latest_id]}), limit=1)
            except Exception as exc:  # the check below reports a dangling pointer
                latest = exc
            out["latest_artifacts"][collection.key] = {
                "latest_id": str(collection.latest_id),
                "latest_exists": isinstance(latest, list) and len(latest) == 1,
                "flow_run_id": str(collection.flow_run_id) if collection.flow_run_id else None,
            }
    return out


if __name__ == "__main__":
    json.dump(asyncio.run(read()), sys.stdout, sort_keys=True)
