"""Dedicated servers for tests that need their own settings (concurrency, quotas, several nodes)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    Server,
    bootstrap_superadmin,
    drop_database,
    free_port,
    make_server,
)

POSTGRES_ADMIN = os.environ.get(
    "NEUROCORTEX_TEST_POSTGRES_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _drop_test_database(server: Server) -> None:
    url = server.env.get("NEUROCORTEX_DATABASE_URL", "")
    if "nc_test_" in url:
        drop_database(url.rsplit("/", 1)[1])


@contextlib.contextmanager
def dedicated(tmp: Path, env: dict[str, str]) -> Iterator[tuple[Server, httpx.Client]]:
    """A server with these settings (on the suite's database kind) and its first superadmin."""
    server = make_server(tmp, extra_env=env)
    server.start()
    try:
        yield server, bootstrap_superadmin(server)
    finally:
        server.stop()
        _drop_test_database(server)


@contextlib.contextmanager
def two_nodes(tmp: Path, env: dict[str, str]) -> Iterator[tuple[Server, Server, httpx.Client]]:
    """Two servers sharing one PostgreSQL database (and the secret key), each with its own dispatcher: the
    suite's database when it runs on PostgreSQL, else a throwaway one (skipped when none is reachable)."""
    first = make_server(tmp / "node1", extra_env=env)
    url = first.env.get("NEUROCORTEX_DATABASE_URL")
    if not url:
        name = f"nc_test_{secrets.token_hex(6)}"
        created = subprocess.run(
            ["psql", POSTGRES_ADMIN, "-qc", f"CREATE DATABASE {name}"], capture_output=True
        )
        if created.returncode:
            pytest.skip("no PostgreSQL server reachable")
        url = f"{POSTGRES_ADMIN.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    first.env |= {"NEUROCORTEX_DATABASE_URL": url, "NEUROCORTEX_SECRET_KEY": secrets.token_urlsafe(32)}
    data_dir = tmp / "node2" / "data"
    data_dir.mkdir(parents=True)
    second = Server(
        data_dir=data_dir, port=free_port(), env=first.env | {"NEUROCORTEX_DATA_DIR": str(data_dir)}
    )
    try:
        first.start()  # migrates the database; the second node then finds it ready
        second.start()
        yield first, second, bootstrap_superadmin(first)
    finally:
        first.stop()
        second.stop()
        drop_database(url.rsplit("/", 1)[1])


@dataclass
class Submitted:
    status: int
    job: dict


async def submit_many(requests: list[tuple[str, str, str, dict]], concurrency: int = 32) -> list[Submitted]:
    """POST many run requests at once: (base URL, API key, worker id, body) each, in order of the list."""
    semaphore = asyncio.Semaphore(concurrency)
    # one client per caller (making one costs milliseconds: its TLS context)
    clients = {
        (url, key): httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        for url, key in {(url, key) for url, key, _, _ in requests}
    }

    async def one(url: str, key: str, worker_id: str, body: dict) -> Submitted:
        async with semaphore:
            response = await clients[url, key].post(f"/api/analyzer/{worker_id}/run", json=body)
        return Submitted(response.status_code, response.json())

    try:
        return await asyncio.gather(*(one(*request) for request in requests))
    finally:
        for client in clients.values():
            await client.aclose()


def jobs_of(client: httpx.Client, **query) -> list[dict]:
    """Every job of the caller's organization, optionally filtered on one field."""
    body: dict = {"range": "all"}
    if query:
        ((field, value),) = query.items()
        body["query"] = {"_field": field, "_value": value}
    response = client.post("/api/job/_search", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def wait_until_done(client: httpx.Client, job_ids: list[str], timeout: float = 60) -> list[dict]:
    """The jobs once none is Waiting or InProgress any more."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = client.post("/api/job/status", json={"jobIds": job_ids}).json()
        if all(status not in ("Waiting", "InProgress") for status in statuses.values()):
            break
        assert time.monotonic() < deadline, {
            s: list(statuses.values()).count(s) for s in set(statuses.values())
        }
        time.sleep(0.1)
    wanted = set(job_ids)
    return [job for job in jobs_of(client) if job["id"] in wanted]


def max_overlap(jobs: list[dict]) -> int:
    """The most jobs running at one moment, from their start and end dates (an end at the same millisecond
    as a start comes first: the slot was freed, then taken)."""
    events = sorted([(j["startDate"], 1) for j in jobs] + [(j["endDate"], -1) for j in jobs])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def most_starts_in_window(jobs: list[dict], window_ms: int) -> int:
    """The most jobs started in any window [t, t + window_ms)."""
    starts = sorted(j["startDate"] for j in jobs)
    most = 0
    first = 0
    for last, start in enumerate(starts):
        while start - starts[first] >= window_ms:
            first += 1
        most = max(most, last - first + 1)
    return most
