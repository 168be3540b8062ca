"""Quota-aware scheduling (issue 3, item 4): a worker queues jobs over its rate limit instead of answering
429, several limits at once, budgets shared by workers of several organizations, the status endpoint, and
correctness with two API nodes on one PostgreSQL database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import Server, Tenant, enable, new_tenant
from tests.e2e.servers import dedicated, most_starts_in_window, submit_many, two_nodes, wait_until_done


@dataclass
class Node:
    server: Server
    superadmin: httpx.Client


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    with dedicated(tmp_path_factory.mktemp("quotas"), {"NEUROCORTEX_ANALYZER_CONCURRENCY": "8"}) as (
        server,
        admin,
    ):
        yield Node(server, admin)


@pytest.fixture()
def tenant(node: Node) -> Tenant:
    return new_tenant(node.superadmin)


def body(data: str) -> dict:
    return {"dataType": "other", "data": data}


def burst(url: str, tenant: Tenant, worker_id: str, count: int, prefix: str) -> list:
    return asyncio.run(
        submit_many([(url, tenant.analyst_key, worker_id, body(f"{prefix}{n}")) for n in range(count)])
    )


def statuses(client: httpx.Client, job_ids: list[str]) -> list[str]:
    found = client.post("/api/job/status", json={"jobIds": job_ids}).json()
    return [found[job_id] for job_id in job_ids]


def settle(client: httpx.Client, job_ids: list[str], running: int, timeout: float = 10) -> list[str]:
    """The jobs' statuses once `running` of them have finished and the others have not started."""
    deadline = time.monotonic() + timeout
    while True:
        current = statuses(client, job_ids)
        if current.count("Success") >= running or time.monotonic() > deadline:
            time.sleep(0.5)  # nothing more may start
            return statuses(client, job_ids)
        time.sleep(0.05)


def limits_of(client: httpx.Client, worker_id: str) -> list[dict]:
    response = client.get("/api/analyzer/_status")
    assert response.status_code == 200, response.text
    return response.json()[worker_id]["limits"]


def delete_all(client: httpx.Client, job_ids: list[str]) -> None:
    for job_id in job_ids:
        assert client.delete(f"/api/job/{job_id}").status_code == 204


# -- a worker's own limits --------------------------------------------------------------------------------


def test_queue_policy_starts_jobs_as_the_window_allows(node: Node, tenant: Tenant) -> None:
    worker = enable(tenant.admin, "analyzer", "ShellEcho_1_0", jobCache=0, rate=5, rateUnit="Second",
                    rateLimitPolicy="queue")  # fmt: skip
    assert (worker["rate"], worker["rateUnit"], worker["rateLimitPolicy"]) == (5, "Second", "queue")
    submitted = burst(node.server.url, tenant, worker["id"], 20, "q")
    assert [s.status for s in submitted] == [200] * 20
    assert {s.job["status"] for s in submitted} == {"Waiting"}

    # while they flow: the queue, and a full window that frees within the second
    deadline = time.monotonic() + 5
    while True:
        status = tenant.reader.get("/api/analyzer/_status").json()[worker["id"]]
        answered = int(time.time() * 1000)
        (limit,) = status["limits"]
        if limit["remaining"] == 0 or time.monotonic() > deadline:
            break
    assert status["waiting"] >= 5 and status["rateLimitPolicy"] == "queue", status
    assert limit["rate"] == 5 and limit["rateUnit"] == "Second" and limit["counts"] == "started"
    assert limit["used"] == 5 and limit["remaining"] == 0, limit
    assert answered - 1000 < limit["nextSlotAt"] <= answered + 1001

    jobs = wait_until_done(tenant.analyst, [s.job["id"] for s in submitted])
    assert [j["status"] for j in jobs] == ["Success"] * 20
    assert most_starts_in_window(jobs, 1000) == 5
    starts = sorted(j["startDate"] for j in jobs)
    assert 3000 <= starts[-1] - starts[0] < 6000  # 4 windows of 5, started as soon as each opens


