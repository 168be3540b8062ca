"""The audit log: search and export, for orgadmins (their organization) and superadmins (all)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response, StreamingResponse

from neurocortex.api.auth import requires, services
from neurocortex.api.render import list_response
from neurocortex.api.routes.common import fields_of
from neurocortex.auth.context import AuthContext
from neurocortex.services import audit

router = APIRouter()
ADMINS = ("orgadmin", "superadmin")


@router.get("/api/audit")
@router.post("/api/audit/_search")
async def search(request: Request, ctx: AuthContext = Depends(requires(*ADMINS))) -> Response:
    fields = await fields_of(request)
    rows, total = await audit.search(
        services(request),
        ctx,
        fields.get("query", {}),
        fields.get_string("range"),
        fields.get_strings("sort"),
    )
    return list_response([audit.render(r) for r in rows], total)


@router.get("/api/audit/_export")
@router.post("/api/audit/_export")
async def export(request: Request, ctx: AuthContext = Depends(requires(*ADMINS))) -> Response:
    """JSON lines, oldest first: `{"query": ...}` in the body (POST) narrows it down."""
    fields = await fields_of(request)
    lines = audit.export(services(request), ctx, fields.get("query", {}))
    headers = {"Content-Disposition": 'attachment; filename="audit.jsonl"'}
    return StreamingResponse(lines, media_type="application/x-ndjson", headers=headers)
