"""The embedded dispatcher's scheduling (issue 3, items 1 and 5): fairness between organizations, the
concurrency limits (node, type, runner, worker), queue depth and running jobs through the API, and the
maximum queue time. Each group of tests runs its own server with the settings it needs."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import Server, enable, new_tenant
from tests.e2e.servers import dedicated, max_overlap, submit_many, wait_until_done


@dataclass
class Node:
    server: Server
    superadmin: httpx.Client


def submit(client: httpx.Client, worker_id: str, data: str, kind: str = "analyzer", **parameters) -> str:
    body = {"dataType": "other", "data": data, "parameters": parameters}
    response = client.post(f"/api/{kind}/{worker_id}/run", json=body)
    assert response.status_code == 200, response.text
    return response.json()["id"]


# -- fairness between organizations -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    with dedicated(tmp_path_factory.mktemp("fair"), {"NEUROCORTEX_ANALYZER_CONCURRENCY": "8"}) as (
        server,
        admin,
    ):
        yield Node(server, admin)


def test_a_flood_does_not_starve_another_organization(busy: Node) -> None:
    a, b = new_tenant(busy.superadmin), new_tenant(busy.superadmin)
    nap_a = enable(a.admin, "analyzer", "Nap_1_0", jobCache=0)["id"]
    nap_b = enable(b.admin, "analyzer", "Nap_1_0", jobCache=0)["id"]
    url = busy.server.url
    flood = [(url, a.analyst_key, nap_a, {"dataType": "other", "data": f"a{n}"}) for n in range(990)]
    submitted_a = asyncio.run(submit_many(flood))
    assert {s.status for s in submitted_a} == {200}
    # B's ten jobs arrive while most of A's are still queued
    submitted_b = asyncio.run(submit_many([(url, b.analyst_key, nap_b, {"dataType": "other", "data": f"b{n}"})
                                           for n in range(10)]))  # fmt: skip
    assert {s.status for s in submitted_b} == {200}
    backlog = a.reader.get("/api/analyzer/_status").json()[nap_a]
    assert backlog["waiting"] > 300, backlog

    jobs_a = wait_until_done(a.analyst, [s.job["id"] for s in submitted_a], timeout=120)
    jobs_b = wait_until_done(b.analyst, [s.job["id"] for s in submitted_b])
    assert len(jobs_a) == 990 and len(jobs_b) == 10
    assert {j["status"] for j in jobs_a + jobs_b} == {"Success"}

    # B's jobs were served next, not after A's backlog
    b_arrived = min(j["createdAt"] for j in jobs_b)
    b_last_start = max(j["startDate"] for j in jobs_b)
    # (start dates: what the dispatcher decided; end dates also depend on how loaded the machine is)
    assert b_last_start < statistics.median(j["startDate"] for j in jobs_a)
    a_started_meanwhile = [j for j in jobs_a if b_arrived <= j["startDate"] <= b_last_start]
    assert len(a_started_meanwhile) < 40, len(a_started_meanwhile)
    assert max(j["startDate"] - j["createdAt"] for j in jobs_b) < 5000
    # first in, first out within one organization (up to submissions that raced each other)
    starts = [j["startDate"] for j in sorted(jobs_a, key=lambda j: j["id"])]
    later_min = starts[-1]
    for n in range(len(starts) - 1, -1, -1):
        later_min = min(later_min, starts[n])
        # a job id is taken before its insert commits: with 32 submissions in flight on a loaded 2-core
        # machine, a job can become visible to the dispatcher a second or more after later ones
        assert starts[n] - later_min < 2000, "a job started long after jobs submitted after it"
    assert max_overlap(jobs_a + jobs_b) <= 8


def test_worker_max_concurrency(busy: Node) -> None:
    tenant = new_tenant(busy.superadmin)
    capped = enable(tenant.admin, "analyzer", "Sleeper_1_0", jobCache=0, maxConcurrency=2)
    assert capped["maxConcurrency"] == 2
    free = enable(tenant.admin, "analyzer", "Nap_1_0", jobCache=0)["id"]
    held = [submit(tenant.analyst, capped["id"], f"capped {n}", seconds=0.5) for n in range(6)]
    # the cap holds the capped worker's jobs back, not the jobs of other workers queued behind them
    deadline = time.monotonic() + 5
    while (status := tenant.reader.get("/api/analyzer/_status").json()[capped["id"]])["inProgress"] < 2:
        assert time.monotonic() < deadline, status
        time.sleep(0.02)
    assert (status["inProgress"], status["waiting"], status["maxConcurrency"]) == (2, 4, 2), status
    other = submit(tenant.analyst, free, "not held back")
    assert (
        tenant.analyst.get(f"/api/job/{other}/waitreport", params={"atMost": "10s"}).json()["status"]
        == "Success"
    )
    jobs = wait_until_done(tenant.analyst, held)
    assert {j["status"] for j in jobs} == {"Success"}
    assert max_overlap(jobs) == 2

    # raised through the API: the next jobs run three at a time
    patched = tenant.admin.patch(f"/api/analyzer/{capped['id']}", json={"maxConcurrency": 3})
    assert patched.status_code == 200 and patched.json()["maxConcurrency"] == 3
    jobs = wait_until_done(
        tenant.analyst, [submit(tenant.analyst, capped["id"], f"raised {n}", seconds=0.5) for n in range(6)]
    )
    assert max_overlap(jobs) == 3


# -- node limits: all jobs, per type -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    env = {
        "NEUROCORTEX_MAX_RUNNING_JOBS": "3",
        "NEUROCORTEX_ANALYZER_CONCURRENCY": "2",
        "NEUROCORTEX_RESPONDER_CONCURRENCY": "8",
    }
    with dedicated(tmp_path_factory.mktemp("small"), env) as (server, admin):
        yield Node(server, admin)


def test_global_and_type_limits(small_node: Node) -> None:
    tenant = new_tenant(small_node.superadmin)
    sleeper = enable(tenant.admin, "analyzer", "Sleeper_1_0", jobCache=0)["id"]
    tagger = enable(tenant.admin, "responder", "Tagger_1_0", configuration={"tag": "t"})["id"]
    analyses = [submit(tenant.analyst, sleeper, f"a{n}", seconds=0.5) for n in range(4)]
    responses = []
    for n in range(4):
        response = tenant.analyst.post(
            f"/api/responder/{tagger}/run", json={"dataType": "thehive:case", "data": {"n": n}}
        )
        assert response.status_code == 200, response.text
        responses.append(response.json()["id"])
    analyses_done = wait_until_done(tenant.analyst, analyses)
    everything = analyses_done + wait_until_done(tenant.analyst, responses)
    assert {j["status"] for j in everything} == {"Success"}, [j.get("errorMessage") for j in everything]
    assert max_overlap(analyses_done) == 2  # NEUROCORTEX_ANALYZER_CONCURRENCY
    assert max_overlap(everything) == 3  # NEUROCORTEX_MAX_RUNNING_JOBS, whatever the type


# -- runner and default worker limits, maximum queue time --------------------------------------------------


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    env = {
        "NEUROCORTEX_ANALYZER_CONCURRENCY": "8",
        "NEUROCORTEX_PROCESS_CONCURRENCY": "3",
        "NEUROCORTEX_WORKER_CONCURRENCY": "2",
        "NEUROCORTEX_MAX_QUEUE_TIME": "3",
    }
    with dedicated(tmp_path_factory.mktemp("limited"), env) as (server, admin):
        yield Node(server, admin)


def test_default_worker_concurrency(limited: Node) -> None:
    tenant = new_tenant(limited.superadmin)
    sleeper = enable(tenant.admin, "analyzer", "Sleeper_1_0", jobCache=0)
    assert "maxConcurrency" not in sleeper  # the setting applies; the worker itself sets nothing
    jobs = wait_until_done(
        tenant.analyst, [submit(tenant.analyst, sleeper["id"], f"d{n}", seconds=0.4) for n in range(5)]
    )
    assert {j["status"] for j in jobs} == {"Success"}
    assert max_overlap(jobs) == 2  # NEUROCORTEX_WORKER_CONCURRENCY
    assert tenant.reader.get("/api/analyzer/_status").json()[sleeper["id"]]["maxConcurrency"] == 2


def test_process_runner_concurrency(limited: Node) -> None:
    tenant = new_tenant(limited.superadmin)
    # each worker may run 4 at once, the node 8: the process runner's 3 is what binds
    workers = [
        enable(tenant.admin, "analyzer", "Sleeper_1_0", name=f"Sleeper {n}", jobCache=0, maxConcurrency=4)[
            "id"
        ]
        for n in range(3)
    ]
    ids = [submit(tenant.analyst, workers[n % 3], f"p{n}", seconds=0.4) for n in range(9)]
    jobs = wait_until_done(tenant.analyst, ids)
    assert {j["status"] for j in jobs} == {"Success"}
    assert max_overlap(jobs) == 3


def test_max_queue_time_fails_a_job_that_cannot_start(limited: Node) -> None:
    tenant = new_tenant(limited.superadmin)
    # one start a minute: the second job cannot start before the 3 s of NEUROCORTEX_MAX_QUEUE_TIME
    worker = enable(
        tenant.admin, "analyzer", "Nap_1_0", jobCache=0, rate=1, rateUnit="Minute", rateLimitPolicy="queue"
    )["id"]
    first = submit(tenant.analyst, worker, "first")
    second = submit(tenant.analyst, worker, "second")
    done = tenant.analyst.get(f"/api/job/{second}/waitreport", params={"atMost": "20s"}).json()
    assert done["status"] == "Failure"
    assert done["report"]["errorMessage"].startswith(
        "The job waited more than 3 s in the queue without starting"
    ), done["report"]
    assert "startDate" not in done
    assert 3000 <= done["endDate"] - done["createdAt"] < 10_000
    assert tenant.analyst.get(f"/api/job/{first}").json()["status"] == "Success"
