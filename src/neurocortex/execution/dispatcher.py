"""The embedded dispatcher: claims Waiting jobs from the database and runs them in this process.

The job row is the only source of truth. A claim is one conditional UPDATE (`Waiting → InProgress`)
that also takes a lease; a heartbeat renews the leases of the jobs this node runs. A job whose lease
ran out (its node died) is given back once, then failed with a clear message — it never stays
`InProgress` without an executor (Cortex #363). Jobs still `Waiting` at start-up are simply picked up.

Which Waiting jobs a claim takes:

- no more than this node's limits allow: all jobs (`max_running_jobs`), per type (`analyzer_concurrency`,
  `responder_concurrency`) and per runner (`process_concurrency`);
- no more than each worker's cap allows, over all nodes (`maxConcurrency`, or `worker_concurrency`);
- only when every rate window that counts the job's starts has room (services/scheduling.py): the worker's
  own limits under the "queue" policy, and the quotas covering it, overall and for its organization;
- fairly: the organization with the fewest running jobs is served first and organizations take turns, so
  one organization's flood does not starve another's single job; first in, first out within one.

A job that cannot start now is skipped, never blocks the jobs behind it, and is looked at again when a
job ends, when its rate window moves, or at the next poll. The candidates are chosen with reads; the
claim itself is one short write transaction that locks the rows of the limited workers and quotas
(PostgreSQL), counts their budgets again and updates only jobs still Waiting, so that several nodes
claiming at once neither take the same job nor overshoot a limit.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import logging
import secrets
from collections import Counter, deque
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, bindparam, func, select, union_all, update

from neurocortex import metrics
from neurocortex.execution.executor import Executor
from neurocortex.execution.jobdir import JOB_FOLDER_PREFIX, remove_folder
from neurocortex.ids import ID_LENGTH, now_ms
from neurocortex.services import job_events, results, scheduling, workers
from neurocortex.services.base import Services
from neurocortex.services.scheduling import Scope, StartRules
from neurocortex.store import tables as t

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 20.0
IDLE_POLL_SECONDS = 1.0
MAX_ATTEMPTS = 2
INTERRUPTED_TWICE = (
    "The job was interrupted twice: the process running it stopped (crash or restart) and so did the retry"
)
# workers per candidate query (SQLite allows 500 terms in a UNION)
CANDIDATE_QUERY_WORKERS = 100

# The statements of every claim, built once: building one costs more than SQLite takes to run it.
_QUEUE_STATE = (
    select(t.job.c.status, t.job.c.organization, t.job.c.workerId, t.job.c.type, func.count())
    .where(t.job.c.status.in_(("Waiting", "InProgress")))
    .group_by(t.job.c.status, t.job.c.organization, t.job.c.workerId, t.job.c.type)
)
_CLAIM = (
    update(t.job)
    .where(t.job.c.id.in_(bindparam("ids", expanding=True)), t.job.c.status == "Waiting")
    .values(
        status="InProgress",
        startDate=bindparam("now"),
        lease_owner=bindparam("owner"),
        lease_until=bindparam("until"),
        attempts=t.job.c.attempts + 1,
    )
    .returning(*t.job.c)
)


@dataclass
class _Budget:
    """What is left of each limit during one claim. Keys absent from it are unlimited."""

    remaining: dict[Any, int] = field(default_factory=dict)
    # rate windows: the oldest start counted, to know when the window moves
    oldest: dict[Any, int | None] = field(default_factory=dict)

    def room(self, keys: list[Any]) -> int:
        return min((self.remaining[k] for k in keys if k in self.remaining), default=1 << 30)

    def take(self, keys: list[Any], now: int) -> bool:
        if self.room(keys) <= 0:
            return False
        for key in keys:
            if key in self.remaining:
                self.remaining[key] -= 1
                if key in self.oldest and self.oldest[key] is None:
                    self.oldest[key] = now
        return True


@dataclass
class _Waiting:
    worker_id: str
    organization: str
    type: str
    count: int
    rules: StartRules = field(default_factory=lambda: StartRules(None, [], []))
    keys: list[Any] = field(default_factory=list)


@functools.lru_cache(maxsize=CANDIDATE_QUERY_WORKERS)
def _candidates_statement(workers: int) -> Any:
    """For `workers` workers, the oldest Waiting jobs of each (worker id `w<i>`, at most `n<i>` jobs)."""
    columns = (t.job.c.id, t.job.c.organization, t.job.c.workerId, t.job.c.type)
    parts = [
        select(*columns)
        .where(t.job.c.status == "Waiting", t.job.c.workerId == bindparam(f"w{i}"))
        .order_by(t.job.c.id)
        .limit(bindparam(f"n{i}"))
        .subquery()
        for i in range(workers)
    ]
    return union_all(*(select(part) for part in parts)) if workers > 1 else select(parts[0])


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
        self.total_limit = svc.settings.running_jobs_limit
        self.runner_limits = {name: n for name, n in svc.settings.runner_limits.items() if n > 0}
        self.running: dict[str, asyncio.Task[None]] = {}
        self.running_by_type = {"analyzer": 0, "responder": 0}
        self.running_by_runner: Counter[str | None] = Counter()
        self._wakeup = asyncio.Event()
        # the job types that may have Waiting jobs; spares the claim's reads when none do
        self._maybe_waiting = set(self.limits)
        # types woken while a claim was under way: not to be forgotten by that claim
        self._woken: set[str] = set()
        # the runner each worker's jobs use, as seen by the last claim
        self._runner_by_worker: dict[str, str | None] = {}
        # when a rate window that holds back Waiting jobs moves (epoch ms)
        self._window_moves_at: int | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def wake(self, job: Any = None) -> None:
        """A job was created (or jobs came back to Waiting): claim it."""
        types = {job["type"]} if job else set(self.limits)
        self._maybe_waiting |= types
        self._woken |= types
        self._wakeup.set()

    async def start(self) -> None:
        await self.recover_expired()
        await self.remove_abandoned_folders()
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="dispatcher-claims"),
            asyncio.create_task(self._heartbeat_loop(), name="dispatcher-heartbeat"),
        ]
        if self.svc.settings.max_queue_time > 0:
            self._tasks.append(asyncio.create_task(self._queue_time_loop(), name="dispatcher-queue-time"))

    async def stop(self) -> None:
        interrupted = list(self.running)
        tasks = self._tasks + list(self.running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if interrupted:
            await self._give_back(interrupted)

    async def _give_back(self, job_ids: list[str]) -> None:
        """Our claims of these jobs, back to the queue right away instead of letting their leases run out;
        not counted as a try."""
        async with self.svc.db.write() as conn:
            await conn.execute(
                update(t.job)
                .where(
                    t.job.c.id.in_(job_ids),
                    t.job.c.status == "InProgress",
                    t.job.c.lease_owner.startswith(f"{self.node}/"),
                )  # fmt: skip
                .values(
                    status="Waiting",
                    startDate=None,
                    lease_owner=None,
                    lease_until=None,
                    attempts=t.job.c.attempts - 1,
                    updatedAt=now_ms(),  # back in the queue from now on (max_queue_time)
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
            timeout = IDLE_POLL_SECONDS
            if self._window_moves_at is not None:
                timeout = min(timeout, max(0.0, (self._window_moves_at - now_ms()) / 1000))
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except TimeoutError:
                # jobs may have been created by another node: look, without taking the write lock
                self._maybe_waiting = await self._types_waiting()

    async def _types_waiting(self) -> set[str]:
        async with self.svc.db.read() as conn:
            found = await conn.execute(select(t.job.c.type).where(t.job.c.status == "Waiting").distinct())
            return set(found.scalars())

    async def _room(self) -> _Budget:
        """How many more jobs may start now, in all and per type and runner."""
        return self._node_room()

    def _node_room(self) -> _Budget:
        budget = _Budget()
        budget.remaining[("total",)] = self.total_limit - len(self.running)
        for kind, limit in self.limits.items():
            budget.remaining[("type", kind)] = limit - self.running_by_type[kind]
        for runner, limit in self.runner_limits.items():
            budget.remaining[("runner", runner)] = limit - self.running_by_runner[runner]
        return budget

    async def _claim_and_start(self) -> None:
        self._window_moves_at = None
        while True:
            room = await self._room()
            types = [k for k in self._maybe_waiting if room.remaining[("type", k)] > 0]
            if room.remaining[("total",)] <= 0 or not types:
                return
            claimed = await self._claim(types, room)
            if not claimed:
                return
            await self._launch(claimed)

    async def _launch(self, claimed: list[dict[str, Any]]) -> None:
        for job in claimed:
            self._start(job)

    async def _claim(self, types: list[str], room: _Budget) -> list[dict[str, Any]]:
        """Claim what may start now among the Waiting jobs of `types`, fairly between organizations."""
        svc = self.svc
        self._woken = set()
        now = now_ms()
        async with svc.db.read() as conn:
            waiting, running_by_org, running_by_worker = await self._queue_state(conn, types)
            if not waiting:
                self._maybe_waiting -= set(types) - self._woken
                return []
            all_quotas = await scheduling.quotas(svc)
            for entry in waiting.values():
                await self._describe(entry, all_quotas)
            budget = _Budget(dict(room.remaining))
            await self._measure(conn, budget, waiting.values(), running_by_worker, now)
            candidates = await self._candidates(conn, waiting.values(), budget)
        chosen = self._fair_choice(candidates, waiting, budget, running_by_org, now)

        claimed: list[dict[str, Any]] = []
        recorded = 0
        if chosen:
            limited = {job["workerId"] for job in chosen if waiting[job["workerId"]].rules.limited}
            async with svc.db.write() as conn:
                if limited:
                    entries = [waiting[w] for w in limited]
                    await scheduling.lock(
                        conn, [q for e in entries for q in e.rules.quota_ids], [e.worker_id for e in entries]
                    )
                    now = now_ms()
                    fresh = _Budget(dict(room.remaining))
                    await self._measure(conn, fresh, entries, await self._running_of(conn, limited), now)
                    chosen = [job for job in chosen if fresh.take(waiting[job["workerId"]].keys, now)]
                if chosen:
                    rows = await conn.execute(
                        _CLAIM,
                        {
                            "ids": [job["id"] for job in chosen],
                            "now": now,
                            # one token per claim: a run whose lease was taken back cannot write its result
                            "owner": f"{self.node}/{secrets.token_hex(4)}",
                            "until": now + self.lease_ms,
                        },
                    )
                    claimed = sorted((dict(row._mapping) for row in rows), key=lambda job: job["id"])
                    recorded = await job_events.record(conn, claimed)
            job_events.announce(svc, recorded)

        self._after_claim(types, waiting, budget, claimed)
        return claimed

    async def _queue_state(
        self, conn: Any, types: list[str]
    ) -> tuple[dict[str, _Waiting], Counter[str], Counter[str]]:
        """Waiting jobs per worker (of `types`), running jobs per organization and per worker (all nodes)."""
        rows = await conn.execute(_QUEUE_STATE)
        waiting: dict[str, _Waiting] = {}
        by_org: Counter[str] = Counter()
        by_worker: Counter[str] = Counter()
        for status, organization, worker_id, kind, count in rows:
            if status == "InProgress":
                by_org[organization] += count
                by_worker[worker_id] += count
            elif kind in types:
                waiting[worker_id] = _Waiting(worker_id, organization, kind, count)
        return waiting, by_org, by_worker

    async def _describe(self, entry: _Waiting, all_quotas: list[scheduling.Quota]) -> None:
        """The limits a job of this worker consumes from, as budget keys."""
        worker = await workers.by_id(self.svc, entry.worker_id)
        entry.rules = scheduling.start_rules(self.svc, worker, all_quotas)
        keys: list[Any] = [("total",), ("type", entry.type)]
        if worker is not None:
            definition = self.svc.catalog.get(worker["type"], worker["workerDefinitionId"])
            runner = self.executor.runner_for(worker, definition)
            self._runner_by_worker[entry.worker_id] = runner
            if runner in self.runner_limits:
                keys.append(("runner", runner))
        if entry.rules.cap is not None:
            keys.append(("cap", entry.worker_id))
        for scope, limits in entry.rules.windows:
            keys += [("window", scope, i) for i in range(len(limits))]
        entry.keys = keys

    async def _measure(
        self, conn: Any, budget: _Budget, entries: Any, running_by_worker: Counter[str], now: int
    ) -> None:
        """Fill the budget of the workers' caps and rate windows from the database."""
        measured: set[Scope] = set()
        for entry in entries:
            if entry.rules.cap is not None:
                budget.remaining[("cap", entry.worker_id)] = (
                    entry.rules.cap - running_by_worker[entry.worker_id]
                )
            for scope, limits in entry.rules.windows:
                if scope in measured:
                    continue
                measured.add(scope)
                for i, used in enumerate(await scheduling.usage(conn, scope, limits, now)):
                    budget.remaining[("window", scope, i)] = used.limit.rate - used.used
                    budget.oldest[("window", scope, i)] = used.oldest

    async def _running_of(self, conn: Any, worker_ids: set[str]) -> Counter[str]:
        rows = await conn.execute(
            select(t.job.c.workerId, func.count())
            .where(t.job.c.status == "InProgress", t.job.c.workerId.in_(sorted(worker_ids)))
            .group_by(t.job.c.workerId)
        )
        return Counter(dict(rows.all()))

    async def _candidates(self, conn: Any, entries: Any, budget: _Budget) -> list[dict[str, Any]]:
        """The oldest Waiting jobs of each worker that may start some now, as many as it may start: a worker
        held back by its limits is skipped here, so its backlog never hides the jobs behind it."""
        wanted = [(e.worker_id, min(budget.room(e.keys), e.count)) for e in entries]
        wanted = [(worker_id, n) for worker_id, n in wanted if n > 0]
        found: list[dict[str, Any]] = []
        for start in range(0, len(wanted), CANDIDATE_QUERY_WORKERS):
            batch = wanted[start : start + CANDIDATE_QUERY_WORKERS]
            parameters = {}
            for i, (worker_id, n) in enumerate(batch):
                parameters |= {f"w{i}": worker_id, f"n{i}": n}
            rows = await conn.execute(_candidates_statement(len(batch)), parameters)
            found += [dict(row._mapping) for row in rows]
        return found

    def _fair_choice(
        self,
        candidates: list[dict[str, Any]],
        waiting: dict[str, _Waiting],
        budget: _Budget,
        running_by_org: Counter[str],
        now: int,
    ) -> list[dict[str, Any]]:
        """Take turns between organizations, the one with the fewest running jobs first (then the one whose
        oldest job is oldest); within one organization, oldest first."""
        queues: dict[str, deque[dict[str, Any]]] = {}
        for job in sorted(candidates, key=lambda job: job["id"]):
            queues.setdefault(job["organization"], deque()).append(job)
        turns = [(running_by_org[org], queue[0]["id"], org) for org, queue in queues.items()]
        heapq.heapify(turns)
        chosen = []
        while turns and budget.remaining[("total",)] > 0:
            running, _, org = heapq.heappop(turns)
            queue = queues[org]
            job = queue.popleft()
            if budget.take(waiting[job["workerId"]].keys, now):
                chosen.append(job)
                running += 1
            if queue:
                heapq.heappush(turns, (running, queue[0]["id"], org))
        return chosen

    def _after_claim(
        self, types: list[str], waiting: dict[str, _Waiting], budget: _Budget, claimed: list[dict[str, Any]]
    ) -> None:
        """Forget the types with nothing left Waiting; note when a full rate window holding jobs moves."""
        left = Counter({worker_id: entry.count for worker_id, entry in waiting.items()})
        left.subtract(Counter(job["workerId"] for job in claimed))
        types_left = set()
        for worker_id, count in left.items():
            if count <= 0:
                continue
            entry = waiting[worker_id]
            types_left.add(entry.type)
            held = False
            for key in entry.keys:
                if (
                    key[0] == "window"
                    and budget.remaining.get(key, 1) <= 0
                    and budget.oldest.get(key) is not None
                ):
                    held = True
                    _, scope, i = key
                    limits = dict(entry.rules.windows)[scope]
                    moves = budget.oldest[key] + limits[i].window_ms + 1
                    if self._window_moves_at is None or moves < self._window_moves_at:
                        self._window_moves_at = moves
            if held:
                cached = self.svc.workers_cache.get(worker_id)
                metrics.rate_limit_delayed(cached["name"] if isinstance(cached, dict) else worker_id)
        self._maybe_waiting -= set(types) - types_left - self._woken

    def _start(self, job: dict[str, Any]) -> None:
        metrics.job_started(job)
        results.publish_status(self.svc, job, {"status": "InProgress", "startDate": job["startDate"]})
        runner = self._runner_by_worker.get(job["workerId"])
        self.running_by_type[job["type"]] += 1
        self.running_by_runner[runner] += 1
        task = asyncio.create_task(self.executor.execute(job), name=f"job-{job['id']}")
        self.running[job["id"]] = task

        def done(_task: asyncio.Task[None], job_id: str = job["id"], worker_type: str = job["type"]) -> None:
            self.running.pop(job_id, None)
            self.running_by_type[worker_type] -= 1
            self.running_by_runner[runner] -= 1
            self._wakeup.set()

        task.add_done_callback(done)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                await self._renew_leases()
                await self.recover_expired()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatcher: heartbeat failed")

    async def _renew_leases(self) -> None:
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

    async def recover_expired(self) -> None:
        """Jobs whose executor vanished: back to Waiting for one more try, or Failure after that."""
        now = now_ms()
        expired = and_(t.job.c.status == "InProgress", t.job.c.lease_until < now)
        async with self.svc.db.write() as conn:
            retried = await conn.execute(
                update(t.job)
                .where(expired, t.job.c.attempts < MAX_ATTEMPTS)
                .values(status="Waiting", startDate=None, lease_owner=None, lease_until=None, updatedAt=now)
            )
            failed = await conn.execute(
                update(t.job)
                .where(expired)
                .values(
                    status="Failure",
                    endDate=now,
                    lease_until=None,
                    errorMessage=INTERRUPTED_TWICE,
                )
                .returning(*t.job.c)
            )
            failed_jobs = [dict(row._mapping) for row in failed]
            failed_ids = [job["id"] for job in failed_jobs]
            recorded = await job_events.record(conn, failed_jobs)
        job_events.announce(self.svc, recorded)
        for job_id in failed_ids:
            self.svc.events.job_ended(job_id)
        if retried.rowcount or failed_ids:
            log.warning(
                "dispatcher: %d interrupted jobs retried, %d failed", retried.rowcount, len(failed_ids)
            )
            self.wake()
            await self.remove_abandoned_folders()

    async def _queue_time_loop(self) -> None:
        max_queue_time = self.svc.settings.max_queue_time
        interval = min(HEARTBEAT_SECONDS, max(0.25, max_queue_time / 4))
        while True:
            await asyncio.sleep(interval)
            try:
                await self.fail_overdue()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatcher: queue time sweep failed")

    async def fail_overdue(self) -> None:
        """Jobs Waiting for longer than `max_queue_time` (held back by a quota, a cap, a full queue): failed
        with a message that says so, rather than left waiting for ever. Any node may do it. A job given
        back to the queue (its server stopped) waits from then on: only then is a Waiting job updated."""
        max_queue_time = self.svc.settings.max_queue_time
        now = now_ms()
        message = (
            f"The job waited more than {max_queue_time:g} s in the queue without starting "
            "(NEUROCORTEX_MAX_QUEUE_TIME)"
        )
        async with self.svc.db.write() as conn:
            rows = await conn.execute(
                update(t.job)
                .where(
                    t.job.c.status == "Waiting",
                    func.coalesce(t.job.c.updatedAt, t.job.c.createdAt) < now - int(max_queue_time * 1000),
                )
                .values(
                    status="Failure",
                    endDate=now,
                    errorMessage=message,
                    updatedBy=t.job.c.createdBy,
                    updatedAt=now,
                )  # fmt: skip
                .returning(*t.job.c)
            )
            failed = [dict(row._mapping) for row in rows]
            recorded = await job_events.record(conn, failed)
        job_events.announce(self.svc, recorded)
        for job in failed:
            self.svc.events.job_ended(job["id"])
            results.publish_status(self.svc, job, {"status": "Failure", "errorMessage": message})
        if failed:
            log.warning(
                "dispatcher: %d jobs failed after waiting more than %g s", len(failed), max_queue_time
            )

    async def remove_abandoned_folders(self) -> None:
        await remove_abandoned_folders(self.svc, self.running)


async def remove_abandoned_folders(svc: Services, running: Collection[str]) -> None:
    """Job folders left by a run that was killed (kill -9, power loss): no live lease covers them."""
    root = svc.settings.resolved_job_directory
    if not root.is_dir():
        return
    folders = {}
    for folder in root.glob(f"{JOB_FOLDER_PREFIX}*"):
        job_id = folder.name[len(JOB_FOLDER_PREFIX) : len(JOB_FOLDER_PREFIX) + ID_LENGTH]
        if job_id not in running:
            folders.setdefault(job_id, []).append(folder)
    if not folders:
        return
    async with svc.db.read() as conn:
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
