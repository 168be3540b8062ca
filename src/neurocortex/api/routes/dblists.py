"""Cortex's generic lists (§3.9)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from neurocortex.api.auth import requires, services
from neurocortex.api.render import json_response, no_content
from neurocortex.api.routes.common import fields_of
from neurocortex.auth.context import AuthContext
from neurocortex.errors import missing_attribute, raise_attribute_errors
from neurocortex.services import dblists

router = APIRouter()


@router.get("/api/list")
async def names(request: Request, _ctx: AuthContext = Depends(requires("read"))) -> Response:
    return json_response(await dblists.names(services(request)))


@router.get("/api/list/{list_name}")
async def items(list_name: str, request: Request, _ctx: AuthContext = Depends(requires("read"))) -> Response:
    return json_response(await dblists.items(services(request), list_name))


@router.post("/api/list/{list_name}/_exists")
async def exists(list_name: str, request: Request, _ctx: AuthContext = Depends(requires("read"))) -> Response:
    fields = await fields_of(request)
    key = fields.get_string("key")
    if key is None or "value" not in fields:
        raise_attribute_errors("dblist", [missing_attribute("key" if key is None else "value")])
    return json_response({"found": await dblists.exists(services(request), list_name, key, fields["value"])})


@router.post("/api/list/{list_name}")
async def add(
    list_name: str, request: Request, ctx: AuthContext = Depends(requires("superadmin"))
) -> Response:
    fields = await fields_of(request)
    if fields.get("value") is None:
        return no_content()
    return json_response(await dblists.add(services(request), ctx, list_name, fields["value"]))


@router.patch("/api/list/{item_id}")
async def replace(
    item_id: str, request: Request, ctx: AuthContext = Depends(requires("superadmin"))
) -> Response:
    fields = await fields_of(request)
    if "value" not in fields:
        raise_attribute_errors("dblist", [missing_attribute("value")])
    return json_response(await dblists.replace(services(request), ctx, item_id, fields["value"]))


@router.delete("/api/list/{item_id}")
async def remove(
    item_id: str, request: Request, _ctx: AuthContext = Depends(requires("superadmin"))
) -> Response:
    await dblists.remove(services(request), item_id)
    return no_content()
