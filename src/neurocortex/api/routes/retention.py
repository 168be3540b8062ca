"""Retention policies and purges, for orgadmins (their organization) and superadmins."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from neurocortex.api.auth import requires, services
from neurocortex.api.render import json_response
from neurocortex.api.routes.common import fields_of
from neurocortex.auth.context import AuthContext
from neurocortex.services import retention

router = APIRouter()
ADMINS = ("orgadmin", "superadmin")


@router.get("/api/retention/{org_id}")
async def get_policy(
    org_id: str, request: Request, ctx: AuthContext = Depends(requires(*ADMINS))
) -> Response:
    return json_response(await retention.get_policy(services(request), ctx, org_id))


@router.put("/api/retention/{org_id}")
async def set_policy(
    org_id: str, request: Request, ctx: AuthContext = Depends(requires(*ADMINS))
) -> Response:
    policy = dict(await fields_of(request))
    return json_response(await retention.set_policy(services(request), ctx, org_id, policy))


@router.post("/api/retention/_purge")
async def purge(request: Request, ctx: AuthContext = Depends(requires(*ADMINS))) -> Response:
    """`{"organization": ..., "policy": {...}}`, both optional: the stored policies of every organization
    (superadmin) or of the caller's, or a one-off policy for one organization."""
    fields = await fields_of(request)
    result = await retention.purge(
        services(request), ctx, fields.get_string("organization"), fields.get("policy")
    )
    return json_response(result.to_json())
