"""Keys derived from the server's secret: encryption of secrets at rest, API-key lookup, session signing.

One secret (NEUROCORTEX_SECRET_KEY, or a random one kept in `<data_dir>/secret.key`) is stretched with
HKDF into independent keys, so that no key is ever used for two purposes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SECRET_FILE = "secret.key"


def load_or_create_secret(configured: str | None, data_dir: Path) -> bytes:
    if configured:
        return configured.encode()
    path = data_dir / SECRET_FILE
    if path.exists():
        return path.read_bytes().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48).encode()
    # O_EXCL: two nodes starting at once on a shared data dir must agree on one secret
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(secret)
    return secret


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"neurocortex:" + purpose).derive(
        secret
    )


class SecretBox:
    def __init__(self, secret: bytes) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(secret, b"secrets-at-rest")))
        self._lookup_key = _derive(secret, b"api-key-lookup")
        self.session_key = _derive(secret, b"session")

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("secret cannot be decrypted with this server's key") from exc

    def lookup_hash(self, api_key: str) -> str:
        """Deterministic, keyed digest of an API key: lets us find a user by key without storing it in clear."""
        return hmac.new(self._lookup_key, api_key.encode(), hashlib.sha256).hexdigest()

    def sign(self, payload: bytes) -> str:
        return hmac.new(self.session_key, payload, hashlib.sha256).hexdigest()
