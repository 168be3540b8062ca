"""X.509 client certificates through Debian's nginx doing mutual TLS in front of neurocortex, with
certificates made here: a good certificate logs in, an unknown or untrusted one is refused, and the
certificate headers are ignored when they do not come from the proxy."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from tests.auth.certs import CertificateAuthority, Issued
from tests.auth.conftest import running
from tests.auth.nginx import Nginx
from tests.conftest import Server, bootstrap_superadmin

PROXY_ADDRESS = "127.0.0.7"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CertificateAuthority]:
    directory = tmp_path_factory.mktemp("pki")
    return {
        "servers": CertificateAuthority(directory / "servers", "Server CA"),
        "clients": CertificateAuthority(directory / "clients", "Client CA"),
        "rogue": CertificateAuthority(directory / "rogue", "Rogue CA"),
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory, pki) -> Iterator[tuple[Server, Nginx]]:
    env = {
        "NEUROCORTEX_X509_HEADER": "X-SSL-Client-Cert",
        "NEUROCORTEX_TRUSTED_PROXIES": PROXY_ADDRESS,
    }
    with running(tmp_path_factory.mktemp("nc"), env) as server:
        admin = bootstrap_superadmin(server)
        assert admin.post("/api/organization", json={"name": "soc", "description": "d"}).status_code == 201
        for login, status in (("alice", "Ok"), ("larry", "Locked")):
            body = {
                "login": login,
                "name": login,
                "roles": ["read", "analyze"],
                "organization": "soc",
                "status": status,
            }
            assert admin.post("/api/user", json=body).status_code == 201
        proxy = Nginx(
            tmp_path_factory.mktemp("nginx"), pki["servers"], pki["clients"].cert, server.port, PROXY_ADDRESS
        )
        try:
            yield server, proxy
        finally:
            proxy.stop()


def through_proxy(proxy: Nginx, pki, client: Issued | None = None) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(pki["servers"].cert))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    return httpx.Client(base_url=proxy.url, verify=context, timeout=30)


def test_a_good_certificate_logs_in(stack, pki) -> None:
    _server, proxy = stack
    alice = pki["clients"].issue("Alice")
    with through_proxy(proxy, pki, alice) as client:
        me = client.get("/api/user/current")
        assert me.status_code == 200, me.text
        assert me.json()["id"] == "alice"
        assert "set-cookie" not in me.headers  # every request carries the certificate: no session needed
        assert client.get("/api/analyzer").status_code == 200


@pytest.mark.parametrize("who", ["nobody-here", "larry"])
def test_a_certificate_of_an_unknown_or_locked_user_is_refused(stack, pki, who: str) -> None:
    _server, proxy = stack
    with through_proxy(proxy, pki, pki["clients"].issue(who)) as client:
        response = client.get("/api/user/current")
    assert response.status_code == 401
    assert response.json() == {"type": "AuthenticationError", "message": "Authentication failure"}


def test_an_untrusted_certificate_is_refused_by_the_proxy(stack, pki) -> None:
    _server, proxy = stack
    with through_proxy(proxy, pki, pki["rogue"].issue("Alice")) as client:
        assert client.get("/api/user/current").status_code == 400  # nginx: certificate verify error


def test_no_certificate_and_forged_headers_through_the_proxy(stack, pki) -> None:
    _server, proxy = stack
    forged = quote(pki["clients"].issue("Alice").cert.read_text())
    with through_proxy(proxy, pki) as client:
        assert client.get("/api/user/current").status_code == 401
        headers = {"X-SSL-Client-Verify": "SUCCESS", "X-SSL-Client-Cert": forged}
        assert client.get("/api/user/current", headers=headers).status_code == 401


def test_certificate_headers_from_elsewhere_are_ignored(stack, pki) -> None:
    server, _proxy = stack
    forged = quote(pki["clients"].issue("Alice").cert.read_text())
    headers = {"X-SSL-Client-Verify": "SUCCESS", "X-SSL-Client-Cert": forged}
    direct = httpx.get(f"{server.url}/api/user/current", headers=headers)
    assert direct.status_code == 401
    # the same headers from the proxy's address are believed: it is the address that makes the difference
    with httpx.Client(transport=httpx.HTTPTransport(local_address=PROXY_ADDRESS)) as proxy_address:
        assert proxy_address.get(f"{server.url}/api/user/current", headers=headers).json()["id"] == "alice"


def test_login_from_email_or_common_name(pki) -> None:
    from neurocortex.auth.x509 import certificate_login

    issued = pki["clients"].issue("Alice Analyst", emails=("Alice@Example.org",))
    pem = quote(issued.cert.read_text())
    assert certificate_login(pem, "email") == "alice@example.org"
    assert certificate_login(pem, "cn") == "alice analyst"
    assert certificate_login(pem, "uid") is None
    assert certificate_login("not a certificate", "cn") is None
