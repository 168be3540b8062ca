"""A small time-bounded cache for what every request reads: the caller (by API key or login) and the worker.

Entries live a few seconds; every change made through this node clears the cache at once, so a change made
on another node is seen within that time (Cortex itself caches users and organizations for 5 minutes).
"""

from __future__ import annotations

import time
from typing import Any

MISSING: Any = object()


class TTLCache:
    def __init__(self, ttl: float = 5.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> Any:
        entry = self._entries.get(key)
        if entry is None:
            return MISSING
        expires, value = entry
        if expires < time.monotonic():
            del self._entries[key]
            return MISSING
        return value

    def put(self, key: Any, value: Any) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # crude, and rare: a cache miss costs one query
        self._entries[key] = (time.monotonic() + self.ttl, value)

    def clear(self) -> None:
        self._entries.clear()
