"""The organization's dashboard: jobs over time by status, verdicts, top analyzers and data types, queue.

The counts come from one GROUP BY over an index that holds every column it reads (jobs.daily_counts),
scoped to the viewer's organization and to the last 30 days, the cache hits from their per-day counter.
Each organization's figures are still kept for 30 seconds: the charts are that fresh."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from neurocortex.services import jobs, scheduling
from neurocortex.services.cache import MISSING, TTLCache
from neurocortex.ui.session import Viewer, signed_in
from neurocortex.ui.templating import page

router = APIRouter()
DAYS = 30
DAY_MS = 86_400_000
VERDICT_SAMPLE = 1000
TOP = 10
STATUSES = ("Success", "Failure", "InProgress", "Waiting")
FRESHNESS = 30.0
figures = TTLCache(ttl=FRESHNESS, max_entries=1000)


@router.get("/ui/dashboard")
async def dashboard(request: Request, viewer: Viewer = Depends(signed_in("read"))) -> Response:
    data = figures.get(viewer.ctx.organization)
    if data is MISSING:
        data = await _figures(request, viewer)
        figures.put(viewer.ctx.organization, data)
    return page(request, "dashboard.html", viewer, data=data, days=DAYS, sample=VERDICT_SAMPLE,
                freshness=int(FRESHNESS))  # fmt: skip


def _top(counts: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP]


async def _figures(request: Request, viewer: Viewer) -> dict[str, Any]:
    svc = request.app.state.services
    today = int(time.time() * 1000) // DAY_MS * DAY_MS
    since = today - (DAYS - 1) * DAY_MS
    series = {status: [0] * DAYS for status in STATUSES}
    analyzers: dict[str, int] = {}
    data_types: dict[str, int] = {}
    for day, status, data_type, analyzer, count in await jobs.daily_counts(svc, viewer.ctx, since):
        if status in series and 0 <= day < DAYS:
            series[status][day] += count
        analyzers[analyzer] = analyzers.get(analyzer, 0) + count
        data_types[data_type] = data_types.get(data_type, 0) + count
    created = sum(analyzers.values())
    hits = await jobs.cache_hits(svc, viewer.ctx, since)
    queue = await scheduling.queue_status(svc, viewer.ctx.organization, "analyzer")
    return {
        "computedAt": int(time.time() * 1000),
        "totals": {status: sum(values) for status, values in series.items()},
        "days": [time.strftime("%m-%d", time.gmtime((since + i * DAY_MS) / 1000)) for i in range(DAYS)],
        "series": series,
        "verdicts": await jobs.recent_verdicts(svc, viewer.ctx, VERDICT_SAMPLE),
        "analyzers": _top(analyzers),
        "dataTypes": _top(data_types),
        # submissions answered from the cache among all submissions (the cached ones made no job)
        "cache": {"hits": hits, "jobs": created, "ratio": hits / (hits + created) if hits + created else 0.0},
        "queue": [
            (q["name"], q["waiting"], q["inProgress"])
            for q in queue.values()
            if q["waiting"] or q["inProgress"]
        ],
    }
