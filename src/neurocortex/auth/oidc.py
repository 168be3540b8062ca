"""Single sign-on with OAuth2 / OpenID Connect (Cortex's `auth.oauth2.*`, `auth.sso.*`, spec §6.5): authlib's
PKCE and token helpers, joserfc (authlib's JOSE successor) for the ID token, httpx for the calls.

`/api/ssoLogin` without a code sends the browser to the provider (authorization-code flow with PKCE, a
state and a nonce kept in an encrypted cookie); with one, it exchanges the code, verifies the ID token
(signature from the provider's keys, issuer, audience, nonce), reads the user info, maps it to a login,
name, roles and organization, and finds — or creates, or updates — the user.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from neurocortex.auth.context import ROLES
from neurocortex.crypto import SecretBox
from neurocortex.errors import AuthenticationError, AuthorizationError
from neurocortex.services import users
from neurocortex.services.base import Services
from neurocortex.settings import Settings

FLOW_COOKIE = "NEUROCORTEX_SSO"
FLOW_LIFETIME = 600  # seconds the person has to log in at the provider
METADATA_LIFETIME = 3600


@dataclass(frozen=True)
class Identity:
    login: str
    name: str
    roles: list[str]
    organization: str | None


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


def map_identity(settings: Settings, claims: dict[str, Any]) -> Identity | None:
    """Cortex's `simple` and `group` mappers; None when no login can be found."""
    login = claims.get(settings.sso_attribute_login)
    if not isinstance(login, str) or not login.strip():
        return None
    name = claims.get(settings.sso_attribute_name)
    organization = claims.get(settings.sso_attribute_organization)
    if settings.sso_mapper == "group":
        groups = _as_list(claims.get(settings.sso_attribute_groups))
        roles = [r for g in groups for r in settings.sso_group_roles.get(g, [])]
        organization = next(
            (settings.sso_group_organizations[g] for g in groups if g in settings.sso_group_organizations),
            organization,
        )
    else:
        roles = _as_list(claims.get(settings.sso_attribute_roles))
    roles = [r for r in dict.fromkeys(r.lower() for r in roles or settings.sso_default_roles) if r in ROLES]
    return Identity(
        login=login.strip().lower(),
        name=name if isinstance(name, str) and name else login,
        roles=roles,
        organization=organization if isinstance(organization, str) else settings.sso_default_organization,
    )


