"""The ordering guarantee of job event ids under concurrent writers (services/job_events.py)."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
from pathlib import Path

import pytest

from neurocortex.crypto import SecretBox
from neurocortex.ids import new_id
from neurocortex.services import job_events
from neurocortex.services.base import Services
from neurocortex.services.catalog_sources import CatalogLoader
from neurocortex.settings import Settings
from neurocortex.store.datastore import Datastore
from neurocortex.store.db import Database

ADMIN = os.environ.get("NEUROCORTEX_TEST_POSTGRES_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


def job(organization: str) -> dict:
    return {"id": new_id(), "organization": organization, "status": "Waiting", "type": "analyzer"}


async def test_numbers_become_visible_in_increasing_order_and_writers_never_wait(tmp_path: Path) -> None:
    """An event written first but committed last gets the larger number: a reader that has seen 1 then
    asks for what follows 1 gets it. And the writer that commits first does not wait for the other."""
    name = f"nc_order_{secrets.token_hex(5)}"
    if subprocess.run(["psql", ADMIN, "-qc", f"CREATE DATABASE {name}"], capture_output=True).returncode:
        pytest.skip("no PostgreSQL server reachable")
    db = Database(f"{ADMIN.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+asyncpg://')}/{name}")
    svc = Services(
        settings=Settings(data_dir=tmp_path),
        db=db,
        box=SecretBox(b"test"),
        datastore=Datastore(tmp_path),
        catalog_loader=CatalogLoader([], []),
    )
    slow, fast = job("acme"), job("acme")
    try:
        await db.migrate()
        slow_written, fast_numbered = asyncio.Event(), asyncio.Event()
        seen_meanwhile: list[dict] = []

        async def slow_writer() -> None:
            async with db.write() as conn:
                await job_events.record(conn, [slow])
                slow_written.set()
                await fast_numbered.wait()  # its transaction stays open until the other one is numbered
            await job_events.number(svc)

        async def fast_writer() -> None:
            await slow_written.wait()
            async with db.write() as conn:
                await job_events.record(conn, [fast])
            await job_events.number(svc)
            seen_meanwhile.extend(await job_events.after(svc, "acme", 0))
            fast_numbered.set()

        await asyncio.wait_for(asyncio.gather(slow_writer(), fast_writer()), 30)
        assert [(e["id"], e["job"]["id"]) for e in seen_meanwhile] == [(1, fast["id"])]
        assert [(e["id"], e["job"]["id"]) for e in await job_events.after(svc, "acme", 1)] == [
            (2, slow["id"])
        ]
    finally:
        await db.close()
        subprocess.run(["psql", ADMIN, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=False)
