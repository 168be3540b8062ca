"""The migrations build exactly the schema the code declares, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import secrets
import subprocess

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import select, text

from neurocortex.store import tables
from neurocortex.store.db import Database, alembic_config
from neurocortex.store.job_text import outside_models

ADMIN = os.environ.get("NEUROCORTEX_TEST_POSTGRES_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _not_a_full_text_index(name, type_, _parent) -> bool:
    # the full-text indexes over report bodies (SQLite's FTS5 virtual table and its shadow tables,
    # PostgreSQL's expression index) are made by the migration for each dialect, not declared as models
    return not ((type_ == "table" and name.startswith("report_fts")) or name == "ix_report_fulltext")


def _diff(connection) -> list:
    # the jobs' trigram indexes live outside the models too: see store/job_text.py
    def modelled(name, type_, parent) -> bool:
        return _not_a_full_text_index(name, type_, parent) and outside_models(name, type_, parent)

    context = MigrationContext.configure(connection, opts={"include_name": modelled})
    return compare_metadata(context, tables.metadata)


async def _check(url: str) -> None:
    db = Database(url)
    try:
        await db.migrate()
        await db.migrate()  # a second run is a no-op
        async with db.read() as conn:
            assert await conn.run_sync(_diff) == []
            heads = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
            assert heads == [ScriptDirectory.from_config(alembic_config()).get_current_head()]
            assert (await conn.execute(select(tables.organization))).all() == []
    finally:
        await db.close()


async def test_sqlite_schema_matches_the_models(tmp_path) -> None:
    await _check(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")


async def test_postgresql_schema_matches_the_models() -> None:
    name = f"nc_mig_{secrets.token_hex(5)}"
    if subprocess.run(["psql", ADMIN, "-qc", f"CREATE DATABASE {name}"], capture_output=True).returncode:
        pytest.skip("no PostgreSQL server reachable")
    try:
        await _check(f"{ADMIN.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+asyncpg://')}/{name}")
    finally:
        subprocess.run(["psql", ADMIN, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=False)
