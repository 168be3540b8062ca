"""The superadmin's view of the system: versions, runners, worker nodes online, queue depth, the catalog's
sources (with the proxy and CA bundle their downloads use) and problems, and a catalog refresh."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from neurocortex import CORTEX_API_VERSION, __version__
from neurocortex.services import catalog_refresh, cluster, jobs
from neurocortex.services.catalog_sources import UrlSource, without_credentials
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
    settings = svc.settings
    sources = [
        (kind, source.location, "download" if isinstance(source, UrlSource) else "local")
        for kind, kind_sources in svc.catalog_loader.sources.items()
        for source in kind_sources
    ]
    downloads = {
        "proxy": without_credentials(settings.catalog_proxy) if settings.catalog_proxy else None,
        "cacerts": str(settings.catalog_cacerts) if settings.catalog_cacerts else None,
        "timeout": settings.catalog_download_timeout,
        "interval": settings.catalog_refresh_interval,
    }
    changes = {kind: request.query_params.get(kind) for kind in CHANGES if request.query_params.get(kind)}
    return page(request, "admin_status.html", viewer, versions={"neurocortex": __version__, "Cortex API": CORTEX_API_VERSION},
                runners=runners, catalog=svc.catalog, queue=await jobs.queue_depth(svc),
                running_here=len(request.app.state.dispatcher.running), nodes=await cluster.live_nodes(svc),
                sources=sources, downloads=downloads,
                refreshed="refreshed" in request.query_params, changes=changes)  # fmt: skip


CHANGES = (catalog_refresh.ADDED, catalog_refresh.UPDATED, catalog_refresh.REMOVED, catalog_refresh.FAILED)


@router.post("/ui/admin/status/refresh")
async def refresh(request: Request, _viewer: Viewer = Depends(SUPERADMIN)) -> Response:
    """Reads every catalog source again (new, changed and removed definitions); enabled workers follow
    their definitions, as the scheduled refresh does."""
    result = await catalog_refresh.refresh(request.app.state.services)
    counts = {kind: sum(c.change == kind for c in result.changes) for kind in CHANGES}
    return RedirectResponse(f"/ui/admin/status?refreshed&{urlencode(counts)}", status_code=303)
