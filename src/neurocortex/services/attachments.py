"""Files that enter the datastore (uploaded observables, workers' file artifacts) and their records."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, BinaryIO

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from neurocortex.ids import now_ms
from neurocortex.services.base import Services
from neurocortex.store import tables as t


async def store(svc: Services, source: BinaryIO, name: str, content_type: str) -> dict[str, Any]:
    """Store the bytes (content-addressed, deduplicated) and return Cortex's attachment object."""
    stored = await asyncio.to_thread(svc.datastore.put_file, source, svc.settings.max_upload_size)
    with contextlib.suppress(IntegrityError):  # recorded meanwhile by another request: same content
        async with svc.db.write() as conn:
            known = await conn.execute(select(t.attachment.c.id).where(t.attachment.c.id == stored.id))
            if known.first() is None:
                await conn.execute(
                    insert(t.attachment).values(
                        id=stored.id, sha1=stored.sha1, md5=stored.md5, size=stored.size, createdAt=now_ms()
                    )
                )
    return {"name": name, "hashes": stored.hashes, "size": stored.size, "contentType": content_type,
            "id": stored.id}  # fmt: skip
