"""Users, passwords and API keys (§3.2)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from neurocortex.api import render
from neurocortex.api.auth import requires, services
from neurocortex.api.render import json_response, list_response, no_content, text_response
from neurocortex.api.routes.common import fields_of
from neurocortex.auth.context import AuthContext
from neurocortex.errors import NotFoundError
from neurocortex.services import users

router = APIRouter()
ADMINS = ("orgadmin", "superadmin")


@router.get("/api/user/current")
async def current(request: Request, ctx: AuthContext = Depends(requires())) -> Response:
    user = await users.get(services(request), ctx.user_id)
    if user is None:
        raise NotFoundError(f"user {ctx.user_id} not found")
    return json_response(render.user(user, with_preferences=True))


async def _search(request: Request, organization: str | None = None) -> Response:
    fields = await fields_of(request)
    rows, total = await users.search(
        services(request), fields.get("query", {}), fields.get_string("range"), fields.get_strings("sort"),
        organization,
    )  # fmt: skip
    return list_response([render.user(r) for r in rows], total)


@router.get("/api/user")
@router.get("/api/user/_search")
@router.post("/api/user/_search")
@router.get("/api/organization/user")
@router.get("/api/organization/user/_search")
@router.post("/api/organization/user/_search")
async def search_all(request: Request, _ctx: AuthContext = Depends(requires("superadmin"))) -> Response:
    return await _search(request)


@router.get("/api/organization/{org_id}/user")
@router.get("/api/organization/{org_id}/user/_search")
@router.post("/api/organization/{org_id}/user/_search")
async def search_org(
    org_id: str, request: Request, ctx: AuthContext = Depends(requires(*ADMINS))
) -> Response:
    if not ctx.is_superadmin and org_id != ctx.organization:
        return list_response([], 0)  # an orgadmin's query is restricted to their own organization
    return await _search(request, org_id)


@router.post("/api/user")
async def create(request: Request, ctx: AuthContext = Depends(requires(*ADMINS))) -> Response:
    user = await users.create(services(request), ctx, await fields_of(request))
    return json_response(render.user(user), 201)


@router.get("/api/user/{user_id}")
async def get(
    user_id: str, request: Request, ctx: AuthContext = Depends(requires("read", "superadmin"))
) -> Response:
    return json_response(render.user(await users.get_visible(services(request), ctx, user_id)))


@router.patch("/api/user/{user_id}")
async def update(user_id: str, request: Request, ctx: AuthContext = Depends(requires())) -> Response:
    user = await users.update_user(services(request), ctx, user_id, dict(await fields_of(request)))
    return json_response(render.user(user))


@router.delete("/api/user/{user_id}")
async def lock(user_id: str, request: Request, ctx: AuthContext = Depends(requires(*ADMINS))) -> Response:
    await users.lock(services(request), ctx, user_id)
    return no_content()


@router.post("/api/user/{user_id}/password/set")
async def set_password(
    user_id: str, request: Request, ctx: AuthContext = Depends(requires(*ADMINS))
) -> Response:
    fields = await fields_of(request)
    await users.set_password(services(request), ctx, user_id, fields.get("password"))
    return no_content()


@router.post("/api/user/{user_id}/password/change")
async def change_password(user_id: str, request: Request, ctx: AuthContext = Depends(requires())) -> Response:
    fields = await fields_of(request)
    await users.change_password(
        services(request), ctx, user_id, fields.get("currentPassword"), fields.get("password")
    )
    return no_content()


@router.get("/api/user/{user_id}/key")
async def get_key(user_id: str, request: Request, ctx: AuthContext = Depends(requires())) -> Response:
    return text_response(await users.get_key(services(request), ctx, user_id))


@router.post("/api/user/{user_id}/key/renew")
async def renew_key(user_id: str, request: Request, ctx: AuthContext = Depends(requires())) -> Response:
    return text_response(await users.renew_key(services(request), ctx, user_id))


@router.post("/api/user/{user_id}/key/set")
async def set_key(user_id: str, request: Request, ctx: AuthContext = Depends(requires(*ADMINS))) -> Response:
    fields = await fields_of(request)
    return text_response(await users.set_key(services(request), ctx, user_id, fields.get("key")))


@router.delete("/api/user/{user_id}/key")
async def remove_key(
    user_id: str, request: Request, ctx: AuthContext = Depends(requires(*ADMINS))
) -> Response:
    await users.remove_key(services(request), ctx, user_id)
    return no_content()
