"""The dispatcher of a `serve` node in distributed mode: it claims jobs as the embedded one does — the
same fairness between organizations, caps and quotas, decided against the database — but sends them to
the broker for `neurocortex worker` nodes instead of running them, and no more at once than the live
worker nodes can start (their capacity is in the `node` table). Any number of `serve` nodes may do this
side by side: a claim is atomic, so a job is sent by one of them only.

Leases: a claimed job carries a lease, renewed by the `serve` node that sent it until a worker takes it,
then by that worker. A job whose worker died without the broker noticing (Redis), or whose `serve` node
died before a worker took it, is recovered by the lease sweep like any other and claimed again with a
new token; the old message is then ignored.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import update

from neurocortex.execution.broker import Broker
from neurocortex.execution.dispatcher import EmbeddedDispatcher, _Budget
from neurocortex.execution.executor import Executor
from neurocortex.ids import now_ms
from neurocortex.services import cluster, results
from neurocortex.services.base import Services
from neurocortex.store import tables as t

log = logging.getLogger(__name__)

SEND_AHEAD = 2
"""Jobs sent per unit of live worker capacity: the capacity, and as many waiting in the broker."""


def claim_token(job: dict[str, Any]) -> str:
    """The part of a claim's lease owner (`node/token`) that travels with the job to its worker."""
    return job["lease_owner"].rsplit("/", 1)[1]


class DistributedDispatcher(EmbeddedDispatcher):
    def __init__(self, svc: Services, executor: Executor, broker: Broker) -> None:
        super().__init__(svc, executor)
        self.broker = broker
        # this node runs nothing: the limits are the worker nodes' capacity
        self.runner_limits = {}
        # a job ending on any worker node makes room for another
        svc.events.job_end_listeners.append(lambda _job_id: self._wakeup.set())

    async def stop(self) -> None:
        await super().stop()
        self.broker.close()

    async def _room(self) -> _Budget:
        capacity, running = await cluster.live_capacity(self.svc)
        # twice the capacity: each worker finds its next jobs waiting in the broker when one ends,
        # instead of waiting for the round trip through this node (the lease covers the wait)
        room = SEND_AHEAD * capacity - running
        budget = _Budget()
        budget.remaining[("total",)] = room
        for kind in self.limits:
            budget.remaining[("type", kind)] = room
        return budget

    async def _launch(self, claimed: list[dict[str, Any]]) -> None:
        try:
            await self.broker.send([(job["id"], claim_token(job)) for job in claimed])
        except Exception:
            # not sent: back to the queue now rather than when the leases run out; the claim loop retries
            await self._give_back([job["id"] for job in claimed])
            raise
        for job in claimed:
            results.publish_status(self.svc, job, {"status": "InProgress", "startDate": job["startDate"]})

    async def _renew_leases(self) -> None:
        """The jobs sent but not yet taken by a worker are still ours (a worker renews the ones it took)."""
        async with self.svc.db.write() as conn:
            await conn.execute(
                update(t.job)
                .where(t.job.c.status == "InProgress", t.job.c.lease_owner.startswith(f"{self.node}/"))
                .values(lease_until=now_ms() + self.lease_ms)
            )

    async def remove_abandoned_folders(self) -> None:
        """No job runs on a `serve` node in distributed mode, so none leaves a folder here."""
