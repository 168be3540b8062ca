"""Status, login/logout, maintenance, alerts and attachment downloads (§3.1)."""

from __future__ import annotations

import asyncio
import re
import tempfile
import urllib.parse

from fastapi import APIRouter, Depends, Request
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from neurocortex import CORTEX_API_VERSION, __version__
from neurocortex.api.auth import client_address, requires, services
from neurocortex.api.render import json_response, list_response, no_content
from neurocortex.api.routes.common import fields_of
from neurocortex.auth.context import AuthContext
from neurocortex.auth.sessions import SESSION_COOKIE
from neurocortex.errors import AuthenticationError, BadRequestError, NotFoundError
from neurocortex.services import attachments, cluster, users, workers

router = APIRouter()
FORBIDDEN_NAME = re.compile(r"[/\\\n\r\t\x00\f`?*<>|\":;]")


@router.get("/")
async def home() -> Response:
    return RedirectResponse("/index.html", status_code=303)


@router.get("/api/status")
async def status(request: Request) -> Response:
    svc = services(request)
    password_login = request.app.state.password_login
    return json_response(
        {
            "versions": {"Cortex": CORTEX_API_VERSION, "neurocortex": __version__},
            "config": {
                "protectDownloadsWith": svc.settings.attachment_password,
                # as Cortex: `key` first, then the providers in their order; capabilities are their union
                "authType": ["key", *password_login.names] + (["oauth2"] if request.app.state.sso else []),
                "capabilities": ["authByKey", *password_login.capabilities],
                "ssoAutoLogin": bool(request.app.state.sso) and svc.settings.sso_autologin,
            },
        }
    )


@router.get("/api/health")
async def health(request: Request) -> Response:
    return json_response({"status": "ok"})


@router.get("/api/node")
async def nodes(request: Request, _ctx: AuthContext = Depends(requires("superadmin"))) -> Response:
    """The `neurocortex worker` nodes alive now, with their capacity and running jobs (distributed mode)."""
    found = await cluster.live_nodes(services(request))
    return list_response(found, len(found))


@router.get("/api/alert")
async def alerts(request: Request, ctx: AuthContext = Depends(requires("read"))) -> Response:
    return json_response(await workers.obsolete_types(services(request), ctx))


@router.post("/api/login")
async def login(request: Request) -> Response:
    fields = await fields_of(request)
    login_, password = fields.get_string("user"), fields.get_string("password")
    if not login_ or password is None:
        raise AuthenticationError()
    svc = services(request)
    address = client_address(request)
    try:
        user, provider = await request.app.state.password_login.login(svc, login_, password, address)
    except AuthenticationError:
        await users.record_login(svc, login_, None, address)
        raise
    await users.record_login(svc, login_, user, address)
    request.state.refresh_session = (user["id"], provider)
    return json_response({"id": user["id"], "name": user["name"], "roles": user["roles"]})


@router.get("/api/logout")
async def logout() -> Response:
    response = Response(status_code=200)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/api/maintenance/migrate")
async def migrate(request: Request) -> Response:
    """Migrations run at start; this is accepted for the clients and UIs that still call it."""
    await services(request).db.migrate()
    return no_content()


def _download_name(name: str | None, fallback: str) -> str:
    if name is None:
        return fallback
    if not name or FORBIDDEN_NAME.search(name):
        raise BadRequestError("File name is invalid")
    return name


def _attachment_headers(filename: str) -> dict[str, str]:
    quoted = urllib.parse.quote(filename)
    return {
        "Content-Disposition": f"attachment; filename=\"{quoted}\"; filename*=UTF-8''{quoted}",
        "Content-Transfer-Encoding": "binary",
    }


@router.get("/api/datastore/{file_hash}")
async def download(
    file_hash: str, request: Request, _ctx: AuthContext = Depends(requires("read"))
) -> Response:
    if file_hash.startswith("{{"):
        return no_content()
    name = _download_name(request.query_params.get("name"), file_hash)
    path = await attachments.local_path(services(request), file_hash)
    if path is None:
        raise NotFoundError(f"attachment {file_hash} not found")
    return FileResponse(path, media_type="application/octet-stream", headers=_attachment_headers(name))


@router.get("/api/datastorezip/{file_hash}")
async def download_zip(
    file_hash: str, request: Request, _ctx: AuthContext = Depends(requires("read"))
) -> Response:
    if file_hash.startswith("{{"):
        return no_content()
    svc = services(request)
    name = _download_name(request.query_params.get("name"), file_hash)
    if await attachments.local_path(svc, file_hash) is None:
        raise NotFoundError(f"attachment {file_hash} not found")
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the generator that streams it
    await asyncio.to_thread(svc.datastore.write_zip, file_hash, name, svc.settings.attachment_password, spool)
    spool.seek(0)

    def chunks():
        with spool:
            while chunk := spool.read(1024 * 1024):
                yield chunk

    return StreamingResponse(
        chunks(), media_type="application/zip", headers=_attachment_headers(f"{name}.zip")
    )
