"""The Active Directory provider against a real Samba AD domain controller: `CORP\\user`, `user@domain` and
bare logins over LDAPS, a wrong password and a disabled account refused. Skipped where no Samba AD DC can
run (CI: see the README); its LDAP side is covered against slapd in test_ldap.py."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.auth.certs import CertificateAuthority
from tests.auth.conftest import running
from tests.auth.samba import DOMAIN, SambaDomainController, require_samba
from tests.conftest import Server, bootstrap_superadmin


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_samba()
    ca = CertificateAuthority(tmp_path_factory.mktemp("ca"))
    dc = SambaDomainController(tmp_path_factory.mktemp("samba"), ca)
    dc.start()
    try:
        dc.tool("user", "create", "alice", "Alice-Passw0rd!", "--given-name=Alice", "--surname=Analyst")
        dc.tool("user", "create", "bob", "Bob-Passw0rd!")
        dc.tool("user", "disable", "bob")
        env = {
            "NEUROCORTEX_AUTH_PROVIDERS": "local,ad",
            "NEUROCORTEX_AD_DOMAIN_FQDN": "corp.example",
            "NEUROCORTEX_AD_DOMAIN_NAME": DOMAIN,
            "NEUROCORTEX_AD_SERVER_NAMES": "127.0.0.1",
            "NEUROCORTEX_AD_USE_SSL": "true",
            "NEUROCORTEX_AD_CA_FILE": str(ca.cert),
            "NEUROCORTEX_DIRECTORY_AUTOCREATE": "true",
            "NEUROCORTEX_DIRECTORY_DEFAULT_ORGANIZATION": "soc",
            "NEUROCORTEX_DIRECTORY_DEFAULT_ROLES": "read",
        }
        with running(tmp_path_factory.mktemp("nc"), env) as srv:
            admin = bootstrap_superadmin(srv)
            assert (
                admin.post("/api/organization", json={"name": "soc", "description": "d"}).status_code == 201
            )
            yield srv
    finally:
        dc.stop()


def login(server: Server, user: str, password: str) -> httpx.Response:
    return httpx.post(f"{server.url}/api/login", json={"user": user, "password": password}, timeout=30)


@pytest.mark.parametrize("typed", ["CORP\\alice", "alice@corp.example", "alice", "ALICE"])
def test_the_bind_forms_log_in_as_one_user(server: Server, typed: str) -> None:
    response = login(server, typed, "Alice-Passw0rd!")
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "alice"
    assert response.json()["name"] == "Alice Analyst"  # created at the first login, named from AD


@pytest.mark.parametrize(
    ("typed", "password"),
    [("CORP\\alice", "wrong"), ("alice@corp.example", ""), ("bob", "Bob-Passw0rd!"), ("nobody", "x")],
)
def test_refused(server: Server, typed: str, password: str) -> None:
    assert login(server, typed, password).status_code == 401