class SsoLogin:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client_id = settings.oauth2_client_id
        self.client_secret = (
            settings.oauth2_client_secret.get_secret_value() if settings.oauth2_client_secret else None
        )
        if not self.client_id or not settings.oauth2_redirect_uri:
            raise ValueError("SSO needs NEUROCORTEX_OAUTH2_CLIENT_ID and NEUROCORTEX_OAUTH2_REDIRECT_URI")
        if not settings.oauth2_issuer and not (
            settings.oauth2_authorization_url and settings.oauth2_token_url
        ):
            raise ValueError("SSO needs NEUROCORTEX_OAUTH2_ISSUER, or the authorization and token URLs")
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0

    async def metadata(self) -> dict[str, Any]:
        """The provider's endpoints: discovered (and cached for an hour), or as configured."""
        settings = self.settings
        if not settings.oauth2_issuer:
            return {
                "authorization_endpoint": settings.oauth2_authorization_url,
                "token_endpoint": settings.oauth2_token_url,
                "userinfo_endpoint": settings.oauth2_user_url,
            }
        if self._metadata is None or time.monotonic() - self._metadata_at > METADATA_LIFETIME:
            url = settings.oauth2_issuer.rstrip("/") + "/.well-known/openid-configuration"
            async with httpx.AsyncClient(timeout=10) as http:
                response = await http.get(url)
                response.raise_for_status()
                metadata = response.json()
                metadata["jwks"] = (await http.get(metadata["jwks_uri"])).json()
            self._metadata, self._metadata_at = metadata, time.monotonic()
        return self._metadata

    async def start(self, box: SecretBox) -> tuple[str, str]:
        """(URL to send the browser to, value of the flow cookie)."""
        metadata = await self.metadata()
        state, nonce, verifier = generate_token(30), generate_token(30), generate_token(48)
        url = add_params_to_uri(
            metadata["authorization_endpoint"],
            [
                ("response_type", "code"),
                ("client_id", self.client_id),
                ("redirect_uri", self.settings.oauth2_redirect_uri),
                ("scope", " ".join(self.settings.oauth2_scope)),
                ("state", state),
                ("nonce", nonce),
                ("code_challenge", create_s256_code_challenge(verifier)),
                ("code_challenge_method", "S256"),
            ],
        )
        flow = {"state": state, "nonce": nonce, "verifier": verifier, "expires": time.time() + FLOW_LIFETIME}
        return url, box.encrypt(orjson.dumps(flow).decode())

    async def finish(self, box: SecretBox, cookie: str | None, code: str, state: str) -> dict[str, Any]:
        """The user's claims once the code is exchanged and the ID token verified."""
        try:
            flow = orjson.loads(box.decrypt(cookie or ""))
        except (ValueError, orjson.JSONDecodeError):
            raise AuthenticationError("The single sign-on was not started here, or took too long") from None
        if not hmac.compare_digest(str(flow.get("state")), state) or flow.get("expires", 0) < time.time():
            raise AuthenticationError("The single sign-on was not started here, or took too long")
        metadata = await self.metadata()
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(
                metadata["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": self.settings.oauth2_redirect_uri,
                    "code_verifier": flow["verifier"],
                },
                auth=(self.client_id, self.client_secret or ""),
                headers={"Accept": "application/json"},
            )
            token = (
                response.json()
                if response.headers.get("content-type", "").startswith("application/json")
                else {}
            )
            if response.status_code != 200 or not token.get("access_token"):
                reason = (
                    token.get("error_description") or token.get("error") or f"HTTP {response.status_code}"
                )
                raise AuthenticationError(f"The identity provider refused the code: {reason}")
            claims: dict[str, Any] = {}
            if "jwks" in metadata:
                claims = self._verified_id_token(metadata, token.get("id_token"), flow["nonce"])
            if metadata.get("userinfo_endpoint"):
                info_response = await http.get(
                    metadata["userinfo_endpoint"],
                    headers={"Authorization": f"Bearer {token['access_token']}"},
                )
                if info_response.status_code != 200:
                    raise AuthenticationError("The identity provider refused the user information")
                info = info_response.json()
                if claims and info.get("sub") != claims.get("sub"):
                    raise AuthenticationError("The user information is not about the authenticated user")
                claims = claims | info
        return claims

    def _verified_id_token(
        self, metadata: dict[str, Any], id_token: str | None, nonce: str
    ) -> dict[str, Any]:
        if not id_token:
            raise AuthenticationError("The identity provider sent no ID token")
        registry = JWTClaimsRegistry(
            leeway=60,
            iss={"essential": True, "value": metadata["issuer"]},
            aud={"essential": True, "value": self.client_id},
            nonce={"essential": True, "value": nonce},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            token = jwt.decode(id_token, KeySet.import_key_set(metadata["jwks"]))
            registry.validate(token.claims)
        except JoseError as exc:
            raise AuthenticationError(f"The ID token is not valid: {exc}") from None
        return dict(token.claims)


async def user_for_identity(svc: Services, identity: Identity) -> dict[str, Any]:
    """The user the provider vouched for: created (auto-create) or brought up to date (auto-update) as
    configured. AuthenticationError for an unknown user, AuthorizationError (Cortex's 403) for a locked one."""
    settings = svc.settings
    user = await users.get(svc, identity.login)
    if user is None:
        if not (settings.sso_autocreate and identity.organization and identity.roles):
            raise AuthenticationError(f"User {identity.login} is not known here")
        created = await users.provision(
            svc, identity.login, identity.name, identity.organization, identity.roles, "oauth2:"
        )
        if created is None:
            raise AuthenticationError(f"User {identity.login} cannot be created in {identity.organization}")
    elif settings.sso_autoupdate:
        await users.apply_identity(
            svc, identity.login, identity.name, identity.organization, identity.roles, "oauth2:"
        )
    active = await users.active_user(svc, identity.login, cached=False)
    if active is None:
        raise AuthorizationError("Your account is locked")
    return active
