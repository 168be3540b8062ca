"""Observables: one verdict across the organization's recent jobs, and their history."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from neurocortex.api import render
from neurocortex.api.auth import requires, services
from neurocortex.api.render import json_response
from neurocortex.api.routes.common import fields_of
from neurocortex.auth.context import AuthContext
from neurocortex.services import verdicts

router = APIRouter()


@router.post("/api/observable/_verdict")
async def many(request: Request, ctx: AuthContext = Depends(requires("read"))) -> Response:
    """`{"observables": [{"dataType", "data"}...], "days": 30}` → one verdict each, in the same order."""
    fields = await fields_of(request)
    observables = verdicts.read_observables(fields.get("observables"))
    days = verdicts.read_days(fields.get("days"))
    return json_response(await verdicts.verdicts(services(request), ctx, observables, days))


@router.get("/api/observable/{data_type}/{data:path}")
async def one(
    data_type: str, data: str, request: Request, ctx: AuthContext = Depends(requires("read"))
) -> Response:
    """The verdict and the job history (`range`, newest first) of one observable."""
    svc = services(request)
    days = verdicts.read_days(request.query_params.get("days"))
    [verdict] = await verdicts.verdicts(svc, ctx, [(data_type, data)], days)
    jobs, total = await verdicts.history(
        svc, ctx, (data_type, verdict["data"]), request.query_params.get("range")
    )
    return json_response(verdict | {"jobs": [render.job(j) for j in jobs], "jobCount": total})
