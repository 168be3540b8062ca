"""Users of an organization (orgadmin) or of every organization (superadmin): create, roles, lock and
unlock, set a password, API keys (create, reveal, renew, revoke); organizations for superadmins."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from neurocortex.auth.context import ROLES
from neurocortex.errors import CortexError
from neurocortex.services import organizations, users
from neurocortex.ui.session import Viewer, signed_in
from neurocortex.ui.templating import page

router = APIRouter()
ADMIN = signed_in("orgadmin", "superadmin")
SUPERADMIN = signed_in("superadmin")


def _roles_offered(viewer: Viewer) -> tuple[str, ...]:
    return ROLES if viewer.ctx.is_superadmin else tuple(r for r in ROLES if r != "superadmin")


async def _organizations(request: Request, viewer: Viewer) -> list[dict]:
    if not viewer.ctx.is_superadmin:
        return []
    rows, _ = await organizations.search(request.app.state.services, {}, "all", ["+name"])
    return rows


async def _users_page(
    request: Request, viewer: Viewer, problem: str | None = None, status: int = 200
) -> Response:
    svc = request.app.state.services
    # an orgadmin sees their organization; a superadmin every one, or the one chosen
    chosen = request.query_params.get("organization") or None
    organization = chosen if viewer.ctx.is_superadmin else viewer.ctx.organization
    rows, _ = await users.search(svc, {}, "all", ["+login"], organization)
    return page(request, "admin_users.html", viewer, users=rows, roles=_roles_offered(viewer), problem=problem,
                organizations=await _organizations(request, viewer), chosen=chosen, status=status)  # fmt: skip


@router.get("/ui/admin/users")
async def user_list(request: Request, viewer: Viewer = Depends(ADMIN)) -> Response:
    return await _users_page(request, viewer)


@router.post("/ui/admin/users")
async def create_user(request: Request, viewer: Viewer = Depends(ADMIN)) -> Response:
    form = await request.form()
    fields = {
        "login": str(form.get("login", "")).strip(),
        "name": str(form.get("name", "")).strip(),
        "roles": [str(r) for r in form.getlist("roles")],
        "organization": str(form.get("organization") or viewer.ctx.organization),
    }
    if form.get("password"):
        fields["password"] = str(form.get("password"))
    try:
        await users.create(request.app.state.services, viewer.ctx, fields)
    except CortexError as error:
        return await _users_page(request, viewer, error.message, 400)
    return RedirectResponse(f"/ui/admin/users/{fields['login']}?created", status_code=303)


async def _user_page(request: Request, viewer: Viewer, login: str, **extra) -> Response:
    user = await users.get_visible(request.app.state.services, viewer.ctx, login)
    if not viewer.ctx.is_superadmin and not viewer.ctx.is_orgadmin:
        user = None
    return page(request, "admin_user.html", viewer, user=user, roles=_roles_offered(viewer),
                created="created" in request.query_params, **extra)  # fmt: skip


@router.get("/ui/admin/users/{login}")
async def user_page(login: str, request: Request, viewer: Viewer = Depends(ADMIN)) -> Response:
    return await _user_page(request, viewer, login)


@router.post("/ui/admin/users/{login}")
async def user_action(login: str, request: Request, viewer: Viewer = Depends(ADMIN)) -> Response:
    """One form per action on the user page; `action` says which, the answer shows the outcome."""
    svc = request.app.state.services
    form = await request.form()
    action = str(form.get("action", ""))
    notice, key = None, None
    try:
        if action == "save":
            await users.update_user(svc, viewer.ctx, login, {
                "name": str(form.get("name", "")), "roles": [str(r) for r in form.getlist("roles")]})  # fmt: skip
            notice = "Saved."
        elif action == "lock":
            await users.lock(svc, viewer.ctx, login)
            notice = "The account is locked: it can no longer sign in nor use its API key."
        elif action == "unlock":
            await users.update_user(svc, viewer.ctx, login, {"status": "Ok"})
            notice = "The account is unlocked."
        elif action == "password":
            await users.set_password(svc, viewer.ctx, login, str(form.get("password", "")))
            notice = "The password was set."
        elif action == "reveal-key":
            key = await users.get_key(svc, viewer.ctx, login)
        elif action == "renew-key":
            key = await users.renew_key(svc, viewer.ctx, login)
            notice = "A new API key was created; any previous one no longer works."
        elif action == "revoke-key":
            await users.remove_key(svc, viewer.ctx, login)
            notice = "The API key was revoked."
    except CortexError as error:
        return await _user_page(request, viewer, login, problem=error.message)
    return await _user_page(request, viewer, login, notice=notice, key=key)


@router.get("/ui/admin/organizations")
async def organization_list(request: Request, viewer: Viewer = Depends(SUPERADMIN)) -> Response:
    svc = request.app.state.services
    rows = await _organizations(request, viewer)
    counts = await organizations.stats(svc, [o["id"] for o in rows])
    return page(request, "admin_organizations.html", viewer, organizations=rows, counts=counts,
                notice=request.query_params.get("notice"))  # fmt: skip


@router.post("/ui/admin/organizations")
async def organization_action(request: Request, viewer: Viewer = Depends(SUPERADMIN)) -> Response:
    svc = request.app.state.services
    form = await request.form()
    action, name = str(form.get("action", "")), str(form.get("name", "")).strip()
    try:
        if action == "create":
            await organizations.create(
                svc, viewer.ctx, {"name": name, "description": str(form.get("description", ""))}
            )
            notice = f"Organization {name} created."
        elif action == "lock":
            await organizations.lock(svc, viewer.ctx, name)
            notice = f"Organization {name} locked: its users can no longer sign in."
        elif action == "unlock":
            await organizations.update_organization(svc, viewer.ctx, name, {"status": "Active"})
            notice = f"Organization {name} unlocked."
        else:
            notice = None
    except CortexError as error:
        rows = await _organizations(request, viewer)
        return page(request, "admin_organizations.html", viewer, organizations=rows, problem=error.message,
                    counts=await organizations.stats(svc, [o["id"] for o in rows]), status=400)  # fmt: skip
    return RedirectResponse(f"/ui/admin/organizations?notice={notice or ''}", status_code=303)
