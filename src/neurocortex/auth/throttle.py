"""Brute-force protection for password logins: failures are counted per account and per source address
over a sliding window; once either count reaches its limit, attempts are refused before any password is
checked (even a right one, or guessing would go on) until the oldest failure leaves the window.

Counts live in this node's memory: several nodes behind a load balancer each allow the limit.
"""

from __future__ import annotations

import math
import time
from collections import deque

from neurocortex.errors import RateLimitExceeded

MAX_TRACKED = 100_000  # keys kept at most; beyond, the quietest are forgotten first
MAX_LOGIN = 256  # characters of a login kept as a key: a megabyte "login" must not cost a megabyte


class LoginThrottle:
    def __init__(self, max_failures: int, max_address_failures: int, window: float) -> None:
        self.max_failures = max_failures
        self.max_address_failures = max_address_failures
        self.window = window
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def check(self, login: str, address: str) -> None:
        """Raise if this account or this address has failed too often lately."""
        now = time.monotonic()
        for kind, key, limit in (
            ("account", login[:MAX_LOGIN].lower(), self.max_failures),
            ("address", address, self.max_address_failures),
        ):
            failures = self._recent(kind, key, now)
            if len(failures) >= limit:
                wait = max(1, math.ceil(failures[0] + self.window - now))
                subject = "this account" if kind == "account" else "this address"
                raise RateLimitExceeded(f"Too many failed logins for {subject}: try again in {wait} s")

    def failed(self, login: str, address: str) -> None:
        now = time.monotonic()
        if len(self._failures) >= MAX_TRACKED:
            self._forget_stale(now)
        for key in (("account", login[:MAX_LOGIN].lower()), ("address", address)):
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, login: str) -> None:
        self._failures.pop(("account", login[:MAX_LOGIN].lower()), None)

    def _recent(self, kind: str, key: str, now: float) -> deque[float]:
        failures = self._failures.get((kind, key))
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[(kind, key)]
        return failures

    def _forget_stale(self, now: float) -> None:
        for kind, key in list(self._failures):
            self._recent(kind, key, now)
        if len(self._failures) >= MAX_TRACKED:
            # a flood of distinct names: keep the accounts/addresses with the most failures
            ranked = sorted(self._failures.items(), key=lambda item: len(item[1]), reverse=True)
            self._failures = dict(ranked[: MAX_TRACKED // 2])
