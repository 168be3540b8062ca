"""Jobs: creation (data or file, legacy body, cache, rate limit), reading, reports, waiting, deletion (§4)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import and_, insert, select, update

from neurocortex.auth.context import AuthContext
from neurocortex.errors import (
    NotFoundError,
    RateLimitExceeded,
    invalid_format,
    missing_attribute,
    raise_attribute_errors,
)
from neurocortex.fields import Fields, UploadedFile
from neurocortex.ids import new_id, now_ms
from neurocortex.services import attachments, job_events, scheduling, workers
from neurocortex.services.base import Services, as_dict
from neurocortex.store import tables as t
from neurocortex.store.search import search as store_search
from neurocortex.store.search_models import ARTIFACT, JOB

FINISHED = ("Success", "Failure", "Deleted")
RUNNING = ("Waiting", "InProgress")
# how often a waiting request re-reads the job, for jobs finished by another node
WAIT_RECHECK_SECONDS = 5.0


@dataclass
class NewJob:
    data_type: str
    data: str | None
    file: UploadedFile | None
    tlp: int
    pap: int
    message: str
    parameters: dict[str, Any]
    parameters_text: str
    label: str | None
    force: bool


def read_job_fields(fields: Fields, responder: bool) -> NewJob:
    """The body of a run request, in the current or the legacy (`attributes`) format."""
    errors = []
    attributes = fields.get("attributes")
    if isinstance(attributes, dict):
        source = Fields(attributes)
        data = fields.get("data")
        file = fields.get_file("data")
        data_type = attributes.get("dataType")
        if not isinstance(data_type, str):
            errors.append(missing_attribute("dataType"))
        if file is None and not isinstance(data, str) and not responder:
            errors.append(missing_attribute("data/attachment"))
    else:
        source = fields
        data_type = fields.get("dataType")
        if not isinstance(data_type, str) or not data_type:
            errors.append(missing_attribute("dataType") if data_type is None else
                          invalid_format("dataType", data_type, "string"))  # fmt: skip
        data, file = _data_or_file(fields, responder, errors)
    if responder and file is None:
        # responders take any JSON value as data; it is kept as its JSON text (§4.1 step 2)
        if "data" not in fields and not isinstance(attributes, dict):
            errors.append(missing_attribute("data"))
        data = orjson.dumps(fields.get("data")).decode()

    tlp, pap = source.get_long("tlp"), source.get_long("pap")
    tlp = 2 if source.get("tlp") is None else tlp
    pap = 2 if source.get("pap") is None else pap
    for name, value in (("tlp", tlp), ("pap", pap)):
        if value is None or not 0 <= value <= 3:
            errors.append(invalid_format(name, source.get(name), "number between 0 and 3"))
    message = source.get("message")
    if message is None:
        message = ""
    elif not isinstance(message, str):
        errors.append(invalid_format("message", message, "string"))
    parameters = source.get("parameters")
    if not isinstance(parameters, dict):
        parameters = {}  # Cortex ignores anything else (n8n sends an array)
    label = source.get("label")
    raise_attribute_errors("job", errors)
    return NewJob(
        data_type=data_type,
        data=data if file is None else None,
        file=file,
        tlp=tlp,
        pap=pap,
        message=message,
        parameters=parameters,
        parameters_text=orjson.dumps(parameters).decode(),
        label=label if isinstance(label, str) else None,
        force=bool(fields.get_boolean("force")),
    )


def _data_or_file(fields: Fields, responder: bool, errors: list) -> tuple[Any, UploadedFile | None]:
    data, attachment = fields.get("data"), fields.get("attachment")
    if isinstance(attachment, UploadedFile):
        if isinstance(data, str):
            errors.append(invalid_format("data/attachment", data, "either data or attachment"))
        return None, attachment
    if isinstance(data, UploadedFile):
        # TheHive 3 also puts an `attachment` object (name, hashes...) in `_json`: the upload wins
        return None, data
    if attachment is not None:
        errors.append(invalid_format("attachment", attachment, "file"))
        return None, None
    if isinstance(data, str) or responder:
        return data, None
    errors.append(missing_attribute("data/attachment"))
    return None, None


def cache_tag(worker_id: str, new: NewJob, attachment_id: str | None) -> str:
    subject = attachment_id if attachment_id else new.data
    raw = f"{worker_id}|{new.data_type}|{new.tlp}|{subject}|{new.parameters_text}"
    return hashlib.md5(raw.encode()).hexdigest()


async def create(
    svc: Services, ctx: AuthContext, worker_id: str, fields: Fields, responder_route: bool
) -> tuple[dict[str, Any], bool]:
    """The new job (status Waiting), or the cached one and True when a recent similar report exists."""
    worker = await workers.get(svc, ctx, worker_id)
    new = read_job_fields(fields, responder_route)
    attachment = None
    if new.file:
        new.file.file.seek(0)
        attachment = await attachments.store(svc, new.file.file, new.file.name, new.file.content_type)
    tag = cache_tag(worker["id"], new, attachment["id"] if attachment else None)

    window = worker["jobCache"] if worker["jobCache"] is not None else svc.settings.job_cache
    if not new.force and worker["type"] == "analyzer" and window > 0:
        cached = await _cached(svc, tag, window)
        if cached is not None:
            return cached, True

    now = now_ms()
    job = {
        "id": new_id(),
        "organization": worker["organization"],
        "workerId": worker["id"],
        "workerName": worker["name"],
        "workerDefinitionId": worker["workerDefinitionId"],
        "type": worker["type"],
        "status": "Waiting",
        "dataType": new.data_type,
        "data": new.data,
        "attachment": attachment,
        "tlp": new.tlp,
        "pap": new.pap,
        "message": new.message,
        "parameters": new.parameters_text,
        "label": new.label,
        "cacheTag": tag,
        "attempts": 0,
        "createdBy": ctx.user_id,
        "createdAt": now,
    }
    admission = scheduling.admission_limits(worker, await scheduling.quotas(svc))
    async with svc.db.write() as conn:
        if admission:
            await _check_rate_limits(conn, worker, admission, now)
        await conn.execute(insert(t.job).values(job))
        recorded = await job_events.record(conn, [job])
    job_events.announce(svc, recorded)
    if svc.job_created is not None:
        svc.job_created(job)
    svc.publish(ctx.user_id, ctx.request_id, "job", job["id"], "Creation", job["organization"], job)
    return job, False


async def _check_rate_limits(
    conn: Any,
    worker: dict[str, Any],
    admission: list[tuple[scheduling.Scope, list[scheduling.Limit], scheduling.Quota | None]],
    now: int,
) -> None:
    """Cortex's rate limit (§4.1 step 7), for each limit of a "reject" worker and each quota covering it:
    429 when the jobs created in the window (any status) have reached it. The row locks serialize
    concurrent submissions on PostgreSQL; SQLite's write lock already does."""
    await scheduling.lock(conn, [q.id for _, _, q in admission if q is not None], [worker["id"]])
    for scope, limits, quota in admission:
        for used in await scheduling.usage(conn, scope, limits, now, started=False):
            if used.used < used.limit.rate:
                continue
            per = f"{used.limit.rate} per {used.limit.unit}"
            if quota is None:
                raise RateLimitExceeded(
                    f"Rate limit of {per} reached for the analyzer {worker['name']}. Job cannot be started"
                )
            whose = f" for the organization {scope.organization}" if scope.organization else ""
            raise RateLimitExceeded(
                f"Quota {quota.name} of {per}{whose} reached for the analyzer {worker['name']}. "
                "Job cannot be started"
            )


