"""Probes without authentication and without any data: `/api/health/live` (the process serves requests:
restart it if not) and `/api/health/ready` (it reaches its database: send it traffic, 503 if not)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from neurocortex.api.auth import services
from neurocortex.api.render import json_response
from neurocortex.services import health

router = APIRouter()


@router.get("/api/health/live")
async def live() -> Response:
    return json_response({"status": "ok"})


@router.get("/api/health/ready")
async def ready(request: Request) -> Response:
    if await health.database_ready(services(request)):
        return json_response({"status": "ok", "database": "ok"})
    return json_response({"status": "unavailable", "database": "unreachable"}, 503)
