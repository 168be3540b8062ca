"""Quotas shared by workers across organizations (beyond Cortex; services/quotas.py), for superadmins."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from neurocortex.api import render
from neurocortex.api.auth import requires, services
from neurocortex.api.render import json_response, list_response, no_content
from neurocortex.api.routes.common import fields_of
from neurocortex.auth.context import AuthContext
from neurocortex.services import quotas

router = APIRouter()


@router.get("/api/quota")
async def list_quotas(request: Request, _ctx: AuthContext = Depends(requires("superadmin"))) -> Response:
    rows = await quotas.list_all(services(request))
    return list_response([render.quota(r) for r in rows], len(rows))


@router.post("/api/quota")
async def create(request: Request, ctx: AuthContext = Depends(requires("superadmin"))) -> Response:
    row = await quotas.create(services(request), ctx, dict(await fields_of(request)))
    return json_response(render.quota(row), 201)


@router.get("/api/quota/{quota_id}")
async def get(
    quota_id: str, request: Request, _ctx: AuthContext = Depends(requires("superadmin"))
) -> Response:
    return json_response(render.quota(await quotas.get(services(request), quota_id)))


@router.patch("/api/quota/{quota_id}")
async def update(
    quota_id: str, request: Request, ctx: AuthContext = Depends(requires("superadmin"))
) -> Response:
    row = await quotas.update_quota(services(request), ctx, quota_id, dict(await fields_of(request)))
    return json_response(render.quota(row))


@router.delete("/api/quota/{quota_id}")
async def remove(
    quota_id: str, request: Request, ctx: AuthContext = Depends(requires("superadmin"))
) -> Response:
    await quotas.remove(services(request), ctx, quota_id)
    return no_content()
