"""`/api/ssoLogin`: the OAuth2 / OpenID Connect single sign-on of Cortex (§6.5), see auth/oidc.py."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from neurocortex.api.auth import client_address, services
from neurocortex.auth.oidc import FLOW_COOKIE, FLOW_LIFETIME, map_identity, user_for_identity
from neurocortex.errors import AuthenticationError, BadRequestError
from neurocortex.services import users

router = APIRouter()
FLOW_PATH = "/api/ssoLogin"


@router.get("/api/ssoLogin")
@router.post("/api/ssoLogin")
async def sso_login(request: Request) -> Response:
    sso = request.app.state.sso
    if sso is None:
        raise BadRequestError("Single sign-on is not configured")
    svc = services(request)
    params = request.query_params
    if "error" in params:
        raise AuthenticationError(f"The identity provider answered {params['error']}")
    code, state = params.get("code"), params.get("state")
    if not code or not state:
        url, flow = await sso.start(svc.box)
        response = RedirectResponse(url, status_code=302)
        # Lax: the provider sends the browser back with a top-level GET, which carries it
        response.set_cookie(
            FLOW_COOKIE, flow, max_age=FLOW_LIFETIME, path=FLOW_PATH, httponly=True, samesite="lax"
        )
        return response
    claims = await sso.finish(svc.box, request.cookies.get(FLOW_COOKIE), code, state)
    identity = map_identity(svc.settings, claims)
    if identity is None:
        raise AuthenticationError("The identity provider gave no login")
    user = await user_for_identity(svc, identity)
    await users.record_login(svc, identity.login, user, client_address(request), "oauth2")
    request.state.refresh_session = (user["id"], "oauth2")
    response = RedirectResponse("/index.html", status_code=303)
    response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH)
    return response
