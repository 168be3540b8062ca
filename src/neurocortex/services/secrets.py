"""Rotation of the secret that encrypts secrets at rest: worker configurations, base configurations and
the users' API keys (whose lookup digests are keyed by the secret too).

Crash-safe: the new secret is on disk before any row uses it, every row is re-encrypted in its own small
transaction with a box that reads both secrets, and the files are switched only when all rows are done.
Running the rotation again after a crash finishes it with the same new secret.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import Table, select, update

from neurocortex.crypto import (
    SecretBox,
    begin_rotation,
    finish_rotation,
    load_or_create_secret,
    previous_secrets,
)
from neurocortex.settings import Settings
from neurocortex.store import tables as t
from neurocortex.store.db import Database

log = logging.getLogger(__name__)


@dataclass
class RotationReport:
    workers: int = 0
    base_configs: int = 0
    api_keys: int = 0
    new_secret: bytes | None = field(default=None, repr=False)
    """Set when the secret comes from NEUROCORTEX_SECRET_KEY: the operator must install it."""


async def _reencrypt(db: Database, table: Table, column: str, box: SecretBox) -> int:
    async with db.read() as conn:
        ids = [row.id for row in await conn.execute(select(table.c.id))]
    for row_id in ids:
        async with db.write() as conn:
            stored = (await conn.execute(select(table.c[column]).where(table.c.id == row_id))).scalar()
            if stored:
                await conn.execute(
                    update(table).where(table.c.id == row_id).values({column: box.reencrypt(stored)})
                )
    return len(ids)


async def _rekey_api_keys(db: Database, box: SecretBox) -> int:
    async with db.read() as conn:
        ids = [
            row.id
            for row in await conn.execute(select(t.user.c.id).where(t.user.c.key_encrypted.isnot(None)))
        ]
    for user_id in ids:
        async with db.write() as conn:
            stored = (
                await conn.execute(select(t.user.c.key_encrypted).where(t.user.c.id == user_id))
            ).scalar()
            if stored:
                key = box.decrypt(stored)
                await conn.execute(
                    update(t.user)
                    .where(t.user.c.id == user_id)
                    .values(key_encrypted=box.encrypt(key), key_hash=box.lookup_hash(key))
                )
    return len(ids)


async def rotate(settings: Settings, db: Database, new_secret: bytes | None = None) -> RotationReport:
    """Re-encrypt everything with a new secret. With the secret in the data directory, the files are
    switched at the end; with NEUROCORTEX_SECRET_KEY, `new_secret` must be given (and kept by the operator)."""
    data_dir = settings.data_dir
    report = RotationReport()
    if settings.secret_key:
        if not new_secret:
            raise ValueError(
                "NEUROCORTEX_SECRET_KEY is set: give the new secret (NEUROCORTEX_NEW_SECRET_KEY)"
            )
        current = settings.secret_key.encode()
        report.new_secret = new_secret
    else:
        current = load_or_create_secret(None, data_dir)
        new_secret = begin_rotation(data_dir)
    older = [current, *previous_secrets(settings.previous_secret_keys, data_dir)]
    box = SecretBox(new_secret, older)
    report.workers = await _reencrypt(db, t.worker, "configuration", box)
    report.base_configs = await _reencrypt(db, t.worker_config, "config", box)
    report.api_keys = await _rekey_api_keys(db, box)
    if not settings.secret_key:
        finish_rotation(data_dir)
    log.info(
        "secrets re-encrypted: %d workers, %d base configurations, %d API keys",
        report.workers, report.base_configs, report.api_keys,
    )  # fmt: skip
    return report
