"""Organizations (§3.3)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from neurocortex.api import render
from neurocortex.api.auth import requires, services
from neurocortex.api.render import json_response, list_response, no_content
from neurocortex.api.routes.common import fields_of
from neurocortex.auth.context import AuthContext
from neurocortex.errors import missing_attribute, raise_attribute_errors
from neurocortex.services import organizations

router = APIRouter()


@router.get("/api/organization")
@router.get("/api/organization/_search")
@router.post("/api/organization/_search")
async def search(request: Request, _ctx: AuthContext = Depends(requires("superadmin"))) -> Response:
    svc = services(request)
    fields = await fields_of(request)
    rows, total = await organizations.search(
        svc, fields.get("query", {}), fields.get_string("range"), fields.get_strings("sort")
    )
    stats = await organizations.stats(svc, [r["id"] for r in rows]) if fields.get_boolean("nstats") else {}
    return list_response([render.organization(r, stats.get(r["id"])) for r in rows], total)


@router.post("/api/organization/_stats")
async def stats(request: Request, _ctx: AuthContext = Depends(requires("superadmin"))) -> Response:
    fields = await fields_of(request)
    if "stats" not in fields:
        raise_attribute_errors("organization", [missing_attribute("stats")])
    return json_response(
        await organizations.aggregate(services(request), fields.get("query", {}), fields["stats"])
    )


@router.post("/api/organization")
async def create(request: Request, ctx: AuthContext = Depends(requires("superadmin"))) -> Response:
    org = await organizations.create(services(request), ctx, dict(await fields_of(request)))
    return json_response(render.organization(org), 201)


@router.get("/api/organization/{org_id}")
async def get(
    org_id: str, request: Request, ctx: AuthContext = Depends(requires("superadmin", "orgadmin"))
) -> Response:
    svc = services(request)
    org = await organizations.get_visible(svc, ctx, org_id)
    fields = await fields_of(request)
    stats = (await organizations.stats(svc, [org_id]))[org_id] if fields.get_boolean("nstats") else None
    return json_response(render.organization(org, stats))


@router.patch("/api/organization/{org_id}")
async def update(
    org_id: str, request: Request, ctx: AuthContext = Depends(requires("superadmin"))
) -> Response:
    org = await organizations.update_organization(
        services(request), ctx, org_id, dict(await fields_of(request))
    )
    return json_response(render.organization(org))


@router.delete("/api/organization/{org_id}")
async def lock(org_id: str, request: Request, ctx: AuthContext = Depends(requires("superadmin"))) -> Response:
    await organizations.lock(services(request), ctx, org_id)
    return no_content()
