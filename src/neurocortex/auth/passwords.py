"""Password hashing: argon2 for everything we write, Cortex's `seed,sha256(seed+password)` still accepted
so that users exported from Cortex can log in (and get rehashed with argon2 on that first login)."""

from __future__ import annotations

import hashlib
import hmac

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def is_legacy(stored: str) -> bool:
    return not stored.startswith("$argon2")


def verify_password(stored: str | None, password: str) -> bool:
    if not stored:
        return False
    if is_legacy(stored):
        seed, sep, digest = stored.partition(",")
        if not sep:
            return False
        computed = hashlib.sha256((seed + password).encode()).hexdigest()
        return hmac.compare_digest(computed, digest.lower())
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return is_legacy(stored) or _hasher.check_needs_rehash(stored)
