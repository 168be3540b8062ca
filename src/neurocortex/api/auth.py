"""Who is calling, in Cortex's order (§6.1): session cookie, API key, a client certificate passed by a
trusted reverse proxy (beyond Cortex; when switched on), HTTP Basic (when switched on), the
`init` pseudo-user while no user exists — only from a loopback address or with the setup token printed at
start — then a login header set by a trusted reverse proxy (when switched on).
Roles are any-of: each route names the roles it accepts and one of them is enough."""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import ipaddress
import itertools
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from starlette.requests import Request

from neurocortex.auth.context import AuthContext, init_context
from neurocortex.auth.sessions import SESSION_COOKIE, XSRF_COOKIE, XSRF_HEADER, decode_session
from neurocortex.auth.x509 import certificate_login
from neurocortex.errors import AuthenticationError, AuthorizationError
from neurocortex.services import api_keys, users
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


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


@functools.lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in trusted)


def from_trusted_proxy(request: Request, trusted: Iterable[str]) -> bool:
    """Whether the request comes straight from one of the configured reverse proxies: only then are the
    identity headers they set (login, client certificate) believed."""
    try:
        address = ipaddress.ip_address(client_address(request))
    except ValueError:
        return False
    return any(address in network for network in _networks(tuple(trusted)))


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
        key = authorization[7:].strip()
        user = await api_keys.user_for_key(svc, key) if api_keys.is_named_key(key) else None
        user = user or await users.user_for_key(svc, key)
        if user is not None:
            return _context(user, "key", request_id)
    user = await certificate_user(request, svc)
    if user is not None:
        return _context(user, "x509", request_id)
    if svc.settings.auth_basic and authorization[:6].lower() == "basic ":
        login, password = _basic_credentials(authorization[6:])
        user, _provider = await request.app.state.password_login.login(
            svc, login, password, client_address(request)
        )
        return _context(user, "basic", request_id)
    if await init_allowed(request, svc):
        return init_context(request_id)
    header = svc.settings.auth_header
    if header and header in request.headers and from_trusted_proxy(request, svc.settings.trusted_proxies):
        user = await users.active_user(svc, request.headers[header].strip().lower())
        if user is not None:
            return _context(user, "header", request_id)
    raise AuthenticationError()


async def certificate_user(request: Request, svc: Services) -> dict | None:
    """The user a trusted reverse proxy vouches for with a verified client certificate, if any."""
    settings = svc.settings
    if not settings.x509_header or not request.headers.get(settings.x509_header):
        return None
    if request.headers.get(settings.x509_verify_header) != "SUCCESS":
        return None
    if not from_trusted_proxy(request, settings.trusted_proxies):
        return None
    login = certificate_login(request.headers[settings.x509_header], settings.x509_login_attribute)
    return await users.active_user(svc, login) if login else None


def _basic_credentials(encoded: str) -> tuple[str, str]:
    try:
        login, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthenticationError() from None
    if not sep or not login:
        raise AuthenticationError()
    return login, password


def _context(user: dict, method: str, request_id: str) -> AuthContext:
    return AuthContext(user["id"], user["organization"], frozenset(user["roles"]), method, request_id)


async def init_allowed(request: Request, svc: Services, token: str | None = None) -> bool:
    """Whether the caller may act as `init`; `token` is the setup token typed in the UI's setup form."""
    state = request.app.state
    if state.users_exist:
        return False
    if await users.any_user_exists(svc):
        state.users_exist = True  # users are never deleted, so this never turns back
        return False
    if cross_site(request):
        return False
    if is_local(request):
        return True
    token = token or request.headers.get(SETUP_TOKEN_HEADER, "")
    return bool(token) and hmac.compare_digest(token, state.setup_token)


def is_local(request: Request) -> bool:
    """From this machine, and not relayed by a reverse proxy."""
    return is_loopback(request) and not any(h in request.headers for h in PROXY_HEADERS)


def cross_site(request: Request) -> bool:
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
