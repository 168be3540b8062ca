"""Cortex's generic lists (§3.9): superadmins write, readers read."""

from __future__ import annotations

import httpx

from tests.conftest import Tenant


def test_list_lifecycle(superadmin: httpx.Client, tenant: Tenant) -> None:
    first = superadmin.post("/api/list/custom_fields", json={"value": {"reference": "a", "type": "string"}})
    assert first.status_code == 200
    first_id = first.json()
    assert isinstance(first_id, str)
    second_id = superadmin.post("/api/list/custom_fields", json={"value": {"reference": "b"}}).json()
    assert superadmin.post("/api/list/custom_fields", json={}).status_code == 204  # no value, nothing added

    assert "custom_fields" in tenant.reader.get("/api/list").json()
    assert tenant.reader.get("/api/list/custom_fields").json() == {
        first_id: {"reference": "a", "type": "string"},
        second_id: {"reference": "b"},
    }
    found = tenant.reader.post("/api/list/custom_fields/_exists", json={"key": "reference", "value": "b"})
    assert found.json() == {"found": True}
    missing = tenant.reader.post("/api/list/custom_fields/_exists", json={"key": "reference", "value": "z"})
    assert missing.json() == {"found": False}

    replaced_id = superadmin.patch(f"/api/list/{first_id}", json={"value": {"reference": "c"}}).json()
    assert replaced_id != first_id
    assert tenant.reader.get("/api/list/custom_fields").json() == {
        second_id: {"reference": "b"},
        replaced_id: {"reference": "c"},
    }
    assert superadmin.delete(f"/api/list/{second_id}").status_code == 204
    assert superadmin.delete(f"/api/list/{second_id}").status_code == 404
    assert list(tenant.reader.get("/api/list/custom_fields").json()) == [replaced_id]


def test_only_superadmins_write(tenant: Tenant) -> None:
    assert tenant.admin.post("/api/list/x", json={"value": 1}).status_code == 403
    assert tenant.admin.delete("/api/list/whatever").status_code == 403
    bad = tenant.reader.post("/api/list/x/_exists", json={"value": 1})
    assert bad.status_code == 400 and bad.json()["type"] == "AttributeCheckingError"
