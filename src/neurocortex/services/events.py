"""Change events: what `/api/stream` delivers and what wakes `waitreport` when a job ends.

On one node, events go straight to this process's waiters and streams. When nodes share a PostgreSQL
database, every event goes through the database instead (store/notify.py) and comes back to each node,
this one included: a job finished by a worker on another machine wakes `waitreport` and fills the
streams of every API node, and each event is delivered once per node whichever node produced it.
`waitreport` also re-reads the job row now and then (jobs.wait_for_report), in case an event was lost.
A job ended by this process also hands its final state (job row, report, artifacts, as committed) to
this node's waiters at once, which then need not read it back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import string
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

log = logging.getLogger(__name__)

Relay = Callable[[list[str]], Awaitable[None]]

STREAM_ID_ALPHABET = string.ascii_letters + string.digits
MAX_EVENT_SIZE = 7800
"""Bytes of one event sent between nodes (PostgreSQL's NOTIFY takes less than 8000)."""


@dataclass
class AuditEvent:
    object_type: str
    object_id: str
    operation: str  # Creation | Update | Delete
    organization: str | None
    user: str
    request_id: str
    root_id: str
    object: dict[str, Any]
    details: dict[str, Any]
    date: int = field(default_factory=lambda: int(time.time() * 1000))

    def base(self) -> dict[str, Any]:
        return {
            "objectId": self.object_id,
            "objectType": self.object_type,
            "operation": self.operation,
            "startDate": self.date,
            "rootId": self.root_id,
            "user": self.user,
            "createdBy": self.user,
            "createdAt": self.date,
            "requestId": self.request_id,
            "object": self.object,
            "details": self.details,
        }


@dataclass
class Stream:
    organization: str | None
    events: deque[AuditEvent] = field(default_factory=lambda: deque(maxlen=10_000))
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    last_poll: float = field(default_factory=time.monotonic)


class EventBus:
    STREAM_IDLE_LIFETIME = 15 * 60

    def __init__(self) -> None:
        self._job_waiters: dict[str, list[asyncio.Future[Any]]] = {}
        self._streams: dict[str, Stream] = {}
        # called with the id of every job that ends, on any node (the dispatcher: room for another job)
        self.job_end_listeners: list[Callable[[str], None]] = []
        # woken when an organization has new job events in the database (services/job_events.py)
        self._job_event_signals: dict[str, set[asyncio.Event]] = {}
        # called with the organization, and whether webhook deliveries were queued
        self.job_event_listeners: list[Callable[[str, bool], None]] = []
        self.closing = False
        self._relay: Relay | None = None
        self._outbox: list[str] = []
        self._flushing: asyncio.Task[None] | None = None

    # -- between nodes --
    def relay_through(self, send: Relay) -> None:
        """From now on, send every event to all nodes with `send`; they come back through `receive`."""
        self._relay = send

    def receive(self, payload: str) -> None:
        message = orjson.loads(payload)
        if message["kind"] == "end":
            self._job_ended_here(message["job"])
        elif message["kind"] == "job_event":
            self._job_event_here(message["organization"], message["deliveries"])
        elif message["kind"] == "event":
            self._publish_here(AuditEvent(**message["event"]))

    def _post(self, message: dict[str, Any]) -> None:
        self._outbox.append(orjson.dumps(message).decode())
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        """Send what accumulated, in order, in as few transactions as the pace of events allows."""
        assert self._relay is not None
        try:
            while self._outbox:
                batch, self._outbox = self._outbox, []
                try:
                    await self._relay(batch)
                except Exception as exc:
                    log.warning("%d events could not be sent to the other nodes: %s", len(batch), exc)
        finally:
            self._flushing = None

    # -- job completion --
    def job_ended(self, job_id: str, final: Any = None) -> None:
        """`final`: what the job ended as, when the caller has it (None: the waiters read the job)."""
        if final is not None or self._relay is None:
            self._job_ended_here(job_id, final)
        if self._relay is not None:
            self._post({"kind": "end", "job": job_id})

    def _job_ended_here(self, job_id: str, final: Any = None) -> None:
        for waiter in self._job_waiters.pop(job_id, []):
            if not waiter.done():
                waiter.set_result(final)
        for listener in self.job_end_listeners:
            listener(job_id)

    def job_waiter(self, job_id: str) -> asyncio.Future[Any]:
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._job_waiters.setdefault(job_id, []).append(waiter)
        return waiter

    def forget_waiter(self, job_id: str, waiter: asyncio.Future[Any]) -> None:
        waiters = self._job_waiters.get(job_id)
        if waiters and waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                del self._job_waiters[job_id]

    # -- job events (stored; this only says that there are new ones) --
    def job_event(self, organization: str, deliveries: bool) -> None:
        if self._relay is not None:
            self._post({"kind": "job_event", "organization": organization, "deliveries": deliveries})
        else:
            self._job_event_here(organization, deliveries)

    def _job_event_here(self, organization: str, deliveries: bool) -> None:
        for signal in self._job_event_signals.get(organization, ()):
            signal.set()
        for listener in self.job_event_listeners:
            listener(organization, deliveries)

    def close_event_streams(self) -> None:
        """The server is stopping: open event streams end (their clients reconnect, to another node)."""
        self.closing = True
        for signals in self._job_event_signals.values():
            for signal in signals:
                signal.set()

    def job_event_signal(self, organization: str) -> asyncio.Event:
        signal = asyncio.Event()
        self._job_event_signals.setdefault(organization, set()).add(signal)
        return signal

    def forget_job_event_signal(self, organization: str, signal: asyncio.Event) -> None:
        signals = self._job_event_signals.get(organization)
        if signals is not None:
            signals.discard(signal)
            if not signals:
                del self._job_event_signals[organization]

    # -- audit streams --
    def publish(self, event: AuditEvent) -> None:
        if self._relay is None:
            self._publish_here(event)
            return
        message = {"kind": "event", "event": dataclasses.asdict(event)}
        if len(orjson.dumps(message)) > MAX_EVENT_SIZE:
            # too large for one notification: the entity is announced by its id only
            event = dataclasses.replace(event, object={"id": event.object_id, "_id": event.object_id})
            message["event"] = dataclasses.asdict(event)
            if len(orjson.dumps(message)) > MAX_EVENT_SIZE:
                message["event"]["details"] = {}
        self._post(message)

    def _publish_here(self, event: AuditEvent) -> None:
        for stream in self._streams.values():
            if stream.organization is None or stream.organization == event.organization:
                stream.events.append(event)
                stream.wakeup.set()

    def create_stream(self, organization: str | None) -> str:
        self._expire_streams()
        stream_id = "".join(secrets.choice(STREAM_ID_ALPHABET) for _ in range(10))
        self._streams[stream_id] = Stream(organization)
        return stream_id

    def stream(self, stream_id: str, organization: str | None) -> Stream | None:
        stream = self._streams.get(stream_id)
        if stream is None or (stream.organization is not None and stream.organization != organization):
            return None
        return stream

    async def poll(
        self, stream: Stream, refresh: float = 60.0, next_item_wait: float = 0.5, max_wait: float = 1.0
    ) -> list[dict[str, Any]]:
        """Cortex's long poll: wait up to `refresh` for a first event, then briefly gather the ones that follow."""
        stream.last_poll = time.monotonic()
        if not stream.events:
            stream.wakeup.clear()
            try:
                await asyncio.wait_for(stream.wakeup.wait(), refresh)
            except TimeoutError:
                return []
        deadline = time.monotonic() + max_wait
        while time.monotonic() < deadline:
            stream.wakeup.clear()
            try:
                await asyncio.wait_for(stream.wakeup.wait(), min(next_item_wait, deadline - time.monotonic()))
            except TimeoutError:
                break
        stream.last_poll = time.monotonic()
        events = list(stream.events)
        stream.events.clear()
        return group_by_request(events)

    def _expire_streams(self) -> None:
        limit = time.monotonic() - self.STREAM_IDLE_LIFETIME
        for stream_id in [k for k, s in self._streams.items() if s.last_poll < limit]:
            del self._streams[stream_id]


def group_by_request(events: list[AuditEvent]) -> list[dict[str, Any]]:
    """Operations of one HTTP request form one group: the first is `base`, all are counted in `summary`."""
    groups: dict[str, dict[str, Any]] = {}
    ordered: list[dict[str, Any]] = []
    for event in events:
        key = event.request_id or f"{id(event)}"
        group = groups.get(key)
        if group is None:
            group = {"base": event.base(), "summary": {}}
            groups[key] = group
            ordered.append(group)
        counts = group["summary"].setdefault(event.object_type, {})
        counts[event.operation] = counts.get(event.operation, 0) + 1
    return ordered
