"""The password policy (NEUROCORTEX_PASSWORD_*), checked whenever a local password is set or changed."""

from __future__ import annotations

import string

from neurocortex.errors import BadRequestError
from neurocortex.settings import Settings

MAX_LENGTH = 1024  # argon2 hashes anything, but a megabyte of password is a denial of service


def character_classes(password: str) -> int:
    return sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c in string.digits for c in password),
            any(not c.isalnum() for c in password),
        )
    )


def check_password(settings: Settings, password: str) -> None:
    if len(password) < max(1, settings.password_min_length):
        raise BadRequestError(
            f"The password must be at least {max(1, settings.password_min_length)} characters long"
        )
    if len(password) > MAX_LENGTH:
        raise BadRequestError(f"The password must be at most {MAX_LENGTH} characters long")
    if character_classes(password) < settings.password_min_classes:
        raise BadRequestError(
            f"The password must mix at least {settings.password_min_classes} of: lower case letters, "
            "upper case letters, digits, other characters"
        )
