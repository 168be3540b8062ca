"""The login page's other ways in, when configured: single sign-on through a real OpenID provider (npm
`oidc-provider`, its own login and consent pages), and the client certificate a trusted reverse proxy
vouches for (the proxy's part, nginx doing mutual TLS, is tested in tests/auth/test_x509.py; here the
browser sends the headers that proxy would)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, expect

from tests.auth.certs import CertificateAuthority
from tests.auth.oidc_provider import OidcProvider
from tests.auth.test_oidc import sso_env
from tests.conftest import Server, bootstrap_superadmin, make_server
from tests.ui.conftest import shoot

ACCOUNTS = {"alice": {"name": "Alice Analyst", "roles": ["read", "analyze"], "organization": "soc"}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = make_server(tmp_path_factory.mktemp("server"))
    provider = OidcProvider(tmp_path_factory.mktemp("oidc"), [f"{srv.url}/api/ssoLogin"], ACCOUNTS)
    srv.env |= sso_env(srv, provider.issuer, NEUROCORTEX_SSO_AUTOCREATE="true") | {
        "NEUROCORTEX_X509_HEADER": "X-SSL-Client-Cert",
        "NEUROCORTEX_TRUSTED_PROXIES": "127.0.0.1",
    }
    try:
        srv.start()
        admin = bootstrap_superadmin(srv)
        assert admin.post("/api/organization", json={"name": "soc", "description": "d"}).status_code == 201
        body = {"login": "bob", "name": "Bob Certified", "roles": ["read"], "organization": "soc"}
        assert admin.post("/api/user", json=body).status_code == 201
        yield srv
    finally:
        srv.stop()
        provider.stop()


def test_single_sign_on_button(server: Server, browser: Browser) -> None:
    page = browser.new_page()
    page.goto(f"{server.url}/ui/login")
    shoot(page, "login/with-sso-and-certificate")
    page.get_by_role("link", name="Sign in with single sign-on").click()
    # the provider's own pages: who are you, then do you allow neurocortex
    for _ in range(5):
        if page.url.startswith(f"{server.url}/ui"):
            break
        login = page.locator("input[name=login]")
        if login.count():
            login.fill("alice")
            page.locator("input[name=password]").fill("any password")
        page.locator("button[type=submit]").first.click()
        page.wait_for_load_state()
    expect(page).to_have_url(re.compile(rf"{re.escape(server.url)}/ui/.*"))
    expect(page.get_by_text("Alice Analyst")).to_be_visible()
    page.close()


def test_certificate_button(server: Server, browser: Browser, tmp_path_factory) -> None:
    authority = CertificateAuthority(tmp_path_factory.mktemp("pki"))
    pem = quote(authority.issue("bob").cert.read_text())
    certified = browser.new_context(
        extra_http_headers={"X-SSL-Client-Cert": pem, "X-SSL-Client-Verify": "SUCCESS"}
    )
    page = certified.new_page()
    page.goto(f"{server.url}/ui/login")
    page.get_by_role("button", name="Sign in with your certificate").click()
    expect(page).to_have_url(re.compile(rf"{re.escape(server.url)}/ui/.*"))
    expect(page.get_by_text("Bob Certified")).to_be_visible()
    certified.close()

    # without a verified certificate, the button says why and opens nothing
    page = browser.new_page()
    page.goto(f"{server.url}/ui/login")
    page.get_by_role("button", name="Sign in with your certificate").click()
    expect(page.get_by_role("alert")).to_contain_text("No verified client certificate")
    page.close()
