"""Files that enter the datastore (uploaded observables, workers' file artifacts) and their records.

The bytes live in the datastore directory of the node that received them. With shared attachments
(distributed mode), they are also copied into the database in chunks, and a node that lacks a file — a
worker on another machine, an API node serving a download — fetches it from there into its own
datastore directory, which is then just a cache (content-addressed, so never stale).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from neurocortex.ids import now_ms
from neurocortex.services.base import Services
from neurocortex.store import tables as t
from neurocortex.store.datastore import CHUNK_SIZE

log = logging.getLogger(__name__)


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
            if svc.settings.shared_attachments and not await _in_database(conn, stored.id):
                await _copy_to_database(svc, conn, stored.id)
    return {"name": name, "hashes": stored.hashes, "size": stored.size, "contentType": content_type,
            "id": stored.id}  # fmt: skip


async def local_path(svc: Services, file_id: str) -> Path | None:
    """The file on this node's disk, fetched from the database first when only another node had it."""
    path = svc.datastore.path(file_id)
    if path is not None or not svc.settings.shared_attachments:
        return path
    svc.datastore.root.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=svc.datastore.root, prefix=".fetching-")
    try:
        with open(fd, "wb") as temp:
            async with svc.db.read() as conn:
                if not await _in_database(conn, file_id):
                    return None
                seq = 0
                while True:
                    chunk = await conn.scalar(
                        select(t.attachment_chunk.c.data).where(
                            t.attachment_chunk.c.attachment == file_id, t.attachment_chunk.c.seq == seq
                        )
                    )
                    if chunk is None:
                        break
                    temp.write(chunk)
                    seq += 1
        # hashed into the datastore once the connection is back in the pool: it may take a while
        stored = await asyncio.to_thread(svc.datastore.put_file, Path(temp_name))
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
    if stored.id != file_id:  # never hand a worker bytes that are not what the job names
        log.error("attachment %s in the database does not match its hash (got %s)", file_id, stored.id)
        return None
    return svc.datastore.path(file_id)


async def _in_database(conn: Any, file_id: str) -> bool:
    found = await conn.execute(
        select(t.attachment_chunk.c.seq).where(
            t.attachment_chunk.c.attachment == file_id, t.attachment_chunk.c.seq == 0
        )
    )
    return found.first() is not None


async def _copy_to_database(svc: Services, conn: Any, file_id: str) -> None:
    path = svc.datastore.path(file_id)
    if path is None:
        raise FileNotFoundError(f"attachment {file_id} vanished from the datastore")
    with open(path, "rb") as source:
        seq = 0
        # one chunk at a time, read off the event loop: attachments may weigh gigabytes
        while chunk := await asyncio.to_thread(source.read, CHUNK_SIZE):
            await conn.execute(insert(t.attachment_chunk).values(attachment=file_id, seq=seq, data=chunk))
            seq += 1
        if seq == 0:  # an empty file still needs its first chunk to be known
            await conn.execute(insert(t.attachment_chunk).values(attachment=file_id, seq=0, data=b""))
