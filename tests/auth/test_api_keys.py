"""Named API keys beyond Cortex: several per user, shown once, expiring, revocable, while Cortex's single
key endpoints keep working beside them."""

from __future__ import annotations

import time

import httpx

from tests.conftest import Server, Tenant, bearer, new_tenant


def create(client: httpx.Client, user: str, **body) -> dict:
    response = client.post(f"/api/user/{user}/keys", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_several_named_keys_shown_once_and_revocable(server: Server, tenant: Tenant) -> None:
    analyst = f"{tenant.org}-analyst"
    ci = create(tenant.analyst, analyst, name="ci pipeline")
    laptop = create(tenant.analyst, analyst, name="laptop")
    assert ci["key"].startswith("nck_") and ci["key"] != laptop["key"]
    assert ci["status"] == "Active" and ci["expiresAt"] is None and ci["prefix"] == ci["key"][:10]
    for key in (ci["key"], laptop["key"]):
        me = bearer(server.url, key).get("/api/user/current")
        assert me.status_code == 200 and me.json()["id"] == analyst
    listed = tenant.analyst.get(f"/api/user/{analyst}/keys")
    assert listed.headers["X-Total"] == "2"
    assert [k["name"] for k in listed.json()] == ["laptop", "ci pipeline"]
    assert ci["key"] not in listed.text and "digest" not in listed.text  # shown once, never again

    assert tenant.analyst.delete(f"/api/user/{analyst}/keys/{ci['id']}").status_code == 204
    assert bearer(server.url, ci["key"]).get("/api/user/current").status_code == 401
    assert bearer(server.url, laptop["key"]).get("/api/user/current").status_code == 200
    statuses = {k["name"]: k["status"] for k in tenant.analyst.get(f"/api/user/{analyst}/keys").json()}
    assert statuses == {"ci pipeline": "Revoked", "laptop": "Active"}


def test_cortex_single_key_lives_beside_them(server: Server, tenant: Tenant) -> None:
    reader = f"{tenant.org}-viewer"
    body = {"login": reader, "name": "viewer", "roles": ["read"]}
    assert tenant.admin.post("/api/user", json=body).status_code == 201
    named = create(tenant.admin, reader, name="dashboard")
    legacy = tenant.admin.post(f"/api/user/{reader}/key/renew")
    assert legacy.status_code == 200 and legacy.headers["content-type"].startswith("text/plain")
    assert tenant.admin.get(f"/api/user/{reader}/key").text == legacy.text
    assert bearer(server.url, legacy.text).get("/api/user/current").status_code == 200
    assert tenant.admin.delete(f"/api/user/{reader}/key").status_code == 204
    assert bearer(server.url, legacy.text).get("/api/user/current").status_code == 401
    assert bearer(server.url, named["key"]).get("/api/user/current").status_code == 200
    assert tenant.admin.get(f"/api/user/{reader}").json()["hasKey"] is False


def test_keys_expire(server: Server, tenant: Tenant) -> None:
    admin = f"{tenant.org}-admin"
    expires = int(time.time() * 1000) + 1500
    short = create(tenant.admin, admin, name="short-lived", expiresAt=expires)
    assert short["expiresAt"] == expires
    client = bearer(server.url, short["key"])
    assert client.get("/api/user/current").status_code == 200
    time.sleep(max(0, expires / 1000 - time.time()) + 0.2)
    assert client.get("/api/user/current").status_code == 401
    listed = tenant.admin.get(f"/api/user/{admin}/keys").json()
    assert [k["status"] for k in listed if k["id"] == short["id"]] == ["Expired"]


def test_who_may_manage_whose_keys(server: Server, superadmin: httpx.Client, tenant: Tenant) -> None:
    analyst = f"{tenant.org}-analyst"
    key = create(tenant.admin, analyst, name="made by the orgadmin")  # an orgadmin manages their users
    assert tenant.reader.post(f"/api/user/{analyst}/keys", json={"name": "x"}).status_code == 403
    assert tenant.reader.get(f"/api/user/{analyst}/keys").status_code == 403
    assert tenant.reader.delete(f"/api/user/{analyst}/keys/{key['id']}").status_code == 403
    other = new_tenant(superadmin)
    for response in (
        other.admin.get(f"/api/user/{analyst}/keys"),
        other.admin.post(f"/api/user/{analyst}/keys", json={"name": "x"}),
        other.admin.delete(f"/api/user/{analyst}/keys/{key['id']}"),
    ):
        assert response.status_code == 404, response.text  # another organization's user does not exist
    # a key id of another user, through one's own path, is not found and stays valid
    mine = f"{other.org}-admin"
    assert other.admin.delete(f"/api/user/{mine}/keys/{key['id']}").status_code == 404
    assert bearer(server.url, key["key"]).get("/api/user/current").status_code == 200
    # a locked user's keys stop working
    assert tenant.admin.patch(f"/api/user/{analyst}", json={"status": "Locked"}).status_code == 200
    assert bearer(server.url, key["key"]).get("/api/user/current").status_code == 401
    assert tenant.admin.patch(f"/api/user/{analyst}", json={"status": "Ok"}).status_code == 200


def test_bad_input_is_refused(server: Server, tenant: Tenant) -> None:
    analyst = f"{tenant.org}-analyst"
    before = tenant.analyst.get(f"/api/user/{analyst}/keys").headers["X-Total"]
    for body, attribute in (
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x", "expiresAt": 1000}, "expiresAt"),
        ({"name": "x", "expiresAt": "tomorrow"}, "expiresAt"),
        ({"name": "x", "scope": "all"}, "scope"),
    ):
        response = tenant.analyst.post(f"/api/user/{analyst}/keys", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["type"] == "AttributeCheckingError"
        assert attribute in [e["name"] for e in response.json()["errors"]]
    assert tenant.analyst.get(f"/api/user/{analyst}/keys").headers["X-Total"] == before
    assert tenant.analyst.delete(f"/api/user/{analyst}/keys/no-such-key").status_code == 404
