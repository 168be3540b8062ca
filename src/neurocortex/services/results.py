"""How a job ends: its report and artifacts, or its failure, written in one transaction, then announced."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import bindparam, insert, update

from neurocortex import metrics
from neurocortex.ids import new_id, now_ms
from neurocortex.services import attachments, job_events
from neurocortex.services.base import Services
from neurocortex.store import tables as t

log = logging.getLogger(__name__)

# Built once: a statement built per call costs more than SQLite takes to run it (SQLAlchemy's cache key).
_END = (
    update(t.job)
    .where(
        t.job.c.id == bindparam("job_id"),
        t.job.c.status == "InProgress",
        t.job.c.lease_owner == bindparam("owner"),
    )  # fmt: skip
    .values(
        status=bindparam("new_status"),
        endDate=bindparam("now"),
        updatedBy=bindparam("by"),
        updatedAt=bindparam("now"),
        lease_until=None,
    )
)
_FAIL = _END.values(errorMessage=bindparam("error_message"), input=bindparam("input_text"))
_INSERT_REPORT = insert(t.report)
_INSERT_ARTIFACT = insert(t.artifact)
_REPORT_COLUMNS = {column.name: None for column in t.report.c}
_ARTIFACT_COLUMNS = {column.name: None for column in t.artifact.c}


@dataclass(frozen=True)
class EndedJob:
    """A job as this process committed its end: what `waitreport` would read back (not to be modified)."""

    job: dict[str, Any]
    report: dict[str, Any] | None
    artifacts: list[dict[str, Any]]


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
    report = _REPORT_COLUMNS | {
        "id": report_id,
        "job": job["id"],
        "full": orjson.dumps(full).decode(),
        "summary": orjson.dumps(summary).decode(),
        "operations": orjson.dumps(operations).decode(),
        **system,
    }
    async with svc.db.write() as conn:
        claimed = await conn.execute(
            _END,
            {
                "job_id": job["id"],
                "owner": job["lease_owner"],
                "new_status": "Success",
                "now": now,
                "by": job["createdBy"],
            },
        )
        if claimed.rowcount != 1:
            return False
        await conn.execute(_INSERT_REPORT, report)
        if rows:
            await conn.execute(_INSERT_ARTIFACT, rows)
        recorded = await job_events.record(conn, [job | ended])
    job_events.announce(svc, recorded)
    final = EndedJob(job | ended | {"lease_until": None}, report,
                     sorted((_ARTIFACT_COLUMNS | row for row in rows), key=lambda row: row["id"]))  # fmt: skip
    metrics.job_ended(job, "Success", now)
    _announce(svc, job, "Success", final=final)
    return True


async def fail(svc: Services, job: dict[str, Any], message: str, input_text: str | None = None) -> bool:
    now = now_ms()
    ended = {"status": "Failure", "endDate": now, "errorMessage": message, "updatedBy": job["createdBy"],
             "updatedAt": now}  # fmt: skip
    async with svc.db.write() as conn:
        claimed = await conn.execute(
            _FAIL,
            {
                "job_id": job["id"],
                "owner": job["lease_owner"],
                "new_status": "Failure",
                "now": now,
                "by": job["createdBy"],
                "error_message": message,
                "input_text": input_text,
            },
        )
        if claimed.rowcount != 1:
            return False
        recorded = await job_events.record(conn, [job | ended])
    job_events.announce(svc, recorded)
    metrics.job_ended(job, "Failure", now)
    final = EndedJob(job | ended | {"input": input_text, "lease_until": None}, None, [])
    _announce(svc, job, "Failure", {"errorMessage": message}, final)
    return True


def _announce(
    svc: Services,
    job: dict[str, Any],
    status: str,
    extra: dict[str, Any] | None = None,
    final: EndedJob | None = None,
) -> None:
    svc.events.job_ended(job["id"], final)
    publish_status(svc, job, {"status": status, **(extra or {})})


def publish_status(svc: Services, job: dict[str, Any], details: dict[str, Any]) -> None:
    """A job's status change on the streams, without the execution bookkeeping."""
    public = {k: v for k, v in job.items() if k not in ("lease_owner", "lease_until", "attempts", "input")}
    svc.publish(
        job["createdBy"], "", "job", job["id"], "Update", job["organization"], public | details, details
    )
