"""Retention (issue 8 item 4): a purge removes what the policy says — old jobs, old reports, old
attachments, by age and TLP — and nothing else: not the recent jobs, not another organization's, not a
file another job still needs. Through the API (orgadmin) and the `neurocortex purge` command."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import Server, Tenant, enable, new_tenant

# old and recent jobs are this far apart; ages (in days) are chosen at purge time to cut in the middle
GAP_SECONDS = 4.0
DAY_MS = 86_400_000
OPEN = {"check_tlp": False, "max_tlp": 3, "check_pap": False, "max_pap": 3}


def run(
    client: httpx.Client, worker_id: str, tlp: int, data: str | None = None, file: bytes | None = None
) -> dict:
    meta = {"dataType": "file" if file else "ip", "tlp": tlp}
    if file is not None:
        sent = client.post(f"/api/analyzer/{worker_id}/run", files={"data": ("f.txt", file, "text/plain")},
                           data={"_json": json.dumps(meta)})  # fmt: skip
    else:
        sent = client.post(f"/api/analyzer/{worker_id}/run", json=meta | {"data": data, "force": True})
    assert sent.status_code == 200, sent.text
    job = client.get(f"/api/job/{sent.json()['id']}/waitreport", params={"atMost": "60 seconds"}).json()
    assert job["status"] == "Success", job
    return job


def age_between(older: list[dict], newer: list[dict]) -> float:
    """An age in days whose cut-off, now, falls halfway between the `older` jobs and the `newer` ones
    (none: halfway between the older ones and now)."""
    last_old = max(job["createdAt"] for job in older)
    first_new = min(job["createdAt"] for job in newer) if newer else int(time.time() * 1000)
    return (time.time() * 1000 - (last_old + first_new) / 2) / DAY_MS


def download(client: httpx.Client, file_id: str) -> int:
    return client.get(f"/api/datastore/{file_id}").status_code


@pytest.fixture(scope="module")
def world(server: Server, superadmin: httpx.Client) -> dict:
    a, b = new_tenant(superadmin), new_tenant(superadmin)
    echo_a = enable(a.admin, "analyzer", "Echo_1_0", configuration=OPEN, jobCache=0)["id"]
    echo_b = enable(b.admin, "analyzer", "Echo_1_0", configuration=OPEN, jobCache=0)["id"]
    shared = secrets.token_bytes(64)  # the same file in both organizations
    old = {
        "tlp3": run(a.analyst, echo_a, 3, "192.0.2.3"),
        "tlp3_file": run(a.analyst, echo_a, 3, file=shared),
        "tlp2": run(a.analyst, echo_a, 2, "192.0.2.2"),
        "tlp2_file": run(a.analyst, echo_a, 2, file=secrets.token_bytes(64)),
    }
    b_jobs = [run(b.analyst, echo_b, 3, "198.51.100.3"), run(b.analyst, echo_b, 3, file=shared)]
    time.sleep(GAP_SECONDS)
    new = {
        "tlp3": run(a.analyst, echo_a, 3, "192.0.2.33"),
        "tlp2_file": run(a.analyst, echo_a, 2, file=b"recent"),
    }
    return {"a": a, "b": b, "old": old, "new": new, "b_jobs": b_jobs, "echo_b": echo_b}


def test_policies_are_validated_and_private(world: dict) -> None:
    a: Tenant = world["a"]
    b: Tenant = world["b"]
    bad = a.admin.put(f"/api/retention/{a.org}", json={"jobs": -1, "byTlp": {"7": {"jobs": 1}}, "forever": 2})
    assert bad.status_code == 400 and bad.json()["type"] == "AttributeCheckingError"
    assert a.admin.get(f"/api/retention/{a.org}").json() == {}
    assert b.admin.get(f"/api/retention/{a.org}").status_code == 404
    assert b.admin.put(f"/api/retention/{a.org}", json={"jobs": 1}).status_code == 404
    assert b.admin.post("/api/retention/_purge", json={"organization": a.org}).status_code == 404
    assert a.analyst.post("/api/retention/_purge", json={}).status_code == 403


def test_a_purge_removes_what_it_should_and_nothing_else(world: dict, superadmin: httpx.Client) -> None:
    a: Tenant = world["a"]
    b: Tenant = world["b"]
    old, new = world["old"], world["new"]
    age = age_between([*old.values(), *world["b_jobs"]], list(new.values()))
    policy = {"reports": age, "attachments": age, "byTlp": {"3": {"jobs": age}}}
    assert a.admin.put(f"/api/retention/{a.org}", json=policy).json() == policy
    shared_id = old["tlp3_file"]["attachment"]["id"]
    own_id = old["tlp2_file"]["attachment"]["id"]

    result = a.admin.post("/api/retention/_purge", json={})
    assert result.status_code == 200, result.text
    # TLP 3: two old jobs gone; TLP 2: two old reports (with the artifact copy of a file) gone, one upload released
    assert result.json() == {"jobs": 2, "reports": 2, "attachments": 1, "files": 1, "organizations": [a.org]}

    for job in (old["tlp3"], old["tlp3_file"]):
        assert a.reader.get(f"/api/job/{job['id']}").status_code == 404
    for job in (old["tlp2"], old["tlp2_file"]):
        kept = a.reader.get(f"/api/job/{job['id']}/report").json()
        assert kept["status"] == "Success" and "full" not in kept["report"]
    released = a.reader.get(f"/api/job/{old['tlp2_file']['id']}").json()["attachment"]
    assert released["purged"] is True and released["id"] == own_id
    assert download(a.reader, own_id) == 404
    # the shared file is still needed by the other organization's job
    assert download(b.reader, shared_id) == 200
    for job in new.values():
        assert a.reader.get(f"/api/job/{job['id']}/report").json()["report"]["full"]
    assert download(a.reader, new["tlp2_file"]["attachment"]["id"]) == 200
    for job in world["b_jobs"]:
        assert b.reader.get(f"/api/job/{job['id']}/report").json()["report"]["full"]

    audit = a.admin.post("/api/audit/_search", json={"query": {"action": "retention.purge"}}).json()
    assert audit[0]["details"]["jobs"] == 2 and audit[0]["createdBy"] == f"{a.org}-admin"
    # a second purge finds nothing more to do
    again = a.admin.post("/api/retention/_purge", json={}).json()
    assert again == {"jobs": 0, "reports": 0, "attachments": 0, "files": 0, "organizations": [a.org]}


def test_the_purge_command(world: dict, server: Server) -> None:
    b: Tenant = world["b"]
    shared_id = world["b_jobs"][1]["attachment"]["id"]
    age = age_between(world["b_jobs"], [])
    assert b.admin.put(f"/api/retention/{b.org}", json={"jobs": age}).status_code == 200
    done = subprocess.run(
        [sys.executable, "-m", "neurocortex", "purge", "--organization", b.org],
        env=server.env, capture_output=True, text=True, timeout=120, cwd=server.data_dir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"jobs": 2, "reports": 0, "attachments": 0, "files": 1,
                                       "organizations": [b.org]}  # fmt: skip
    for job in world["b_jobs"]:
        assert b.reader.get(f"/api/job/{job['id']}").status_code == 404
    assert download(b.reader, shared_id) == 404  # nobody needs it any more
