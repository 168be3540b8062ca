"""Jobs history (filters, paging, live status) and the job page (verdict badges, report tree, artifacts,
failure details, re-run, delete)."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from neurocortex.errors import NotFoundError
from neurocortex.fields import Fields, UploadedFile
from neurocortex.services import jobs, workers
from neurocortex.ui.observables import DATA_TYPES
from neurocortex.ui.session import Viewer, signed_in
from neurocortex.ui.templating import page

router = APIRouter()
PAGE_SIZE = 25
# past this many matches the history counts no further ("10000+") and pages no deeper: both would cost a
# scan of the organization's whole history; filters narrow it instead
COUNT_LIMIT = 10_000
MAX_PAGE = COUNT_LIMIT // PAGE_SIZE
STATUSES = ("Waiting", "InProgress", "Success", "Failure")
FILTERS = ("status", "dataType", "analyzer", "q")


def job_query(filters: dict[str, str]) -> dict[str, Any]:
    """The jobs-history filters as the query DSL the API's /api/job/_search takes."""
    conditions: list[dict[str, Any]] = []
    if filters.get("status") in STATUSES:
        conditions.append({"status": filters["status"]})
    if filters.get("dataType"):
        conditions.append({"dataType": filters["dataType"]})
    if filters.get("analyzer"):
        conditions.append({"workerId": filters["analyzer"]})
    return {"_and": conditions}  # the text ("q") goes through the trigram index: jobs.search(text=...)


def _parsed(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


@router.get("/ui/jobs")
async def history(request: Request, viewer: Viewer = Depends(signed_in("read"))) -> Response:
    svc = request.app.state.services
    q = request.query_params
    filters = {name: q.get(name, "").strip() for name in FILTERS}
    try:
        number = min(MAX_PAGE, max(1, int(q.get("page", "1"))))
    except ValueError:
        number = 1
    start = (number - 1) * PAGE_SIZE
    rows, total = await jobs.search(
        svc,
        viewer.ctx,
        job_query(filters),
        f"{start}-{start + PAGE_SIZE}",
        ["-createdAt"],
        COUNT_LIMIT,
        text=filters["q"],
    )
    analyzers, _ = await workers.search(svc, viewer.ctx, "analyzer", {}, "all", ["+name"])
    pages = max(1, math.ceil(total / PAGE_SIZE))
    kept = {k: v for k, v in filters.items() if v}

    def link(to: int) -> str:
        return "/ui/jobs?" + urlencode(kept | {"page": to})

    return page(request, "jobs.html", viewer, jobs=rows, total=total, capped=total >= COUNT_LIMIT, filters=filters, number=number,
                pages=pages, link=link, analyzers=analyzers, statuses=STATUSES, data_types=DATA_TYPES,
                running=any(j["status"] in jobs.RUNNING for j in rows),
                self_url=str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""))  # fmt: skip


@router.get("/ui/jobs/{job_id}")
async def job_page(job_id: str, request: Request, viewer: Viewer = Depends(signed_in("read"))) -> Response:
    svc = request.app.state.services
    job = await jobs.get(svc, viewer.ctx, job_id)
    if job["status"] == "Deleted":
        raise NotFoundError(f"job {job_id} was deleted")
    report, artifacts = await jobs.report_of(svc, job)
    summary = _parsed(report["summary"]) if report else None
    taxonomies = summary.get("taxonomies", []) if isinstance(summary, dict) else []
    responders = []
    if job["type"] == "analyzer" and viewer.can("analyze"):
        enabled, _ = await workers.search(svc, viewer.ctx, "responder", {}, "all", ["+name"])
        responders = [r for r in enabled if jobs.CASE_ARTIFACT in (r.get("dataTypeList") or [])]
    return page(request, "job.html", viewer, job=job, report=report, responders=responders,
                full=_parsed(report["full"]) if report else None,
                taxonomies=[t for t in taxonomies if isinstance(t, dict)], artifacts=artifacts,
                parameters=_parsed(job["parameters"]) or {},
                failed_input=_parsed(job.get("input")),
                running=job["status"] in jobs.RUNNING)  # fmt: skip


@router.post("/ui/jobs/{job_id}/rerun")
async def rerun(job_id: str, request: Request, viewer: Viewer = Depends(signed_in("analyze"))) -> Response:
    """The same analysis again, bypassing the cache (`force`), as a new job."""
    svc = request.app.state.services
    job = await jobs.get(svc, viewer.ctx, job_id)
    fields = Fields(dataType=job["dataType"], tlp=job["tlp"], pap=job["pap"], message=job["message"],
                    parameters=_parsed(job["parameters"]), force=True)  # fmt: skip
    attachment = job.get("attachment")
    if attachment:
        path = svc.datastore.path(attachment["id"])
        if path is None:
            raise NotFoundError("The file of this job is no longer stored")
        with open(path, "rb") as handle:
            fields["attachment"] = UploadedFile(attachment.get("name") or "file",
                                                attachment.get("contentType") or "application/octet-stream",
                                                handle)  # fmt: skip
            new, _ = await jobs.create(svc, viewer.ctx, job["workerId"], fields, job["type"] == "responder")
    else:
        # a responder's data is kept as JSON text and given back as the value it was
        fields["data"] = _parsed(job["data"]) if job["type"] == "responder" else job["data"]
        new, _ = await jobs.create(svc, viewer.ctx, job["workerId"], fields, job["type"] == "responder")
    return RedirectResponse(f"/ui/jobs/{new['id']}", status_code=303)


@router.post("/ui/jobs/{job_id}/delete")
async def delete(
    job_id: str, request: Request, viewer: Viewer = Depends(signed_in("analyze", "orgadmin"))
) -> Response:
    await jobs.delete(request.app.state.services, viewer.ctx, job_id)
    return RedirectResponse("/ui/jobs?deleted=1", status_code=303)


@router.post("/ui/jobs/{job_id}/respond")
async def respond(job_id: str, request: Request, viewer: Viewer = Depends(signed_in("analyze"))) -> Response:
    """A responder run on the job's observable, or on one of its artifacts, given to it as TheHive gives an
    observable (`thehive:case_artifact`); the page of the responder's job follows."""
    svc = request.app.state.services
    job = await jobs.get(svc, viewer.ctx, job_id)
    form = await request.form()
    target = str(form.get("target", "job"))
    artifact = None
    if target != "job":
        _, artifacts = await jobs.report_of(svc, job)
        artifact = next((a for a in artifacts if a["id"] == target), None)
        if artifact is None:
            raise NotFoundError(f"artifact {target} is not one of this job's")
    fields = Fields(dataType=jobs.CASE_ARTIFACT, data=jobs.as_case_artifact(job, artifact), tlp=job["tlp"],
                    pap=job["pap"], message=str(form.get("message", "")))  # fmt: skip
    new, _ = await jobs.create(svc, viewer.ctx, str(form.get("responder", "")), fields, True)
    return RedirectResponse(f"/ui/jobs/{new['id']}", status_code=303)
