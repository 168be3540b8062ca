"""The Celery side of distributed mode: one task, `run_job(job_id, token)`, on one queue.

`serve` nodes claim jobs (the dispatcher decides what may start: fairness, caps, quotas) and send each
claimed job's id with its claim token; `neurocortex worker` nodes consume them. Delivery is at least
once: the message is acknowledged only when the job has ended (acks-late, prefetch 1), so a worker
killed in the middle leaves it to another worker. The token makes a stale or duplicate message
harmless: the worker takes the job only while its claim still carries that token
(execution/worker_node.py).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from celery import Celery

from neurocortex.settings import Settings

RUN_JOB = "neurocortex.run_job"


def celery_app(settings: Settings) -> Celery:
    app = Celery("neurocortex", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=settings.broker_queue,
        task_acks_late=True,
        # a worker process that dies mid-job: the message goes back to the queue, not acknowledged
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        # Redis hands an unacknowledged message to another worker after this long: longer than any job
        # may run, so that a slow job is not run twice (a dead worker's job is recovered by its lease).
        broker_transport_options={
            "visibility_timeout": int(max(3600, settings.job_timeout * 60 * 2)),
            # Redis: a worker that finished a job asks for the next one only when its pending BRPOP
            # returns; the default of 1 s would idle each slot up to a second between jobs
            "polling_interval": 0.05,
        },
        task_publish_retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
    )
    return app


class Broker:
    """Sends claimed jobs from the event loop without blocking it: Celery's client is synchronous, so
    sends go through one thread of their own, in order."""

    def __init__(self, settings: Settings) -> None:
        self.app = celery_app(settings)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="broker")

    async def send(self, jobs: list[tuple[str, str]]) -> None:
        """Send `(job id, claim token)` pairs; raises if the broker cannot be reached."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self._send, jobs)

    def _send(self, jobs: list[tuple[str, str]]) -> None:
        with self.app.producer_or_acquire() as producer:
            for job_id, token in jobs:
                self.app.send_task(RUN_JOB, args=[job_id, token], producer=producer, retry=True)

    def close(self) -> None:
        self._thread.shutdown(wait=False)
        self.app.close()
