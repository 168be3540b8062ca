"""MISP's module-server protocol at the root, as Cortex serves it: `GET /modules`, `POST /query` (§3.8).

MISP sends its Cortex key as `Authorization: Bearer <key>`; `/modules` needs the role read, `/query` the
role analyze. Query errors are MISP's `{"error": ...}`, which MISP shows to its user.
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from neurocortex.api.auth import requires, services
from neurocortex.api.render import json_response, list_response
from neurocortex.auth.context import AuthContext
from neurocortex.services import misp

router = APIRouter()


@router.get("/modules")
async def modules(request: Request, ctx: AuthContext = Depends(requires("read"))) -> Response:
    found = await misp.module_list(services(request), ctx)
    return list_response(found, len(found))


@router.post("/query")
async def query(request: Request, ctx: AuthContext = Depends(requires("analyze"))) -> Response:
    # MISP sends application/json; the body is read as JSON whatever the declared type
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        return json_response({"error": f"Invalid JSON in request body: {exc}"}, 400)
    answer, status = await misp.query(services(request), ctx, body)
    return json_response(answer, status)
