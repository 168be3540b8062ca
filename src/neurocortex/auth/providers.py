"""Password providers (Cortex's `auth.provider`, §6.2) and the login that tries them in the configured order.

A provider checks a login and password and answers the neurocortex user who may act (status Ok in an
Active organization), or None. The first provider that answers a user wins; a locked user, an unknown one
and a bad password all end as the same "Authentication failure", as in Cortex.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from neurocortex.auth.throttle import LoginThrottle
from neurocortex.errors import AuthenticationError
from neurocortex.services import users
from neurocortex.services.base import Services
from neurocortex.settings import Settings

log = logging.getLogger(__name__)


class ProviderUnavailable(Exception):
    """The provider could not check the password (its directory cannot be reached)."""


class PasswordProvider(Protocol):
    name: str
    capabilities: tuple[str, ...]

    async def authenticate(self, svc: Services, login: str, password: str) -> dict[str, Any] | None: ...


class LocalProvider:
    """Passwords hashed in the user row."""

    name = "local"
    capabilities = ("changePassword", "setPassword")

    async def authenticate(self, svc: Services, login: str, password: str) -> dict[str, Any] | None:
        return await users.user_for_password(svc, login, password)


def build_providers(settings: Settings) -> list[PasswordProvider]:
    # imported here: each directory provider pulls in its client library only when configured
    providers: list[PasswordProvider] = []
    for name in settings.auth_providers:
        if name == "local":
            providers.append(LocalProvider())
        elif name == "ldap":
            from neurocortex.auth.ldap import LdapProvider

            providers.append(LdapProvider.from_settings(settings))
        elif name == "ad":
            from neurocortex.auth.ldap import ActiveDirectoryProvider

            providers.append(ActiveDirectoryProvider.from_settings(settings))
        elif name == "oauth2":
            continue  # single sign-on is a redirect flow, not a password check (see auth/oidc.py)
        else:
            raise ValueError(f"unknown authentication provider {name!r} in NEUROCORTEX_AUTH_PROVIDERS")
    return providers


class PasswordLogin:
    """Logins by password through the providers, throttled against guessing."""

    def __init__(self, settings: Settings, providers: list[PasswordProvider]) -> None:
        self.providers = providers
        self.throttle = LoginThrottle(
            settings.login_max_failures, settings.login_max_address_failures, settings.login_failure_window
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> PasswordLogin:
        return cls(settings, build_providers(settings))

    async def login(
        self, svc: Services, login: str, password: str, address: str
    ) -> tuple[dict[str, Any], str]:
        """The user and the name of the provider that accepted them; AuthenticationError otherwise,
        RateLimitExceeded while this account or address is throttled."""
        self.throttle.check(login, address)
        if password:
            for provider in self.providers:
                try:
                    user = await provider.authenticate(svc, login, password)
                except ProviderUnavailable as exc:
                    log.warning("authentication provider %s is unavailable: %s", provider.name, exc)
                    continue
                except Exception:
                    # a directory that is down must not hide the providers after it
                    log.exception("authentication provider %s failed", provider.name)
                    continue
                if user is not None:
                    self.throttle.succeeded(login)
                    return user, provider.name
        self.throttle.failed(login, address)
        log.info("failed login for %r from %s", login, address)
        raise AuthenticationError()

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.providers]

    @property
    def capabilities(self) -> list[str]:
        return sorted({c for p in self.providers for c in p.capabilities})
