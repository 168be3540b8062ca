"""Health for load balancers and probes: alive (the process answers) and ready (it can reach its database)."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import literal, select

from neurocortex.services.base import Services

log = logging.getLogger(__name__)
READY_TIMEOUT = 3.0


async def database_ready(svc: Services) -> bool:
    async def ping() -> None:
        async with svc.db.read() as conn:
            await conn.execute(select(literal(1)))

    try:
        await asyncio.wait_for(ping(), READY_TIMEOUT)
    except Exception as exc:  # whatever the cause, the node must leave the load balancer's pool
        log.warning("readiness: database unreachable: %s", exc)
        return False
    return True
