"""Bulk analysis and full-text search over reports."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from neurocortex.api import render
from neurocortex.api.auth import requires, services
from neurocortex.api.render import json_response, list_response
from neurocortex.api.routes.common import fields_of
from neurocortex.auth.context import AuthContext
from neurocortex.services import bulk, jobs

router = APIRouter()


@router.post("/api/job/_bulk")
async def submit(request: Request, ctx: AuthContext = Depends(requires("analyze"))) -> Response:
    """`{"observables": [{"dataType", "data"}...], "analyzers": [id or name...], "tlp", "pap", ...}`: a job
    for each observable and each analyzer (all of the organization's when absent) accepting its data type."""
    return json_response(await bulk.submit(services(request), ctx, await fields_of(request)))


@router.post("/api/job/_fulltext")
async def fulltext(request: Request, ctx: AuthContext = Depends(requires("read"))) -> Response:
    """`{"text": "words", "query": <search DSL>, "range", "sort"}`: jobs whose report holds every word."""
    fields = await fields_of(request)
    rows, total = await jobs.search_reports(
        services(request),
        ctx,
        fields.get_string("text") or "",
        fields.get("query", {}),
        fields.get_string("range"),
        fields.get_strings("sort"),
    )
    return list_response([render.job(r) for r in rows], total)
