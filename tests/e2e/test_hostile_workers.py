"""Workers that misbehave on purpose (tests/workers/analyzers/Hostile): every job still ends, quickly, with a
message saying what happened; nothing is left running, stuck, or written outside the job folder."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, Tenant, enable

# -- helpers ----------------------------------------------------------------------------------------------


def start(client: httpx.Client, worker_id: str, data: str = "192.0.2.1", **parameters) -> dict:
    response = client.post(
        f"/api/analyzer/{worker_id}/run", json={"dataType": "ip", "data": data, "parameters": parameters}
    )
    assert response.status_code == 200, response.text
    return response.json()


def wait(client: httpx.Client, job_id: str) -> dict:
    response = client.get(f"/api/job/{job_id}/waitreport", params={"atMost": "60 seconds"})
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] in ("Success", "Failure"), job
    return job


def run(client: httpx.Client, worker_id: str, data: str = "192.0.2.1", **parameters) -> tuple[dict, float]:
    started = time.monotonic()
    job = wait(client, start(client, worker_id, data, **parameters)["id"])
    return job, time.monotonic() - started


def process_gone(pid: int) -> bool:
    """Not running any more (a zombie waiting for an init that does not reap counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return "Z" in state.split()[1]


def sleeping_children() -> set[int]:
    """Pids of the `time.sleep(3600)` grandchildren hostile.py starts, wherever they are."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"time.sleep(3600)" in cmdline and not process_gone(int(entry.name)):
                found.add(int(entry.name))
    return found


def poll(condition, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (value := condition()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


# -- fixtures ---------------------------------------------------------------------------------------------

FLAVORS = ("Crash", "Hang", "Grandchild", "InvalidJson", "Flood", "Traversal", "NotObject", "UnknownKeys")


@pytest.fixture(scope="module")
def hostile(tenant: Tenant) -> dict[str, str]:
    workers = {}
    for flavor in FLAVORS:
        # 0.05 minutes = 3 seconds: a fractional timeout, as the UI allows; no cache, each test runs its job
        extra = {"jobTimeout": 0.05} if flavor in ("Hang", "Grandchild") else {}
        workers[flavor] = enable(tenant.admin, "analyzer", f"Hostile_{flavor}_1_0", jobCache=0, **extra)["id"]
    return workers


# -- each flavor ------------------------------------------------------------------------------------------


def test_crash(tenant: Tenant, hostile: dict[str, str]) -> None:
    job, elapsed = run(tenant.analyst, hostile["Crash"])
    assert job["status"] == "Failure" and elapsed < 10
    message = job["report"]["errorMessage"]
    assert "Traceback" in message and "RuntimeError: boom: the analyzer crashed" in message
    assert job["report"]["success"] is False


def test_hang_is_killed_at_the_timeout(tenant: Tenant, hostile: dict[str, str]) -> None:
    job, elapsed = run(tenant.analyst, hostile["Hang"])
    assert job["status"] == "Failure"
    assert 2.5 <= elapsed < 10, elapsed
    message = job["report"]["errorMessage"]
    assert "timeout" in message.lower() and "0.05 minutes" in message
    assert "about to hang" in message  # what the worker printed before hanging is kept
    assert job["endDate"] - job["startDate"] < 8000


def test_grandchild_is_killed_too(tenant: Tenant, hostile: dict[str, str], tmp_path: Path) -> None:
    before = sleeping_children()
    pidfile = tmp_path / "grandchild.pid"
    job = start(tenant.analyst, hostile["Grandchild"], pidfile=str(pidfile))
    assert poll(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=10)
    grandchild = int(pidfile.read_text())
    assert not process_gone(grandchild)  # it was really running

    started = time.monotonic()
    done = wait(tenant.analyst, job["id"])
    assert done["status"] == "Failure" and "timeout" in done["report"]["errorMessage"].lower()
    assert time.monotonic() - started < 10
    assert poll(lambda: process_gone(grandchild), timeout=5), f"grandchild {grandchild} survived"
    assert sleeping_children() <= before


def test_invalid_json(tenant: Tenant, hostile: dict[str, str]) -> None:
    job, elapsed = run(tenant.analyst, hostile["InvalidJson"])
    assert job["status"] == "Failure" and elapsed < 10
    message = job["report"]["errorMessage"]
    assert message.startswith("Invalid output: ") and "Expecting value" in message


def test_flood(tenant: Tenant, hostile: dict[str, str], server: Server) -> None:
    job = start(tenant.analyst, hostile["Flood"])
    latencies: list[float] = []
    finished = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while not finished.is_set():
                started = time.monotonic()
                assert client.get("/api/status").status_code == 200
                latencies.append(time.monotonic() - started)
                time.sleep(0.02)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        started = time.monotonic()
        done = wait(tenant.analyst, job["id"])
        elapsed = time.monotonic() - started
    finally:
        finished.set()
        prober.join()
    assert done["status"] == "Failure" and elapsed < 30
    message = done["report"]["errorMessage"]
    assert len(message.encode()) <= 70_000, len(message)
    assert message.startswith("A" * 1000)
    assert message.rstrip().endswith("the end of the flood")
    assert "bytes omitted" in message
    assert latencies and max(latencies) < 1.0, latencies


def test_traversal(tenant: Tenant, hostile: dict[str, str], server: Server) -> None:
    outside = [
        server.data_dir / "jobs" / "x",
        server.data_dir / "x",
        server.data_dir.parent / "x",
        Path("/tmp/x"),
    ]
    existed = {path: path.exists() for path in outside}
    job, _ = run(tenant.analyst, hostile["Traversal"])
    assert job["status"] == "Success", job["report"]
    assert job["report"]["artifacts"] == [
        {"data": "198.51.100.1", "dataType": "ip", "message": None, "tags": [], "tlp": 2}
    ]
    artifacts = tenant.analyst.get(f"/api/job/{job['id']}/artifacts", params={"range": "all"}).json()
    assert [(a["dataType"], a.get("data"), "attachment" in a) for a in artifacts] == [
        ("ip", "198.51.100.1", False)
    ]
    for path in outside:
        assert path.exists() == existed[path], path
    store = server.data_dir / "attachments"
    for content in (Path("/etc/passwd").read_bytes(), b"secret inside job dir"):
        assert not list(store.rglob(hashlib.sha256(content).hexdigest()))


def test_not_an_object(tenant: Tenant, hostile: dict[str, str]) -> None:
    job, _ = run(tenant.analyst, hostile["NotObject"])
    assert job["status"] == "Failure"
    assert job["report"]["errorMessage"] == (
        "Invalid output: a successful report needs a JSON object in 'full', got an array"
    )


def test_unknown_keys(tenant: Tenant, hostile: dict[str, str]) -> None:
    job, _ = run(tenant.analyst, hostile["UnknownKeys"], data="192.0.2.3")
    assert job["status"] == "Success", job["report"]
    report = job["report"]
    assert report["full"] == {"ok": 1} and report["summary"] == {"taxonomies": []}
    assert report["operations"] == []  # "not a list" in the output
    # "ioc"/"sighted" dropped, the artifact without dataType dropped, tlp 9 replaced by the job's
    assert report["artifacts"] == [
        {"data": "198.51.100.2", "dataType": "ip", "message": None, "tags": ["t"], "tlp": 2},
        {"data": "x.example", "dataType": "domain", "message": None, "tags": [], "tlp": 2},
    ]
    artifacts = tenant.analyst.get(f"/api/job/{job['id']}/artifacts", params={"range": "all"}).json()
    meta = {"_id", "id", "_type", "_routing", "_parent", "_seqNo", "_primaryTerm", "createdBy", "createdAt"}
    assert [set(a) - meta for a in artifacts] == [{"dataType", "data", "tlp", "tags"}] * 2


def test_all_at_once(tenant: Tenant, hostile: dict[str, str]) -> None:
    """Every flavor concurrently: they do not disturb one another."""
    expected = {"Crash": "Failure", "Hang": "Failure", "Grandchild": "Failure", "InvalidJson": "Failure",
                "Flood": "Failure", "Traversal": "Success", "NotObject": "Failure", "UnknownKeys": "Success"}  # fmt: skip
    jobs = {flavor: start(tenant.analyst, worker, data="192.0.2.200") for flavor, worker in hostile.items()}
    started = time.monotonic()
    ended = {flavor: wait(tenant.analyst, job["id"])["status"] for flavor, job in jobs.items()}
    assert ended == expected
    assert time.monotonic() - started < 30


def test_nothing_left_running(server: Server, tenant: Tenant) -> None:
    query = {"_in": {"_field": "status", "_values": ["Waiting", "InProgress"]}}
    response = tenant.analyst.post("/api/job/_search", json={"query": query, "range": "all"})
    assert response.status_code == 200 and response.json() == [] and response.headers["X-Total"] == "0"
    every = tenant.analyst.post("/api/job/_search", json={"query": {}, "range": "all"}).json()
    assert len(every) >= len(FLAVORS) and {j["status"] for j in every} <= {"Success", "Failure"}
    # and no job folder was left behind
    assert poll(lambda: not list((server.data_dir / "jobs").glob("cortex-job-*")), timeout=5)
    assert os.listdir(server.data_dir / "jobs") == []
