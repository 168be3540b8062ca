"""The audit log (issue 8 item 3): an entry for each audited action, searchable and exportable by the
organization's admins (their organization only) and by superadmins, never holding a secret."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.conftest import Server, Tenant, enable, new_tenant, run_and_wait, xsrf_header

SECRET_CONFIG_VALUE = "audit-secret-api-key-value-0123456789"
PASSWORD = "audit-pass-word-1"
NEW_PASSWORD = "audit-pass-word-2"
SET_KEY = "k" * 40


def entries(client: httpx.Client, query: dict | None = None) -> list[dict]:
    response = client.post("/api/audit/_search", json={"query": query or {}, "range": "all"})
    assert response.status_code == 200, response.text
    assert int(response.headers["X-Total"]) == len(response.json())
    return response.json()


def actions(client: httpx.Client, object_id: str) -> list[tuple[str, str]]:
    return [(e["action"], e["outcome"]) for e in entries(client, {"objectId": object_id})]


@pytest.fixture(scope="module")
def story(server: Server, superadmin: httpx.Client) -> dict:
    """One organization lives through every audited action; another one looks on."""
    org = new_tenant(superadmin)
    other = new_tenant(superadmin)
    user = f"{org.org}-bob"
    created = org.admin.post("/api/user", json={"login": user, "name": "Bob", "roles": ["read", "analyze"]})
    assert created.status_code == 201, created.text
    assert org.admin.patch(f"/api/user/{user}", json={"name": "Robert", "roles": ["read"]}).status_code == 200
    assert org.admin.post(f"/api/user/{user}/password/set", json={"password": PASSWORD}).status_code == 204

    browser = httpx.Client(base_url=server.url)
    assert browser.post("/api/login", json={"user": user, "password": "wrong"}).status_code == 401
    assert browser.post("/api/login", json={"user": user, "password": PASSWORD}).status_code == 200
    changed = browser.post(
        f"/api/user/{user}/password/change",
        json={"currentPassword": PASSWORD, "password": NEW_PASSWORD},
        headers=xsrf_header(browser),
    )
    assert changed.status_code == 204, changed.text
    assert (
        httpx.post(f"{server.url}/api/login", json={"user": "nobody-at-all", "password": "x"}).status_code
        == 401
    )

    assert org.admin.post(f"/api/user/{user}/key/renew").status_code == 200
    assert org.admin.get(f"/api/user/{user}/key").status_code == 200
    assert org.admin.post(f"/api/user/{user}/key/set", json={"key": SET_KEY}).status_code == 200
    assert org.admin.delete(f"/api/user/{user}/key").status_code == 204
    assert org.admin.delete(f"/api/user/{user}").status_code == 204

    assert (
        superadmin.patch(f"/api/organization/{org.org}", json={"description": "renamed"}).status_code == 200
    )

    echo = enable(org.admin, "analyzer", "Echo_1_0", configuration={"api_key": SECRET_CONFIG_VALUE})
    patched = org.admin.patch(f"/api/analyzer/{echo['id']}", json={"configuration": {"level": "suspicious",
                              "api_key": SECRET_CONFIG_VALUE}, "jobCache": 5})  # fmt: skip
    assert patched.status_code == 200, patched.text
    base = org.admin.patch("/api/analyzerconfig/Echo", json={"config": {"api_key": SECRET_CONFIG_VALUE}})
    assert base.status_code == 200, base.text
    job = run_and_wait(org.analyst, echo["id"], {"dataType": "ip", "data": "192.0.2.1"})
    assert org.analyst.delete(f"/api/job/{job['id']}").status_code == 204
    assert org.admin.delete(f"/api/analyzer/{echo['id']}").status_code == 204
    return {"org": org, "other": other, "user": user, "worker": echo["id"], "job": job["id"]}


def test_user_key_and_password_changes_are_recorded(story: dict) -> None:
    org: Tenant = story["org"]
    assert actions(org.admin, story["user"]) == [
        ("user.lock", "success"),
        ("key.remove", "success"),
        ("key.set", "success"),
        ("key.read", "success"),
        ("key.renew", "success"),
        ("password.change", "success"),
        ("login", "success"),
        ("login", "failure"),
        ("password.set", "success"),
        ("user.update", "success"),
        ("user.create", "success"),
    ]
    update = entries(org.admin, {"_and": [{"objectId": story["user"]}, {"action": "user.update"}]})[0]
    assert update["details"]["changes"] == {"name": "Robert", "roles": ["read"]}
    assert update["createdBy"] == f"{org.org}-admin" and update["organization"] == org.org
    login = entries(org.admin, {"_and": [{"objectId": story["user"]}, {"action": "login"}]})[0]
    assert login["createdBy"] == story["user"] and login["address"] == "127.0.0.1"


def test_organization_worker_and_job_changes_are_recorded(story: dict, superadmin: httpx.Client) -> None:
    org: Tenant = story["org"]
    assert actions(org.admin, org.org) == [
        ("organization.update", "success"),
        ("organization.create", "success"),
    ]
    assert actions(org.admin, story["worker"]) == [
        ("worker.disable", "success"),
        ("worker.update", "success"),
        ("worker.enable", "success"),
    ]
    update = entries(org.admin, {"_and": [{"objectId": story["worker"]}, {"action": "worker.update"}]})[0]
    assert update["details"] == {"changes": {"jobCache": 5}, "configurationItems": ["level"]}  # changed only
    assert actions(org.admin, "analyzer/Echo") == [("workerConfig.update", "success")]
    deleted = entries(org.admin, {"objectId": story["job"]})
    assert [(e["action"], e["createdBy"]) for e in deleted] == [("job.delete", f"{org.org}-analyst")]
    # a login with an unknown name belongs to no organization: superadmins only
    unknown = entries(superadmin, {"_and": [{"action": "login"}, {"user": "nobody-at-all"}]})
    assert [(e["outcome"], e.get("organization")) for e in unknown] == [("failure", None)]


def test_organizations_see_only_their_own_entries(story: dict, superadmin: httpx.Client) -> None:
    org: Tenant = story["org"]
    other: Tenant = story["other"]
    theirs = entries(other.admin)
    assert theirs and {e["organization"] for e in theirs} == {other.org}
    assert entries(other.admin, {"objectId": story["user"]}) == []
    assert entries(other.admin, {"organization": org.org}) == []
    assert not any(e.get("createdBy") == "nobody-at-all" for e in entries(org.admin))
    everything = {e["organization"] for e in entries(superadmin) if "organization" in e}
    assert {org.org, other.org} <= everything
    for client in (org.analyst, org.reader):
        assert client.post("/api/audit/_search", json={}).status_code == 403
    assert httpx.get(f"{str(org.admin.base_url).rstrip('/')}/api/audit").status_code == 401


def test_export_is_json_lines_without_secrets(story: dict) -> None:
    org: Tenant = story["org"]
    response = org.admin.get("/api/audit/_export")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [orjson.loads(line) for line in response.text.splitlines()]
    assert len(lines) == len(entries(org.admin))
    assert [e["createdAt"] for e in lines] == sorted(e["createdAt"] for e in lines)  # oldest first
    for secret in (SECRET_CONFIG_VALUE, PASSWORD, NEW_PASSWORD, SET_KEY, org.admin_key, "wrong"):
        assert secret not in response.text
    narrowed = org.admin.post("/api/audit/_export", json={"query": {"action": "job.delete"}})
    assert [orjson.loads(line)["objectId"] for line in narrowed.text.splitlines()] == [story["job"]]
    bad = org.admin.post("/api/audit/_export", json={"query": {"_field": "details", "_value": "x"}})
    assert bad.status_code == 400 and bad.json()["type"]


def test_quota_changes_are_the_superadmins_entries(story: dict, superadmin: httpx.Client) -> None:
    body = {
        "name": "audited quota",
        "workerDefinitionIds": ["Echo_1_0"],
        "limits": [{"rate": 5, "rateUnit": "Day"}],
    }
    quota = superadmin.post("/api/quota", json=body)
    assert quota.status_code == 201, quota.text
    quota_id = quota.json()["id"]
    assert superadmin.patch(f"/api/quota/{quota_id}", json={"description": "five a day"}).status_code == 200
    assert superadmin.delete(f"/api/quota/{quota_id}").status_code == 204
    assert actions(superadmin, quota_id) == [
        ("quota.delete", "success"),
        ("quota.update", "success"),
        ("quota.create", "success"),
    ]
    update = entries(superadmin, {"_and": [{"objectId": quota_id}, {"action": "quota.update"}]})[0]
    assert update["details"] == {"changes": {"description": "five a day"}} and "organization" not in update
    assert entries(story["org"].admin, {"objectId": quota_id}) == []
