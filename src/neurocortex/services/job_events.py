"""Job state changes as durable events: `/api/events` streams and replays them by id, webhooks send them.

An event is written in the transaction that changes the job's state (`record`, its last statement), with
one delivery row for each webhook of the organization that wants it; once committed, `announce` wakes the
event streams and webhook senders of every node (EventBus, over PostgreSQL NOTIFY between nodes).

Ordering. Ids come from the table's autoincrement (a sequence on PostgreSQL). A sequence hands ids out in
insertion order, not in commit order: with two writers at once, 11 could commit before 10, and a client
resuming after 11 would never get 10. So on PostgreSQL `record` first takes a transaction-level advisory
lock per organization: the next writer of that organization draws its id only once the previous one has
committed. Guarantee: within one organization, event ids become visible in increasing order, so a reader
that has seen id N never sees a smaller id appear later, and `id > N` is exactly what it has not seen.
Organizations are not ordered between them, and need not be: every stream is of one organization. The
lock is held from the event's insert to the commit, which `record` being last keeps short. SQLite has a
single writer, which gives the same guarantee.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from sqlalchemy import delete, func, insert, select, text

from neurocortex.ids import new_id, now_ms
from neurocortex.services.base import Services
from neurocortex.store import tables as t

EVENT_TYPES = {
    "Waiting": "job.created",
    "InProgress": "job.started",
    "Success": "job.succeeded",
    "Failure": "job.failed",
    "Deleted": "job.deleted",
}
PUBLIC_FIELDS = (
    "id", "organization", "workerId", "workerName", "workerDefinitionId", "type", "status", "dataType",
    "attachment", "tlp", "pap", "message", "label", "startDate", "endDate", "errorMessage", "createdBy",
    "createdAt", "updatedBy", "updatedAt",
)  # fmt: skip
"""What an event tells of its job: never its `input` (the worker's configuration, with its secrets) nor
its parameters; `data` only for analyzers (a responder's is a whole TheHive case)."""
READ_BATCH = 500


def public_job(job: dict[str, Any]) -> dict[str, Any]:
    out = {key: job.get(key) for key in PUBLIC_FIELDS if job.get(key) is not None}
    if job.get("type") == "analyzer" and job.get("data") is not None:
        out["data"] = job["data"]
    return out


def _lock_key(organization: str) -> int:
    digest = hashlib.blake2b(b"job_event:" + organization.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def record(svc: Services, conn: Any, jobs: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """Write one event per job, of the type its (new) `status` says; call last in the transaction that
    changes the jobs. Returns (organization, event id) pairs, for `announce` once committed."""
    if not jobs:
        return []
    organizations = sorted({job["organization"] for job in jobs})
    if not svc.db.is_sqlite:
        for organization in organizations:  # always in the same order: no two writers wait for each other
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(organization)})
    hooks = await conn.execute(
        select(t.webhook.c.id, t.webhook.c.organization, t.webhook.c.events).where(
            t.webhook.c.organization.in_(organizations), t.webhook.c.enabled.is_(True)
        )
    )
    hooks_of: dict[str, list[tuple[str, list[str]]]] = {}
    for hook_id, organization, types in hooks:
        hooks_of.setdefault(organization, []).append((hook_id, types or []))
    now = now_ms()
    recorded = []
    deliveries = []
    for job in jobs:
        event_type = EVENT_TYPES[job["status"]]
        event_id = (
            await conn.execute(
                insert(t.job_event)
                .values(
                    organization=job["organization"],
                    type=event_type,
                    job=job["id"],
                    data=orjson.dumps(public_job(job)).decode(),
                    createdAt=now,
                )
                .returning(t.job_event.c.id)
            )
        ).scalar_one()
        recorded.append((job["organization"], event_id))
        for hook_id, types in hooks_of.get(job["organization"], []):
            if not types or event_type in types:
                deliveries.append(
                    {
                        "id": new_id(),
                        "webhook": hook_id,
                        "event": event_id,
                        "eventType": event_type,
                        "status": "Pending",
                        "attempts": 0,
                        "nextAttemptAt": now,
                        "createdAt": now,
                    }
                )
    if deliveries:
        await conn.execute(insert(t.webhook_delivery), deliveries)
    return recorded


async def record_now(svc: Services, jobs: list[dict[str, Any]]) -> None:
    """`record` in a transaction of its own, then `announce`: for state changes made elsewhere."""
    async with svc.db.write() as conn:
        recorded = await record(svc, conn, jobs)
    announce(svc, recorded)


def announce(svc: Services, recorded: list[tuple[str, int]]) -> None:
    for organization in sorted({organization for organization, _ in recorded}):
        svc.events.job_event(organization)


def payload(row: dict[str, Any]) -> dict[str, Any]:
    """What a client receives of an event, on `/api/events` and in a webhook's body."""
    return {
        "id": row["id"],
        "type": row["type"],
        "organization": row["organization"],
        "date": row["createdAt"],
        "job": orjson.loads(row["data"]),
    }


async def after(svc: Services, organization: str, last_id: int, limit: int = READ_BATCH) -> list[dict]:
    statement = (
        select(t.job_event)
        .where(t.job_event.c.organization == organization, t.job_event.c.id > last_id)
        .order_by(t.job_event.c.id)
        .limit(limit)
    )
    async with svc.db.read() as conn:
        return [payload(dict(row._mapping)) for row in await conn.execute(statement)]


async def last_id(svc: Services, organization: str) -> int:
    statement = select(func.max(t.job_event.c.id)).where(t.job_event.c.organization == organization)
    async with svc.db.read() as conn:
        return int(await conn.scalar(statement) or 0)


async def follow(svc: Services, organization: str, since: int, idle: float) -> AsyncIterator[list[dict]]:
    """The organization's events after `since`, in order, batch by batch, for as long as the caller reads;
    an empty batch after `idle` seconds without any (a keep-alive). Woken by the EventBus; the read after
    each idle wait also catches an event whose notification was lost. Ends when the server stops."""
    signal = svc.events.job_event_signal(organization)
    try:
        while True:
            signal.clear()  # before the read: an event committed during it sets the signal again
            events = await after(svc, organization, since)
            if events:
                since = events[-1]["id"]
                yield events
                continue
            if svc.events.closing:
                return
            try:
                await asyncio.wait_for(signal.wait(), idle)
            except TimeoutError:
                yield []
    finally:
        svc.events.forget_job_event_signal(organization, signal)


async def purge(svc: Services) -> None:
    """Events and deliveries older than `event_retention` days."""
    cutoff = now_ms() - int(svc.settings.event_retention * 86_400_000)
    async with svc.db.write() as conn:
        await conn.execute(delete(t.webhook_delivery).where(t.webhook_delivery.c.createdAt < cutoff))
        await conn.execute(delete(t.job_event).where(t.job_event.c.createdAt < cutoff))
