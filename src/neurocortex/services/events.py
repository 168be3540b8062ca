"""Change events: what `/api/stream` delivers and what wakes `waitreport` when a job ends.

Events live in this process. A job finished by another node is still seen by `waitreport`, which also
re-reads the job row periodically (see services/jobs.py wait_for_report); streams show this node's operations.
A job ended by this process hands its final state (job row, report, artifacts, as committed) to the
waiters, which then need not read it back.
"""

from __future__ import annotations

import asyncio
import secrets
import string
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

STREAM_ID_ALPHABET = string.ascii_letters + string.digits


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

    # -- job completion --
    def job_ended(self, job_id: str, final: Any = None) -> None:
        """`final`: what the job ended as, when the caller has it (None: the waiters read the job)."""
        for waiter in self._job_waiters.pop(job_id, []):
            if not waiter.done():
                waiter.set_result(final)

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

    # -- audit streams --
    def publish(self, event: AuditEvent) -> None:
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
