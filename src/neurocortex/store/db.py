"""Database engines and migrations.

On PostgreSQL, an ordinary asyncpg pool. On SQLite (the embedded default) statements run right on the
event loop's thread: a statement takes microseconds, while handing it to a driver thread and back
costs ten times that. Reads use a pool and, thanks to WAL, never wait for the writer. Writes take an
asyncio lock (so writers queue without blocking the loop), then the one write connection with
`BEGIN IMMEDIATE`, so that transactions never collide with "database is locked". SQLite therefore suits
one server process; several nodes share a PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, Result
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # the driver's implicit transactions would defer the write lock; we issue BEGIN ourselves
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # waits for another process holding the write lock (e.g. `neurocortex init`) block the loop: keep them short
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class Database:
    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            sync_url = re.sub(r"^sqlite(\+\w+)?://", "sqlite+pysqlite://", url)
            self.read_engine = _sqlite_engine(sync_url, "BEGIN", pool_size=8, max_overflow=8)
            self.write_engine = _sqlite_engine(sync_url, "BEGIN IMMEDIATE", pool_size=1, max_overflow=0)
            self.async_engine = None
            self._write_lock = asyncio.Lock()
        else:
            self.async_engine = create_async_engine(
                url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection | InlineConnection]:
        if self.async_engine is not None:
            async with self.async_engine.connect() as conn:
                yield conn
        else:
            with self.read_engine.connect() as conn:
                yield InlineConnection(conn)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection | InlineConnection]:
        """A transaction, committed when the block ends without an exception."""
        if self.async_engine is not None:
            async with self.async_engine.begin() as conn:
                yield conn
        else:
            async with self._write_lock:
                with self.write_engine.begin() as conn:
                    yield InlineConnection(conn)

    async def migrate(self) -> None:
        async with self.write() as conn:
            await conn.run_sync(_upgrade_to_head)

    async def close(self) -> None:
        if self.async_engine is not None:
            await self.async_engine.dispose()
        else:
            self.read_engine.dispose()
            self.write_engine.dispose()


def _sqlite_engine(url: str, begin: str, **pool: Any) -> Engine:
    # every connection is used on the event loop's thread only, one coroutine at a time
    engine = create_engine(url, connect_args={"check_same_thread": False}, **pool)
    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "begin", _emit(begin))
    return engine


class InlineConnection:
    """The part of AsyncConnection's interface our reads use, over a synchronous SQLite connection."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def execute(self, statement: Any, parameters: Any = None) -> Result:
        return self._connection.execute(statement, parameters)

    async def scalar(self, statement: Any, parameters: Any = None) -> Any:
        return self._connection.scalar(statement, parameters)

    async def scalars(self, statement: Any, parameters: Any = None) -> Any:
        return self._connection.scalars(statement, parameters)

    async def run_sync(self, function: Any, *args: Any) -> Any:
        return function(self._connection, *args)


def _emit(statement: str):
    def begin(conn: Connection) -> None:
        conn.exec_driver_sql(statement)

    return begin


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


MIGRATION_LOCK = 0x6E636D67  # any constant shared by every node: serializes their migrations


def _upgrade_to_head(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # nodes starting together: one migrates, the others wait and then find nothing to do
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
    command.upgrade(alembic_config(connection), "head")


def ensure_sqlite_directory(url: str) -> None:
    if url.startswith("sqlite") and ":///" in url:
        path = url.split(":///", 1)[1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
