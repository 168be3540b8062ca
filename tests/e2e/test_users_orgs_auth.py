"""Organizations, users, passwords and API keys (§3.2, §3.3), authentication, sessions and CSRF (§6),
first-run bootstrap (§8) and secrets at rest."""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from neurocortex.auth.sessions import encode_session
from neurocortex.crypto import SecretBox
from tests.conftest import Server, Tenant, bearer, enable, make_server, new_tenant, xsrf_header

AUTH_FAILURE = {"type": "AuthenticationError", "message": "Authentication failure"}
NOT_AUTHORIZED = "You are not authorized to perform this action"


def ok(response: httpx.Response, status: int = 200):
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url}: {response.text}"
    )
    return response.json() if response.content else None


def error(response: httpx.Response, status: int, kind: str | None = None, message: str | None = None) -> dict:
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url}: {response.text}"
    )
    body = response.json()
    assert isinstance(body.get("type"), str) and isinstance(body.get("message"), str), body
    if kind is not None:
        assert body["type"] == kind, body
    if message is not None:
        assert body["message"] == message, body
    return body


def attribute_errors(response: httpx.Response) -> list[tuple[str, str]]:
    body = error(response, 400, "AttributeCheckingError")
    return [(e["type"], e["name"]) for e in body["errors"]]


