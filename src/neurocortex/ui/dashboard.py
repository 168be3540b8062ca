"""The organization's dashboard: jobs over time by status, verdicts, top analyzers and data types, queue.

Every figure comes from the job `_stats` aggregations (store/query.py) the API serves, scoped to the
viewer's organization and to the last 30 days. Those scans cost a few hundred milliseconds with 100,000
jobs, so each organization's figures are kept for 30 seconds: the charts are that fresh."""

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
STATUSES = ("Success", "Failure", "InProgress", "Waiting")
FRESHNESS = 30.0
figures = TTLCache(ttl=FRESHNESS, max_entries=1000)


def _counts(buckets: dict[str, Any]) -> list[tuple[str, int]]:
    return [(name, value.get("count", 0)) for name, value in buckets.items()]


@router.get("/ui/dashboard")
async def dashboard(request: Request, viewer: Viewer = Depends(signed_in("read"))) -> Response:
    data = figures.get(viewer.ctx.organization)
    if data is MISSING:
        data = await _figures(request, viewer)
        figures.put(viewer.ctx.organization, data)
    return page(request, "dashboard.html", viewer, data=data, days=DAYS, sample=VERDICT_SAMPLE,
                freshness=int(FRESHNESS))  # fmt: skip


async def _figures(request: Request, viewer: Viewer) -> dict[str, Any]:
    svc = request.app.state.services
    today = int(time.time() * 1000) // DAY_MS * DAY_MS
    since = today - (DAYS - 1) * DAY_MS
    recent = {"_gte": {"createdAt": since}}
    count = [{"_agg": "count"}]
    by_status = {"_agg": "field", "_field": "status", "_select": count}
    timeline = await jobs.stats(svc, viewer.ctx, recent, [
        {"_agg": "time", "_fields": ["createdAt"], "_interval": "1d", "_select": [by_status]}])  # fmt: skip
    days = [since + i * DAY_MS for i in range(DAYS)]
    per_day = {int(start): buckets.get("createdAt", {}) for start, buckets in timeline.items()}
    series = {
        status: [per_day.get(day, {}).get(status, {}).get("count", 0) for day in days] for status in STATUSES
    }
    top: dict[str, list[tuple[str, int]]] = {}
    for field in ("workerName", "dataType"):
        buckets = await jobs.stats(svc, viewer.ctx, recent, [
            {"_agg": "field", "_field": field, "_size": 10, "_select": count}])  # fmt: skip
        top[field] = _counts(buckets)
    queue = await scheduling.queue_status(svc, viewer.ctx.organization, "analyzer")
    return {
        "computedAt": int(time.time() * 1000),
        "totals": {status: sum(values) for status, values in series.items()},
        "days": [time.strftime("%m-%d", time.gmtime(day / 1000)) for day in days],
        "series": series,
        "verdicts": await jobs.recent_verdicts(svc, viewer.ctx, VERDICT_SAMPLE),
        "analyzers": top["workerName"],
        "dataTypes": top["dataType"],
        "queue": [
            (q["name"], q["waiting"], q["inProgress"])
            for q in queue.values()
            if q["waiting"] or q["inProgress"]
        ],
    }
