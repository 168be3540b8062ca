"""OpenID Connect single sign-on against a real provider (node's oidc-provider) started here: the
authorization-code flow with PKCE through the provider's login and consent pages, the `simple` and `group`
mappers, auto-creation and auto-update, locked and unknown users refused."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.auth.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider, browse_sso
from tests.conftest import Server, bootstrap_superadmin, drop_database, make_server

ACCOUNTS = {
    "alice": {"name": "Alice Analyst", "groups": ["soc-analysts", "everyone"]},
    "bob": {"name": "Bob Bystander", "groups": ["everyone"]},
    "dave": {"name": "Dave Promoted", "roles": ["read", "analyze"], "organization": "soc"},
    "carol": {"name": "Carol Locked", "roles": ["read"]},
    "erin": {"name": "Erin Unknown", "roles": ["read"]},
}


def sso_env(server: Server, issuer: str, **extra: str) -> dict[str, str]:
    return {
        "NEUROCORTEX_AUTH_PROVIDERS": "local,oauth2",
        "NEUROCORTEX_OAUTH2_ISSUER": issuer,
        "NEUROCORTEX_OAUTH2_CLIENT_ID": CLIENT_ID,
        "NEUROCORTEX_OAUTH2_CLIENT_SECRET": CLIENT_SECRET,
        "NEUROCORTEX_OAUTH2_REDIRECT_URI": f"{server.url}/api/ssoLogin",
        "NEUROCORTEX_OAUTH2_SCOPE": "openid,profile,groups,neurocortex",
    } | extra


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    """`simple`: roles and organization from claims, known users only, auto-update, auto-login.
    `group`: roles and organization from the groups claim, auto-creation."""
    simple = make_server(tmp_path_factory.mktemp("simple"))
    group = make_server(tmp_path_factory.mktemp("group"))
    provider = OidcProvider(
        tmp_path_factory.mktemp("oidc"), [f"{s.url}/api/ssoLogin" for s in (simple, group)], ACCOUNTS
    )
    simple.env |= sso_env(
        simple, provider.issuer, NEUROCORTEX_SSO_AUTOUPDATE="true", NEUROCORTEX_SSO_AUTOLOGIN="true"
    )
    group.env |= sso_env(
        group,
        provider.issuer,
        NEUROCORTEX_SSO_MAPPER="group",
        NEUROCORTEX_SSO_AUTOCREATE="true",
        NEUROCORTEX_SSO_GROUP_ROLES='{"soc-analysts": ["read", "analyze"], "everyone": []}',
        NEUROCORTEX_SSO_GROUP_ORGANIZATIONS='{"soc-analysts": "soc"}',
    )
    try:
        for server in (simple, group):
            server.start()
            admin = bootstrap_superadmin(server)
            assert (
                admin.post("/api/organization", json={"name": "soc", "description": "d"}).status_code == 201
            )
        yield simple, group
    finally:
        for server in (simple, group):
            server.stop()
            url = server.env.get("NEUROCORTEX_DATABASE_URL", "")
            if "nc_test_" in url:
                drop_database(url.rsplit("/", 1)[1])
        provider.stop()


def admin_of(server: Server) -> httpx.Client:
    session = httpx.Client(base_url=server.url)
    assert session.post("/api/login", json={"user": "admin", "password": "pw"}).status_code == 200
    session.headers["X-CORTEX-XSRF-TOKEN"] = session.cookies.get("CORTEX-XSRF-TOKEN", "")
    return session


def sso(server: Server, login: str) -> tuple[httpx.Client, httpx.Response]:
    browser = httpx.Client(timeout=30)
    return browser, browse_sso(browser, f"{server.url}/api/ssoLogin", login)


def test_status_advertises_sso(servers) -> None:
    simple, group = servers
    config = httpx.get(f"{simple.url}/api/status").json()["config"]
    assert config["authType"] == ["key", "local", "oauth2"] and config["ssoAutoLogin"] is True
    assert httpx.get(f"{group.url}/api/status").json()["config"]["ssoAutoLogin"] is False


def test_the_flow_uses_pkce_and_a_state(servers) -> None:
    simple, _ = servers
    start = httpx.get(f"{simple.url}/api/ssoLogin")
    assert start.status_code == 302
    query = parse_qs(urlsplit(start.headers["location"]).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) >= 43
    assert query["client_id"] == [CLIENT_ID] and query["redirect_uri"] == [f"{simple.url}/api/ssoLogin"]
    assert query["state"] and query["nonce"] and "openid" in query["scope"][0].split()
    # a code brought back without the flow started in this browser is refused
    forged = httpx.get(f"{simple.url}/api/ssoLogin", params={"code": "x", "state": query["state"][0]})
    assert forged.status_code == 401 and forged.json()["type"] == "AuthenticationError"


def test_group_mapper_creates_the_user_at_first_login(servers) -> None:
    _, group = servers
    browser, response = sso(group, "alice")
    assert response.status_code == 303 and response.headers["location"] == "/index.html", response.text
    me = browser.get(f"{group.url}/api/user/current").json()
    assert (me["id"], me["name"], me["roles"], me["organization"]) == (
        "alice",
        "Alice Analyst",
        ["read", "analyze"],
        "soc",
    )
    assert me["hasPassword"] is False
    # a second login finds the same user
    browser, response = sso(group, "alice")
    assert browser.get(f"{group.url}/api/user/current").json()["id"] == "alice"


def test_group_mapper_refuses_a_user_without_roles(servers) -> None:
    _, group = servers
    _, response = sso(group, "bob")
    assert response.status_code == 401 and response.json()["type"] == "AuthenticationError"
    assert admin_of(group).get("/api/user/bob").status_code == 404


def test_simple_mapper_refuses_an_unknown_user_without_autocreate(servers) -> None:
    simple, _ = servers
    browser, response = sso(simple, "erin")
    assert response.status_code == 401, response.text
    assert browser.get(f"{simple.url}/api/user/current").status_code == 401
    assert admin_of(simple).get("/api/user/erin").status_code == 404


def test_simple_mapper_updates_a_known_user(servers) -> None:
    simple, _ = servers
    admin = admin_of(simple)
    body = {"login": "dave", "name": "dave", "roles": ["read"], "organization": "soc"}
    assert admin.post("/api/user", json=body).status_code == 201
    browser, response = sso(simple, "dave")
    assert response.status_code == 303, response.text
    me = browser.get(f"{simple.url}/api/user/current").json()
    assert (me["name"], me["roles"]) == ("Dave Promoted", ["read", "analyze"])


def test_a_locked_user_is_refused(servers) -> None:
    simple, _ = servers
    admin = admin_of(simple)
    body = {"login": "carol", "name": "carol", "roles": ["read"], "organization": "soc", "status": "Locked"}
    assert admin.post("/api/user", json=body).status_code == 201
    _, response = sso(simple, "carol")
    assert response.status_code == 403
    assert response.json() == {"type": "AuthorizationError", "message": "Your account is locked"}
