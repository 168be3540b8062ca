"""Named API keys of a user (beyond Cortex): list, create (the key is in the answer, once), revoke."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from neurocortex.api.auth import requires, services
from neurocortex.api.render import json_response, list_response, no_content
from neurocortex.api.routes.common import fields_of
from neurocortex.auth.context import AuthContext
from neurocortex.ids import now_ms
from neurocortex.services import api_keys

router = APIRouter()


def render(row: dict[str, Any]) -> dict[str, Any]:
    if row["revokedAt"] is not None:
        status = "Revoked"
    elif row["expiresAt"] is not None and row["expiresAt"] <= now_ms():
        status = "Expired"
    else:
        status = "Active"
    out = {"id": row["id"], "_id": row["id"], "_type": "apiKey", "status": status}
    out |= {k: row[k] for k in ("user", "name", "prefix", "expiresAt", "revokedAt", "createdAt", "createdBy")}
    return out


@router.get("/api/user/{user_id}/keys")
async def list_keys(user_id: str, request: Request, ctx: AuthContext = Depends(requires())) -> Response:
    rows = await api_keys.list_keys(services(request), ctx, user_id)
    return list_response([render(r) for r in rows], len(rows))


@router.post("/api/user/{user_id}/keys")
async def create_key(user_id: str, request: Request, ctx: AuthContext = Depends(requires())) -> Response:
    row, key = await api_keys.create_key(services(request), ctx, user_id, dict(await fields_of(request)))
    return json_response(render(row) | {"key": key}, 201)


@router.delete("/api/user/{user_id}/keys/{key_id}")
async def revoke_key(
    user_id: str, key_id: str, request: Request, ctx: AuthContext = Depends(requires())
) -> Response:
    await api_keys.revoke_key(services(request), ctx, user_id, key_id)
    return no_content()
