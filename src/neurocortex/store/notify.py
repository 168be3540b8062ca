"""Messages between nodes over PostgreSQL's LISTEN/NOTIFY.

Several `serve` nodes and `neurocortex worker` nodes share one PostgreSQL database: a job finished on
one must wake the `waitreport` calls and fill the streams of every other. NOTIFY is transactional
(delivered when the sending transaction commits) and needs no other service. A node that loses its
listening connection reconnects; what it missed meanwhile is only lost for streams — `waitreport` also
re-reads the job row now and then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

CHANNEL = "neurocortex_events"


async def notify(conn, payloads: list[str]) -> None:
    """Queue the payloads on `conn`'s transaction; they are delivered when it commits."""
    for payload in payloads:
        await conn.execute(
            text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload}
        )


class Listener:
    """Holds one connection LISTENing on the channel and hands every payload to `received`."""

    def __init__(self, database_url: str, received: Callable[[str], None]) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._received = received
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="notify-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        delay = 0.5
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self._dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._on_notification)
                self.listening.set()
                delay = 0.5
                await lost.wait()
                log.warning("lost the connection listening for other nodes' events; reconnecting")
            except asyncio.CancelledError:
                if conn is not None:
                    await conn.close(timeout=2)
                raise
            except Exception as exc:
                log.warning("cannot listen for other nodes' events (%s); retrying in %.1f s", exc, delay)
            self.listening.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _on_notification(self, _conn, _pid, _channel, payload: str) -> None:
        try:
            self._received(payload)
        except Exception:
            log.exception("event from another node could not be handled: %.200s", payload)
