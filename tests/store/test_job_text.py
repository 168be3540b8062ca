"""The jobs' text search through its trigram index (FTS5 on SQLite, pg_trgm on PostgreSQL): substrings of
the data and of the file name, case-insensitive, with LIKE's special characters taken literally, and the
index following inserts, updates and deletes of jobs."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import delete, insert, select, update

from neurocortex.store import job_text
from neurocortex.store import tables as t
from neurocortex.store.db import Database
from tests.store.test_migrations import ADMIN


def _job(job_id: str, data: str | None, name: str | None = None) -> dict:
    return {
        "id": job_id, "organization": "org", "workerId": "w", "workerName": "W", "workerDefinitionId": "W_1",
        "type": "analyzer", "status": "Success", "dataType": "file" if name else "domain", "data": data,
        "attachment": {"id": "a", "name": name} if name else None, "tlp": 2, "pap": 2, "message": "",
        "parameters": "{}", "cacheTag": job_id, "attempts": 0, "createdBy": "u", "createdAt": 1,
    }  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
        return
    name = f"nc_text_{secrets.token_hex(5)}"
    if subprocess.run(["psql", ADMIN, "-qc", f"CREATE DATABASE {name}"], capture_output=True).returncode:
        pytest.skip("no PostgreSQL server reachable")
    try:
        yield f"{ADMIN.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    finally:
        subprocess.run(["psql", ADMIN, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=False)


@asynccontextmanager
async def migrated(url: str) -> AsyncIterator[Database]:
    db = Database(url)
    try:
        await db.migrate()
        yield db
    finally:
        await db.close()


async def _found(db: Database, text: str) -> set[str]:
    dialect = "sqlite" if db.is_sqlite else "postgresql"
    async with db.read() as conn:
        rows = await conn.execute(select(t.job.c.id).where(job_text.matches(dialect, text)))
        return {row.id for row in rows}


async def test_substrings_of_data_and_file_names(url: str) -> None:
    async with migrated(url) as db:
        await _substrings(db)


async def _substrings(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(insert(t.job), [
            _job("j1", "Evil-Host.example.com"), _job("j2", "10.0.0.42"), _job("j3", None, "Report_Q3.PDF"),
            _job("j4", "100%_sure"), _job("j5", 'say "hi" there'),
        ])  # fmt: skip
    assert await _found(db, "evil-host") == {"j1"}  # case-insensitive, any part of the value
    assert await _found(db, "EXAMPLE.COM") == {"j1"}
    assert await _found(db, "0.0.4") == {"j2"}
    assert await _found(db, "report_q3") == {"j3"}  # the file's name
    assert await _found(db, "0%_") == {"j4"}  # LIKE's wildcards are plain characters
    assert await _found(db, '"hi"') == {"j5"}  # as are the index's quotes
    assert await _found(db, ".4") == {"j2"}  # shorter than a trigram: a plain LIKE
    assert await _found(db, "nowhere") == set()


async def test_the_index_follows_updates_and_deletes(url: str) -> None:
    async with migrated(url) as db:
        await _follows(db)


async def _follows(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(insert(t.job), [_job("j1", "first.example"), _job("j2", "second.example")])
    assert await _found(db, "first") == {"j1"}
    async with db.write() as conn:
        await conn.execute(update(t.job).where(t.job.c.id == "j1").values(data="renamed.example"))
        await conn.execute(delete(t.job).where(t.job.c.id == "j2"))
    assert await _found(db, "first") == set()
    assert await _found(db, "renamed") == {"j1"}
    assert await _found(db, "second") == set()
    assert await _found(db, ".example") == {"j1"}
