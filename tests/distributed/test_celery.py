"""Distributed mode for real: two `serve` nodes and two Celery workers (RabbitMQ, then Redis) sharing only
a PostgreSQL database and the broker — no filesystem in common."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import bearer, enable, new_tenant

from .conftest import Cluster


def on_node(cluster: Cluster, index: int, key: str) -> httpx.Client:
    return bearer(cluster.servers[index].url, key)


def worker_of(cluster: Cluster, report: dict) -> int:
    """Which worker node ran the job: the job directory lies in that node's own data directory."""
    directory = Path(report["report"]["full"]["job_directory"])
    for index, worker in enumerate(cluster.workers):
        if directory.is_relative_to(worker.data_dir):
            return index
    raise AssertionError(f"job ran in {directory}, outside every worker's data directory")


def wait_status(client: httpx.Client, job_id: str, statuses: set[str], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/job/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['status']}")


@pytest.fixture(scope="module")
def tenant(cluster: Cluster):
    tenant = new_tenant(cluster.admin)
    tenant.echo = enable(tenant.admin, "analyzer", "Echo_1_0")["id"]
    tenant.sleeper = enable(tenant.admin, "analyzer", "Sleeper_1_0")["id"]
    return tenant


def test_a_job_sent_to_one_node_is_run_by_a_worker_and_seen_ending_by_the_other(cluster: Cluster, tenant):
    first, second = on_node(cluster, 0, tenant.analyst_key), on_node(cluster, 1, tenant.analyst_key)
    job = first.post(
        f"/api/analyzer/{tenant.echo}/run", json={"dataType": "ip", "data": "198.51.100.1"}
    ).json()
    # waits on the other API node: the end of the job must reach it through the database
    report = second.get(f"/api/job/{job['id']}/waitreport", params={"atMost": "1minute"}).json()
    assert report["status"] == "Success", report
    assert report["report"]["full"]["data"] == "198.51.100.1"
    assert not report["report"]["full"]["env_has_secret"]
    worker_of(cluster, report)


def test_attachments_travel_to_the_worker_and_file_artifacts_come_back(cluster: Cluster, tenant):
    first, second = on_node(cluster, 0, tenant.analyst_key), on_node(cluster, 1, tenant.analyst_key)
    content = b"evil bytes \x00\x01 from node one " * 1000
    job = first.post(
        f"/api/analyzer/{tenant.echo}/run",
        data={"_json": '{"dataType": "file", "tlp": 1}'},
        files={"attachment": ("sample.bin", content, "application/octet-stream")},
    ).json()
    report = second.get(f"/api/job/{job['id']}/waitreport", params={"atMost": "1minute"}).json()
    assert report["status"] == "Success", report
    assert report["report"]["full"]["filename"] == "sample.bin"
    assert report["report"]["full"]["file_content"] == content.decode(errors="replace")
    (artifact,) = [a for a in second.get(f"/api/job/{job['id']}/artifacts").json() if a["dataType"] == "file"]
    # the artifact was made on a worker; both API nodes serve its bytes
    for client in (first, second):
        download = client.get(f"/api/datastore/{artifact['attachment']['id']}")
        assert download.status_code == 200
        assert download.content == content


def test_two_workers_share_the_load(cluster: Cluster, tenant):
    client = on_node(cluster, 0, tenant.analyst_key)
    jobs = [
        client.post(
            f"/api/analyzer/{tenant.echo}/run",
            json={"dataType": "other", "data": f"load-{i}", "parameters": {"seconds": 0}},
        ).json()
        for i in range(16)
    ]
    ran_on = set()
    for job in jobs:
        report = client.get(f"/api/job/{job['id']}/waitreport", params={"atMost": "1minute"}).json()
        assert report["status"] == "Success", report
        ran_on.add(worker_of(cluster, report))
    assert ran_on == {0, 1}


def test_streams_of_every_api_node_see_jobs_end_on_workers(cluster: Cluster, tenant):
    first, second = on_node(cluster, 0, tenant.analyst_key), on_node(cluster, 1, tenant.analyst_key)
    stream = second.post("/api/stream").text
    job = first.post(f"/api/analyzer/{tenant.echo}/run", json={"dataType": "ip", "data": "192.0.2.77"}).json()
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while "Success" not in seen and time.monotonic() < deadline:
        for group in second.get(f"/api/stream/{stream}").json():
            base = group["base"]
            if base["objectType"] == "job" and base["objectId"] == job["id"]:
                seen.append(base["details"].get("status") or base["operation"])
    assert "Success" in seen, seen


def test_a_worker_killed_mid_job_leaves_it_to_the_other(cluster: Cluster, tenant):
    client = on_node(cluster, 0, tenant.analyst_key)
    job = client.post(
        f"/api/analyzer/{tenant.sleeper}/run",
        json={"dataType": "other", "data": "slow", "parameters": {"seconds": 3}},
    ).json()
    wait_status(client, job["id"], {"InProgress"})
    # the worker holding it has its folder on its own disk
    deadline = time.monotonic() + 20
    holder = None
    while holder is None and time.monotonic() < deadline:
        for index, worker in enumerate(cluster.workers):
            if any((worker.data_dir / "jobs").glob(f"*{job['id']}*")):
                holder = index
        time.sleep(0.05)
    assert holder is not None, "no worker made the job's folder"
    cluster.workers[holder].kill()
    try:
        ended = wait_status(client, job["id"], {"Success", "Failure"}, timeout=90)
        assert ended["status"] == "Success", ended
        report = client.get(f"/api/job/{job['id']}/report").json()
        assert report["report"]["full"] == {"slept": 3.0}
        # nothing left behind: no job in progress anywhere
        assert client.post("/api/job/_search", json={"query": {"status": "InProgress"}}).json() == []
    finally:
        cluster.workers[holder].start()
        cluster.wait_for_workers(2)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "distributed mode needs a database all nodes share"),
        (
            {"NEUROCORTEX_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"},
            "give every node the same NEUROCORTEX_SECRET_KEY",
        ),  # fmt: skip
    ],
)
def test_a_worker_refuses_a_setup_that_cannot_work(tmp_path: Path, env: dict, message: str) -> None:
    """A node of its own (SQLite) or a key of its own would fail every job: it does not start at all."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("NEUROCORTEX_")}
    base |= {"NEUROCORTEX_DATA_DIR": str(tmp_path), "NEUROCORTEX_BROKER_URL": "redis://127.0.0.1:6379/0"}
    finished = subprocess.run(
        [sys.executable, "-m", "neurocortex", "worker"],
        env=base | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode != 0
    assert message in finished.stderr
