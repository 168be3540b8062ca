"""Database engines and migrations.

SQLite (the embedded default) allows one writer at a time. Writes therefore go through their own
engine with a single pooled connection and `BEGIN IMMEDIATE`, which queues writers in-process instead of
letting them collide and fail with "database is locked"; reads use a separate pool and, thanks to WAL,
never wait for writers. On PostgreSQL both are the same ordinary pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # the driver's implicit transactions would defer the write lock; we issue BEGIN ourselves
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.engine = create_async_engine(url, pool_size=8, max_overflow=8)
            self.write_engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=3600)
            for engine, begin in ((self.engine, "BEGIN"), (self.write_engine, "BEGIN IMMEDIATE")):
                event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
                event.listen(engine.sync_engine, "begin", _emit(begin))
        else:
            self.engine = create_async_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)
            self.write_engine = self.engine

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction, committed when the block ends without an exception."""
        async with self.write_engine.begin() as conn:
            yield conn

    async def migrate(self) -> None:
        async with self.write() as conn:
            await conn.run_sync(_upgrade_to_head)

    async def close(self) -> None:
        await self.engine.dispose()
        if self.write_engine is not self.engine:
            await self.write_engine.dispose()


def _emit(statement: str):
    def begin(conn: Connection) -> None:
        conn.exec_driver_sql(statement)

    return begin


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade_to_head(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


def ensure_sqlite_directory(url: str) -> None:
    if url.startswith("sqlite") and ":///" in url:
        path = url.split(":///", 1)[1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
