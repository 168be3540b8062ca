"""`neurocortex worker`: a Celery worker that runs the jobs `serve` nodes send to the broker.

One process holds one asyncio event loop, in a thread of its own, where the jobs run exactly as in the
embedded dispatcher (same executor and runners, no thread per running job in the loop). Celery's
thread pool only waits: each of its threads hands one message to the loop and blocks until that job
has ended, then the message is acknowledged (acks-late). The pool's size is the node's capacity,
recorded in the database so that the dispatchers send no more than the node can start.

Taking a job: the message carries the job id and its claim token. The worker takes the job only while
its claim still carries that token, and writes its own name in front of it: a stale message (the job
was recovered and claimed again, or deleted, or has ended) is acknowledged and dropped; a message given
back by the broker because its first worker died is taken over by the next worker. A worker whose job
was taken over cannot write its result any more (services/results.py checks the lease owner).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from sqlalchemy import select, update

from neurocortex import metrics
from neurocortex.execution.broker import RUN_JOB, celery_app
from neurocortex.execution.dispatcher import INTERRUPTED_TWICE, MAX_ATTEMPTS, remove_abandoned_folders
from neurocortex.execution.executor import Executor
from neurocortex.ids import now_ms
from neurocortex.services import cluster, results
from neurocortex.services.base import Services
from neurocortex.settings import Settings
from neurocortex.store import tables as t

log = logging.getLogger(__name__)

T = TypeVar("T")
NODE_PREFIX = "worker-"
"""Worker nodes' names, and so the lease owners of the jobs they took, start with this."""


class WorkerNode:
    def __init__(self, svc: Services, executor: Executor, capacity: int) -> None:
        self.svc = svc
        self.executor = executor
        self.capacity = capacity
        self.hostname = socket.gethostname()
        self.id = f"{NODE_PREFIX}{self.hostname}-{os.getpid()}-{secrets.token_hex(3)}"
        self.lease_ms = cluster.lease_ms(svc)
        self.heartbeat_seconds = min(20.0, svc.settings.job_lease / 3)
        self.running: dict[str, str] = {}  # job id → lease owner
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await remove_abandoned_folders(self.svc, ())
        await cluster.register_node(self.svc, self.id, self.hostname, self.capacity)
        self._tasks.append(asyncio.create_task(self._heartbeat_loop(), name="worker-heartbeat"))
        log.info("worker node %s ready: %d jobs at once", self.id, self.capacity)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await cluster.unregister_node(self.svc, self.id)

    async def run(self, job_id: str, token: str) -> None:
        job = await self._take(job_id, token)
        if job is None:
            log.info("job %s: message of an old claim, ignored", job_id)
            return
        self.running[job_id] = job["lease_owner"]
        try:
            await self.executor.execute(job)
        finally:
            del self.running[job_id]

    async def _take(self, job_id: str, token: str) -> dict[str, Any] | None:
        async with self.svc.db.write() as conn:
            found = await conn.execute(
                select(t.job).where(
                    t.job.c.id == job_id,
                    t.job.c.status == "InProgress",
                    t.job.c.lease_owner.endswith(f"/{token}"),
                )
            )
            job = found.first()
            if job is None:
                return None
            job = dict(job._mapping)
            # a message given back by the broker: the worker that took it before stopped mid-job
            taken_over = job["lease_owner"].startswith(NODE_PREFIX)
            if not (taken_over and job["attempts"] >= MAX_ATTEMPTS):
                rows = await conn.execute(
                    update(t.job)
                    .where(t.job.c.id == job_id, t.job.c.lease_owner == job["lease_owner"])
                    .values(
                        lease_owner=f"{self.id}/{token}",
                        lease_until=now_ms() + self.lease_ms,
                        attempts=t.job.c.attempts + (1 if taken_over else 0),
                    )
                    .returning(*t.job.c)
                )
                row = rows.first()
                return None if row is None else dict(row._mapping)
        # the same job stopped its workers twice (a crash it causes, or bad luck): never a third time
        await results.fail(self.svc, job, INTERRUPTED_TWICE)
        return None

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
                                t.job.c.lease_owner.in_(list(self.running.values())),
                                t.job.c.status == "InProgress",
                            )  # fmt: skip
                            .values(lease_until=now_ms() + self.lease_ms)
                        )
                await cluster.node_seen(self.svc, self.id, len(self.running))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("worker node: heartbeat failed")


class LoopThread:
    """An asyncio event loop running in a thread, for code called from Celery's threads."""

    def __init__(self) -> None:
        try:
            import uvloop

            self.loop = uvloop.new_event_loop()
        except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
            self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="neurocortex-loop", daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


async def _start_node(settings: Settings, capacity: int) -> tuple[WorkerNode, Any]:
    from neurocortex.app import build_services

    svc = await build_services(settings)
    listener = await cluster.connect(svc)
    node = WorkerNode(svc, Executor(svc, svc.runners), capacity)
    await node.start()
    return node, listener


async def _stop_node(node: WorkerNode, listener: Any) -> None:
    await node.stop()
    if listener is not None:
        await listener.stop()
    await node.svc.db.close()


def run_worker(settings: Settings, capacity: int, name: str | None = None) -> None:
    """Run a Celery worker until it is told to stop (SIGTERM: finish the running jobs, then stop)."""
    if not settings.distributed:
        raise SystemExit("a worker needs the broker: set NEUROCORTEX_BROKER_URL or --broker-url")
    loop = LoopThread()
    try:
        node, listener = loop.call(_start_node(settings, capacity))
    except RuntimeError as exc:  # a setting that cannot work: said plainly, not as a traceback
        loop.stop()
        raise SystemExit(str(exc)) from None
    if settings.worker_metrics_port:
        metrics.start_worker_exporter(settings.worker_metrics_port)
    app = celery_app(settings)

    @app.task(name=RUN_JOB)
    def run_job(job_id: str, token: str) -> None:
        loop.call(node.run(job_id, token))

    argv = ["worker", "--pool=threads", f"--concurrency={capacity}", f"--loglevel={settings.log_level.upper()}",
            f"--hostname={name or node.id}@%h", f"--queues={settings.broker_queue}",
            "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
    try:
        app.worker_main(argv)
    finally:
        with contextlib.suppress(Exception):
            loop.call(_stop_node(node, listener))
        loop.stop()
