"""The authentication framework against a real server: providers listed by /api/status, HTTP Basic and
header authentication (off by default, header only from a trusted proxy address), the password policy, and
login throttling per account and per source address."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.auth.conftest import running
from tests.conftest import Server, bearer, xsrf_header

WINDOW = 15  # seconds of the failure window here (60 by default): the test waits out its end once
ADMIN_PASSWORD = "Adm1n-password!"


def client_from(server: Server, address: str, **kwargs) -> httpx.Client:
    """A client whose connections leave from this loopback address, so the server sees it as the source."""
    return httpx.Client(
        base_url=server.url, transport=httpx.HTTPTransport(local_address=address), timeout=30, **kwargs
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(
        tmp_path_factory.mktemp("auth"),
        {
            "NEUROCORTEX_AUTH_BASIC": "true",
            "NEUROCORTEX_AUTH_HEADER": "X-Remote-User",
            "NEUROCORTEX_TRUSTED_PROXIES": "127.0.0.2/32",
            "NEUROCORTEX_LOGIN_FAILURE_WINDOW": str(WINDOW),
            "NEUROCORTEX_LOGIN_MAX_ADDRESS_FAILURES": "15",
            "NEUROCORTEX_PASSWORD_MIN_LENGTH": "10",
            "NEUROCORTEX_PASSWORD_MIN_CLASSES": "3",
        },
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def admin(server: Server) -> httpx.Client:
    anonymous = httpx.Client(base_url=server.url, timeout=30)
    body = {"login": "admin", "name": "A", "roles": ["superadmin"], "organization": "cortex"}
    weak = anonymous.post("/api/user", json=body | {"password": "short"})
    assert weak.status_code == 400, weak.text
    assert "at least 10 characters" in weak.json()["message"]
    assert anonymous.post("/api/user", json=body | {"password": ADMIN_PASSWORD}).status_code == 201
    assert anonymous.post("/api/login", json={"user": "admin", "password": ADMIN_PASSWORD}).status_code == 200
    key = anonymous.post("/api/user/admin/key/renew", headers=xsrf_header(anonymous)).text
    admin = bearer(server.url, key)
    assert admin.post("/api/organization", json={"name": "soc", "description": "d"}).status_code == 201
    return admin


def new_user(admin: httpx.Client, login: str, password: str = "Analyst-pass-1") -> str:
    body = {"login": login, "name": login, "roles": ["read", "analyze"], "organization": "soc"}
    response = admin.post("/api/user", json=body | {"password": password})
    assert response.status_code == 201, response.text
    return login


def test_status_lists_key_then_the_configured_providers(server: Server, admin: httpx.Client) -> None:
    config = httpx.get(f"{server.url}/api/status").json()["config"]
    assert config["authType"] == ["key", "local"]
    assert config["capabilities"] == ["authByKey", "changePassword", "setPassword"]
    assert config["ssoAutoLogin"] is False


def test_password_policy_applies_to_every_way_of_setting_a_password(server: Server, admin: httpx.Client):
    user = new_user(admin, "policy-user")
    for weak, reason in (("Sh0rt!", "at least 10 characters"), ("alllowercaseletters", "at least 3 of")):
        response = admin.post(f"/api/user/{user}/password/set", json={"password": weak})
        assert response.status_code == 400 and reason in response.json()["message"], response.text
        assert response.json()["type"] == "BadRequest"
    session = httpx.Client(base_url=server.url, timeout=30)
    assert session.post("/api/login", json={"user": user, "password": "Analyst-pass-1"}).status_code == 200
    changed = session.post(
        f"/api/user/{user}/password/change",
        json={"currentPassword": "Analyst-pass-1", "password": "onlylower1"},
        headers=xsrf_header(session),
    )
    assert changed.status_code == 400, changed.text
    # the refused password changed nothing
    assert session.post("/api/login", json={"user": user, "password": "Analyst-pass-1"}).status_code == 200
    assert (
        admin.post(f"/api/user/{user}/password/set", json={"password": "Strong-enough-2"}).status_code == 204
    )
    assert session.post("/api/login", json={"user": user, "password": "Strong-enough-2"}).status_code == 200


def test_http_basic_authenticates_through_the_providers(server: Server, admin: httpx.Client) -> None:
    user = new_user(admin, "basic-user")
    good = httpx.get(f"{server.url}/api/user/current", auth=(user, "Analyst-pass-1"))
    assert good.status_code == 200 and good.json()["id"] == user
    assert "set-cookie" not in good.headers  # a Basic client gets no session to be forged against
    bad = httpx.get(f"{server.url}/api/user/current", auth=(user, "wrong-password"))
    assert bad.status_code == 401
    assert bad.json() == {"type": "AuthenticationError", "message": "Authentication failure"}
    garbage = httpx.get(f"{server.url}/api/user/current", headers={"Authorization": "Basic !!!"})
    assert garbage.status_code == 401
    assert admin.patch(f"/api/user/{user}", json={"status": "Locked"}).status_code == 200
    assert httpx.get(f"{server.url}/api/user/current", auth=(user, "Analyst-pass-1")).status_code == 401


def test_login_header_is_believed_only_from_a_trusted_proxy(server: Server, admin: httpx.Client) -> None:
    user = new_user(admin, "header-user")
    with client_from(server, "127.0.0.2") as proxy:
        me = proxy.get("/api/user/current", headers={"X-Remote-User": user.upper()})
        assert me.status_code == 200 and me.json()["id"] == user  # lower-cased, as Cortex
        assert proxy.get("/api/user/current", headers={"X-Remote-User": "nobody"}).status_code == 401
    with client_from(server, "127.0.0.1") as elsewhere:
        assert elsewhere.get("/api/user/current", headers={"X-Remote-User": user}).status_code == 401
        assert elsewhere.get("/api/user/current", headers={"X-Remote-User": "admin"}).status_code == 401
    assert admin.patch(f"/api/user/{user}", json={"status": "Locked"}).status_code == 200
    with client_from(server, "127.0.0.2") as proxy:
        assert proxy.get("/api/user/current", headers={"X-Remote-User": user}).status_code == 401


def test_the_eleventh_bad_password_is_throttled_then_the_window_passes(server: Server, admin: httpx.Client):
    user = new_user(admin, "guessed-user")
    bystander = new_user(admin, "bystander")
    with client_from(server, "127.0.0.4") as attacker:
        for attempt in range(10):
            response = attacker.post("/api/login", json={"user": user, "password": f"guess-{attempt}"})
            assert response.status_code == 401, (attempt, response.text)
        throttled = attacker.post("/api/login", json={"user": user, "password": "guess-10"})
        assert throttled.status_code == 429, throttled.text
        body = throttled.json()
        assert body["type"] == "RateLimitExceeded"
        assert body["message"].startswith("Too many failed logins for this account: try again in")
        # the right password does not get through while throttled, by form or by Basic
        right = {"user": user, "password": "Analyst-pass-1"}
        assert attacker.post("/api/login", json=right).status_code == 429
        assert httpx.get(f"{server.url}/api/user/current", auth=(user, "Analyst-pass-1")).status_code == 429
        # other accounts are not locked out by someone guessing this one
        assert (
            attacker.post("/api/login", json={"user": bystander, "password": "Analyst-pass-1"}).status_code
            == 200
        )
        wait = int(body["message"].rsplit(" ", 2)[1])
        assert 0 < wait <= WINDOW
        time.sleep(wait + 0.5)
        assert attacker.post("/api/login", json=right).status_code == 200


def test_one_address_guessing_many_accounts_is_throttled(server: Server, admin: httpx.Client) -> None:
    victim = new_user(admin, "sprayed-user")
    with client_from(server, "127.0.0.5") as sprayer:
        for n in range(15):
            assert (
                sprayer.post("/api/login", json={"user": f"u{n}", "password": "Spring2026!"}).status_code
                == 401
            )
        response = sprayer.post("/api/login", json={"user": victim, "password": "Analyst-pass-1"})
        assert response.status_code == 429
        assert response.json()["message"].startswith("Too many failed logins for this address")
    with client_from(server, "127.0.0.6") as colleague:
        assert (
            colleague.post("/api/login", json={"user": victim, "password": "Analyst-pass-1"}).status_code
            == 200
        )


def test_basic_and_header_authentication_are_off_by_default(tmp_path) -> None:
    with running(tmp_path, {"NEUROCORTEX_TRUSTED_PROXIES": "127.0.0.0/8"}) as srv:
        anonymous = httpx.Client(base_url=srv.url, timeout=30)
        body = {
            "login": "admin",
            "name": "A",
            "roles": ["superadmin"],
            "organization": "cortex",
            "password": "pw",
        }
        assert anonymous.post("/api/user", json=body).status_code == 201
        assert httpx.get(f"{srv.url}/api/user/current", auth=("admin", "pw")).status_code == 401
        assert anonymous.get("/api/user/current", headers={"X-Remote-User": "admin"}).status_code == 401
        assert anonymous.post("/api/login", json={"user": "admin", "password": "pw"}).status_code == 200
