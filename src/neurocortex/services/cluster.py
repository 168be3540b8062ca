"""Nodes sharing one database: events between them, and the `neurocortex worker` nodes that run jobs.

On PostgreSQL every node relays its events through the database (services/events.py, store/notify.py),
whether it is the only node or one of many. Worker nodes (distributed mode) record themselves in the
`node` table with the number of jobs they run at once and renew that record with their heartbeat; the
dispatcher of the `serve` nodes sends the broker no more jobs than the live ones can start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import delete, func, insert, select, update

from neurocortex.ids import now_ms
from neurocortex.services.base import Services
from neurocortex.store import tables as t
from neurocortex.store.notify import Listener, notify

log = logging.getLogger(__name__)

LISTEN_WAIT_SECONDS = 5.0
FORGET_NODES_AFTER_LEASES = 10
"""A node unseen for this many leases is removed from the table (it stopped without saying so)."""


async def connect(svc: Services) -> Listener | None:
    """Relay this node's events through the database when it is one nodes can share (PostgreSQL)."""
    if svc.db.is_sqlite:
        return None

    async def send(payloads: list[str]) -> None:
        async with svc.db.write() as conn:
            await notify(conn, payloads)

    listener = Listener(svc.db.url, svc.events.receive)
    listener.start()
    svc.events.relay_through(send)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(listener.listening.wait(), LISTEN_WAIT_SECONDS)
    if not listener.listening.is_set():
        log.warning("not yet listening for other nodes' events; going on, will keep trying")
    return listener


def lease_ms(svc: Services) -> int:
    return int(svc.settings.job_lease * 1000)


async def register_node(svc: Services, node_id: str, hostname: str, capacity: int) -> None:
    now = now_ms()
    async with svc.db.write() as conn:
        await conn.execute(
            insert(t.node).values(
                id=node_id, hostname=hostname, capacity=capacity, running=0, startedAt=now, seenAt=now
            )
        )


async def node_seen(svc: Services, node_id: str, running: int) -> None:
    """The heartbeat of a worker node; also forgets nodes gone for long."""
    now = now_ms()
    async with svc.db.write() as conn:
        await conn.execute(update(t.node).where(t.node.c.id == node_id).values(seenAt=now, running=running))
        await conn.execute(
            delete(t.node).where(t.node.c.seenAt < now - FORGET_NODES_AFTER_LEASES * lease_ms(svc))
        )


async def unregister_node(svc: Services, node_id: str) -> None:
    async with svc.db.write() as conn:
        await conn.execute(delete(t.node).where(t.node.c.id == node_id))


async def live_capacity(svc: Services) -> tuple[int, int]:
    """(jobs the live worker nodes can run at once, jobs running now), over the whole cluster."""
    async with svc.db.read() as conn:
        capacity = await conn.scalar(
            select(func.coalesce(func.sum(t.node.c.capacity), 0)).where(
                t.node.c.seenAt >= now_ms() - lease_ms(svc)
            )
        )
        running = await conn.scalar(
            select(func.count()).select_from(t.job).where(t.job.c.status == "InProgress")
        )
    return int(capacity), int(running)


async def live_nodes(svc: Services) -> list[dict]:
    async with svc.db.read() as conn:
        rows = await conn.execute(
            select(t.node).where(t.node.c.seenAt >= now_ms() - lease_ms(svc)).order_by(t.node.c.startedAt)
        )
        return [{str(key): value for key, value in row._mapping.items()} for row in rows]
