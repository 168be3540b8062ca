"""Who is calling, in Cortex's order (§6.1): session cookie, API key, then the `init` pseudo-user while no
user exists — the last only from a loopback address or with the setup token printed at start.
Roles are any-of: each route names the roles it accepts and one of them is enough."""

from __future__ import annotations

import hmac
import ipaddress
import itertools
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.requests import Request

from neurocortex.auth.context import AuthContext, init_context
from neurocortex.auth.sessions import SESSION_COOKIE, XSRF_COOKIE, XSRF_HEADER, decode_session
from neurocortex.errors import AuthenticationError, AuthorizationError
from neurocortex.services import users
from neurocortex.services.base import Services

SETUP_TOKEN_HEADER = "X-Neurocortex-Setup-Token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# a loopback request relayed by a reverse proxy comes from elsewhere
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")
_request_ids = itertools.count(1)


def services(request: Request) -> Services:
    return request.app.state.services


def is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_csrf(request: Request) -> None:
    """Double-submit check for requests carrying a valid session (API-key clients carry no cookie; a stale
    or forged cookie is no session and is ignored)."""
    if request.method in SAFE_METHODS:
        return
    if not request.url.path.startswith("/api") or request.url.path == "/api/login":
        return
    expected = request.cookies.get(XSRF_COOKIE, "")
    presented = request.headers.get(XSRF_HEADER, "")
    if not expected or not hmac.compare_digest(expected, presented):
        raise AuthorizationError("CSRF token check failed")


async def authenticate(request: Request) -> AuthContext:
    svc = services(request)
    request_id = f"{next(_request_ids)}"
    cookie = request.cookies.get(SESSION_COOKIE)
    session = decode_session(svc.box, cookie) if cookie else None
    if session is not None:
        check_csrf(request)
        user = await users.active_user(svc, session["username"])
        if user is not None:
            request.state.refresh_session = (user["id"], session.get("authMethod", "local"))
            return _context(user, "session", request_id)
    authorization = request.headers.get("authorization", "").strip()
    if authorization[:7].lower() == "bearer ":  # the scheme is case-insensitive; older MISP sends "bearer"
        user = await users.user_for_key(svc, authorization[7:].strip())
        if user is not None:
            return _context(user, "key", request_id)
    if await _init_allowed(request, svc):
        return init_context(request_id)
    raise AuthenticationError()


def _context(user: dict, method: str, request_id: str) -> AuthContext:
    return AuthContext(user["id"], user["organization"], frozenset(user["roles"]), method, request_id)


async def _init_allowed(request: Request, svc: Services) -> bool:
    state = request.app.state
    if state.users_exist:
        return False
    if await users.any_user_exists(svc):
        state.users_exist = True  # users are never deleted, so this never turns back
        return False
    if _cross_site(request):
        return False
    if is_loopback(request) and not any(h in request.headers for h in PROXY_HEADERS):
        return True
    token = request.headers.get(SETUP_TOKEN_HEADER, "")
    return bool(token) and hmac.compare_digest(token, state.setup_token)


def _cross_site(request: Request) -> bool:
    """A request a browser sends on behalf of another site: a form posted from any web page the operator
    opens must not create the first superadmin of a server still waiting for one."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return True
    origin = request.headers.get("origin")
    return origin is not None and urlsplit(origin).netloc != request.headers.get("host", "")


def requires(*roles: str) -> Callable[[Request], Awaitable[AuthContext]]:
    """A FastAPI dependency: the caller, who must hold one of `roles` (none listed: any authenticated caller)."""

    async def dependency(request: Request) -> AuthContext:
        ctx = await authenticate(request)
        if roles and not ctx.has_any(*roles):
            raise AuthorizationError()
        return ctx

    return dependency
