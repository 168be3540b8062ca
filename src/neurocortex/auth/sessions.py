"""The CORTEX_SESSION cookie: an HMAC-signed `{"username","expire","authMethod"}` document.

Stateless like Play's session, so several API nodes accept each other's cookies with the same secret.
"""

from __future__ import annotations

import base64
import time

import orjson

from neurocortex.crypto import SecretBox

SESSION_COOKIE = "CORTEX_SESSION"
XSRF_COOKIE = "CORTEX-XSRF-TOKEN"
XSRF_HEADER = "X-CORTEX-XSRF-TOKEN"


def encode_session(box: SecretBox, username: str, auth_method: str, lifetime: int) -> str:
    payload = orjson.dumps(
        {"username": username, "expire": int((time.time() + lifetime) * 1000), "authMethod": auth_method}
    )
    body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    return f"{body}.{box.sign(body.encode())}"


def decode_session(box: SecretBox, cookie: str) -> dict | None:
    """The session document if the cookie is authentic and unexpired, else None."""
    body, _, signature = cookie.partition(".")
    if not body or not box.verify(body.encode(), signature):
        return None
    try:
        document = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(document, dict) or not isinstance(document.get("username"), str):
        return None
    if not isinstance(document.get("expire"), int) or document["expire"] < time.time() * 1000:
        return None
    return document
