"""The embedded dispatcher: claims Waiting jobs from the database and runs them in this process.

The job row is the only source of truth. A claim is one conditional UPDATE (`Waiting → InProgress`)
that also takes a lease; a heartbeat renews the leases of the jobs this node runs. A job whose lease
ran out (its node died) is given back once, then failed with a clear message — it never stays
`InProgress` without an executor (Cortex #363). Jobs still `Waiting` at start-up are simply picked up.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from sqlalchemy import and_, select, update

from neurocortex.execution.executor import Executor
from neurocortex.execution.jobdir import JOB_FOLDER_PREFIX, remove_folder
from neurocortex.ids import ID_LENGTH, now_ms
from neurocortex.services import results
from neurocortex.services.base import Services
from neurocortex.store import tables as t

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 20.0
IDLE_POLL_SECONDS = 1.0
MAX_ATTEMPTS = 2


class EmbeddedDispatcher:
    def __init__(self, svc: Services, executor: Executor) -> None:
        self.svc = svc
        self.executor = executor
        self.node = f"node-{secrets.token_hex(6)}"
        self.lease_ms = int(svc.settings.job_lease * 1000)
        # renewed three times per lease; expired leases are looked for at the same pace
        self.heartbeat_seconds = min(HEARTBEAT_SECONDS, svc.settings.job_lease / 3)
        self.limits = {
            "analyzer": svc.settings.analyzer_concurrency,
            "responder": svc.settings.responder_concurrency,
        }
        self.running: dict[str, asyncio.Task[None]] = {}
        self.running_by_type = {"analyzer": 0, "responder": 0}
        self._wakeup = asyncio.Event()
        # the job types that may have Waiting jobs; spares a write transaction per finished job when none do
        self._maybe_waiting = set(self.limits)
        self._tasks: list[asyncio.Task[None]] = []

    def wake(self, job: Any = None) -> None:
        """A job was created (or jobs came back to Waiting): claim it."""
        self._maybe_waiting |= {job["type"]} if job else set(self.limits)
        self._wakeup.set()

    async def start(self) -> None:
        await self.recover_expired()
        await self.remove_abandoned_folders()
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="dispatcher-claims"),
            asyncio.create_task(self._heartbeat_loop(), name="dispatcher-heartbeat"),
        ]

    async def stop(self) -> None:
        interrupted = list(self.running)
        tasks = self._tasks + list(self.running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if interrupted:
            # give our jobs back right away instead of letting their leases run out; not counted as a try
            async with self.svc.db.write() as conn:
                await conn.execute(
                    update(t.job)
                    .where(
                        t.job.c.id.in_(interrupted),
                        t.job.c.status == "InProgress",
                        t.job.c.lease_owner.startswith(f"{self.node}/"),
                    )  # fmt: skip
                    .values(
                        status="Waiting",
                        startDate=None,
                        lease_owner=None,
                        lease_until=None,
                        attempts=t.job.c.attempts - 1,
                    )  # fmt: skip
                )

    async def _claim_loop(self) -> None:
        while True:
            self._wakeup.clear()
            try:
                await self._claim_and_start()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatcher: claiming jobs failed")
            try:
                await asyncio.wait_for(self._wakeup.wait(), IDLE_POLL_SECONDS)
            except TimeoutError:
                # jobs may have been created by another node: look, without taking the write lock
                self._maybe_waiting = await self._types_waiting()

    async def _types_waiting(self) -> set[str]:
        async with self.svc.db.read() as conn:
            found = await conn.execute(select(t.job.c.type).where(t.job.c.status == "Waiting").distinct())
            return set(found.scalars())

    async def _claim_and_start(self) -> None:
        while True:
            free = {kind: self.limits[kind] - self.running_by_type[kind] for kind in self._maybe_waiting}
            free = {kind: count for kind, count in free.items() if count > 0}
            if not free:
                return
            claimed = await self._claim(free)
            for job in claimed:
                self._start(job)
            for kind, count in free.items():
                if sum(1 for job in claimed if job["type"] == kind) < count:
                    self._maybe_waiting.discard(kind)  # everything Waiting of that type was taken

    async def _claim(self, free: dict[str, int]) -> list[dict[str, Any]]:
        """Claim up to `free[type]` Waiting jobs of each type, in one transaction."""
        now = now_ms()
        values = {
            "status": "InProgress",
            "startDate": now,
            # one token per claim: a run whose lease was taken back cannot write its result
            "lease_owner": f"{self.node}/{secrets.token_hex(4)}",
            "lease_until": now + self.lease_ms,
            "attempts": t.job.c.attempts + 1,
        }
        claimed: list[dict[str, Any]] = []
        async with self.svc.db.write() as conn:
            for worker_type, count in free.items():
                oldest = (
                    select(t.job.c.id)
                    .where(t.job.c.status == "Waiting", t.job.c.type == worker_type)
                    .order_by(t.job.c.id)
                    .limit(count)
                )
                rows = await conn.execute(
                    update(t.job)
                    .where(t.job.c.id.in_(oldest.scalar_subquery()), t.job.c.status == "Waiting")
                    .values(values)
                    .returning(*t.job.c)
                )
                claimed += [dict(row._mapping) for row in rows]
        return sorted(claimed, key=lambda job: job["id"])

    def _start(self, job: dict[str, Any]) -> None:
        results.publish_status(self.svc, job, {"status": "InProgress", "startDate": job["startDate"]})
        self.running_by_type[job["type"]] += 1
        task = asyncio.create_task(self.executor.execute(job), name=f"job-{job['id']}")
        self.running[job["id"]] = task

        def done(_task: asyncio.Task[None], job_id: str = job["id"], worker_type: str = job["type"]) -> None:
            self.running.pop(job_id, None)
            self.running_by_type[worker_type] -= 1
            self._wakeup.set()

        task.add_done_callback(done)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                if self.running:
                    async with self.svc.db.write() as conn:
                        await conn.execute(
                            update(t.job)
                            .where(
                                t.job.c.id.in_(list(self.running)),
                                t.job.c.lease_owner.startswith(f"{self.node}/"),
                                t.job.c.status == "InProgress",
                            )  # fmt: skip
                            .values(lease_until=now_ms() + self.lease_ms)
                        )
                await self.recover_expired()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatcher: heartbeat failed")

    async def recover_expired(self) -> None:
        """Jobs whose executor vanished: back to Waiting for one more try, or Failure after that."""
        now = now_ms()
        expired = and_(t.job.c.status == "InProgress", t.job.c.lease_until < now)
        async with self.svc.db.write() as conn:
            retried = await conn.execute(
                update(t.job)
                .where(expired, t.job.c.attempts < MAX_ATTEMPTS)
                .values(status="Waiting", startDate=None, lease_owner=None, lease_until=None)
            )
            failed = await conn.execute(
                update(t.job)
                .where(expired)
                .values(
                    status="Failure",
                    endDate=now,
                    lease_until=None,
                    errorMessage="The job was interrupted twice: the process running it stopped (crash or restart) "
                    "and so did the retry",
                )
                .returning(t.job.c.id)
            )
            failed_ids = failed.scalars().all()
        for job_id in failed_ids:
            self.svc.events.job_ended(job_id)
        if retried.rowcount or failed_ids:
            log.warning(
                "dispatcher: %d interrupted jobs retried, %d failed", retried.rowcount, len(failed_ids)
            )
            self.wake()
            await self.remove_abandoned_folders()

    async def remove_abandoned_folders(self) -> None:
        """Job folders left by a run that was killed (kill -9, power loss): no live lease covers them."""
        root = self.svc.settings.resolved_job_directory
        if not root.is_dir():
            return
        folders = {}
        for folder in root.glob(f"{JOB_FOLDER_PREFIX}*"):
            job_id = folder.name[len(JOB_FOLDER_PREFIX) : len(JOB_FOLDER_PREFIX) + ID_LENGTH]
            if job_id not in self.running:
                folders.setdefault(job_id, []).append(folder)
        if not folders:
            return
        async with self.svc.db.read() as conn:
            live = set(
                (
                    await conn.execute(
                        select(t.job.c.id).where(
                            t.job.c.id.in_(list(folders)),
                            t.job.c.status == "InProgress",
                            t.job.c.lease_until >= now_ms(),
                        )
                    )
                ).scalars()
            )
        for job_id, paths in folders.items():
            if job_id not in live:
                for path in paths:
                    await asyncio.to_thread(remove_folder, path)
