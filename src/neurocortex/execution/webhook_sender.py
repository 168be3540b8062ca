"""Sends the queued webhook deliveries (services/job_events.py queues them with their events), and
deletes the events and deliveries past their retention.

Every `serve` node runs one sender. A delivery is claimed as a job is, by one conditional UPDATE (Pending,
due, not leased → leased to this node until the answer's timeout has passed), so that several nodes
send each delivery once; one whose node died mid-send is taken again when its lease runs out (delivery
is therefore at least once: receivers dedupe with `X-Neurocortex-Event-Id`). Each delivery is its own
task, at most `webhook_concurrency` at a time, so one slow receiver holds back nothing but itself.
A 2xx answer is a success; anything else (an error status, a timeout, a refused connection) is retried
`webhook_retry_delay` × 2^(attempt - 1) later, at most an hour, until `webhook_max_attempts`.

Signature: `X-Neurocortex-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` where the
timestamp, in seconds since the epoch, is also sent as `X-Neurocortex-Timestamp`: a receiver checks the
HMAC and that the timestamp is recent, so that a captured delivery cannot be replayed later.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from typing import Any

import httpx
import orjson
from sqlalchemy import or_, select, update

from neurocortex import __version__
from neurocortex.ids import now_ms
from neurocortex.services import job_events
from neurocortex.services.base import Services
from neurocortex.store import tables as t

log = logging.getLogger(__name__)

IDLE_SECONDS = 5.0
"""Longest sleep between two looks at the queue when nothing wakes the sender (a lost notification);
after such a sleep, events left without a number are numbered too."""
PURGE_SECONDS = 600.0
"""How often events past their retention are deleted (more often when the retention is shorter)."""
MAX_RETRY_DELAY = 3600.0
LEASE_MARGIN_MS = 30_000


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


class WebhookSender:
    def __init__(self, svc: Services, node: str) -> None:
        self.svc = svc
        self.node = node
        self._wakeup = asyncio.Event()
        self._sending: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    def start(self) -> None:
        settings = self.svc.settings
        self._client = httpx.AsyncClient(
            timeout=settings.webhook_timeout,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=settings.webhook_concurrency),
        )
        self.svc.events.job_event_listeners.append(self._on_job_event)
        self._task = asyncio.create_task(self._loop(), name="webhook-sender")

    async def stop(self) -> None:
        interrupted = bool(self._sending)
        tasks = [task for task in (self._task, *self._sending) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
        if interrupted:
            await self._give_back()

    async def _give_back(self) -> None:
        """The deliveries interrupted by the stop, due again now rather than when their leases run out;
        not counted as an attempt."""
        d = t.webhook_delivery
        try:
            async with self.svc.db.write() as conn:
                await conn.execute(
                    update(d)
                    .where(d.c.status == "Pending", d.c.lease_owner.startswith(f"{self.node}/"))
                    .values(lease_owner=None, lease_until=None, attempts=d.c.attempts - 1)
                )
        except Exception as exc:  # their leases will run out instead
            log.warning("webhook deliveries in flight not given back: %s", exc)

    async def _loop(self) -> None:
        next_purge = 0.0
        woken = False
        while True:
            self._wakeup.clear()
            idle = IDLE_SECONDS
            try:
                if not woken:
                    # events whose writer stopped before numbering them (services/job_events.py)
                    await job_events.number(self.svc)
                if time.monotonic() >= next_purge:
                    await job_events.purge(self.svc)
                    retention = self.svc.settings.event_retention * 86_400
                    next_purge = time.monotonic() + min(PURGE_SECONDS, retention / 4)
                room = self.svc.settings.webhook_concurrency - len(self._sending)
                if room > 0:
                    for delivery in await self._claim(room):
                        task = asyncio.create_task(self._send(delivery), name=f"webhook-{delivery['id']}")
                        self._sending.add(task)
                        task.add_done_callback(self._sent)
                    idle = await self._seconds_to_next_due(idle)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook sender: cannot read the queue")
            woken = False
            with contextlib.suppress(TimeoutError):
                woken = await asyncio.wait_for(self._wakeup.wait(), idle)

    def _on_job_event(self, _organization: str, deliveries: bool) -> None:
        if deliveries:
            self._wakeup.set()

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self._wakeup.set()  # room for another

    async def _claim(self, room: int) -> list[dict[str, Any]]:
        now = now_ms()
        d = t.webhook_delivery
        claimable = (
            d.c.status == "Pending",
            d.c.nextAttemptAt <= now,
            or_(d.c.lease_until.is_(None), d.c.lease_until < now),
        )
        async with self.svc.db.read() as conn:
            candidates = (
                (
                    await conn.execute(
                        select(d.c.id)
                        .join(t.webhook, t.webhook.c.id == d.c.webhook)
                        .where(*claimable, t.webhook.c.enabled.is_(True))
                        .order_by(d.c.nextAttemptAt)
                        .limit(room)
                    )
                )
                .scalars()
                .all()
            )
        if not candidates:
            return []
        lease_ms = int(self.svc.settings.webhook_timeout * 1000) + LEASE_MARGIN_MS
        owner = f"{self.node}/{secrets.token_hex(4)}"
        async with self.svc.db.write() as conn:
            # the conditions again: another node may have claimed some since the read
            rows = await conn.execute(
                update(d)
                .where(d.c.id.in_(candidates), *claimable)
                .values(lease_owner=owner, lease_until=now + lease_ms, attempts=d.c.attempts + 1)
                .returning(*d.c)
            )
            claimed = [dict(row._mapping) for row in rows]
        return claimed

    async def _seconds_to_next_due(self, idle: float) -> float:
        d = t.webhook_delivery
        async with self.svc.db.read() as conn:
            due = await conn.scalar(
                select(d.c.nextAttemptAt)
                .join(t.webhook, t.webhook.c.id == d.c.webhook)
                .where(d.c.status == "Pending", d.c.lease_until.is_(None), t.webhook.c.enabled.is_(True))
                .order_by(d.c.nextAttemptAt)
                .limit(1)
            )
        if due is None:
            return idle
        return min(idle, max(0.05, (due - now_ms()) / 1000))

    async def _send(self, delivery: dict[str, Any]) -> None:
        status_code: int | None = None
        error: str | None = None
        try:
            request = await self._request(delivery)
            if request is None:
                return
            url, body, headers = request
            assert self._client is not None
            response = await self._client.post(url, content=body, headers=headers)
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
        except asyncio.CancelledError:
            raise
        except httpx.TimeoutException:
            error = f"no answer within {self.svc.settings.webhook_timeout:g} s"
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:1000]
        await self._record(delivery, status_code, error)

    async def _request(self, delivery: dict[str, Any]) -> tuple[str, bytes, dict[str, str]] | None:
        async with self.svc.db.read() as conn:
            hook = (
                await conn.execute(
                    select(t.webhook.c.url, t.webhook.c.secret).where(t.webhook.c.id == delivery["webhook"])
                )
            ).first()
            event = (
                await conn.execute(select(t.job_event).where(t.job_event.c.seq == delivery["event"]))
            ).first()
        if hook is None or event is None:
            return None  # removed meanwhile, with its deliveries
        body = orjson.dumps(job_events.payload(dict(event._mapping)))
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"neurocortex/{__version__}",
            "X-Neurocortex-Event": delivery["eventType"],
            "X-Neurocortex-Event-Id": str(delivery["event"]),
            "X-Neurocortex-Delivery": delivery["id"],
            "X-Neurocortex-Timestamp": timestamp,
            "X-Neurocortex-Signature": signature(self.svc.box.decrypt(hook.secret), timestamp, body),
        }
        return hook.url, body, headers

    async def _record(self, delivery: dict[str, Any], status_code: int | None, error: str | None) -> None:
        settings = self.svc.settings
        now = now_ms()
        values: dict[str, Any] = {
            "lastStatusCode": status_code,
            "lastError": error,
            "lastAttemptAt": now,
            "lease_owner": None,
            "lease_until": None,
        }
        if error is None:
            values |= {"status": "Delivered", "deliveredAt": now, "nextAttemptAt": None}
        elif delivery["attempts"] >= settings.webhook_max_attempts:
            values |= {"status": "Failed", "nextAttemptAt": None}
            log.warning("webhook delivery %s failed for good: %s", delivery["id"], error)
        else:
            delay = min(MAX_RETRY_DELAY, settings.webhook_retry_delay * 2 ** (delivery["attempts"] - 1))
            values["nextAttemptAt"] = now + int(delay * 1000)
        d = t.webhook_delivery
        async with self.svc.db.write() as conn:
            await conn.execute(
                update(d)
                .where(d.c.id == delivery["id"], d.c.lease_owner == delivery["lease_owner"])
                .values(values)
            )
