"""Jobs survive the server: a graceful stop hands running jobs back, Waiting jobs are picked up at start,
and a job whose server was killed is retried once its lease expires (DESIGN.md; Cortex #363)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import (
    Server,
    Tenant,
    bootstrap_superadmin,
    drop_database,
    enable,
    make_server,
    new_tenant,
)

LEASE_SECONDS = 3


@dataclass
class Cluster:
    server: Server
    superadmin: httpx.Client
    tenant: Tenant
    sleeper: str
    noop: str


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    server = make_server(
        tmp_path_factory.mktemp("restart"),
        extra_env={"NEUROCORTEX_ANALYZER_CONCURRENCY": "1", "NEUROCORTEX_JOB_LEASE": str(LEASE_SECONDS)},
    )
    server.start()
    try:
        superadmin = bootstrap_superadmin(server)
        tenant = new_tenant(superadmin)
        sleeper = enable(tenant.admin, "analyzer", "Sleeper_1_0", jobCache=0)["id"]
        noop = enable(tenant.admin, "analyzer", "NoOp_1_0", jobCache=0)["id"]
        yield Cluster(server, superadmin, tenant, sleeper, noop)
    finally:
        server.stop()
        db_url = server.env.get("NEUROCORTEX_DATABASE_URL", "")
        if "nc_test_" in db_url:
            drop_database(db_url.rsplit("/", 1)[1])


def submit(client: httpx.Client, worker_id: str, data: str, **parameters) -> str:
    response = client.post(
        f"/api/analyzer/{worker_id}/run", json={"dataType": "other", "data": data, "parameters": parameters}
    )
    assert response.status_code == 200, response.text
    return response.json()["id"]


def status(client: httpx.Client, job_id: str) -> str:
    return client.post("/api/job/status", json={"jobIds": [job_id]}).json()[job_id]


def wait_status(client: httpx.Client, job_id: str, wanted: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while (current := status(client, job_id)) != wanted:
        assert time.monotonic() < deadline, f"job {job_id} still {current}, not {wanted}"
        time.sleep(0.05)


def wait(client: httpx.Client, job_id: str, at_most: str = "60 seconds") -> dict:
    response = client.get(f"/api/job/{job_id}/waitreport", params={"atMost": at_most})
    assert response.status_code == 200, response.text
    return response.json()


def restart(cluster: Cluster, kill: bool = False) -> float:
    started = time.monotonic()
    cluster.server.stop(kill=kill)
    stopped = time.monotonic() - started
    assert cluster.server.process is not None and cluster.server.process.returncode is not None
    cluster.server.start()
    return stopped


def test_graceful_restart_keeps_every_job_and_the_history(cluster: Cluster) -> None:
    analyst = cluster.tenant.analyst
    earlier = wait(analyst, submit(analyst, cluster.noop, "before the restart"))
    assert earlier["status"] == "Success", earlier["report"]

    jobs = [submit(analyst, cluster.sleeper, f"job {n}", seconds=2) for n in range(3)]
    wait_status(analyst, jobs[0], "InProgress")
    # one job at a time: the others wait their turn
    for job_id in jobs[1:]:
        report = analyst.get(f"/api/job/{job_id}/report").json()
        assert (report["status"], report["report"]) == ("Waiting", "Waiting")

    stopped = restart(cluster)
    assert stopped < 10, f"the graceful stop took {stopped:.1f}s"

    for job_id in jobs:
        done = wait(analyst, job_id)
        assert done["status"] == "Success", done["report"]
        assert done["report"]["full"] == {"slept": 2}
    # the interrupted job was run again from the start (not left InProgress, not failed)
    first = wait(analyst, jobs[0])
    assert first["endDate"] - first["startDate"] >= 2000

    # history: the finished job, its report, users, keys, organizations and workers
    assert wait(analyst, earlier["id"]) == earlier
    for client in (cluster.tenant.admin, cluster.tenant.analyst, cluster.tenant.reader):
        assert client.get("/api/user/current").status_code == 200
    assert cluster.superadmin.get(f"/api/organization/{cluster.tenant.org}").json()["status"] == "Active"
    for worker_id in (cluster.sleeper, cluster.noop):
        assert cluster.tenant.reader.get(f"/api/analyzer/{worker_id}").status_code == 200
    listed = analyst.post("/api/job/_search", json={"query": {}, "range": "all"})
    assert {j["id"] for j in listed.json()} == {earlier["id"], *jobs}
    assert {j["status"] for j in listed.json()} == {"Success"}


def test_killed_server_job_is_retried(cluster: Cluster) -> None:
    analyst = cluster.tenant.analyst
    running = submit(analyst, cluster.sleeper, "killed while running", seconds=2)
    queued = submit(analyst, cluster.sleeper, "queued behind it", seconds=0)
    wait_status(analyst, running, "InProgress")
    first_start = analyst.get(f"/api/job/{running}").json()["startDate"]

    restart(cluster, kill=True)
    # right after the restart the lease has not expired yet: the job is still InProgress, not lost
    assert status(analyst, running) in ("InProgress", "Waiting", "Success")

    started = time.monotonic()
    done = wait(analyst, running)
    assert done["status"] == "Success", done["report"]
    assert done["startDate"] > first_start  # a second run
    assert time.monotonic() - started < LEASE_SECONDS * 3 + 5
    assert wait(analyst, queued)["status"] == "Success"
    # the folder of the killed run was cleaned up with the retry, not left behind for ever
    assert list((cluster.server.data_dir / "jobs").glob(f"cortex-job-{running}-*")) == []


def test_job_interrupted_twice_fails_with_a_clear_message(cluster: Cluster) -> None:
    analyst = cluster.tenant.analyst
    job_id = submit(analyst, cluster.sleeper, "killed twice", seconds=6)
    wait_status(analyst, job_id, "InProgress")
    first_start = analyst.get(f"/api/job/{job_id}").json()["startDate"]
    restart(cluster, kill=True)

    # retried once the lease has expired (back to Waiting, then started again)...
    deadline = time.monotonic() + LEASE_SECONDS * 3 + 5
    while True:
        job = analyst.get(f"/api/job/{job_id}").json()
        assert job["status"] in ("InProgress", "Waiting"), job
        if job["status"] == "InProgress" and job["startDate"] != first_start:
            break
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    restart(cluster, kill=True)

    # ...but not a second time
    done = wait(analyst, job_id)
    assert done["status"] == "Failure"
    assert "interrupted twice" in done["report"]["errorMessage"]
    # the server stays usable
    assert wait(analyst, submit(analyst, cluster.noop, "after the failures"))["status"] == "Success"