def text_key(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain"), response.headers
    return response.text


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def create_user(
    client: httpx.Client, org: str, roles: list[str], password: str | None = None, **extra
) -> str:
    login = unique(f"{org}-u")
    body = {"login": login, "name": login, "roles": roles, "organization": org} | extra
    if password:
        body["password"] = password
    ok(client.post("/api/user", json=body), 201)
    return login


def login(server: Server, user: str, password: str) -> httpx.Client:
    session = httpx.Client(base_url=server.url, timeout=60)
    response = session.post("/api/login", json={"user": user, "password": password})
    assert response.status_code == 200, response.text
    return session


def sqlite_path(server: Server) -> Path:
    if server.env.get("NEUROCORTEX_DATABASE_URL"):
        pytest.skip("reads the SQLite file of the server")
    return server.data_dir / "neurocortex.db"


# -- organizations --


def test_cortex_organization_is_fixed(superadmin: httpx.Client) -> None:
    error(
        superadmin.patch("/api/organization/cortex", json={"description": "x"}),
        400,
        "BadRequest",
        "Cortex organization can't be updated",
    )
    error(
        superadmin.patch("/api/organization/cortex", json={"status": "Locked"}),
        400,
        "BadRequest",
        "Cortex organization can't be updated",
    )
    error(
        superadmin.delete("/api/organization/cortex"),
        400,
        "BadRequest",
        "Cortex organization can't be removed",
    )
    cortex = ok(superadmin.get("/api/organization/cortex"))
    assert cortex["status"] == "Active" and cortex["description"] == "Default organization"


def test_organization_create_update_lock(superadmin: httpx.Client, tenant: Tenant) -> None:
    name = unique("neworg")
    created = ok(superadmin.post("/api/organization", json={"name": name, "description": "first"}), 201)
    assert created["name"] == name and created["id"] == name and created["_id"] == name
    assert created["status"] == "Active" and created["description"] == "first"
    assert created["createdBy"] == "admin" and isinstance(created["createdAt"], int)
    conflict = error(
        superadmin.post("/api/organization", json={"name": name, "description": "again"}),
        400,
        "ConflictError",
    )
    assert "object" in conflict
    assert attribute_errors(superadmin.post("/api/organization", json={"name": unique("nodesc")})) == [
        ("MissingAttributeError", "description")
    ]
    assert ("UnknownAttributeError", "color") in attribute_errors(
        superadmin.post("/api/organization", json={"name": unique("o"), "description": "d", "color": "red"})
    )
    error(
        tenant.admin.post("/api/organization", json={"name": unique("o"), "description": "d"}),
        403,
        "AuthorizationError",
    )
    error(tenant.admin.patch(f"/api/organization/{tenant.org}", json={"description": "mine"}), 403)

    updated = ok(superadmin.patch(f"/api/organization/{name}", json={"description": "second"}))
    assert updated["description"] == "second" and updated["updatedBy"] == "admin"
    assert attribute_errors(superadmin.patch(f"/api/organization/{name}", json={"name": "renamed"}))
    error(superadmin.patch("/api/organization/no-such-org", json={"description": "x"}), 404, "NotFoundError")

    member = create_user(superadmin, name, ["read"])
    key = text_key(superadmin.post(f"/api/user/{member}/key/renew"))
    assert ok(bearer(str(superadmin.base_url), key).get("/api/user/current"))["id"] == member
    deleted = superadmin.delete(f"/api/organization/{name}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert ok(superadmin.get(f"/api/organization/{name}"))["status"] == "Locked"
    assert bearer(str(superadmin.base_url), key).get("/api/user/current").json() == AUTH_FAILURE
    # users cannot be created in a locked organization
    error(
        superadmin.post(
            "/api/user", json={"login": unique("late"), "name": "l", "roles": ["read"], "organization": name}
        ),
        403,
        message=NOT_AUTHORIZED,
    )
    assert ok(superadmin.patch(f"/api/organization/{name}", json={"status": "Active"}))["status"] == "Active"
    assert ok(bearer(str(superadmin.base_url), key).get("/api/user/current"))["id"] == member


def test_organization_stats(superadmin: httpx.Client) -> None:
    org = new_tenant(superadmin)
    ok(superadmin.patch(f"/api/user/{org.org}-reader", json={"status": "Locked"}))
    enable(org.admin, "analyzer", "NoOp_1_0")
    expected = {"users": {"Ok": 2, "Locked": 1, "total": 3}, "workers": {"total": 1}}
    assert ok(superadmin.get(f"/api/organization/{org.org}", params={"nstats": "true"}))["stats"] == expected
    assert ok(org.admin.get(f"/api/organization/{org.org}", params={"nstats": "true"}))["stats"] == expected
    assert "stats" not in ok(superadmin.get(f"/api/organization/{org.org}"))
    listed = ok(superadmin.get("/api/organization", params={"nstats": "true", "range": "all"}))
    assert next(o for o in listed if o["id"] == org.org)["stats"] == expected
    assert all("stats" in o for o in listed)
    assert all("stats" not in o for o in ok(superadmin.get("/api/organization", params={"range": "all"})))
    searched = ok(
        superadmin.post(
            "/api/organization/_search", json={"query": {"_field": "name", "_value": org.org}, "nstats": True}
        )
    )
    assert [o["stats"] for o in searched] == [expected]

    active = ok(
        superadmin.post(
            "/api/organization/_search",
            json={"query": {"_field": "status", "_value": "Active"}, "range": "all"},
        )
    )
    count = ok(
        superadmin.post(
            "/api/organization/_stats",
            json={"query": {"_field": "status", "_value": "Active"}, "stats": [{"_agg": "count"}]},
        )
    )
    assert count == {"count": len(active)} and count["count"] >= 2
    assert (
        ok(
            superadmin.post(
                "/api/organization/_stats", json={"query": {}, "stats": [{"_agg": "count", "_name": "all"}]}
            )
        )["all"]
        >= count["count"]
    )
    error(superadmin.post("/api/organization/_stats", json={"query": {}}), 400)
    error(org.admin.post("/api/organization/_stats", json={"query": {}, "stats": [{"_agg": "count"}]}), 403)


# -- users: creation --


def test_user_creation_rules(server: Server, superadmin: httpx.Client, tenant: Tenant) -> None:
    other = new_tenant(superadmin)
    mine = ok(
        tenant.admin.post(
            "/api/user", json={"login": unique("own"), "name": "Own", "roles": ["READ", "Analyze"]}
        ),
        201,
    )
    assert mine["organization"] == tenant.org and mine["roles"] == ["read", "analyze"]
    assert mine["hasKey"] is False and mine["hasPassword"] is False and mine["status"] == "Ok"
    assert not {"password", "key", "preferences"} & set(mine)
    with_password = ok(
        tenant.admin.post(
            "/api/user", json={"login": unique("pw"), "name": "P", "roles": ["read"], "password": "Secret-1"}
        ),
        201,
    )
    assert with_password["hasPassword"] is True and "password" not in with_password
    login(server, with_password["id"], "Secret-1")

    for body in (
        {"roles": ["read", "superadmin"]},  # an orgadmin cannot create a superadmin...
        {"roles": ["read"], "organization": other.org},  # ...nor a user of another organization
        {"roles": ["read"], "organization": "no-such-org"},
        {"roles": ["superadmin"], "organization": "cortex"},
    ):
        response = tenant.admin.post("/api/user", json={"login": unique("no"), "name": "no"} | body)
        error(response, 403, "AuthorizationError", NOT_AUTHORIZED)
    error(
        superadmin.post(
            "/api/user",
            json={"login": unique("no"), "name": "n", "roles": ["read"], "organization": "no-such-org"},
        ),
        403,
        message=NOT_AUTHORIZED,
    )
    error(tenant.analyst.post("/api/user", json={"login": unique("no"), "name": "n", "roles": ["read"]}), 403)
    error(tenant.reader.post("/api/user", json={"login": unique("no"), "name": "n", "roles": ["read"]}), 403)

    # a superadmin creates users anywhere, and superadmins in cortex only
    assert ok(
        superadmin.post(
            "/api/user",
            json={"login": unique("sa"), "name": "s", "roles": ["superadmin"], "organization": "cortex"},
        ),
        201,
    )["roles"] == ["superadmin"]
    assert (
        ok(
            superadmin.post(
                "/api/user",
                json={
                    "login": unique("oa"),
                    "name": "o",
                    "roles": ["read", "orgadmin"],
                    "organization": other.org,
                },
            ),
            201,
        )["organization"]
        == other.org
    )
    error(
        superadmin.post(
            "/api/user",
            json={
                "login": unique("no"),
                "name": "n",
                "roles": ["read", "superadmin"],
                "organization": other.org,
            },
        ),
        400,
        message='The organization "cortex" alone can contain superadmin users',
    )

    duplicate = error(
        tenant.admin.post("/api/user", json={"login": mine["id"], "name": "again", "roles": ["read"]}),
        400,
        "ConflictError",
    )
    assert "object" in duplicate
    assert ("UnknownAttributeError", "shoeSize") in attribute_errors(
        tenant.admin.post(
            "/api/user", json={"login": unique("x"), "name": "x", "roles": ["read"], "shoeSize": 44}
        )
    )
    assert ("MissingAttributeError", "name") in attribute_errors(
        tenant.admin.post("/api/user", json={"login": unique("x"), "roles": ["read"]})
    )
    assert ("InvalidFormatAttributeError", "roles") in attribute_errors(
        tenant.admin.post("/api/user", json={"login": unique("x"), "name": "x", "roles": ["root"]})
    )


# -- users: updates --


def test_self_update_rules(server: Server, superadmin: httpx.Client, tenant: Tenant) -> None:
    me = f"{tenant.org}-analyst"
    for body, message in (
        ({"organization": tenant.org}, "You can't change your organization"),
        ({"roles": ["read", "analyze"]}, "You can't change your role"),
        ({"status": "Ok"}, "You can't change your status"),
        (
            {"password": "new-password"},
            "You must use dedicated API (setPassword, changePassword) to update password",
        ),
        ({"key": "k" * 32}, "You must use dedicated API (renewKey, removeKey) to update key"),
    ):
        error(tenant.analyst.patch(f"/api/user/{me}", json=body), 403, "AuthorizationError", message)
    error(
        tenant.admin.patch(f"/api/user/{tenant.org}-admin", json={"roles": ["read"]}),
        403,
        message="You can't change your role",
    )
    error(
        superadmin.patch("/api/user/admin", json={"status": "Locked"}),
        403,
        message="You can't change your status",
    )
    # password and key are refused for admins too
    error(
        superadmin.patch(f"/api/user/{me}", json={"password": "x"}),
        403,
        message="You must use dedicated API (setPassword, changePassword) to update password",
    )
    error(
        tenant.admin.patch(f"/api/user/{me}", json={"key": "x"}),
        403,
        message="You must use dedicated API (renewKey, removeKey) to update key",
    )
    renamed = ok(tenant.analyst.patch(f"/api/user/{me}", json={"name": "Ana Lyst", "avatar": "aGVsbG8="}))
    assert (
        renamed["name"] == "Ana Lyst"
        and renamed["avatar"] == "aGVsbG8="
        and renamed["roles"] == ["read", "analyze"]
    )

    # preferences: stored on PATCH, returned by /api/user/current only
    ok(tenant.analyst.patch(f"/api/user/{me}", json={"preferences": {"theme": "dark", "pageSize": 50}}))
    current = ok(tenant.analyst.get("/api/user/current"))
    assert current["id"] == me and current["preferences"] == {"theme": "dark", "pageSize": 50}
    assert current["organization"] == tenant.org and current["hasKey"] is True
    assert "preferences" not in ok(tenant.analyst.get(f"/api/user/{me}"))
    assert ok(tenant.reader.get("/api/user/current"))["preferences"] == {}
    ok(tenant.analyst.patch(f"/api/user/{me}", json={"preferences": '{"fromText": true}'}))
    assert ok(tenant.analyst.get("/api/user/current"))["preferences"] == {"fromText": True}


def test_admin_update_rules(superadmin: httpx.Client, tenant: Tenant) -> None:
    other = new_tenant(superadmin)
    target = create_user(tenant.admin, tenant.org, ["read"])
    second_superadmin = create_user(superadmin, "cortex", ["superadmin"])

    # superadmin: the cortex organization holds superadmins only, and only it
    error(
        superadmin.patch(f"/api/user/{target}", json={"roles": ["read", "superadmin"]}),
        400,
        "BadRequest",
        'The organization "cortex" alone can contain superadmin users',
    )
    error(
        superadmin.patch(f"/api/user/{second_superadmin}", json={"roles": ["read"]}),
        400,
        "BadRequest",
        'The organization "cortex" can contain only superadmin users',
    )
    error(
        superadmin.patch(f"/api/user/{target}", json={"organization": "cortex"}),
        400,
        "BadRequest",
        'The organization "cortex" can contain only superadmin users',
    )
    error(superadmin.patch(f"/api/user/{target}", json={"organization": "no-such-org"}), 400, "BadRequest")
    moved = ok(
        superadmin.patch(
            f"/api/user/{target}", json={"organization": other.org, "roles": ["read", "analyze"]}
        )
    )
    assert moved["organization"] == other.org and moved["roles"] == ["read", "analyze"]
    ok(superadmin.patch(f"/api/user/{target}", json={"organization": tenant.org}))
    assert ok(superadmin.patch(f"/api/user/{second_superadmin}", json={"name": "Second"}))["name"] == "Second"
    error(superadmin.patch("/api/user/no-such-user", json={"name": "x"}), 404, "NotFoundError")
    assert ("UpdateReadOnlyAttributeError", "login") in attribute_errors(
        superadmin.patch(f"/api/user/{target}", json={"login": "renamed"})
    )
    assert ("UnknownAttributeError", "bogus") in attribute_errors(
        superadmin.patch(f"/api/user/{target}", json={"bogus": 1})
    )
    assert ("InvalidFormatAttributeError", "status") in attribute_errors(
        superadmin.patch(f"/api/user/{target}", json={"status": "Gone"})
    )

    # orgadmin: own organization's users only, never superadmin, never elsewhere
    error(
        tenant.admin.patch(f"/api/user/{target}", json={"roles": ["read", "superadmin"]}),
        403,
        "AuthorizationError",
    )
    error(
        tenant.admin.patch(f"/api/user/{target}", json={"organization": other.org}), 403, "AuthorizationError"
    )
    error(tenant.admin.patch(f"/api/user/{second_superadmin}", json={"name": "x"}), 404, "NotFoundError")
    updated = ok(
        tenant.admin.patch(
            f"/api/user/{target}", json={"roles": ["read", "analyze", "orgadmin"], "name": "Promoted"}
        )
    )
    assert updated["roles"] == ["read", "analyze", "orgadmin"] and updated["name"] == "Promoted"
    assert ok(tenant.admin.patch(f"/api/user/{target}", json={"status": "Locked"}))["status"] == "Locked"
    assert ok(tenant.admin.patch(f"/api/user/{target}", json={"status": "Ok"}))["status"] == "Ok"

    # anyone else
    for client in (tenant.analyst, tenant.reader):
        error(
            client.patch(f"/api/user/{target}", json={"name": "x"}),
            403,
            "AuthorizationError",
            "You are not permitted to change user settings",
        )
    assert ok(tenant.admin.get(f"/api/user/{target}"))["name"] == "Promoted"


def test_delete_locks_the_user(server: Server, superadmin: httpx.Client, tenant: Tenant) -> None:
    target = create_user(tenant.admin, tenant.org, ["read"], password="Gone-1")
    key = text_key(tenant.admin.post(f"/api/user/{target}/key/renew"))
    error(tenant.analyst.delete(f"/api/user/{target}"), 403)
    deleted = tenant.admin.delete(f"/api/user/{target}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert ok(tenant.admin.get(f"/api/user/{target}"))["status"] == "Locked"
    assert bearer(server.url, key).get("/api/user/current").json() == AUTH_FAILURE
    assert (
        httpx.post(f"{server.url}/api/login", json={"user": target, "password": "Gone-1"}).json()
        == AUTH_FAILURE
    )
    error(
        tenant.admin.delete(f"/api/user/{tenant.org}-admin"),
        400,
        "BadRequest",
        "You cannot disable your own account",
    )
    error(superadmin.delete("/api/user/admin"), 400, "BadRequest", "You cannot disable your own account")
    error(tenant.admin.delete("/api/user/no-such-user"), 404, "NotFoundError")
    # a locked user can be unlocked; the key they had works again
    ok(tenant.admin.patch(f"/api/user/{target}", json={"status": "Ok"}))
    assert ok(bearer(server.url, key).get("/api/user/current"))["id"] == target


# -- passwords and keys --


def test_passwords(server: Server, superadmin: httpx.Client, tenant: Tenant) -> None:
    target = create_user(tenant.admin, tenant.org, ["read", "analyze"])
    assert httpx.post(f"{server.url}/api/login", json={"user": target, "password": ""}).status_code == 401
    response = tenant.admin.post(f"/api/user/{target}/password/set", json={"password": "First-pass-1"})
    assert response.status_code == 204 and response.content == b""
    assert ok(tenant.admin.get(f"/api/user/{target}"))["hasPassword"] is True
    session = login(server, target, "First-pass-1")
    assert ok(session.get("/api/user/current"))["id"] == target
    assert (
        ok(superadmin.post(f"/api/user/{target}/password/set", json={"password": "By-superadmin"}), 204)
        is None
    )
    login(server, target, "By-superadmin")
    error(tenant.analyst.post(f"/api/user/{target}/password/set", json={"password": "x"}), 403)
    assert ("MissingAttributeError", "password") in attribute_errors(
        tenant.admin.post(f"/api/user/{target}/password/set", json={})
    )
    error(tenant.admin.post("/api/user/no-such-user/password/set", json={"password": "x"}), 404)

    # change: self only, with the current password
    key = text_key(tenant.admin.post(f"/api/user/{target}/key/renew"))
    me = bearer(server.url, key)
    error(
        me.post(
            f"/api/user/{target}/password/change", json={"currentPassword": "wrong", "password": "New-1"}
        ),
        403,
        "AuthorizationError",
        "Authentication failure",
    )
    changed = me.post(
        f"/api/user/{target}/password/change",
        json={"currentPassword": "By-superadmin", "password": "Changed-2"},
    )
    assert changed.status_code == 204
    login(server, target, "Changed-2")
    assert (
        httpx.post(f"{server.url}/api/login", json={"user": target, "password": "By-superadmin"}).status_code
        == 401
    )
    for client in (tenant.admin, superadmin):
        error(
            client.post(
                f"/api/user/{target}/password/change",
                json={"currentPassword": "Changed-2", "password": "Hijack-3"},
            ),
            403,
            "AuthorizationError",
            "You can't change password of another user",
        )
    login(server, target, "Changed-2")


def test_api_keys(server: Server, superadmin: httpx.Client, tenant: Tenant) -> None:
    target = create_user(tenant.admin, tenant.org, ["read"])
    error(tenant.admin.get(f"/api/user/{target}/key"), 400, "BadRequest", f"User {target} hasn't key")
    key = text_key(tenant.admin.post(f"/api/user/{target}/key/renew"))
    assert len(key) == 32 and text_key(tenant.admin.get(f"/api/user/{target}/key")) == key
    assert text_key(superadmin.get(f"/api/user/{target}/key")) == key
    me = bearer(server.url, key)
    assert ok(me.get("/api/user/current"))["hasKey"] is True
    # users get and renew their own key, not others'
    assert text_key(me.get(f"/api/user/{target}/key")) == key
    error(me.get(f"/api/user/{tenant.org}-analyst/key"), 403, "AuthorizationError")
    error(me.post(f"/api/user/{tenant.org}-analyst/key/renew"), 403, "AuthorizationError")
    renewed = text_key(me.post(f"/api/user/{target}/key/renew"))
    assert renewed != key
    assert me.get("/api/user/current").status_code == 401
    me = bearer(server.url, renewed)
    assert ok(me.get("/api/user/current"))["id"] == target

    # set: orgadmin or superadmin, at least 32 characters, then usable
    error(
        tenant.admin.post(f"/api/user/{target}/key/set", json={"key": "too-short"}),
        400,
        "BadRequest",
        "A safe key must be at least 32 chars",
    )
    error(tenant.admin.post(f"/api/user/{target}/key/set", json={}), 400)
    error(me.post(f"/api/user/{target}/key/set", json={"key": "m" * 40}), 403)
    chosen = "chosen-key-" + secrets.token_hex(16)
    assert text_key(tenant.admin.post(f"/api/user/{target}/key/set", json={"key": chosen})) == chosen
    assert me.get("/api/user/current").status_code == 401
    assert ok(bearer(server.url, chosen).get("/api/user/current"))["id"] == target
    assert text_key(tenant.admin.get(f"/api/user/{target}/key")) == chosen

    # revoke
    error(bearer(server.url, chosen).delete(f"/api/user/{target}/key"), 403)
    revoked = tenant.admin.delete(f"/api/user/{target}/key")
    assert revoked.status_code == 204 and revoked.content == b""
    assert bearer(server.url, chosen).get("/api/user/current").json() == AUTH_FAILURE
    assert ok(tenant.admin.get(f"/api/user/{target}"))["hasKey"] is False
    error(tenant.admin.get(f"/api/user/{target}/key"), 400, message=f"User {target} hasn't key")
    error(tenant.admin.get("/api/user/no-such-user/key"), 404, "NotFoundError")
    # TheHive 4's `key` auth type sends the key without the Bearer prefix: not accepted, as in Cortex
    assert (
        httpx.get(f"{server.url}/api/user/current", headers={"Authorization": tenant.analyst_key}).status_code
        == 401
    )


# -- authentication --


def test_login(server: Server, superadmin: httpx.Client, tenant: Tenant) -> None:
    user = create_user(tenant.admin, tenant.org, ["read", "analyze"], password="Login-pass-1")
    response = httpx.post(f"{server.url}/api/login", json={"user": user, "password": "Login-pass-1"})
    assert response.status_code == 200
    assert response.json() == {"id": user, "name": user, "roles": ["read", "analyze"]}
    assert response.cookies.get("CORTEX_SESSION") and response.cookies.get("CORTEX-XSRF-TOKEN")
    # Cortex reads the same fields from a form or the query string
    assert (
        httpx.post(f"{server.url}/api/login", data={"user": user, "password": "Login-pass-1"}).status_code
        == 200
    )
    assert (
        httpx.post(f"{server.url}/api/login", params={"user": user, "password": "Login-pass-1"}).status_code
        == 200
    )

    for body in (
        {"user": user, "password": "wrong"},
        {"user": "nobody-here", "password": "x"},
        {"user": user},
        {"password": "Login-pass-1"},
        {},
        {"user": user, "password": None},
        {"user": 1, "password": 2},
    ):
        failed = httpx.post(f"{server.url}/api/login", json=body)
        assert failed.status_code == 401 and failed.json() == AUTH_FAILURE, (body, failed.text)
        assert "CORTEX_SESSION" not in failed.cookies
    assert httpx.post(f"{server.url}/api/login").json() == AUTH_FAILURE

    ok(tenant.admin.patch(f"/api/user/{user}", json={"status": "Locked"}))
    assert (
        httpx.post(f"{server.url}/api/login", json={"user": user, "password": "Login-pass-1"}).json()
        == AUTH_FAILURE
    )
    ok(tenant.admin.patch(f"/api/user/{user}", json={"status": "Ok"}))
    session = login(server, user, "Login-pass-1")
    # a locked organization locks its users out, including running sessions
    other = new_tenant(superadmin)
    member = create_user(superadmin, other.org, ["read"], password="Member-1")
    member_session = login(server, member, "Member-1")
    assert superadmin.delete(f"/api/organization/{other.org}").status_code == 204
    assert (
        httpx.post(f"{server.url}/api/login", json={"user": member, "password": "Member-1"}).json()
        == AUTH_FAILURE
    )
    assert member_session.get("/api/user/current").json() == AUTH_FAILURE
    # ...and locking a user ends their session
    ok(tenant.admin.patch(f"/api/user/{user}", json={"status": "Locked"}))
    assert session.get("/api/user/current").json() == AUTH_FAILURE


def test_sessions_and_csrf(server: Server, tenant: Tenant) -> None:
    user = create_user(tenant.admin, tenant.org, ["read", "analyze"], password="Csrf-pass-1")
    session = login(server, user, "Csrf-pass-1")
    token = session.cookies.get("CORTEX-XSRF-TOKEN")
    assert token
    assert ok(session.get("/api/user/current"))["id"] == user  # safe methods need no token
    assert session.get("/api/job").status_code == 200
    for headers in ({}, {"X-CORTEX-XSRF-TOKEN": "not-the-token"}, {"X-CORTEX-XSRF-TOKEN": ""}):
        error(
            session.patch(f"/api/user/{user}", json={"name": "csrf"}, headers=headers),
            403,
            "AuthorizationError",
        )
        error(session.post("/api/stream", headers=headers), 403)
    assert ok(session.get(f"/api/user/{user}"))["name"] == user  # nothing changed
    assert ok(session.patch(f"/api/user/{user}", json={"name": "with token"}, headers=xsrf_header(session)))
    assert session.post("/api/stream", headers=xsrf_header(session)).status_code == 200
    assert ok(session.get(f"/api/user/{user}"))["name"] == "with token"
    # /api/login is exempt even with a session cookie
    assert session.post("/api/login", json={"user": user, "password": "Csrf-pass-1"}).status_code == 200
    # API-key requests carry no cookie and never need the token
    assert (
        ok(tenant.analyst.patch(f"/api/user/{tenant.org}-analyst", json={"name": "key user"}))["name"]
        == "key user"
    )
    assert "CORTEX_SESSION" not in tenant.analyst.get("/api/user/current").cookies

    # logout clears the session
    logout = session.get("/api/logout")
    assert logout.status_code == 200
    assert "CORTEX_SESSION" not in session.cookies
    assert session.get("/api/user/current").json() == AUTH_FAILURE


def test_forged_and_expired_session_cookies(server: Server, tenant: Tenant) -> None:
    user = create_user(tenant.admin, tenant.org, ["read"], password="Cookie-pass-1")
    genuine = login(server, user, "Cookie-pass-1").cookies["CORTEX_SESSION"]
    body, _, signature = genuine.partition(".")
    box = SecretBox((server.data_dir / "secret.key").read_bytes().strip())
    other_box = SecretBox(b"not the server's secret")

    def current(cookie: str) -> httpx.Response:
        return httpx.get(f"{server.url}/api/user/current", cookies={"CORTEX_SESSION": cookie})

    assert ok(current(genuine))["id"] == user
    assert ok(current(encode_session(box, user, "local", 60)))["id"] == user  # the forging below is realistic
    for cookie in (
        "garbage",
        "",
        f"{body}.",
        f"{body}.{'0' * len(signature)}",
        f"{encode_session(box, 'admin', 'local', 60).partition('.')[0]}.{signature}",  # another user, old signature
        encode_session(other_box, user, "local", 60),  # signed with another secret
        encode_session(other_box, "admin", "local", 60),
        encode_session(box, user, "local", -60),  # expired
    ):
        response = current(cookie)
        assert response.status_code == 401 and response.json() == AUTH_FAILURE, cookie


def test_legacy_cortex_password_is_rehashed(server: Server, tenant: Tenant) -> None:
    database = sqlite_path(server)
    for seed, password in (("Ab3dEf7hIj", "Legacy-pass-1"), ("é漢字!@#$%^", "pässwörd")):
        user = create_user(tenant.admin, tenant.org, ["read"])
        legacy = f"{seed},{hashlib.sha256((seed + password).encode()).hexdigest()}"
        with sqlite3.connect(database, timeout=30) as db:
            db.execute('UPDATE "user" SET password = ? WHERE id = ?', (legacy, user))
        assert ok(tenant.admin.get(f"/api/user/{user}"))["hasPassword"] is True
        assert (
            httpx.post(f"{server.url}/api/login", json={"user": user, "password": "nope"}).status_code == 401
        )
        login(server, user, password)
        with sqlite3.connect(database, timeout=30) as db:
            (stored,) = db.execute('SELECT password FROM "user" WHERE id = ?', (user,)).fetchone()
        assert stored.startswith("$argon2") and seed not in stored
        login(server, user, password)  # and the new hash works
        assert (
            httpx.post(f"{server.url}/api/login", json={"user": user, "password": "nope"}).status_code == 401
        )


def test_secrets_are_not_stored_in_clear(server: Server, superadmin: httpx.Client, tenant: Tenant) -> None:
    database = sqlite_path(server)
    worker_secret = f"WORKER-SECRET-{secrets.token_hex(8)}"
    base_secret = f"BASE-SECRET-{secrets.token_hex(8)}"
    password = f"Password-{secrets.token_hex(8)}"
    enable(
        tenant.admin, "analyzer", "Echo_1_0", name="Echo at rest", configuration={"api_key": worker_secret}
    )
    ok(tenant.admin.patch("/api/analyzerconfig/Echo", json={"config": {"api_key": base_secret}}))
    user = create_user(tenant.admin, tenant.org, ["read"], password=password)
    key = text_key(tenant.admin.post(f"/api/user/{user}/key/renew"))
    chosen = f"chosen-{secrets.token_hex(16)}"
    text_key(tenant.admin.post(f"/api/user/{tenant.org}-reader/key/set", json={"key": chosen}))
    files = [p for p in database.parent.iterdir() if p.name.startswith(database.name)]
    assert database in files
    content = b"".join(p.read_bytes() for p in files)
    assert user.encode() in content  # the files are the right ones
    for value in (worker_secret, base_secret, password, key, chosen, tenant.admin_key, tenant.analyst_key):
        assert value.encode() not in content, value
    # and they still work: keys authenticate, the configuration is readable by the orgadmin
    assert ok(bearer(server.url, key).get("/api/user/current"))["id"] == user
    assert ok(tenant.admin.get("/api/analyzerconfig/Echo"))["config"] == {"api_key": base_secret}


# -- bootstrap --


def test_init_pseudo_user(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    server.start()
    try:
        anonymous = httpx.Client(base_url=server.url, timeout=30)
        assert anonymous.get("/api/status").status_code == 200
        error(anonymous.get("/api/user/current"), 404, "NotFoundError", "user init not found")
        assert anonymous.get("/api/organization/cortex").status_code == 200  # init holds every role
        # not for a page of another site the operator's browser shows (a form posted cross-site), nor for a
        # request relayed by a reverse proxy on this machine
        form = (
            "login=evil&name=e&roles=superadmin&roles=superadmin&organization=cortex&password=pwned",
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        host = server.url.removeprefix("http://")
        for headers in (
            {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
            {"Origin": "http://evil.example"},
            {"Origin": "null"},
            {"Sec-Fetch-Site": "same-site"},
            {"X-Forwarded-For": "203.0.113.9"},
            {"Forwarded": "for=203.0.113.9"},
            {"X-Real-IP": "203.0.113.9"},
        ):
            refused = anonymous.post("/api/user", content=form[0], headers=form[1] | headers)
            assert refused.status_code == 401 and refused.json() == AUTH_FAILURE, headers
        same_origin = {"Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"}
        assert anonymous.get("/api/organization/cortex", headers=same_origin).status_code == 200
        created = ok(
            anonymous.post(
                "/api/user",
                json={
                    "login": "first",
                    "name": "First",
                    "roles": ["superadmin"],
                    "organization": "cortex",
                    "password": "First-1",
                },
            ),
            201,
        )
        assert created["roles"] == ["superadmin"] and created["createdBy"] == "init"
        # the pseudo-user is gone as soon as a user exists
        for response in (
            anonymous.post(
                "/api/user",
                json={
                    "login": "second",
                    "name": "S",
                    "roles": ["superadmin"],
                    "organization": "cortex",
                    "password": "x",
                },
            ),
            anonymous.get("/api/organization/cortex"),
            anonymous.get("/api/user/current"),
        ):
            assert response.status_code == 401 and response.json() == AUTH_FAILURE
        session = login(server, "first", "First-1")
        assert ok(session.get("/api/user/current"))["id"] == "first"
    finally:
        server.stop()


@dataclass
class AddressedServer(Server):
    """A server listening on (and reached through) another address than 127.0.0.1."""

    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def non_loopback_address() -> str | None:
    try:
        addresses = subprocess.run(
            ["hostname", "-I"], capture_output=True, text=True, timeout=5
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            continue
        if ip.version != 4 or ip.is_loopback:
            continue
        with socket.socket() as probe:
            try:
                probe.bind((address, 0))
            except OSError:
                continue
        return address
    return None


@pytest.fixture
def remote_server(tmp_path: Path) -> Iterator[tuple[AddressedServer, str]]:
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to reach the server through")
    token = secrets.token_urlsafe(24)
    base = make_server(tmp_path, extra_env={"NEUROCORTEX_SETUP_TOKEN": token}, args=["--host", address])
    server = AddressedServer(
        data_dir=base.data_dir, port=base.port, env=base.env, args=base.args, host=address
    )
    server.start()
    yield server, token
    server.stop()


def test_setup_token_from_another_address(remote_server: tuple[AddressedServer, str]) -> None:
    server, token = remote_server
    first = {
        "login": "admin",
        "name": "A",
        "roles": ["superadmin"],
        "organization": "cortex",
        "password": "Remote-1",
    }
    client = httpx.Client(base_url=server.url, timeout=30)
    assert client.get("/api/status").status_code == 200
    # not from loopback: the init pseudo-user needs the setup token
    for headers in ({}, {"X-Neurocortex-Setup-Token": "wrong"}, {"X-Neurocortex-Setup-Token": ""}):
        response = client.post("/api/user", json=first, headers=headers)
        assert response.status_code == 401 and response.json() == AUTH_FAILURE, headers
    # a client that is not a proxy on loopback cannot pretend to be one
    spoofed = client.post("/api/user", json=first, headers={"X-Forwarded-For": "127.0.0.1"})
    assert spoofed.status_code == 401
    created = client.post("/api/user", json=first, headers={"X-Neurocortex-Setup-Token": token})
    assert created.status_code == 201, created.text
    # once a user exists, the token is worthless
    again = client.post(
        "/api/user", json=first | {"login": "again"}, headers={"X-Neurocortex-Setup-Token": token}
    )
    assert again.status_code == 401
    assert login(server, "admin", "Remote-1").get("/api/user/current").json()["id"] == "admin"


def test_init_command(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    command = [sys.executable, "-m", "neurocortex", "init", "--password-stdin", "--print-key"]
    first = subprocess.run(
        command, input="Init-pass-1\n", capture_output=True, text=True, env=server.env, timeout=120
    )
    assert first.returncode == 0, first.stderr
    key = first.stdout.strip().splitlines()[-1]
    assert len(key) == 32 and "admin" in first.stdout
    second = subprocess.run(
        command, input="Other-pass-2\n", capture_output=True, text=True, env=server.env, timeout=120
    )
    assert second.returncode != 0
    assert "already exist" in second.stdout + second.stderr
    server.start()
    try:
        admin = bearer(server.url, key)
        current = ok(admin.get("/api/user/current"))
        assert (
            current["id"] == "admin"
            and current["roles"] == ["superadmin"]
            and current["organization"] == "cortex"
        )
        login(server, "admin", "Init-pass-1")
        assert (
            httpx.post(
                f"{server.url}/api/login", json={"user": "admin", "password": "Other-pass-2"}
            ).status_code
            == 401
        )
        # no init pseudo-user on this server: users exist
        response = httpx.post(
            f"{server.url}/api/user",
            json={"login": "x", "name": "x", "roles": ["superadmin"], "organization": "cortex"},
        )
        assert response.status_code == 401
        assert len(ok(admin.get("/api/user", params={"range": "all"}))) == 1
    finally:
        server.stop()
