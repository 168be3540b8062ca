"""`/metrics` for Prometheus.

Who may scrape: a caller presenting `NEUROCORTEX_METRICS_TOKEN` as a bearer token, a superadmin (API key
or session), or — when no token is set — a client on this machine that did not come through a proxy. The
series name organizations and workers and count their jobs; nothing else about an organization's data
(observables, reports, users) is in them, but even those names are not for anonymous callers elsewhere.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from starlette.responses import Response

from neurocortex import metrics
from neurocortex.api.auth import PROXY_HEADERS, authenticate, is_loopback, services
from neurocortex.errors import AuthorizationError

router = APIRouter()


async def _check_access(request: Request) -> None:
    token = services(request).settings.metrics_token
    presented = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if token and presented and hmac.compare_digest(presented, token):
        return
    if not token and is_loopback(request) and not any(h in request.headers for h in PROXY_HEADERS):
        return
    ctx = await authenticate(request)  # 401 when nobody is logged in
    if ctx.is_init or not ctx.is_superadmin:
        raise AuthorizationError("metrics are for the metrics token or a superadmin")


@router.get("/metrics")
async def scrape(request: Request) -> Response:
    await _check_access(request)
    body = await metrics.exposition(services(request).db)
    return Response(body, media_type=metrics.CONTENT_TYPE)
