"""Job state changes as durable events: `/api/events` streams and replays them by number, webhooks send them.

An event is written in the transaction that changes the job's state (`record`), without a number yet, so
that writers never wait for each other. Once committed, it is numbered (`number`): in a transaction that
takes the row lock of the one-row `job_event_counter` table, the committed events without a number get
the next numbers, in the order they were written, and their webhook deliveries are queued. Numbering
transactions are serialized by that lock and each one's numbers become visible at once, at its commit;
so, on every node, numbers become visible in increasing order: a reader that has seen number N never
sees a smaller one appear later, and "after N" is exactly what it has not seen. (A database sequence
would not give that: it hands numbers out in insertion order, and 11 may commit before 10.)

Who numbers: the node that wrote the events, right after its commit (`announce`), coalescing the runs;
and every `serve` node now and then (the webhook sender's loop), for events whose writer died first.
Then the event streams and webhook senders of every node are woken (EventBus, over NOTIFY on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from sqlalchemy import bindparam, delete, func, insert, select, update

from neurocortex.ids import new_id, now_ms
from neurocortex.services.base import Services
from neurocortex.store import tables as t

log = logging.getLogger(__name__)

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
NUMBER_BATCH = 1000


def public_job(job: dict[str, Any]) -> dict[str, Any]:
    out = {key: job.get(key) for key in PUBLIC_FIELDS if job.get(key) is not None}
    if job.get("type") == "analyzer" and job.get("data") is not None:
        out["data"] = job["data"]
    return out


async def record(conn: Any, jobs: list[dict[str, Any]]) -> int:
    """Write one event per job, of the type its (new) `status` says, in the transaction that changes the
    jobs; give the count to `announce` once committed."""
    now = now_ms()
    for job in jobs:
        await conn.execute(
            insert(t.job_event).values(
                organization=job["organization"],
                type=EVENT_TYPES[job["status"]],
                job=job["id"],
                data=orjson.dumps(public_job(job)).decode(),
                createdAt=now,
            )
        )
    return len(jobs)


def announce(svc: Services, written: int) -> None:
    """After the commit of `record`'s transaction: number the new events (in the background)."""
    if written:
        if svc.event_numbering is None:
            svc.event_numbering = Numbering(svc)
        svc.event_numbering.poke()


class Numbering:
    """`number` in the background, one run at a time; a poke during a run makes one more run."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.task: asyncio.Task[None] | None = None
        self.again = False

    def poke(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run(), name="job-event-numbering")
        else:
            self.again = True

    async def _run(self) -> None:
        try:
            while True:
                self.again = False
                try:
                    await number(self.svc)
                except Exception as exc:  # the webhook sender's loop numbers them later
                    log.warning("job events not numbered yet: %s", exc)
                if not self.again:
                    return
        finally:
            self.task = None


async def number(svc: Services) -> None:
    """Number the committed events that have no number yet, queue their webhook deliveries, wake the
    streams and senders of every node."""
    e = t.job_event
    while True:
        async with svc.db.write() as conn:
            counter = select(t.job_event_counter.c.last).where(t.job_event_counter.c.id == 1)
            last = (await conn.execute(counter.with_for_update())).scalar_one()
            rows = (
                await conn.execute(
                    select(e.c.id, e.c.organization, e.c.type)
                    .where(e.c.seq.is_(None))
                    .order_by(e.c.id)
                    .limit(NUMBER_BATCH)
                )
            ).all()
            if not rows:
                return
            numbers = [{"row": row.id, "number": last + i} for i, row in enumerate(rows, 1)]
            await conn.execute(
                update(e).where(e.c.id == bindparam("row")).values(seq=bindparam("number")), numbers
            )
            await conn.execute(
                update(t.job_event_counter).where(t.job_event_counter.c.id == 1).values(last=last + len(rows))
            )
            queued = await _queue_deliveries(conn, [(last + i, row) for i, row in enumerate(rows, 1)])
        for organization in sorted({row.organization for row in rows}):
            svc.events.job_event(organization, organization in queued)
        if len(rows) < NUMBER_BATCH:
            return


async def _queue_deliveries(conn: Any, numbered: list[tuple[int, Any]]) -> set[str]:
    """One delivery per event and enabled webhook of its organization that wants its type; the
    organizations that got some."""
    organizations = sorted({row.organization for _, row in numbered})
    hooks = await conn.execute(
        select(t.webhook.c.id, t.webhook.c.organization, t.webhook.c.events).where(
            t.webhook.c.organization.in_(organizations), t.webhook.c.enabled.is_(True)
        )
    )
    hooks_of: dict[str, list[tuple[str, list[str]]]] = {}
    for hook_id, organization, types in hooks:
        hooks_of.setdefault(organization, []).append((hook_id, types or []))
    now = now_ms()
    deliveries = []
    queued = set()
    for event_number, row in numbered:
        for hook_id, types in hooks_of.get(row.organization, []):
            if not types or row.type in types:
                queued.add(row.organization)
                deliveries.append(
                    {
                        "id": new_id(),
                        "webhook": hook_id,
                        "event": event_number,
                        "eventType": row.type,
                        "status": "Pending",
                        "attempts": 0,
                        "nextAttemptAt": now,
                        "createdAt": now,
                    }
                )
    if deliveries:
        await conn.execute(insert(t.webhook_delivery), deliveries)
    return queued


def payload(row: dict[str, Any]) -> dict[str, Any]:
    """What a client receives of an event, on `/api/events` and in a webhook's body."""
    return {
        "id": row["seq"],
        "type": row["type"],
        "organization": row["organization"],
        "date": row["createdAt"],
        "job": orjson.loads(row["data"]),
    }


async def after(svc: Services, organization: str, last_id: int, limit: int = READ_BATCH) -> list[dict]:
    statement = (
        select(t.job_event)
        .where(t.job_event.c.organization == organization, t.job_event.c.seq > last_id)
        .order_by(t.job_event.c.seq)
        .limit(limit)
    )
    async with svc.db.read() as conn:
        return [payload(dict(row._mapping)) for row in await conn.execute(statement)]


async def last_id(svc: Services, organization: str) -> int:
    statement = select(func.max(t.job_event.c.seq)).where(t.job_event.c.organization == organization)
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
        await conn.execute(
            delete(t.job_event).where(t.job_event.c.createdAt < cutoff, t.job_event.c.seq.is_not(None))
        )
