"""The superadmin's view of the system: versions, runners, catalog and its problems, queue depth, and a
catalog refresh."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from neurocortex import CORTEX_API_VERSION, __version__
from neurocortex.services import jobs
from neurocortex.ui.session import Viewer, signed_in
from neurocortex.ui.templating import page

router = APIRouter()
SUPERADMIN = signed_in("superadmin")


@router.get("/ui/admin/status")
async def status(request: Request, viewer: Viewer = Depends(SUPERADMIN)) -> Response:
    svc = request.app.state.services
    runners = [
        (name, runner.available(), getattr(runner, "unavailable_reason", None), name in svc.settings.runners)
        for name, runner in sorted(svc.runners.items())
    ]
    return page(request, "admin_status.html", viewer, versions={"neurocortex": __version__, "Cortex API": CORTEX_API_VERSION},
                runners=runners, catalog=svc.catalog, queue=await jobs.queue_depth(svc),
                running_here=len(request.app.state.dispatcher.running),
                refreshed="refreshed" in request.query_params)  # fmt: skip


@router.post("/ui/admin/status/refresh")
async def refresh(request: Request, _viewer: Viewer = Depends(SUPERADMIN)) -> Response:
    """Reads every catalog source again (new, changed and removed definitions)."""
    await request.app.state.services.rescan()
    return RedirectResponse("/ui/admin/status?refreshed", status_code=303)
