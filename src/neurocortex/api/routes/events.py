"""`/api/events`: the caller's organization's job events as server-sent events (services/job_events.py).

Each event is `id:` (its id in the organization's ordered log), `event:` (job.created, job.started,
job.succeeded, job.failed, job.deleted) and `data:` (JSON: id, type, organization, date, job). A client
that reconnects with `Last-Event-ID` (or `?lastEventId=`) first gets every event after that id that is
still kept, then the live ones; without it, only what happens from now on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response, StreamingResponse

from neurocortex.api.auth import requires, services
from neurocortex.auth.context import AuthContext
from neurocortex.errors import BadRequestError
from neurocortex.services import job_events
from neurocortex.services.base import Services

router = APIRouter()
KEEPALIVE_SECONDS = 15.0
RECONNECT_MS = 3000


def _last_event_id(request: Request) -> int | None:
    value = request.headers.get("last-event-id") or request.query_params.get("lastEventId")
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise BadRequestError(f"Invalid Last-Event-ID: {value[:40]}")
    return int(value)


@router.get("/api/events")
async def events(request: Request, ctx: AuthContext = Depends(requires("read"))) -> Response:
    svc = services(request)
    if ctx.organization is None:
        raise BadRequestError("No organization: events are per organization")
    since = _last_event_id(request)
    if since is None:
        since = await job_events.last_id(svc, ctx.organization)
    # a long-lived connection does not keep a session alive
    request.state.refresh_session = None
    return StreamingResponse(
        _stream(svc, ctx.organization, since),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(svc: Services, organization: str, since: int) -> AsyncIterator[bytes]:
    yield f"retry: {RECONNECT_MS}\n: events of {organization} after {since}\n\n".encode()
    async for batch in job_events.follow(svc, organization, since, KEEPALIVE_SECONDS):
        if not batch:
            yield b": keep-alive\n\n"
            continue
        yield b"".join(
            b"id: %d\nevent: %s\ndata: %s\n\n" % (event["id"], event["type"].encode(), orjson.dumps(event))
            for event in batch
        )
