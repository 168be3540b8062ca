"""Opaque 20-character ids that sort in creation order.

Cortex's ids are Elasticsearch's 20-char URL-safe strings. Ours put the millisecond clock first, in an
alphabet whose characters are in ASCII order, so `ORDER BY id` is insertion order on every database (the
"_doc" tiebreak of Cortex's sorts) without a sequence column.
"""

from __future__ import annotations

import secrets
import threading
import time

ALPHABET = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
_lock = threading.Lock()
_last = [0, 0]  # last millisecond, counter within it


def _encode(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, rest = divmod(value, 64)
        chars.append(ALPHABET[rest])
    return "".join(reversed(chars))


ID_LENGTH = 20


def new_id() -> str:
    with _lock:
        now = time.time_ns() // 1_000_000
        if now <= _last[0]:
            now = _last[0]
            _last[1] += 1
        else:
            _last[0], _last[1] = now, 0
        counter = _last[1]
    # 8 chars of clock (48 bits), 3 of counter (18 bits), 9 random (54 bits)
    return _encode(now, 8) + _encode(counter, 3) + _encode(secrets.randbits(54), 9)


def lowest_id_at(ms: int) -> str:
    """A bound below every id made at or after epoch millisecond `ms` (`id >= lowest_id_at(ms)`)."""
    return _encode(ms, 8)


def now_ms() -> int:
    return time.time_ns() // 1_000_000
