"""Who is using the web UI: the same CORTEX_SESSION cookie and CSRF double-submit as the API.

Pages are for people, so only the session cookie counts here (no API key, no `init` pseudo-user): a
visitor without a session is sent to the login page, or to the setup page while no user exists.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.requests import Request

from neurocortex.auth.context import AuthContext
from neurocortex.auth.sessions import SESSION_COOKIE, XSRF_COOKIE, XSRF_HEADER, decode_session
from neurocortex.errors import AuthorizationError
from neurocortex.services import users

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
XSRF_FIELD = "_xsrf"
# polling requests carry this header: they read the page again without extending the session, so an
# unattended browser tab does not keep a session alive for ever
BACKGROUND_HEADER = "X-Neurocortex-Background"


class LoginRequired(Exception):
    """Raised by a page when nobody is signed in; answered with a redirection (see ui/errors.py)."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of a page: their row and the context every service call takes."""

    user: dict[str, Any]
    ctx: AuthContext

    def can(self, *roles: str) -> bool:
        return self.ctx.has_any(*roles)


def xsrf_token(request: Request) -> str:
    return request.cookies.get(XSRF_COOKIE, "")


async def check_csrf(request: Request) -> None:
    """Double submit: the XSRF cookie must come back in the header (htmx) or in the form's hidden field."""
    if request.method in SAFE_METHODS:
        return
    expected = xsrf_token(request)
    presented = request.headers.get(XSRF_HEADER)
    if presented is None:
        presented = str((await request.form()).get(XSRF_FIELD, ""))
    if not expected or not hmac.compare_digest(expected, presented):
        raise AuthorizationError("CSRF token check failed: reload the page and try again")


async def current_viewer(request: Request) -> Viewer | None:
    svc = request.app.state.services
    cookie = request.cookies.get(SESSION_COOKIE)
    session = decode_session(svc.box, cookie) if cookie else None
    if session is None:
        return None
    user = await users.active_user(svc, session["username"])
    if user is None:
        return None
    if BACKGROUND_HEADER not in request.headers:
        request.state.refresh_session = (user["id"], session.get("authMethod", "local"))
    ctx = AuthContext(user["id"], user["organization"], frozenset(user["roles"]), "session")
    return Viewer(user, ctx)


def signed_in(*roles: str):
    """A FastAPI dependency: the signed-in viewer holding one of `roles` (none listed: anyone signed in)."""

    async def dependency(request: Request) -> Viewer:
        viewer = await current_viewer(request)
        if viewer is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise LoginRequired(f"/ui/login?next={quote(target)}")
        await check_csrf(request)
        if roles and not viewer.can(*roles):
            raise AuthorizationError("Your roles do not allow this page")
        return viewer

    return dependency
