"""Jobs: creation (data or file, legacy body, cache, rate limit), reading, reports, waiting, deletion (§4)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import and_, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from neurocortex import metrics
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
from neurocortex.services import attachments, audit, job_events, scheduling, workers
from neurocortex.services.base import Services, as_dict
from neurocortex.services.results import EndedJob
from neurocortex.store import job_text
from neurocortex.store import tables as t
from neurocortex.store.fulltext import jobs_with_report_matching
from neurocortex.store.query import run_stats
from neurocortex.store.search import search as store_search
from neurocortex.store.search_models import ARTIFACT, JOB

FINISHED = ("Success", "Failure", "Deleted")
RUNNING = ("Waiting", "InProgress")
# how often a waiting request re-reads the job, for jobs finished by another node
WAIT_RECHECK_SECONDS = 5.0

# The statements of every job's path, built once: building one costs more than SQLite takes to run it.
_INSERT = insert(t.job)
_GET = select(t.job).where(t.job.c.id == bindparam("job_id"), t.job.c.organization == bindparam("org"))
_REPORT = select(t.report).where(t.report.c.job == bindparam("job_id"))
_ARTIFACTS = select(t.artifact).where(t.artifact.c.report == bindparam("report_id")).order_by(t.artifact.c.id)


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
        cached = await _cached(svc, tag, window, worker.get("configuredAt"))
        metrics.cache_lookup(worker["name"], cached is not None)
        if cached is not None:
            await record_cache_hit(svc, worker["organization"])
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
        await conn.execute(_INSERT, job)
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
            metrics.rate_limit_rejected(worker["name"], "worker" if quota is None else "quota")
            if quota is None:
                raise RateLimitExceeded(
                    f"Rate limit of {per} reached for the analyzer {worker['name']}. Job cannot be started"
                )
            whose = f" for the organization {scope.organization}" if scope.organization else ""
            raise RateLimitExceeded(
                f"Quota {quota.name} of {per}{whose} reached for the analyzer {worker['name']}. "
                "Job cannot be started"
            )


async def _cached(
    svc: Services, tag: str, window_minutes: float, configured_at: int | None
) -> dict[str, Any] | None:
    """The newest report in the window, made with the worker's current configuration."""
    since = max(now_ms() - int(window_minutes * 60_000), configured_at or 0)
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
    async with svc.db.read() as conn:
        job = as_dict((await conn.execute(_GET, {"job_id": job_id, "org": ctx.organization})).first())
    if job is None:
        raise NotFoundError(f"job {job_id} not found")
    return job


