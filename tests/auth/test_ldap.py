"""LDAP logins against Debian's OpenLDAP slapd started here: search the DN with the service account, bind
as it over LDAPS or StartTLS, fail over to the second server, refuse bad, locked, unknown and untrusted;
create the user at first login when auto-creation is on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from neurocortex.auth.ldap import ad_bind_name
from tests.auth.certs import CertificateAuthority
from tests.auth.conftest import running
from tests.auth.slapd import READER_DN, READER_PW, SUFFIX, Slapd, person, require_slapd
from tests.conftest import Server, bootstrap_superadmin

PEOPLE = [
    person("alice", "Alice Analyst", "alice-ldap-pw"),
    person("bob", "Bob Locked", "bob-ldap-pw", locked=True),
    person("carol", "Carol Newcomer", "carol-ldap-pw"),
    person("dave", "Dave Outsider", "dave-ldap-pw"),
    person("erin", "Erin Suspended", "erin-ldap-pw"),
]


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def directories(tmp_path_factory: pytest.TempPathFactory, ca: CertificateAuthority) -> Iterator[list[Slapd]]:
    """Two slapd servers holding the same directory, as a primary and its replica."""
    require_slapd()
    servers = [Slapd(tmp_path_factory.mktemp(name), ca) for name in ("primary", "replica")]
    try:
        for slapd in servers:
            slapd.start()
            slapd.seed(PEOPLE)
        yield servers
    finally:
        for slapd in servers:
            slapd.stop()


def ldap_env(ca: Path, *servers: str, **extra: str) -> dict[str, str]:
    return {
        "NEUROCORTEX_LDAP_SERVER_NAMES": ",".join(servers),
        "NEUROCORTEX_LDAP_BIND_DN": READER_DN,
        "NEUROCORTEX_LDAP_BIND_PW": READER_PW,
        "NEUROCORTEX_LDAP_BASE_DN": f"ou=people,{SUFFIX}",
        "NEUROCORTEX_LDAP_FILTER": "(&(objectClass=inetOrgPerson)(uid={0}))",
        "NEUROCORTEX_LDAP_CA_FILE": str(ca),
        "NEUROCORTEX_LDAP_TIMEOUT": "3",
    } | extra


@pytest.fixture(scope="module")
def server(tmp_path_factory, ca, directories) -> Iterator[Server]:
    primary, replica = directories
    env = ldap_env(ca.cert, primary.ldaps, replica.ldaps, NEUROCORTEX_AUTH_PROVIDERS="local,ldap")
    with running(tmp_path_factory.mktemp("nc"), env | {"NEUROCORTEX_LDAP_USE_SSL": "true"}) as srv:
        yield srv


@pytest.fixture(scope="module")
def admin(server: Server) -> httpx.Client:
    admin = bootstrap_superadmin(server)
    assert admin.post("/api/organization", json={"name": "soc", "description": "d"}).status_code == 201
    for login in ("alice", "bob", "erin"):
        body = {"login": login, "name": login, "roles": ["read", "analyze"], "organization": "soc"}
        assert admin.post("/api/user", json=body).status_code == 201
    assert admin.patch("/api/user/erin", json={"status": "Locked"}).status_code == 200
    return admin


def login(server: Server, user: str, password: str) -> httpx.Response:
    return httpx.post(f"{server.url}/api/login", json={"user": user, "password": password})


def test_status_lists_the_ldap_provider(server: Server, admin: httpx.Client) -> None:
    assert httpx.get(f"{server.url}/api/status").json()["config"]["authType"] == ["key", "local", "ldap"]


def test_a_directory_user_logs_in_over_ldaps(server: Server, admin: httpx.Client) -> None:
    session = httpx.Client(base_url=server.url)
    response = session.post("/api/login", json={"user": "alice", "password": "alice-ldap-pw"})
    assert response.status_code == 200, response.text
    assert response.json() == {"id": "alice", "name": "alice", "roles": ["read", "analyze"]}
    assert session.get("/api/user/current").json()["id"] == "alice"
    assert login(server, "ALICE", "alice-ldap-pw").status_code == 200  # logins are case-insensitive


@pytest.mark.parametrize(
    ("user", "password", "why"),
    [
        ("alice", "wrong", "bad password"),
        ("alice", "", "empty password (an anonymous bind to LDAP)"),
        ("bob", "bob-ldap-pw", "account locked in the directory (ppolicy)"),
        ("dave", "dave-ldap-pw", "in the directory, not in neurocortex"),
        ("erin", "erin-ldap-pw", "locked in neurocortex"),
        ("*", "alice-ldap-pw", "a filter wildcard"),
        ("nobody", "x", "unknown everywhere"),
    ],
)
def test_refused(server: Server, admin: httpx.Client, user: str, password: str, why: str) -> None:
    response = login(server, user, password)
    assert response.status_code == 401, why
    assert response.json() == {"type": "AuthenticationError", "message": "Authentication failure"}


def test_local_users_still_log_in_first(server: Server, admin: httpx.Client) -> None:
    body = {"login": "local1", "name": "L", "roles": ["read"], "organization": "soc", "password": "local-pw"}
    assert admin.post("/api/user", json=body).status_code == 201
    assert login(server, "local1", "local-pw").status_code == 200


def test_failover_to_the_second_server(server: Server, admin: httpx.Client, directories) -> None:
    primary, _replica = directories
    primary.stop()
    response = login(server, "alice", "alice-ldap-pw")
    assert response.status_code == 200, response.text
    assert login(server, "alice", "wrong").status_code == 401


def test_starttls_and_creation_at_first_login(tmp_path, ca, directories) -> None:
    _primary, replica = directories
    env = ldap_env(
        ca.cert,
        replica.ldap,
        NEUROCORTEX_AUTH_PROVIDERS="ldap,local",
        NEUROCORTEX_LDAP_START_TLS="true",
        NEUROCORTEX_DIRECTORY_AUTOCREATE="true",
        NEUROCORTEX_DIRECTORY_DEFAULT_ORGANIZATION="soc",
        NEUROCORTEX_DIRECTORY_DEFAULT_ROLES="read,analyze",
    )
    with running(tmp_path, env) as srv:
        admin = bootstrap_superadmin(srv)  # a local user, checked after the directory refused it
        assert admin.post("/api/organization", json={"name": "soc", "description": "d"}).status_code == 201
        response = login(srv, "carol", "carol-ldap-pw")
        assert response.status_code == 200, response.text
        carol = admin.get("/api/user/carol").json()
        assert (carol["name"], carol["roles"], carol["organization"]) == (
            "Carol Newcomer",
            ["read", "analyze"],
            "soc",
        )
        assert carol["hasPassword"] is False
        assert login(srv, "carol", "wrong").status_code == 401
        assert login(srv, "bob", "bob-ldap-pw").status_code == 401
        assert admin.get("/api/user/bob").status_code == 404  # a refused login creates nobody
        assert httpx.get(f"{srv.url}/api/status").json()["config"]["authType"] == ["key", "ldap", "local"]


def test_a_directory_with_an_untrusted_certificate_is_refused(tmp_path, directories) -> None:
    _primary, replica = directories
    stranger = CertificateAuthority(tmp_path / "other-ca", "Other CA")
    env = ldap_env(
        stranger.cert, replica.ldaps, NEUROCORTEX_AUTH_PROVIDERS="local,ldap", NEUROCORTEX_LDAP_USE_SSL="true"
    )
    with running(tmp_path / "nc", env) as srv:
        admin = bootstrap_superadmin(srv)
        assert admin.post("/api/organization", json={"name": "soc", "description": "d"}).status_code == 201
        body = {"login": "alice", "name": "alice", "roles": ["read"], "organization": "soc"}
        assert admin.post("/api/user", json=body).status_code == 201
        assert login(srv, "alice", "alice-ldap-pw").status_code == 401
        assert "certificate verify failed" in srv.log().lower() or "certificate" in srv.log().lower()
        # the local provider before it is unaffected by the unreachable directory
        assert login(srv, "admin", "pw").status_code == 200


@pytest.mark.parametrize(
    ("typed", "domain_name", "fqdn", "expected"),
    [
        ("alice", "CORP", "corp.example", ("CORP\\alice", "alice")),
        ("alice", None, "corp.example", ("alice@corp.example", "alice")),
        ("CORP\\Alice", "CORP", None, ("CORP\\Alice", "alice")),
        ("Alice@corp.example", "CORP", None, ("Alice@corp.example", "alice")),
    ],
)
def test_active_directory_bind_names(typed, domain_name, fqdn, expected) -> None:
    assert ad_bind_name(typed, domain_name, fqdn) == expected