async def _cached(svc: Services, tag: str, window_minutes: float) -> dict[str, Any] | None:
    since = now_ms() - int(window_minutes * 60_000)
    statement = (
        select(t.job)
        .where(
            t.job.c.cacheTag == tag, t.job.c.startDate >= since, t.job.c.status.not_in(("Failure", "Deleted"))
        )
        .order_by(t.job.c.createdAt.desc(), t.job.c.id.desc())
        .limit(1)
    )
    async with svc.db.read() as conn:
        return as_dict((await conn.execute(statement)).first())


async def get(svc: Services, ctx: AuthContext, job_id: str) -> dict[str, Any]:
    statement = select(t.job).where(t.job.c.id == job_id, t.job.c.organization == ctx.organization)
    async with svc.db.read() as conn:
        job = as_dict((await conn.execute(statement)).first())
    if job is None:
        raise NotFoundError(f"job {job_id} not found")
    return job


async def report_of(svc: Services, job: dict[str, Any]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    if job["status"] != "Success":
        return None, []
    async with svc.db.read() as conn:
        report = as_dict((await conn.execute(select(t.report).where(t.report.c.job == job["id"]))).first())
        if report is None:
            return None, []
        artifacts = [
            dict(r._mapping)
            for r in await conn.execute(
                select(t.artifact).where(t.artifact.c.report == report["id"]).order_by(t.artifact.c.id)
            )
        ]
    return report, artifacts


async def wait_for_end(svc: Services, ctx: AuthContext, job_id: str, timeout: float | None) -> dict[str, Any]:
    """The job once it has ended, or as it is when `timeout` seconds have passed (None: no limit)."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    while True:
        waiter = svc.events.job_waiter(job_id)
        try:
            # registered before reading, so an end between the read and the wait is not missed
            job = await get(svc, ctx, job_id)
            remaining = None if deadline is None else deadline - loop.time()
            if job["status"] in FINISHED or (remaining is not None and remaining <= 0):
                return job
            wait = WAIT_RECHECK_SECONDS if remaining is None else min(remaining, WAIT_RECHECK_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(waiter), wait)
        finally:
            svc.events.forget_waiter(job_id, waiter)


async def search(
    svc: Services, ctx: AuthContext, query: Any, range_: str | None, sort: list[str] | None
) -> tuple[list[dict[str, Any]], int]:
    scope = and_(t.job.c.organization == ctx.organization, t.job.c.status != "Deleted")
    async with svc.db.read() as conn:
        return await store_search(conn, JOB, query, range_, sort, scope)


async def list_filtered(
    svc: Services,
    ctx: AuthContext,
    data_type: str | None,
    data: str | None,
    analyzer: str | None,
    range_: str | None,
) -> tuple[list[dict[str, Any]], int]:
    """`GET /api/job`: Cortex's filter parameters, substring matches, Deleted jobs included."""
    filters: list[dict[str, Any]] = []
    if data_type:
        filters.append({"_like": {"_field": "dataType", "_value": data_type}})
    if data:
        filters.append({"_like": {"_field": "data", "_value": data}})
    if analyzer:
        filters.append({"_or": [{"_like": {"_field": field, "_value": analyzer}}
                                for field in ("workerId", "workerName")]})  # fmt: skip
    async with svc.db.read() as conn:
        return await store_search(
            conn, JOB, {"_and": filters}, range_, None, t.job.c.organization == ctx.organization
        )


async def delete(svc: Services, ctx: AuthContext, job_id: str) -> None:
    job = await get(svc, ctx, job_id)
    now = now_ms()
    async with svc.db.write() as conn:
        await conn.execute(
            update(t.job)
            .where(t.job.c.id == job_id)
            .values(status="Deleted", updatedBy=ctx.user_id, updatedAt=now)  # fmt: skip
        )
        deleted = [] if job["status"] == "Deleted" else [job | {"status": "Deleted", "updatedAt": now}]
        recorded = await job_events.record(conn, deleted)
    job_events.announce(svc, recorded)
    svc.events.job_ended(job_id)
    svc.publish(ctx.user_id, ctx.request_id, "job", job_id, "Update", job["organization"], job | {"status": "Deleted"},
                {"status": "Deleted"})  # fmt: skip


async def statuses(svc: Services, ctx: AuthContext, job_ids: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    if job_ids:
        statement = select(t.job.c.id, t.job.c.status).where(
            t.job.c.id.in_(job_ids), t.job.c.organization == ctx.organization
        )
        async with svc.db.read() as conn:
            found = {job_id: status for job_id, status in await conn.execute(statement)}
    return {job_id: found.get(job_id, "NotFound") for job_id in job_ids}


async def artifacts(
    svc: Services, ctx: AuthContext, job_id: str, query: Any, range_: str | None, sort: list[str] | None
) -> tuple[list[dict[str, Any]], int]:
    """A job's artifacts; a foreign or unknown job gives an empty list, as in Cortex."""
    owned = select(t.job.c.id).where(t.job.c.id == job_id, t.job.c.organization == ctx.organization)
    scope = and_(t.artifact.c.job == job_id, t.artifact.c.job.in_(owned))
    async with svc.db.read() as conn:
        return await store_search(conn, ARTIFACT, query, range_, sort or ["+id"], scope)
