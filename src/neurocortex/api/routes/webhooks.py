"""Webhooks of the caller's organization and their delivery log, for its orgadmins (services/webhooks.py)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from neurocortex.api import render
from neurocortex.api.auth import requires, services
from neurocortex.api.render import json_response, list_response, no_content
from neurocortex.api.routes.common import fields_of
from neurocortex.auth.context import AuthContext
from neurocortex.services import webhooks

router = APIRouter()


@router.get("/api/webhook")
async def list_webhooks(request: Request, ctx: AuthContext = Depends(requires("orgadmin"))) -> Response:
    rows = await webhooks.list_own(services(request), ctx)
    return list_response([render.webhook(r) for r in rows], len(rows))


@router.post("/api/webhook")
async def create(request: Request, ctx: AuthContext = Depends(requires("orgadmin"))) -> Response:
    row = await webhooks.create(services(request), ctx, dict(await fields_of(request)))
    return json_response(render.webhook(row), 201)


@router.get("/api/webhook/{webhook_id}")
async def get(
    webhook_id: str, request: Request, ctx: AuthContext = Depends(requires("orgadmin"))
) -> Response:
    return json_response(render.webhook(await webhooks.get(services(request), ctx, webhook_id)))


@router.patch("/api/webhook/{webhook_id}")
async def update(
    webhook_id: str, request: Request, ctx: AuthContext = Depends(requires("orgadmin"))
) -> Response:
    row = await webhooks.update_webhook(services(request), ctx, webhook_id, dict(await fields_of(request)))
    return json_response(render.webhook(row))


@router.delete("/api/webhook/{webhook_id}")
async def remove(
    webhook_id: str, request: Request, ctx: AuthContext = Depends(requires("orgadmin"))
) -> Response:
    await webhooks.remove(services(request), ctx, webhook_id)
    return no_content()


@router.get("/api/webhook/{webhook_id}/delivery")
async def deliveries(
    webhook_id: str, request: Request, ctx: AuthContext = Depends(requires("orgadmin"))
) -> Response:
    rows, total = await webhooks.deliveries(
        services(request), ctx, webhook_id, request.query_params.get("range")
    )
    return list_response([render.webhook_delivery(r) for r in rows], total)
