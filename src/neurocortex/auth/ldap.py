"""LDAP and Active Directory password providers (Cortex's `auth.ldap.*` and `auth.ad.*`), on ldap3.

LDAP: bind with the service account (or anonymously), find the user's DN with the filter, then bind as
that DN with the password given. Active Directory: bind as `DOMAIN\\user` (or `user@domain`) directly.
Servers are tried in the configured order: one that cannot be reached (or whose TLS fails) passes the
turn to the next; a wrong password does not. Either way the person must also be a neurocortex user, unless
NEUROCORTEX_DIRECTORY_AUTOCREATE creates them at their first login.

ldap3 is blocking: each login runs in a thread, bounded by the connection and receive timeouts.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
from dataclasses import dataclass
from typing import Any

from ldap3 import SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException, LDAPStartTLSError
from ldap3.utils.conv import escape_filter_chars

from neurocortex.auth.providers import ProviderUnavailable
from neurocortex.services import users
from neurocortex.services.base import Services
from neurocortex.settings import Settings

log = logging.getLogger(__name__)


class DirectoryUnavailable(ProviderUnavailable):
    """No configured server could be reached."""


class CredentialsRefused(Exception):
    """The directory refused this name and password (wrong, unknown, locked, expired)."""


# invalidCredentials (also locked/expired accounts), inappropriateAuthentication, invalidDNSyntax
REFUSED = (49, 48, 34)


@dataclass(frozen=True)
class DirectoryServers:
    """Where and how to connect: host[:port] entries tried in order, LDAPS or StartTLS or neither."""

    names: tuple[str, ...]
    use_ssl: bool
    start_tls: bool
    ca_file: str | None
    timeout: float

    def servers(self) -> list[Server]:
        tls = None
        if self.use_ssl or self.start_tls:
            tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=self.ca_file, version=ssl.PROTOCOL_TLS_CLIENT)
        default_port = 636 if self.use_ssl else 389
        result = []
        for name in self.names:
            host, _, port = name.rpartition(":") if name.count(":") == 1 else (name, "", "")
            result.append(
                Server(
                    host or name,
                    port=int(port) if port else default_port,
                    use_ssl=self.use_ssl,
                    tls=tls,
                    connect_timeout=math.ceil(self.timeout),
                    get_info="NO_INFO",
                )
            )
        return result

    def connect(self, user: str | None, password: str | None) -> Connection:
        """A connection bound as `user` on the first server that answers (ldap3 wants whole seconds); CredentialsRefused if the
        credentials are refused (the next servers are not asked: they hold the same directory)."""
        failures = []
        for server in self.servers():
            connection = Connection(
                server, user=user, password=password, receive_timeout=math.ceil(self.timeout)
            )
            try:
                connection.open()
                if self.start_tls and not self.use_ssl and not connection.start_tls():
                    raise LDAPStartTLSError("StartTLS refused")
                bound = connection.bind()
            except LDAPException as exc:
                failures.append(f"{server.host}:{server.port}: {exc}")
                connection.unbind()
                continue
            if bound:
                if failures:
                    log.warning("directory servers skipped: %s", "; ".join(failures))
                return connection
            result = connection.result or {}
            connection.unbind()
            if result.get("result") in REFUSED:
                raise CredentialsRefused(result.get("description", ""))
            # e.g. strongerAuthRequired (a bind without TLS) or a server busy or shutting down
            failures.append(
                f"{server.host}:{server.port}: {result.get('description')} {result.get('message')}"
            )
        raise DirectoryUnavailable("; ".join(failures) or "no directory server configured")


def _password_bind(servers: DirectoryServers, user: str, password: str) -> bool:
    try:
        servers.connect(user, password).unbind()
    except CredentialsRefused:
        return False
    return True


class DirectoryProvider:
    """What LDAP and AD share: the thread, and turning a directory identity into a neurocortex user."""

    name = ""
    capabilities: tuple[str, ...] = ()

    def __init__(self, settings: Settings) -> None:
        self.autocreate = settings.directory_autocreate
        self.default_organization = settings.directory_default_organization
        self.default_roles = list(settings.directory_default_roles)

    def check(self, login: str, password: str) -> tuple[str, str] | None:
        """(neurocortex login, display name) if the directory accepts this password; blocking."""
        raise NotImplementedError

    async def authenticate(self, svc: Services, login: str, password: str) -> dict[str, Any] | None:
        if not password:
            return None  # an empty password is an anonymous bind, which LDAP servers accept
        identity = await asyncio.to_thread(self.check, login, password)
        if identity is None:
            return None
        user_id, display_name = identity
        user = await users.get(svc, user_id)
        if user is None and self.autocreate and self.default_organization:
            await users.provision(
                svc, user_id, display_name, self.default_organization, self.default_roles, f"{self.name}:"
            )
            log.info("user %s created at their first %s login", user_id, self.name)
        return await users.active_user(svc, user_id, cached=False)


class LdapProvider(DirectoryProvider):
    name = "ldap"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.servers = DirectoryServers(
            tuple(settings.ldap_server_names),
            settings.ldap_use_ssl,
            settings.ldap_start_tls,
            settings.ldap_ca_file,
            settings.ldap_timeout,
        )
        self.bind_dn = settings.ldap_bind_dn
        self.bind_pw = settings.ldap_bind_pw.get_secret_value() if settings.ldap_bind_pw else None
        self.base_dn = settings.ldap_base_dn
        self.filter = settings.ldap_filter
        if not self.servers.names:
            raise ValueError("the ldap provider needs NEUROCORTEX_LDAP_SERVER_NAMES")

    @classmethod
    def from_settings(cls, settings: Settings) -> LdapProvider:
        return cls(settings)

    def check(self, login: str, password: str) -> tuple[str, str] | None:
        connection = self.servers.connect(self.bind_dn, self.bind_pw)
        try:
            # Cortex's filter names the login `{0}`; replaced (not str.format) so braces elsewhere are safe
            search = self.filter.replace("{0}", escape_filter_chars(login))
            connection.search(self.base_dn, search, SUBTREE, attributes=["cn", "displayName"], size_limit=2)
            entries = [e for e in connection.response or [] if e.get("type") == "searchResEntry"]
        finally:
            connection.unbind()
        if len(entries) != 1:
            return None  # unknown, or ambiguous: never guess which person is meant
        entry = entries[0]
        if not _password_bind(self.servers, entry["dn"], password):
            return None
        return login.lower(), _display_name(entry.get("attributes", {}), login)


def ad_bind_name(login: str, domain_name: str | None, domain_fqdn: str | None) -> tuple[str, str]:
    """(name to bind as, neurocortex login) for what the person typed: `CORP\\alice` and
    `alice@corp.example` are used as typed; a bare `alice` becomes `DOMAIN\\alice` (or `alice@fqdn`)."""
    if "\\" in login:
        return login, login.split("\\", 1)[1].lower()
    if "@" in login:
        return login, login.split("@", 1)[0].lower()
    if domain_name:
        return f"{domain_name}\\{login}", login.lower()
    if domain_fqdn:
        return f"{login}@{domain_fqdn}", login.lower()
    raise ValueError("the ad provider needs NEUROCORTEX_AD_DOMAIN_NAME or NEUROCORTEX_AD_DOMAIN_FQDN")


class ActiveDirectoryProvider(DirectoryProvider):
    name = "ad"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.domain_name = settings.ad_domain_name
        self.domain_fqdn = settings.ad_domain_fqdn
        names = tuple(settings.ad_server_names) or (
            (settings.ad_domain_fqdn,) if settings.ad_domain_fqdn else ()
        )
        if not names:
            raise ValueError(
                "the ad provider needs NEUROCORTEX_AD_SERVER_NAMES or NEUROCORTEX_AD_DOMAIN_FQDN"
            )
        ad_bind_name("probe", self.domain_name, self.domain_fqdn)  # fails at start when neither is set
        fqdn = settings.ad_domain_fqdn or ""
        self.base_dn = ",".join(f"dc={part}" for part in fqdn.split(".") if part)
        self.servers = DirectoryServers(
            names, settings.ad_use_ssl, settings.ad_start_tls, settings.ad_ca_file, settings.ldap_timeout
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> ActiveDirectoryProvider:
        return cls(settings)

    def check(self, login: str, password: str) -> tuple[str, str] | None:
        bind_name, user_id = ad_bind_name(login, self.domain_name, self.domain_fqdn)
        try:
            connection = self.servers.connect(bind_name, password)
        except CredentialsRefused:
            return None
        name = user_id
        try:
            if self.base_dn:
                # the bound user reads their own entry for a display name
                search = f"(sAMAccountName={escape_filter_chars(user_id)})"
                connection.search(
                    self.base_dn, search, SUBTREE, attributes=["displayName", "cn"], size_limit=1
                )
                entries = [e for e in connection.response or [] if e.get("type") == "searchResEntry"]
                if entries:
                    name = _display_name(entries[0].get("attributes", {}), user_id)
        finally:
            connection.unbind()
        return user_id, name


def _display_name(attributes: dict[str, Any], fallback: str) -> str:
    for key in ("displayName", "cn"):
        value = attributes.get(key)
        if isinstance(value, list):
            value = value[0] if value else None
        if value:
            return str(value)
    return fallback
