"""New Analysis: many observables and files at once, their data types guessed and editable, the analyzers
offered for those types, one submission creating every job."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import FormData, UploadFile
from starlette.responses import Response

from neurocortex.errors import CortexError
from neurocortex.fields import Fields, UploadedFile
from neurocortex.services import jobs, workers
from neurocortex.ui.observables import DATA_TYPES, detect, split_lines
from neurocortex.ui.session import Viewer, signed_in
from neurocortex.ui.templating import page

router = APIRouter()


@dataclass
class Observable:
    data: str | None  # None for a file
    data_type: str
    file: UploadFile | None = None

    @property
    def label(self) -> str:
        return (self.file.filename or "file") if self.file else (self.data or "")


@dataclass
class Draft:
    """What the form holds: the observables with their chosen types, the files, the analyzers ticked."""

    text: str
    observables: list[Observable]
    chosen: set[str]
    tlp: int = 2
    pap: int = 2
    message: str = ""

    @property
    def data_types(self) -> set[str]:
        return {o.data_type for o in self.observables}


def _level(form: FormData, name: str) -> int:
    value = str(form.get(name, "2"))
    return int(value) if value in ("0", "1", "2", "3") else 2


def read_draft(form: FormData) -> Draft:
    text = str(form.get("observables", ""))
    # types the analyst already chose for observables still in the text win over the guess
    chosen_types = dict(zip(form.getlist("data"), form.getlist("dataType"), strict=False))
    observables = []
    for line in split_lines(text):
        data_type = str(chosen_types.get(line) or detect(line))
        observables.append(Observable(line, data_type if data_type in DATA_TYPES else "other"))
    for upload in form.getlist("files"):
        if isinstance(upload, UploadFile) and upload.filename:
            observables.append(Observable(None, "file", upload))
    return Draft(
        text=text,
        observables=observables,
        chosen={str(v) for v in form.getlist("analyzer")},
        tlp=_level(form, "tlp"),
        pap=_level(form, "pap"),
        message=str(form.get("message", "")),
    )


async def offered(request: Request, viewer: Viewer, draft: Draft) -> list[dict[str, Any]]:
    """The organization's analyzers accepting at least one of the draft's data types."""
    rows, _ = await workers.search(request.app.state.services, viewer.ctx, "analyzer", {}, "all", ["+name"])
    return [w for w in rows if draft.data_types & set(w["dataTypeList"])]


@router.get("/ui/analyze")
async def new_analysis(request: Request, viewer: Viewer = Depends(signed_in("analyze"))) -> Response:
    q = request.query_params
    text = q.get("data", "")
    draft = Draft(text=text, observables=[], chosen=set())
    if text:
        data_type = q.get("dataType") or detect(text)
        draft.observables = [Observable(text, data_type if data_type in DATA_TYPES else "other")]
    return page(request, "analyze.html", viewer, draft=draft, analyzers=await offered(request, viewer, draft),
                data_types=DATA_TYPES)  # fmt: skip


@router.post("/ui/analyze/rows")
async def rows(request: Request, viewer: Viewer = Depends(signed_in("analyze"))) -> Response:
    """The observables table and the analyzers on offer, redrawn as the analyst types (htmx)."""
    draft = read_draft(await request.form())
    return page(request, "analyze_rows.html", viewer, draft=draft,
                analyzers=await offered(request, viewer, draft), data_types=DATA_TYPES)  # fmt: skip


@router.post("/ui/analyze")
async def submit(request: Request, viewer: Viewer = Depends(signed_in("analyze"))) -> Response:
    svc = request.app.state.services
    draft = read_draft(await request.form())
    analyzers = [w for w in await offered(request, viewer, draft) if w["id"] in draft.chosen]
    created, problems = [], []
    for observable in draft.observables:
        for analyzer in analyzers:
            if observable.data_type not in analyzer["dataTypeList"]:
                continue
            fields = Fields(
                dataType=observable.data_type, tlp=draft.tlp, pap=draft.pap, message=draft.message
            )
            if observable.file is not None:
                upload = observable.file
                fields["attachment"] = UploadedFile(upload.filename or "file",
                                                    upload.content_type or "application/octet-stream",
                                                    upload.file)  # fmt: skip
            else:
                fields["data"] = observable.data
            try:
                job, from_cache = await jobs.create(svc, viewer.ctx, analyzer["id"], fields, False)
                created.append((job, from_cache))
            except CortexError as error:
                problems.append((observable.label, analyzer["name"], error.message))
    if not draft.observables:
        problems.append(("", "", "Paste observables or choose files to analyze."))
    elif not analyzers:
        problems.append(("", "", "Tick at least one analyzer for these observables."))
    status = 200 if created else 400
    return page(request, "analyze_done.html", viewer, created=created, problems=problems, status=status)