def test_reject_policy_answers_429_as_cortex(node: Node, tenant: Tenant) -> None:
    worker = enable(tenant.admin, "analyzer", "ShellEcho_1_0", jobCache=0, rate=5, rateUnit="Second")
    assert "rateLimitPolicy" not in worker  # nothing new shows unless it is set
    submitted = burst(node.server.url, tenant, worker["id"], 6, "r")
    assert sorted(s.status for s in submitted) == [200] * 5 + [429]
    refused = next(s.job for s in submitted if s.status == 429)
    assert refused == {
        "type": "RateLimitExceeded",
        "message": "Rate limit of 5 per Second reached for the analyzer ShellEcho_1_0. Job cannot be started",
    }
    (limit,) = limits_of(tenant.reader, worker["id"])
    assert (limit["rate"], limit["rateUnit"], limit["counts"]) == (5, "Second", "created")


def test_several_limits_at_once(node: Node, tenant: Tenant) -> None:
    # 2 per second and 5 per minute (Cortex's own rate/rateUnit is one more limit when set)
    limits = [{"rate": 2, "rateUnit": "Second"}, {"rate": 5, "rateUnit": "Minute"}]
    queued = enable(tenant.admin, "analyzer", "ShellEcho_1_0", name="queued", jobCache=0, rateLimits=limits,
                    rateLimitPolicy="queue")  # fmt: skip
    assert queued["rateLimits"] == limits and "rate" not in queued
    ids = [s.job["id"] for s in burst(node.server.url, tenant, queued["id"], 7, "m")]
    final = settle(tenant.analyst, ids, running=5, timeout=15)
    assert final.count("Success") == 5 and final.count("Waiting") == 2, final
    started = [tenant.analyst.get(f"/api/job/{i}").json() for i in ids]
    started = [j for j in started if j["status"] == "Success"]
    assert most_starts_in_window(started, 1000) == 2
    per_second, per_minute = limits_of(tenant.reader, queued["id"])
    assert (per_minute["used"], per_minute["remaining"]) == (5, 0)
    assert per_minute["nextSlotAt"] == min(j["startDate"] for j in started) + 60_001
    assert per_second["rate"] == 2 and per_second["remaining"] > 0 and per_second["nextSlotAt"] is None
    delete_all(tenant.analyst, [i for i, s in zip(ids, final, strict=True) if s == "Waiting"])

    # the same under "reject": the tightest limit answers
    rejecting = enable(tenant.admin, "analyzer", "ShellEcho_1_0", name="rejecting", jobCache=0, rate=100,
                       rateUnit="Day", rateLimits=[{"rate": 3, "rateUnit": "Minute"}])  # fmt: skip
    answers = [
        tenant.analyst.post(f"/api/analyzer/{rejecting['id']}/run", json=body(f"x{n}")) for n in range(4)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[3].json()["message"] == (
        "Rate limit of 3 per Minute reached for the analyzer rejecting. Job cannot be started"
    )
    assert [(x["rate"], x["used"]) for x in limits_of(tenant.reader, rejecting["id"])] == [(100, 3), (3, 3)]


def test_a_held_back_job_does_not_hold_back_the_jobs_behind_it(node: Node, tenant: Tenant) -> None:
    slow = enable(tenant.admin, "analyzer", "ShellEcho_1_0", jobCache=0, rate=1, rateUnit="Minute",
                  rateLimitPolicy="queue")["id"]  # fmt: skip
    free = enable(tenant.admin, "analyzer", "Nap_1_0", jobCache=0)["id"]
    held = [s.job["id"] for s in burst(node.server.url, tenant, slow, 5, "h")]
    behind = [s.job["id"] for s in burst(node.server.url, tenant, free, 3, "f")]
    assert {j["status"] for j in wait_until_done(tenant.analyst, behind, timeout=10)} == {"Success"}
    assert sorted(statuses(tenant.analyst, held)) == ["Success"] + ["Waiting"] * 4
    status = tenant.reader.get("/api/analyzer/_status").json()
    assert (status[slow]["waiting"], status[slow]["inProgress"]) == (4, 0)
    assert (status[free]["waiting"], status[free]["limits"]) == (0, [])
    delete_all(tenant.analyst, held[1:])


# -- worker attributes ------------------------------------------------------------------------------------


def test_scheduling_attributes_are_validated(tenant: Tenant) -> None:
    path = "/api/organization/analyzer/Nap_1_0"
    for bad in (
        {"maxConcurrency": 0},
        {"maxConcurrency": "two"},
        {"rateLimitPolicy": "later"},
        {"rateLimits": {"rate": 1, "rateUnit": "Day"}},
        {"rateLimits": [{"rate": 1, "rateUnit": "Week"}]},
        {"rateLimits": [{"rate": -1, "rateUnit": "Day"}]},
        {"rateLimits": [{"rate": 1, "rateUnit": "Day", "burst": 2}]},
    ):
        response = tenant.admin.post(path, json={"name": "bad", **bad})
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["type"] == "AttributeCheckingError"
        assert response.json()["errors"][0]["name"] == next(iter(bad))
    worker = enable(tenant.admin, "analyzer", "Nap_1_0", maxConcurrency=2, rateLimitPolicy="reject",
                    rateLimits=[{"rate": 10, "rateUnit": "Hour"}])  # fmt: skip
    shown = tenant.reader.get(f"/api/analyzer/{worker['id']}").json()
    assert (shown["maxConcurrency"], shown["rateLimitPolicy"], shown["rateLimits"]) == (
        2, "reject", [{"rate": 10, "rateUnit": "Hour"}],
    )  # fmt: skip
    cleared = tenant.admin.patch(
        f"/api/analyzer/{worker['id']}",
        json={"maxConcurrency": None, "rateLimitPolicy": None, "rateLimits": []},
    )
    assert cleared.status_code == 200, cleared.text
    for key in ("maxConcurrency", "rateLimitPolicy", "rateLimits"):
        assert (
            key not in cleared.json() and key not in tenant.reader.get(f"/api/analyzer/{worker['id']}").json()
        )
    # searchable like Cortex's own attributes
    found = tenant.reader.post("/api/analyzer/_search", json={"query": {"rateLimitPolicy": "queue"}})
    assert found.status_code == 200 and found.json() == []


# -- quotas shared by workers of several organizations ----------------------------------------------------


def test_quota_entity(node: Node, tenant: Tenant) -> None:
    admin = node.superadmin
    created = admin.post("/api/quota", json={
        "name": "provider key", "description": "10,000 a month, 5,000 of them for one org",
        "workerDefinitionIds": ["Nap_1_0"], "baseConfigs": ["Nap"],
        "limits": [{"rate": 10000, "rateUnit": "Month"}],
        "organizationLimits": {tenant.org: [{"rate": 5000, "rateUnit": "Month"}]},
    })  # fmt: skip
    assert created.status_code == 201, created.text
    quota = created.json()
    assert quota["_id"] == quota["id"] and quota["_type"] == "quota" and quota["createdBy"] == "admin"
    assert quota["organizationLimits"] == {tenant.org: [{"rate": 5000, "rateUnit": "Month"}]}
    listed = admin.get("/api/quota")
    assert listed.headers["X-Total"] == "1" and [q["id"] for q in listed.json()] == [quota["id"]]
    assert admin.get(f"/api/quota/{quota['id']}").json() == quota

    patched = admin.patch(f"/api/quota/{quota['id']}", json={"limits": [{"rate": 9000, "rateUnit": "Month"}]})
    assert patched.status_code == 200 and patched.json()["limits"] == [{"rate": 9000, "rateUnit": "Month"}]
    assert patched.json()["updatedBy"] == "admin"

    def error(response: httpx.Response, status: int = 400) -> str:
        assert response.status_code == status, response.text
        return response.json()["type"]

    assert (
        error(admin.post("/api/quota", json={"name": "provider key", "baseConfigs": ["x"]}))
        == "ConflictError"
    )
    assert error(admin.post("/api/quota", json={"name": "nothing covered"})) == "AttributeCheckingError"
    assert error(admin.post("/api/quota", json={"baseConfigs": ["x"]})) == "AttributeCheckingError"
    unknown_org = {
        "name": "o",
        "baseConfigs": ["x"],
        "organizationLimits": {"nope": [{"rate": 1, "rateUnit": "Day"}]},
    }
    assert error(admin.post("/api/quota", json=unknown_org)) == "AttributeCheckingError"
    assert (
        error(admin.post("/api/quota", json={"name": "u", "baseConfigs": ["x"], "colour": 1}))
        == "AttributeCheckingError"
    )
    assert error(admin.patch(f"/api/quota/{quota['id']}", json={"id": "other"})) == "AttributeCheckingError"
    assert error(admin.get("/api/quota/missing"), 404) == "NotFoundError"
    for client in (tenant.admin, tenant.analyst):
        assert client.get("/api/quota").status_code == 403
        assert client.post("/api/quota", json={"name": "mine", "baseConfigs": ["x"]}).status_code == 403

    assert admin.delete(f"/api/quota/{quota['id']}").status_code == 204
    assert admin.get(f"/api/quota/{quota['id']}").status_code == 404
    assert admin.get("/api/quota").json() == []


def test_shared_quota_overall_and_per_organization(node: Node) -> None:
    a, b = new_tenant(node.superadmin), new_tenant(node.superadmin)
    # one provider key: 6 a minute overall, of which org A may use 4 (no other test here runs Echo)
    quota = node.superadmin.post("/api/quota", json={
        "name": "shared echo", "baseConfigs": ["Echo"], "limits": [{"rate": 6, "rateUnit": "Minute"}],
        "organizationLimits": {a.org: [{"rate": 4, "rateUnit": "Minute"}]},
    }).json()  # fmt: skip
    try:
        worker_a = enable(a.admin, "analyzer", "Echo_1_0", jobCache=0, rateLimitPolicy="queue")["id"]
        worker_b = enable(b.admin, "analyzer", "Echo_1_0", jobCache=0, rateLimitPolicy="queue")["id"]
        jobs_a = [s.job["id"] for s in burst(node.server.url, a, worker_a, 6, "a")]
        final_a = settle(a.analyst, jobs_a, running=4)
        assert final_a.count("Success") == 4 and final_a.count("Waiting") == 2, final_a  # A's own limit
        jobs_b = [s.job["id"] for s in burst(node.server.url, b, worker_b, 4, "b")]
        final_b = settle(b.analyst, jobs_b, running=2)
        assert final_b.count("Success") == 2 and final_b.count("Waiting") == 2, final_b  # the overall limit
        assert statuses(a.analyst, jobs_a) == final_a

        # each organization sees the quota's overall use, and its own limit only
        overall, own = limits_of(a.reader, worker_a)
        assert overall["quota"] == quota["id"] and overall["quotaName"] == "shared echo"
        assert (overall["rate"], overall["used"], overall["remaining"]) == (6, 6, 0)
        assert (own["organization"], own["rate"], own["used"], own["remaining"]) == (a.org, 4, 4, 0)
        assert own["nextSlotAt"] > int(time.time() * 1000) + 50_000
        (overall_b,) = limits_of(b.reader, worker_b)
        assert (overall_b["used"], overall_b["remaining"], "organization" in overall_b) == (6, 0, False)
        assert a.reader.get("/api/analyzer/_status").json()[worker_a]["waiting"] == 2

        # a "reject" worker covered by the quota is refused at once instead
        rejecting = enable(b.admin, "analyzer", "Echo_1_0", name="echo-reject", jobCache=0)["id"]
        refused = b.analyst.post(f"/api/analyzer/{rejecting}/run", json=body("r"))
        assert refused.status_code == 429
        assert refused.json()["message"] == (
            "Quota shared echo of 6 per Minute reached for the analyzer echo-reject. Job cannot be started"
        )

        # raising the limits lets the held-back jobs start at once
        raised = node.superadmin.patch(f"/api/quota/{quota['id']}", json={
            "limits": [{"rate": 100, "rateUnit": "Minute"}], "organizationLimits": {},
        })  # fmt: skip
        assert raised.status_code == 200, raised.text
        assert {j["status"] for j in wait_until_done(a.analyst, jobs_a, timeout=15)} == {"Success"}
        assert {j["status"] for j in wait_until_done(b.analyst, jobs_b, timeout=15)} == {"Success"}
    finally:
        node.superadmin.delete(f"/api/quota/{quota['id']}")


def test_responder_status_endpoint(tenant: Tenant) -> None:
    tagger = enable(tenant.admin, "responder", "Tagger_1_0", configuration={"tag": "t"}, maxConcurrency=1)
    response = tenant.reader.get("/api/responder/_status")
    assert response.status_code == 200
    assert response.json() == {
        tagger["id"]: {"name": "Tagger_1_0", "waiting": 0, "inProgress": 0, "maxConcurrency": 1,
                       "rateLimitPolicy": "reject", "limits": []},
    }  # fmt: skip
    assert tenant.reader.get("/api/analyzer/_status").json() == {}
    assert httpx.get(f"{str(tenant.reader.base_url).rstrip('/')}/api/responder/_status").status_code == 401


# -- two API nodes on one PostgreSQL database -------------------------------------------------------------


def test_two_nodes_never_overshoot(tmp_path_factory: pytest.TempPathFactory) -> None:
    with two_nodes(tmp_path_factory.mktemp("nodes"), {"NEUROCORTEX_ANALYZER_CONCURRENCY": "8"}) as (
        first, second, superadmin,
    ):  # fmt: skip
        a, b = new_tenant(superadmin), new_tenant(superadmin)
        queued = enable(a.admin, "analyzer", "ShellEcho_1_0", jobCache=0, rate=5, rateUnit="Second",
                        rateLimitPolicy="queue")["id"]  # fmt: skip
        rejecting = enable(a.admin, "analyzer", "ShellEcho_1_0", name="reject", jobCache=0, rate=5,
                           rateUnit="Minute")["id"]  # fmt: skip
        # a quota of 5 a second shared by a worker of each organization
        quota = superadmin.post("/api/quota", json={
            "name": "nap key", "workerDefinitionIds": ["Nap_1_0"], "limits": [{"rate": 5, "rateUnit": "Second"}],
        })  # fmt: skip
        assert quota.status_code == 201, quota.text
        nap_a = enable(a.admin, "analyzer", "Nap_1_0", jobCache=0, rateLimitPolicy="queue")["id"]
        nap_b = enable(b.admin, "analyzer", "Nap_1_0", jobCache=0, rateLimitPolicy="queue")["id"]

        nodes = [first.url, second.url]
        requests = [(nodes[n % 2], a.analyst_key, queued, body(f"q{n}")) for n in range(20)]
        requests += [(nodes[n % 2], a.analyst_key, rejecting, body(f"r{n}")) for n in range(20)]
        requests += [(nodes[n % 2], (a, b)[n // 2 % 2].analyst_key, (nap_a, nap_b)[n // 2 % 2], body(f"n{n}"))
                     for n in range(20)]  # fmt: skip
        submitted = asyncio.run(submit_many(requests))

        assert [s.status for s in submitted[:20]] == [200] * 20
        assert sorted(s.status for s in submitted[20:40]) == [200] * 5 + [429] * 15
        assert [s.status for s in submitted[40:]] == [200] * 20
        jobs = wait_until_done(a.analyst, [s.job["id"] for s in submitted[:20]], timeout=30)
        assert [j["status"] for j in jobs] == ["Success"] * 20, [j.get("errorMessage") for j in jobs]
        assert most_starts_in_window(jobs, 1000) == 5
        naps = wait_until_done(a.analyst, [s.job["id"] for s in submitted[40:] if s.job["workerId"] == nap_a])
        naps += wait_until_done(
            b.analyst, [s.job["id"] for s in submitted[40:] if s.job["workerId"] == nap_b]
        )
        assert len(naps) == 20 and {j["status"] for j in naps} == {"Success"}
        assert most_starts_in_window(naps, 1000) == 5
