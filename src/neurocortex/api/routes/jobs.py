"""Jobs: running workers, reports, waiting, artifacts, search, deletion (§3.6, §4)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from neurocortex.api import render
from neurocortex.api.auth import requires, services
from neurocortex.api.durations import parse_duration
from neurocortex.api.render import json_response, list_response, no_content
from neurocortex.api.routes.common import fields_of
from neurocortex.auth.context import AuthContext
from neurocortex.errors import invalid_format, raise_attribute_errors
from neurocortex.services import jobs

router = APIRouter()


async def _run(request: Request, ctx: AuthContext, worker_id: str, responder_route: bool) -> Response:
    job, from_cache = await jobs.create(
        services(request), ctx, worker_id, await fields_of(request), responder_route
    )
    return json_response(render.job(job, from_cache=from_cache))


@router.post("/api/analyzer/{worker_id}/run")
async def run_analyzer(
    worker_id: str, request: Request, ctx: AuthContext = Depends(requires("analyze"))
) -> Response:
    return await _run(request, ctx, worker_id, responder_route=False)


@router.post("/api/responder/{worker_id}/run")
async def run_responder(
    worker_id: str, request: Request, ctx: AuthContext = Depends(requires("analyze"))
) -> Response:
    return await _run(request, ctx, worker_id, responder_route=True)


@router.get("/api/job")
async def list_jobs(request: Request, ctx: AuthContext = Depends(requires("read"))) -> Response:
    q = request.query_params
    rows, total = await jobs.list_filtered(
        services(request),
        ctx,
        q.get("dataTypeFilter"),
        q.get("dataFilter"),
        q.get("analyzerFilter"),
        q.get("range"),
    )
    return list_response([render.job(r) for r in rows], total)


@router.post("/api/job/_search")
async def search(request: Request, ctx: AuthContext = Depends(requires("read"))) -> Response:
    fields = await fields_of(request)
    rows, total = await jobs.search(
        services(request),
        ctx,
        fields.get("query", {}),
        fields.get_string("range"),
        fields.get_strings("sort"),
    )
    return list_response([render.job(r) for r in rows], total)


@router.post("/api/job/status")
async def statuses(request: Request, ctx: AuthContext = Depends(requires("read"))) -> Response:
    fields = await fields_of(request)
    ids = fields.get("jobIds")
    if isinstance(ids, str):
        ids = [ids]
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise_attribute_errors("job", [invalid_format("jobIds", ids, "array of strings")])
    return json_response(await jobs.statuses(services(request), ctx, ids))


@router.get("/api/job/{job_id}")
async def get(job_id: str, request: Request, ctx: AuthContext = Depends(requires("read"))) -> Response:
    return json_response(render.job(await jobs.get(services(request), ctx, job_id)))


@router.delete("/api/job/{job_id}")
async def delete(
    job_id: str, request: Request, ctx: AuthContext = Depends(requires("analyze", "orgadmin"))
) -> Response:
    await jobs.delete(services(request), ctx, job_id)
    return no_content()


async def _with_report(request: Request, job: dict) -> Response:
    report, artifacts = await jobs.report_of(services(request), job)
    return json_response(render.job_with_report(job, report, artifacts))


@router.get("/api/job/{job_id}/report")
async def report(job_id: str, request: Request, ctx: AuthContext = Depends(requires("read"))) -> Response:
    return await _with_report(request, await jobs.get(services(request), ctx, job_id))


@router.get("/api/job/{job_id}/waitreport")
async def wait_report(
    job_id: str, request: Request, ctx: AuthContext = Depends(requires("read"))
) -> Response:
    timeout = parse_duration(request.query_params.get("atMost", "1minute"))
    ended = await jobs.wait_for_report(services(request), ctx, job_id, timeout)
    return json_response(render.job_with_report(ended.job, ended.report, ended.artifacts))


@router.get("/api/job/{job_id}/artifacts")
async def artifacts(job_id: str, request: Request, ctx: AuthContext = Depends(requires("read"))) -> Response:
    fields = await fields_of(request)
    rows, total = await jobs.artifacts(
        services(request),
        ctx,
        job_id,
        fields.get("query", {}),
        fields.get_string("range"),
        fields.get_strings("sort"),
    )
    return list_response([render.artifact(r) for r in rows], total)
