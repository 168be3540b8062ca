"""Keys derived from the server's secret: encryption of secrets at rest, API-key lookup, session signing.

One secret (NEUROCORTEX_SECRET_KEY, or a random one kept in `<data_dir>/secret.key`) is stretched with
HKDF into independent keys, so that no key is ever used for two purposes.

Previous secrets (after `neurocortex secrets rotate`) stay readable: what they encrypted decrypts, the API
key digests they made are still found, the sessions they signed still verify; everything new uses the
current secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SECRET_FILE = "secret.key"
PREVIOUS_FILE = "secret.key.previous"  # older secrets, one a line, newest first
ROTATING_FILE = "secret.key.rotating"  # the next secret while a rotation is under way


def read_lines(path: Path) -> list[bytes]:
    if not path.exists():
        return []
    return [line.strip() for line in path.read_bytes().splitlines() if line.strip()]


def previous_secrets(configured: Sequence[str], data_dir: Path) -> list[bytes]:
    """The secrets to keep reading with: configured ones, those kept after a rotation, and the next one of a
    rotation under way (so that a server started in the middle reads rows already re-encrypted)."""
    found = [s.encode() for s in configured]
    found += read_lines(data_dir / ROTATING_FILE) + read_lines(data_dir / PREVIOUS_FILE)
    return list(dict.fromkeys(found))


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
    def __init__(self, secret: bytes, previous: Sequence[bytes] = ()) -> None:
        secrets_ = [secret, *(p for p in previous if p != secret)]
        self._fernet = MultiFernet(
            [Fernet(base64.urlsafe_b64encode(_derive(s, b"secrets-at-rest"))) for s in secrets_]
        )
        self._lookup_keys = [_derive(s, b"api-key-lookup") for s in secrets_]
        self._session_keys = [_derive(s, b"session") for s in secrets_]

    @property
    def has_previous(self) -> bool:
        return len(self._lookup_keys) > 1

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def reencrypt(self, token: str) -> str:
        """The same secret encrypted with the current key (whichever key it was encrypted with)."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("secret cannot be decrypted with this server's keys") from exc

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("secret cannot be decrypted with this server's key") from exc

    def lookup_hash(self, api_key: str) -> str:
        """Deterministic, keyed digest of an API key: lets us find a user by key without storing it in clear."""
        return hmac.new(self._lookup_keys[0], api_key.encode(), hashlib.sha256).hexdigest()

    def previous_lookup_hashes(self, api_key: str) -> list[str]:
        """The digests previous secrets made of this key (a key stored before a rotation finished)."""
        return [hmac.new(k, api_key.encode(), hashlib.sha256).hexdigest() for k in self._lookup_keys[1:]]

    def sign(self, payload: bytes) -> str:
        return hmac.new(self._session_keys[0], payload, hashlib.sha256).hexdigest()

    def verify(self, payload: bytes, signature: str) -> bool:
        return any(
            hmac.compare_digest(signature, hmac.new(k, payload, hashlib.sha256).hexdigest())
            for k in self._session_keys
        )


def _write_atomically(path: Path, content: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def begin_rotation(data_dir: Path) -> bytes:
    """The next secret, written to `secret.key.rotating` before anything is encrypted with it (or the one a
    rotation that was interrupted had written, to finish it)."""
    existing = read_lines(data_dir / ROTATING_FILE)
    if existing:
        return existing[0]
    secret = secrets.token_urlsafe(48).encode()
    _write_atomically(data_dir / ROTATING_FILE, secret + b"\n")
    return secret


def finish_rotation(data_dir: Path) -> None:
    """Make the next secret the current one, the current one previous; each step atomic, so that a crash
    between them leaves both secrets on disk and running the rotation again finishes it."""
    rotating = data_dir / ROTATING_FILE
    current = read_lines(data_dir / SECRET_FILE)
    previous = list(dict.fromkeys(current + read_lines(data_dir / PREVIOUS_FILE)))
    _write_atomically(data_dir / PREVIOUS_FILE, b"".join(p + b"\n" for p in previous))
    os.replace(rotating, data_dir / SECRET_FILE)
