"""The web UI's routes in one router, and its static files: ours from ui/static, the npm packages
(htmx, Chart.js) from the folder `npm ci` filled (settings.ui_assets), by an explicit list."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import FileResponse, RedirectResponse, Response

from neurocortex.errors import NotFoundError
from neurocortex.ui import (
    account,
    admin_system,
    admin_users,
    admin_workers,
    analysis,
    dashboard,
    errors,
    jobs,
)

STATIC = Path(__file__).resolve().parent / "static"
VENDOR = {
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
    "chart.umd.min.js": "chart.js/dist/chart.umd.min.js",
}
# files change with the package version, whose URL stays: let browsers keep them an hour
CACHE = {"Cache-Control": "public, max-age=3600"}

router = APIRouter()


@router.get("/index.html")
async def index() -> Response:
    """Cortex's web UI lives at /index.html; its clients and bookmarks land here."""
    return RedirectResponse("/ui/", status_code=303)


@router.get("/ui")
async def ui_root() -> Response:
    return RedirectResponse("/ui/", status_code=303)


@router.get("/ui/static/{name}")
async def static(name: str) -> Response:
    path = STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise NotFoundError(f"no file {name}")
    return FileResponse(path, headers=CACHE)


@router.get("/ui/vendor/{name}")
async def vendor(name: str, request: Request) -> Response:
    relative = VENDOR.get(name)
    path = request.app.state.services.settings.ui_assets / relative if relative else None
    if path is None or not path.is_file():
        raise NotFoundError(f"no file {name}: run `make install` to get the UI's npm packages")
    return FileResponse(path, media_type="text/javascript", headers=CACHE)


def install(app: FastAPI) -> None:
    for part in (
        router,
        account.router,
        analysis.router,
        jobs.router,
        dashboard.router,
        # literal paths (/ui/admin/users, /ui/admin/status) before /ui/admin/{kinds}
        admin_users.router,
        admin_system.router,
        admin_workers.router,
    ):
        app.include_router(part)
    errors.install(app)
