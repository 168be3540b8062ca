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
from neurocortex.services.catalog import CatalogLoader
from neurocortex.settings import Settings
from neurocortex.store.datastore import Datastore
from neurocortex.store.db import Database

ADMIN = os.environ.get("NEUROCORTEX_TEST_POSTGRES_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


def job(organization: str) -> dict:
    return {"id": new_id(), "organization": organization, "status": "Waiting", "type": "analyzer"}


async def test_a_later_id_never_becomes_visible_before_an_earlier_one(tmp_path: Path) -> None:
    """A writer that drew id N and has not committed holds back the next writer of the same organization,
    so that readers never see N + 1 without N; another organization is not held back."""
    name = f"nc_order_{secrets.token_hex(5)}"
    if subprocess.run(["psql", ADMIN, "-qc", f"CREATE DATABASE {name}"], capture_output=True).returncode:
        pytest.skip("no PostgreSQL server reachable")
    db = Database(f"{ADMIN.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+asyncpg://')}/{name}")
    svc = Services(
        settings=Settings(data_dir=tmp_path),
        db=db,
        box=SecretBox(b"test"),
        datastore=Datastore(tmp_path),
        catalog_loader=CatalogLoader([], [], set()),
    )
    try:
        await db.migrate()
        committed: list[tuple[str, int]] = []
        first_recorded = asyncio.Event()

        async def slow_writer() -> None:
            async with db.write() as conn:
                recorded = await job_events.record(svc, conn, [job("acme")])
                first_recorded.set()
                await asyncio.sleep(0.5)  # a long transaction, still open
            committed.extend(recorded)

        async def writer(organization: str) -> None:
            await first_recorded.wait()
            async with db.write() as conn:
                recorded = await job_events.record(svc, conn, [job(organization)])
            committed.extend(recorded)

        await asyncio.gather(slow_writer(), writer("acme"), writer("other"))
        acme = [event_id for organization, event_id in committed if organization == "acme"]
        assert acme == sorted(acme)  # committed in the order of their ids
        # the other organization did not wait for acme's open transaction
        assert committed[0][0] == "other"
        assert [e["id"] for e in await job_events.after(svc, "acme", 0)] == acme
    finally:
        await db.close()
        subprocess.run(["psql", ADMIN, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=False)
