"""First run, signing in and out, keeping the session, and every user's own password and API key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from neurocortex.api.auth import certificate_user, client_address, cross_site, init_allowed, is_local
from neurocortex.auth.context import init_context
from neurocortex.auth.sessions import SESSION_COOKIE
from neurocortex.errors import (
    AuthenticationError,
    AuthorizationError,
    BadRequestError,
    CortexError,
    RateLimitExceeded,
)
from neurocortex.services import users
from neurocortex.ui.session import Viewer, current_viewer, signed_in
from neurocortex.ui.templating import page

router = APIRouter()


def _redirect(target: str) -> RedirectResponse:
    return RedirectResponse(target, status_code=303)


def _local_target(target: str | None) -> str:
    """Where to go after signing in: only a path of this site (never `//elsewhere` or a full URL)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/"


def _start_session(request: Request, user_id: str, provider: str = "local") -> None:
    request.state.refresh_session = (user_id, provider)  # the middleware writes the cookies


@router.get("/ui/")
async def home(request: Request) -> Response:
    if not await users.any_user_exists(request.app.state.services):
        return _redirect("/ui/setup")
    viewer = await current_viewer(request)
    if viewer is None:
        return _redirect("/ui/login")
    return _redirect("/ui/jobs" if viewer.can("read") else "/ui/account")


@router.get("/ui/setup")
async def setup_form(request: Request) -> Response:
    if await users.any_user_exists(request.app.state.services):
        return _redirect("/ui/login")
    return page(request, "setup.html", needs_token=not is_local(request), form={})


@router.post("/ui/setup")
async def setup(request: Request) -> Response:
    svc = request.app.state.services
    if await users.any_user_exists(svc):
        return _redirect("/ui/login")
    form = await request.form()
    values = {k: str(form.get(k, "")) for k in ("login", "name", "password", "confirmation", "token")}
    problem = None
    if values["password"] != values["confirmation"]:
        problem = "The two passwords differ."
    elif not values["password"]:
        problem = "Choose a password."
    elif not await init_allowed(request, svc, values["token"] or None):
        problem = (
            "This server accepts its first user from elsewhere than its own machine only with the setup "
            "token printed in its log."
        )
    if problem is None:
        try:
            await users.create(svc, init_context(), {
                "login": values["login"].strip(), "name": values["name"].strip() or values["login"].strip(),
                "roles": ["superadmin"], "organization": "cortex", "password": values["password"],
            })  # fmt: skip
        except CortexError as error:
            problem = error.message
    if problem is not None:
        values.pop("password"), values.pop("confirmation")
        return page(request, "setup.html", needs_token=not is_local(request), form=values, problem=problem,
                    status=400)  # fmt: skip
    request.app.state.users_exist = True
    _start_session(request, values["login"].strip())
    return _redirect("/ui/")


@router.get("/ui/login")
async def login_form(request: Request) -> Response:
    if not await users.any_user_exists(request.app.state.services):
        return _redirect("/ui/setup")
    return _login_page(request, next=request.query_params.get("next", ""),
                       expired="expired" in request.query_params,
                       signed_out="signed_out" in request.query_params)  # fmt: skip


def _login_page(request: Request, status: int = 200, **values: Any) -> Response:
    """The login page, with the single sign-on and certificate buttons when those logins are configured."""
    svc = request.app.state.services
    return page(request, "login.html", status=status, sso=request.app.state.sso is not None,
                certificate=bool(svc.settings.x509_header), **values)  # fmt: skip


@router.post("/ui/login/certificate")
async def certificate_login(request: Request) -> Response:
    """A session for the holder of the client certificate the trusted reverse proxy verified."""
    if cross_site(request):
        raise AuthorizationError("Sign in from this site's own login page")
    form = await request.form()
    target = _local_target(str(form.get("next", "")))
    svc = request.app.state.services
    user = await certificate_user(request, svc)
    if user is None:
        return _login_page(request, status=401, next=target,
                           problem="No verified client certificate of a known, active user came with this request.")  # fmt: skip
    await users.record_login(svc, user["id"], user, client_address(request), "x509")
    _start_session(request, user["id"], "x509")
    return _redirect(target)


@router.post("/ui/login")
async def login(request: Request) -> Response:
    if cross_site(request):
        raise AuthorizationError("Sign in from this site's own login page")
    form = await request.form()
    login_, password = str(form.get("login", "")).strip(), str(form.get("password", ""))
    target = _local_target(str(form.get("next", "")))
    # the API's password login: the same providers (local, LDAP, AD), throttling and audit
    svc, address = request.app.state.services, client_address(request)
    try:
        if not login_:
            raise AuthenticationError()
        user, provider = await request.app.state.password_login.login(svc, login_, password, address)
    except AuthenticationError:
        await users.record_login(svc, login_, None, address)
        return _login_page(request, status=401, next=target, login=login_,
                           problem="Wrong login or password, or this account is locked.")  # fmt: skip
    except RateLimitExceeded as exc:
        return _login_page(request, status=429, next=target, login=login_, problem=exc.message)
    await users.record_login(svc, login_, user, address)
    _start_session(request, user["id"], provider)
    return _redirect(target)


@router.post("/ui/logout")
async def logout(request: Request, _viewer: Viewer = Depends(signed_in())) -> Response:
    request.state.refresh_session = None
    response = _redirect("/ui/login?signed_out")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/ui/session")
async def keep_alive(_viewer: Viewer = Depends(signed_in())) -> Response:
    """Called by the session warning's "Stay signed in": the session cookie comes back renewed."""
    return Response(status_code=204)


@router.get("/ui/account")
async def account(request: Request, viewer: Viewer = Depends(signed_in())) -> Response:
    return page(request, "account.html", viewer, has_key=bool(viewer.user.get("key_hash")))


@router.post("/ui/account/password")
async def change_password(request: Request, viewer: Viewer = Depends(signed_in())) -> Response:
    form = await request.form()
    current, new = str(form.get("current", "")), str(form.get("password", ""))
    has_key = bool(viewer.user.get("key_hash"))
    try:
        if new != str(form.get("confirmation", "")):
            raise BadRequestError("The two new passwords differ.")
        await users.change_password(request.app.state.services, viewer.ctx, viewer.user["id"], current, new)
    except CortexError as error:
        problem = "The current password is wrong." if error.status == 403 else error.message
        return page(request, "account.html", viewer, has_key=has_key, problem=problem, status=400)
    return page(request, "account.html", viewer, has_key=has_key, notice="Your password was changed.")


@router.post("/ui/account/key")
async def own_key(request: Request, viewer: Viewer = Depends(signed_in())) -> Response:
    """Reveal or renew one's own API key; the key is shown once in the answer, never kept in the page."""
    svc = request.app.state.services
    action = str((await request.form()).get("action", "reveal"))
    if action == "renew":
        key = await users.renew_key(svc, viewer.ctx, viewer.user["id"])
        notice = "A new API key was created; the previous one no longer works."
    else:
        key = await users.get_key(svc, viewer.ctx, viewer.user["id"])
        notice = None
    return page(request, "account.html", viewer, has_key=True, key=key, notice=notice)