async def report_of(svc: Services, job: dict[str, Any]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    if job["status"] != "Success":
        return None, []
    async with svc.db.read() as conn:
        report = as_dict((await conn.execute(_REPORT, {"job_id": job["id"]})).first())
        if report is None:
            return None, []
        artifacts = [dict(r._mapping) for r in await conn.execute(_ARTIFACTS, {"report_id": report["id"]})]
    return report, artifacts


async def wait_for_report(svc: Services, ctx: AuthContext, job_id: str, timeout: float | None) -> EndedJob:
    """The job with its report once it has ended, or as it is (no report) when `timeout` seconds have passed
    (None: no limit)."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    while True:
        waiter = svc.events.job_waiter(job_id)
        try:
            # registered before reading, so an end between the read and the wait is not missed
            job = await get(svc, ctx, job_id)
            remaining = None if deadline is None else deadline - loop.time()
            if job["status"] in FINISHED:
                return EndedJob(job, *await report_of(svc, job))
            if remaining is not None and remaining <= 0:
                return EndedJob(job, None, [])
            wait = WAIT_RECHECK_SECONDS if remaining is None else min(remaining, WAIT_RECHECK_SECONDS)
            with contextlib.suppress(TimeoutError):
                final = await asyncio.wait_for(asyncio.shield(waiter), wait)
                # ended by this process: as it committed it, no need to read it back (the job was read
                # above in the caller's organization, so it is the caller's)
                if isinstance(final, EndedJob):
                    return final
        finally:
            svc.events.forget_waiter(job_id, waiter)


async def search(
    svc: Services,
    ctx: AuthContext,
    query: Any,
    range_: str | None,
    sort: list[str] | None,
    count_limit: int | None = None,
    text: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """The organization's jobs matching the DSL `query` and, when given, containing `text` in their data or
    file name (through the trigram index: store/job_text.py)."""
    scope = and_(t.job.c.organization == ctx.organization, t.job.c.status != "Deleted")
    if text:
        scope = and_(scope, job_text.matches("sqlite" if svc.db.is_sqlite else "postgresql", text))
    async with svc.db.read() as conn:
        return await store_search(conn, JOB, query, range_, sort, scope, count_limit)


async def search_reports(
    svc: Services, ctx: AuthContext, text: str, query: Any, range_: str | None, sort: list[str] | None
) -> tuple[list[dict[str, Any]], int]:
    """Jobs whose report body holds every word of `text`, narrowed by a search-DSL `query`."""
    scope = and_(
        t.job.c.organization == ctx.organization,
        t.job.c.status != "Deleted",
        jobs_with_report_matching(svc.db.is_sqlite, text),
    )
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
    about = {"workerName": job["workerName"], "dataType": job["dataType"], "status": job["status"]}
    now = now_ms()
    async with svc.db.write() as conn:
        await conn.execute(
            update(t.job)
            .where(t.job.c.id == job_id)
            .values(status="Deleted", updatedBy=ctx.user_id, updatedAt=now)  # fmt: skip
        )
        await audit.write(conn, audit.by(ctx, job["organization"], "job.delete", "job", job_id, about))
        deleted = [] if job["status"] == "Deleted" else [job | {"status": "Deleted", "updatedAt": now}]
        recorded = await job_events.record(conn, deleted)
    job_events.announce(svc, recorded)
    svc.events.job_ended(job_id)
    svc.publish(ctx.user_id, ctx.request_id, "job", job_id, "Update", job["organization"], job | {"status": "Deleted"},
                {"status": "Deleted"})  # fmt: skip


async def stats(svc: Services, ctx: AuthContext, query: Any, aggregations: Any) -> dict[str, Any]:
    """`_stats` aggregations over the organization's jobs (Deleted ones left out)."""
    scope = and_(t.job.c.organization == ctx.organization, t.job.c.status != "Deleted")
    async with svc.db.read() as conn:
        return await run_stats(conn, JOB, query, aggregations, where=scope)


LEVELS = ("info", "safe", "suspicious", "malicious")


async def recent_verdicts(svc: Services, ctx: AuthContext, limit: int) -> dict[str, int]:
    """How many of the organization's latest `limit` reports end on each taxonomy level (a report counts
    once, at its most severe level); reports without taxonomies count as "none"."""
    statement = (
        select(t.report.c.summary)
        .join(t.job, t.job.c.id == t.report.c.job)
        .where(t.job.c.organization == ctx.organization, t.job.c.status == "Success")
        .order_by(t.job.c.createdAt.desc())
        .limit(limit)
    )
    counts = dict.fromkeys((*LEVELS, "none"), 0)
    async with svc.db.read() as conn:
        summaries = (await conn.scalars(statement)).all()
    for summary in summaries:
        try:
            taxonomies = orjson.loads(summary).get("taxonomies") or []
        except (orjson.JSONDecodeError, AttributeError):
            taxonomies = []
        levels = [str(x.get("level", "")).lower() for x in taxonomies if isinstance(x, dict)]
        known = [LEVELS.index(level) for level in levels if level in LEVELS]
        counts[LEVELS[max(known)] if known else "none"] += 1
    return counts


async def queue_depth(svc: Services) -> dict[str, int]:
    """Jobs Waiting and InProgress, all organizations together (the superadmin's system page)."""
    statement = (
        select(t.job.c.status, func.count()).where(t.job.c.status.in_(RUNNING)).group_by(t.job.c.status)
    )
    async with svc.db.read() as conn:
        counts = {status: count for status, count in await conn.execute(statement)}
    return {status: counts.get(status, 0) for status in RUNNING}


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


DAY_MS = 86_400_000


async def daily_counts(svc: Services, ctx: AuthContext, since: int) -> list[tuple[int, str, str, str, int]]:
    """(day since `since`, status, data type, analyzer, jobs) for the organization's jobs created since
    `since` (Deleted ones left out): the dashboard's figures in one pass over ix_job_org_created_stats."""
    day = ((t.job.c.createdAt - since) // DAY_MS).label("day")
    columns = (day, t.job.c.status, t.job.c.dataType, t.job.c.workerName)
    statement = (
        select(*columns, func.count())
        .where(
            t.job.c.organization == ctx.organization, t.job.c.createdAt >= since, t.job.c.status != "Deleted"
        )
        .group_by(*columns)
    )
    async with svc.db.read() as conn:
        return [tuple(row) for row in await conn.execute(statement)]


async def record_cache_hit(svc: Services, organization: str) -> None:
    """One more job answered from the cache today: a single upsert."""
    dialect_insert = sqlite_insert if svc.db.is_sqlite else postgresql_insert
    statement = dialect_insert(t.cache_hit).values(
        organization=organization, day=now_ms() // DAY_MS * DAY_MS, hits=1
    )
    statement = statement.on_conflict_do_update(
        index_elements=["organization", "day"], set_={"hits": t.cache_hit.c.hits + 1}
    )
    async with svc.db.write() as conn:
        await conn.execute(statement)


async def cache_hits(svc: Services, ctx: AuthContext, since: int) -> int:
    statement = select(func.coalesce(func.sum(t.cache_hit.c.hits), 0)).where(
        t.cache_hit.c.organization == ctx.organization, t.cache_hit.c.day >= since
    )
    async with svc.db.read() as conn:
        return int(await conn.scalar(statement))


CASE_ARTIFACT = "thehive:case_artifact"


def as_case_artifact(job: dict[str, Any], artifact: dict[str, Any] | None = None) -> dict[str, Any]:
    """A job's observable, or one of its report's artifacts, as the TheHive observable ("case_artifact")
    that responders are given when TheHive runs them on an observable."""
    source = artifact or job
    value: dict[str, Any] = {
        "_type": "case_artifact",
        "_id": source["id"],
        "id": source["id"],
        "dataType": source["dataType"],
        "tlp": job["tlp"],
        "pap": job["pap"],
        "message": (artifact or {}).get("message") or job["message"],
        "tags": list((artifact or {}).get("tags") or []),
        "ioc": False,
        "sighted": False,
        "startDate": source["createdAt"],
        "createdBy": source["createdBy"],
        "createdAt": source["createdAt"],
    }
    attachment = source.get("attachment")
    if attachment:
        value["attachment"] = {
            "id": attachment["id"],
            "name": attachment.get("name"),
            "contentType": attachment.get("contentType"),
            "size": attachment.get("size"),
            "hashes": list(attachment.get("hashes") or []),
        }
    else:
        value["data"] = source["data"]
    return value
