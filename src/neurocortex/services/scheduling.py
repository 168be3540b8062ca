"""Scheduling rules beyond Cortex: concurrency caps, several rate limits per worker, shared quotas.

A worker's rate limits are Cortex's `rate`/`rateUnit` plus any number of `rateLimits` entries. Under the
worker's `rateLimitPolicy`:

- "reject" (the default, Cortex's behaviour): a job is refused with 429 when the jobs *created* in a
  window (any status, Deleted included) have reached a limit;
- "queue": every job is accepted and stays Waiting; the dispatcher *starts* it only when the jobs started
  in each window (`startDate`) leave room.

A quota is a budget shared by every worker of some definitions (by definition id or `baseConfig`) in every
organization, with limits overall and per organization. It limits job starts for every worker it covers,
and also refuses submissions (429, counted on creation like Cortex's limit) to workers whose policy is
"reject". Windows slide: a limit of N per unit allows N jobs in any span of one unit.

The counting is done inside the claim (or submission) transaction, after the rows of the limited workers
and quotas are locked (PostgreSQL; SQLite has one writer), so concurrent nodes never overshoot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, case, func, or_, select

from neurocortex.ids import now_ms
from neurocortex.services.base import Services
from neurocortex.services.cache import MISSING as NOT_CACHED
from neurocortex.store import tables as t

RATE_UNITS = {"Second": 1, "Minute": 60, "Hour": 3600, "Day": 86400, "Month": 2592000}
POLICIES = ("reject", "queue")


@dataclass(frozen=True)
class Limit:
    rate: int
    unit: str

    @property
    def window_ms(self) -> int:
        return RATE_UNITS[self.unit] * 1000

    def to_json(self) -> dict[str, Any]:
        return {"rate": self.rate, "rateUnit": self.unit}


def parse_limits(value: Any) -> list[Limit]:
    """The limits of a stored `rateLimits`/`limits` list (validated when written)."""
    limits = []
    for item in value or []:
        if (
            isinstance(item, dict)
            and item.get("rateUnit") in RATE_UNITS
            and isinstance(item.get("rate"), int)
        ):
            limits.append(Limit(item["rate"], item["rateUnit"]))
    return limits


def worker_limits(worker: dict[str, Any]) -> list[Limit]:
    limits = []
    if worker.get("rate") is not None and worker.get("rateUnit") in RATE_UNITS:
        limits.append(Limit(int(worker["rate"]), worker["rateUnit"]))
    return limits + parse_limits(worker.get("rateLimits"))


def policy(worker: dict[str, Any]) -> str:
    return worker.get("rateLimitPolicy") or "reject"


def worker_cap(svc: Services, worker: dict[str, Any]) -> int | None:
    """Jobs of this worker that may run at once over all nodes; None for no limit."""
    if worker.get("maxConcurrency"):
        return int(worker["maxConcurrency"])
    return svc.settings.worker_concurrency or None


@dataclass(frozen=True)
class Quota:
    id: str
    name: str
    definitions: frozenset[str]
    base_configs: frozenset[str]
    limits: tuple[Limit, ...]
    organization_limits: dict[str, tuple[Limit, ...]] = field(hash=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Quota:
        return cls(
            id=row["id"],
            name=row["name"],
            definitions=frozenset(row["workerDefinitionIds"] or ()),
            base_configs=frozenset(row["baseConfigs"] or ()),
            limits=tuple(parse_limits(row["limits"])),
            organization_limits={
                org: tuple(parse_limits(limits)) for org, limits in (row["organizationLimits"] or {}).items()
            },
        )

    def covers(self, worker: dict[str, Any]) -> bool:
        return (
            worker["workerDefinitionId"] in self.definitions or worker.get("baseConfig") in self.base_configs
        )

    def covered_workers(self) -> Any:
        """The ids of the workers it covers, as a subquery."""
        return select(t.worker.c.id).where(
            or_(
                t.worker.c.workerDefinitionId.in_(sorted(self.definitions)),
                t.worker.c.baseConfig.in_(sorted(self.base_configs)),
            )
        )

    def limits_for(self, organization: str) -> tuple[Limit, ...]:
        return self.organization_limits.get(organization, ())


async def quotas(svc: Services) -> list[Quota]:
    """Every quota (a handful of rows), cached like workers: a change on another node shows within seconds."""
    cached = svc.quotas_cache.get("all")
    if cached is NOT_CACHED:
        async with svc.db.read() as conn:
            rows = await conn.execute(select(t.quota).order_by(t.quota.c.id))
            cached = [Quota.from_row(dict(r._mapping)) for r in rows]
        svc.quotas_cache.put("all", cached)
    return cached


def covering(all_quotas: list[Quota], worker: dict[str, Any]) -> list[Quota]:
    return [q for q in all_quotas if q.covers(worker)]


# -- what a window counts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """The jobs one set of limits counts: one worker's, or a quota's (overall, or one organization's)."""

    worker_id: str | None = None
    quota: Quota | None = field(default=None, compare=False)
    quota_id: str | None = None
    organization: str | None = None

    @classmethod
    def of_worker(cls, worker_id: str) -> Scope:
        return cls(worker_id=worker_id)

    @classmethod
    def of_quota(cls, quota: Quota, organization: str | None = None) -> Scope:
        return cls(quota=quota, quota_id=quota.id, organization=organization)

    def condition(self) -> ColumnElement[bool]:
        if self.worker_id is not None:
            return t.job.c.workerId == self.worker_id
        assert self.quota is not None
        condition = t.job.c.workerId.in_(self.quota.covered_workers())
        if self.organization is not None:
            condition = condition & (t.job.c.organization == self.organization)
        return condition


@dataclass
class Usage:
    limit: Limit
    used: int
    oldest: int | None
    """The earliest date counted in the window: it leaves the window (date ≥ now − window) at
    oldest + window + 1 ms."""

    @property
    def remaining(self) -> int:
        return max(self.limit.rate - self.used, 0)


async def usage(conn: Any, scope: Scope, limits: list[Limit], now: int, started: bool = True) -> list[Usage]:
    """How many jobs of `scope` started (or were created) in the window of each limit, in one query."""
    if not limits:
        return []
    column = t.job.c.startDate if started else t.job.c.createdAt
    columns = []
    for limit in limits:
        inside = column >= now - limit.window_ms
        columns += [func.coalesce(func.sum(case((inside, 1), else_=0)), 0), func.min(case((inside, column)))]
    widest = max(limit.window_ms for limit in limits)
    row = (await conn.execute(select(*columns).where(scope.condition(), column >= now - widest))).one()
    return [Usage(limit, int(row[2 * i]), row[2 * i + 1]) for i, limit in enumerate(limits)]


async def next_slot(conn: Any, scope: Scope, used: Usage, now: int, started: bool = True) -> int | None:
    """When a full window gets room again: once `used − rate + 1` of its jobs have left it."""
    if used.used < used.limit.rate:
        return None
    column = t.job.c.startDate if started else t.job.c.createdAt
    nth = (
        await conn.execute(
            select(column)
            .where(scope.condition(), column >= now - used.limit.window_ms)
            .order_by(column)
            .offset(used.used - used.limit.rate)
            .limit(1)
        )
    ).scalar()
    return None if nth is None else nth + used.limit.window_ms + 1


# -- the limits a job of a worker is subject to ------------------------------------------------------------


@dataclass
class StartRules:
    """What must have room for a job of one worker to start: its cap and the windows counting starts."""

    cap: int | None
    windows: list[tuple[Scope, list[Limit]]]
    quota_ids: list[str]

    @property
    def limited(self) -> bool:
        return self.cap is not None or bool(self.windows)


def start_rules(svc: Services, worker: dict[str, Any] | None, all_quotas: list[Quota]) -> StartRules:
    if worker is None:  # deleted: the job is claimed only to be failed
        return StartRules(None, [], [])
    windows: list[tuple[Scope, list[Limit]]] = []
    if policy(worker) == "queue" and worker_limits(worker):
        windows.append((Scope.of_worker(worker["id"]), worker_limits(worker)))
    quota_ids = []
    for quota in covering(all_quotas, worker):
        quota_ids.append(quota.id)
        if quota.limits:
            windows.append((Scope.of_quota(quota), list(quota.limits)))
        if quota.limits_for(worker["organization"]):
            windows.append(
                (
                    Scope.of_quota(quota, worker["organization"]),
                    list(quota.limits_for(worker["organization"])),
                )
            )
    return StartRules(worker_cap(svc, worker), windows, quota_ids)


def admission_limits(
    worker: dict[str, Any], all_quotas: list[Quota]
) -> list[tuple[Scope, list[Limit], Quota | None]]:
    """The windows checked when a job is submitted to a "reject" worker (created jobs are counted)."""
    if policy(worker) != "reject":
        return []
    found: list[tuple[Scope, list[Limit], Quota | None]] = []
    if worker_limits(worker):
        found.append((Scope.of_worker(worker["id"]), worker_limits(worker), None))
    for quota in covering(all_quotas, worker):
        if quota.limits:
            found.append((Scope.of_quota(quota), list(quota.limits), quota))
        if quota.limits_for(worker["organization"]):
            found.append(
                (
                    Scope.of_quota(quota, worker["organization"]),
                    list(quota.limits_for(worker["organization"])),
                    quota,
                )
            )
    return found


async def lock(conn: Any, quota_ids: list[str], worker_ids: list[str]) -> None:
    """Row locks that serialize the counting of these budgets between nodes, always in the same order
    (quotas, then workers, each by id) so that two transactions never wait for each other in a cycle.
    SQLite ignores FOR UPDATE: its single writer already serializes."""
    if quota_ids:
        await conn.execute(
            select(t.quota.c.id)
            .where(t.quota.c.id.in_(sorted(set(quota_ids))))
            .order_by(t.quota.c.id)
            .with_for_update()
        )
    if worker_ids:
        await conn.execute(
            select(t.worker.c.id)
            .where(t.worker.c.id.in_(sorted(set(worker_ids))))
            .order_by(t.worker.c.id)
            .with_for_update()
        )


# -- what the API shows ------------------------------------------------------------------------------------


async def queue_status(svc: Services, organization: str, worker_type: str) -> dict[str, dict[str, Any]]:
    """For each worker of the organization: Waiting and InProgress jobs, its concurrency cap, and for each
    limit and quota applying to it the jobs counted in the window, what remains and when a slot frees."""
    all_quotas = await quotas(svc)
    now = now_ms()
    out: dict[str, dict[str, Any]] = {}
    async with svc.db.read() as conn:
        rows = await conn.execute(
            select(t.worker)
            .where(t.worker.c.organization == organization, t.worker.c.type == worker_type)
            .order_by(t.worker.c.name)
        )
        found = [dict(r._mapping) for r in rows]
        counts = await conn.execute(
            select(t.job.c.workerId, t.job.c.status, func.count())
            .where(
                t.job.c.status.in_(("Waiting", "InProgress")),
                t.job.c.workerId.in_([w["id"] for w in found]),
            )
            .group_by(t.job.c.workerId, t.job.c.status)
        )
        by_worker: dict[str, dict[str, int]] = {}
        for worker_id, status, count in counts:
            by_worker.setdefault(worker_id, {})[status] = count
        for worker in found:
            started = policy(worker) == "queue"
            limits = []
            windows: list[tuple[Scope, list[Limit], dict[str, Any]]] = []
            if worker_limits(worker):
                windows.append((Scope.of_worker(worker["id"]), worker_limits(worker), {}))
            for quota in covering(all_quotas, worker):
                about = {"quota": quota.id, "quotaName": quota.name}
                if quota.limits:
                    windows.append((Scope.of_quota(quota), list(quota.limits), about))
                if quota.limits_for(organization):
                    windows.append(
                        (
                            Scope.of_quota(quota, organization),
                            list(quota.limits_for(organization)),
                            about | {"organization": organization},
                        )
                    )
            for scope, scope_limits, about in windows:
                # what gates this worker: creations for a "reject" worker (refused beyond), starts otherwise
                counted = started
                for used in await usage(conn, scope, scope_limits, now, started=counted):
                    limits.append(
                        about
                        | used.limit.to_json()
                        | {
                            "counts": "started" if counted else "created",
                            "used": used.used,
                            "remaining": used.remaining,
                            "nextSlotAt": await next_slot(conn, scope, used, now, started=counted),
                        }
                    )
            jobs = by_worker.get(worker["id"], {})
            out[worker["id"]] = {
                "name": worker["name"],
                "waiting": jobs.get("Waiting", 0),
                "inProgress": jobs.get("InProgress", 0),
                "maxConcurrency": worker_cap(svc, worker),
                "rateLimitPolicy": policy(worker),
                "limits": limits,
            }
    return out
