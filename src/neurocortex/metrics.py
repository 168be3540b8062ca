"""Every Prometheus metric of neurocortex, recorded through the small functions below and nowhere else.

Two kinds of figures:
- events counted where they happen in this process (cache hits, rate-limit rejections, runner errors,
  run times, HTTP latency): counters and histograms of this module's registry;
- the state of the job table (jobs by status, worker and organization; queue depth), which every node
  shares: read from the database by one grouped count when `/metrics` is scraped, cached a few seconds
  so that several scrapers cost one query.

The two live in separate registries. A `neurocortex worker` node (distributed mode) runs jobs, so its
run times and runner errors are counted in its own process: it serves `registry` alone on its own port
(`start_worker_exporter`, NEUROCORTEX_WORKER_METRICS_PORT) for Prometheus to scrape beside the servers,
without job-table gauges that would only repeat the servers'. Several job-running processes on one
machine could instead share prometheus_client's multi-process directory; only this module would change.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select

from neurocortex.store import tables as t

CONTENT_TYPE = CONTENT_TYPE_LATEST
JOB_STATE_TTL = 5.0
# run times go from milliseconds (cached lookups, no-op analyzers) to the 30-minute default timeout
RUN_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
HTTP_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

registry = CollectorRegistry(auto_describe=True)  # what happens in this process
state_registry = CollectorRegistry(auto_describe=True)  # the job table, shared by every node

jobs = Gauge(
    "neurocortex_jobs", "Jobs in the database by status, worker and organization",
    ["status", "worker", "organization"], registry=state_registry,
)  # fmt: skip
queue_depth = Gauge("neurocortex_queue_depth", "Waiting jobs, all workers", registry=state_registry)
queue_oldest = Gauge(
    "neurocortex_queue_oldest_seconds", "Age of the oldest Waiting job (0 when none waits)",
    registry=state_registry,
)  # fmt: skip
run_seconds = Histogram(
    "neurocortex_job_run_seconds", "Time from a job's start to its end, per worker and outcome",
    ["worker", "status"], buckets=RUN_SECONDS, registry=registry,
)  # fmt: skip
wait_seconds = Histogram(
    "neurocortex_job_wait_seconds", "Time a job waited before it started, per worker",
    ["worker"], buckets=RUN_SECONDS, registry=registry,
)  # fmt: skip
cache_hits = Counter(
    "neurocortex_cache_hits",
    "Analyses answered with a recent report (job cache)",
    ["worker"],
    registry=registry,
)
cache_misses = Counter(
    "neurocortex_cache_misses", "Analyses that found no recent report to reuse", ["worker"], registry=registry
)
rate_limit_rejections = Counter(
    "neurocortex_rate_limit_rejections", "Jobs refused with 429 by a rate limit (scope: worker or quota)",
    ["worker", "scope"], registry=registry,
)  # fmt: skip
rate_limit_delays = Counter(
    "neurocortex_rate_limit_delays",
    "Dispatcher rounds in which a worker's Waiting jobs were held back by a full rate window or quota",
    ["worker"], registry=registry,
)  # fmt: skip
runner_errors = Counter(
    "neurocortex_runner_errors", "Jobs the runner could not bring to a worker's own answer",
    ["runner", "reason"], registry=registry,
)  # fmt: skip
http_seconds = Histogram(
    "neurocortex_http_request_seconds", "HTTP request latency by route template, method and status",
    ["method", "route", "status"], buckets=HTTP_SECONDS, registry=registry,
)  # fmt: skip

_job_state_read_at = 0.0


# -- recording ---------------------------------------------------------------------------------------------


def job_started(job: dict[str, Any]) -> None:
    if job.get("startDate") and job.get("createdAt"):
        wait_seconds.labels(job["workerName"]).observe(max(0, job["startDate"] - job["createdAt"]) / 1000)


def job_ended(job: dict[str, Any], status: str, end_ms: int) -> None:
    if job.get("startDate"):
        run_seconds.labels(job["workerName"], status).observe(max(0, end_ms - job["startDate"]) / 1000)


def cache_lookup(worker_name: str, hit: bool) -> None:
    (cache_hits if hit else cache_misses).labels(worker_name).inc()


def rate_limit_rejected(worker_name: str, scope: str) -> None:
    rate_limit_rejections.labels(worker_name, scope).inc()


def rate_limit_delayed(worker_name: str) -> None:
    rate_limit_delays.labels(worker_name).inc()


def runner_error(runner: str | None, reason: str) -> None:
    runner_errors.labels(runner or "none", reason).inc()


HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    # labels from the request stay within known values: a client must not be able to add series
    method = method if method in HTTP_METHODS else "other"
    http_seconds.labels(method, route, str(status)).observe(seconds)


# -- exposition --------------------------------------------------------------------------------------------


async def refresh_job_state(db: Any) -> None:
    """The job table's state into the gauges, at most once per JOB_STATE_TTL seconds."""
    global _job_state_read_at
    if time.monotonic() - _job_state_read_at < JOB_STATE_TTL:
        return
    async with db.read() as conn:
        counts = (
            await conn.execute(
                select(t.job.c.status, t.job.c.workerName, t.job.c.organization, func.count()).group_by(
                    t.job.c.status, t.job.c.workerName, t.job.c.organization
                )
            )
        ).all()
        oldest = (
            await conn.execute(select(func.min(t.job.c.createdAt)).where(t.job.c.status == "Waiting"))
        ).scalar()
    jobs.clear()  # a worker or organization whose jobs were all purged disappears
    waiting = 0
    for status, worker, organization, count in counts:
        jobs.labels(status, worker, organization).set(count)
        waiting += count if status == "Waiting" else 0
    queue_depth.set(waiting)
    queue_oldest.set(max(0.0, time.time() - oldest / 1000) if oldest else 0)
    _job_state_read_at = time.monotonic()


async def exposition(db: Any) -> bytes:
    await refresh_job_state(db)
    return generate_latest(state_registry) + generate_latest(registry)


def start_worker_exporter(port: int, host: str = "0.0.0.0") -> None:
    """This process's counters on http://host:port/metrics, from a thread (for `neurocortex worker`)."""
    start_http_server(port, addr=host, registry=registry)
