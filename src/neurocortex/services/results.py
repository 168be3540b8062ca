"""How a job ends: its report and artifacts, or its failure, written in one transaction, then announced."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from sqlalchemy import insert, update

from neurocortex.ids import new_id, now_ms
from neurocortex.services import attachments, job_events
from neurocortex.services.base import Services
from neurocortex.store import tables as t

log = logging.getLogger(__name__)


async def store_file_artifact(svc: Services, artifact: dict[str, Any]) -> dict[str, Any] | None:
    """Move a worker's output file into the datastore; the artifact then refers to it by hash."""
    try:
        with open(artifact["path"], "rb") as handle:
            return await attachments.store(
                svc, handle, artifact["filename"], artifact.get("contentType") or "application/octet-stream"
            )
    except Exception as exc:  # a file the worker cannot give us is dropped, not the whole report
        log.warning("file artifact %s dropped: %s", artifact.get("filename"), exc)
        return None


async def succeed(
    svc: Services,
    job: dict[str, Any],
    full: dict[str, Any],
    summary: dict[str, Any],
    operations: list[dict[str, Any]],
    artifacts: list[dict[str, Any]],
) -> bool:
    """Store the report; False when the job was not ours any more (deleted or taken over meanwhile)."""
    now = now_ms()
    system = {"createdBy": job["createdBy"], "createdAt": now}
    report_id = new_id()
    ended = {"status": "Success", "endDate": now, "updatedBy": job["createdBy"], "updatedAt": now}
    rows = []
    for artifact in artifacts:
        row = {
            "id": new_id(),
            "report": report_id,
            "job": job["id"],
            "dataType": artifact["dataType"],
            "data": artifact.get("data"),
            "attachment": artifact.get("attachment"),
            "tlp": artifact.get("tlp", job["tlp"]),
            "tags": artifact.get("tags", []),
            "message": artifact.get("message"),
            **system,
        }
        rows.append(row)
    async with svc.db.write() as conn:
        claimed = await conn.execute(
            update(t.job)
            .where(
                t.job.c.id == job["id"],
                t.job.c.status == "InProgress",
                t.job.c.lease_owner == job["lease_owner"],
            )
            .values(**ended, lease_until=None)
        )
        if claimed.rowcount != 1:
            return False
        await conn.execute(
            insert(t.report).values(
                id=report_id,
                job=job["id"],
                full=orjson.dumps(full).decode(),
                summary=orjson.dumps(summary).decode(),
                operations=orjson.dumps(operations).decode(),
                **system,
            )
        )
        if rows:
            await conn.execute(insert(t.artifact), rows)
        recorded = await job_events.record(conn, [job | ended])
    job_events.announce(svc, recorded)
    _announce(svc, job, "Success")
    return True


async def fail(svc: Services, job: dict[str, Any], message: str, input_text: str | None = None) -> bool:
    now = now_ms()
    ended = {
        "status": "Failure",
        "endDate": now,
        "errorMessage": message,
        "updatedBy": job["createdBy"],
        "updatedAt": now,
    }
    async with svc.db.write() as conn:
        claimed = await conn.execute(
            update(t.job)
            .where(
                t.job.c.id == job["id"],
                t.job.c.status == "InProgress",
                t.job.c.lease_owner == job["lease_owner"],
            )
            .values(**ended, input=input_text, lease_until=None)
        )
        if claimed.rowcount != 1:
            return False
        recorded = await job_events.record(conn, [job | ended])
    job_events.announce(svc, recorded)
    _announce(svc, job, "Failure", {"errorMessage": message})
    return True


def _announce(svc: Services, job: dict[str, Any], status: str, extra: dict[str, Any] | None = None) -> None:
    svc.events.job_ended(job["id"])
    publish_status(svc, job, {"status": status, **(extra or {})})


def publish_status(svc: Services, job: dict[str, Any], details: dict[str, Any]) -> None:
    """A job's status change on the streams, without the execution bookkeeping."""
    public = {k: v for k, v in job.items() if k not in ("lease_owner", "lease_until", "attempts", "input")}
    svc.publish(
        job["createdBy"], "", "job", job["id"], "Update", job["organization"], public | details, details
    )
