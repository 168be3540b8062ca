"""Long-polling change streams (§3.7, §3.11)."""

from __future__ import annotations

import re
import time

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from neurocortex.api.auth import authenticate, requires, services
from neurocortex.api.render import json_response, text_response
from neurocortex.auth.context import AuthContext
from neurocortex.auth.sessions import SESSION_COOKIE, decode_session
from neurocortex.errors import BadRequestError, NotFoundError

router = APIRouter()
STREAM_ID = re.compile(r"^[a-zA-Z0-9]{10}$")


@router.post("/api/stream")
async def create(request: Request, ctx: AuthContext = Depends(requires("read"))) -> Response:
    return text_response(services(request).events.create_stream(None if ctx.is_init else ctx.organization))


def _session_remaining(request: Request) -> float:
    cookie = request.cookies.get(SESSION_COOKIE)
    session = decode_session(services(request).box, cookie) if cookie else None
    return max(0.0, session["expire"] / 1000 - time.time()) if session else 0.0


@router.get("/api/stream/status")
async def status(request: Request) -> Response:
    remaining = _session_remaining(request)
    warning = remaining <= services(request).settings.session_warning
    return json_response({"remaining": int(remaining), "warning": warning})


@router.get("/api/stream/{stream_id}")
async def poll(stream_id: str, request: Request) -> Response:
    if not STREAM_ID.match(stream_id):
        raise BadRequestError("Invalid stream id")
    svc = services(request)
    ctx = await authenticate(request)
    stream = svc.events.stream(stream_id, None if ctx.is_init else ctx.organization)
    if stream is None:
        raise NotFoundError(f"stream {stream_id} not found")
    # a poll does not extend the session; the UI learns that it is about to expire from the 220 status
    request.state.refresh_session = None
    events = await svc.events.poll(stream)
    in_warning = ctx.method == "session" and _session_remaining(request) <= svc.settings.session_warning
    return json_response(events, 220 if in_warning else 200)
