"""Cortex's generic key/value lists (§3.9): named lists of JSON values, kept for API completeness."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import delete, insert, select

from neurocortex.auth.context import AuthContext
from neurocortex.errors import NotFoundError
from neurocortex.ids import new_id, now_ms
from neurocortex.services.base import Services
from neurocortex.store import tables as t


async def names(svc: Services) -> list[str]:
    async with svc.db.read() as conn:
        rows = await conn.execute(select(t.dblist.c.dblist).distinct().order_by(t.dblist.c.dblist))
        return list(rows.scalars())


async def items(svc: Services, list_name: str) -> dict[str, Any]:
    async with svc.db.read() as conn:
        rows = await conn.execute(
            select(t.dblist.c.id, t.dblist.c.value)
            .where(t.dblist.c.dblist == list_name)
            .order_by(t.dblist.c.id)
        )
        return {item_id: orjson.loads(value) for item_id, value in rows}


async def add(svc: Services, ctx: AuthContext, list_name: str, value: Any) -> str:
    item_id = new_id()
    async with svc.db.write() as conn:
        await conn.execute(
            insert(t.dblist).values(
                id=item_id,
                dblist=list_name,
                value=orjson.dumps(value).decode(),
                createdBy=ctx.user_id,
                createdAt=now_ms(),
            )
        )
    return item_id


async def replace(svc: Services, ctx: AuthContext, item_id: str, value: Any) -> str:
    """As Cortex: the item is removed and its new value added under a new id."""
    async with svc.db.read() as conn:
        list_name = (await conn.execute(select(t.dblist.c.dblist).where(t.dblist.c.id == item_id))).scalar()
    if list_name is None:
        raise NotFoundError(f"dblist item {item_id} not found")
    await remove(svc, item_id)
    return await add(svc, ctx, list_name, value)


async def remove(svc: Services, item_id: str) -> None:
    async with svc.db.write() as conn:
        removed = await conn.execute(delete(t.dblist).where(t.dblist.c.id == item_id))
    if removed.rowcount == 0:
        raise NotFoundError(f"dblist item {item_id} not found")


async def exists(svc: Services, list_name: str, key: str, value: Any) -> bool:
    """Whether an item of the list is an object whose `key` equals `value`."""
    return any(
        isinstance(item, dict) and item.get(key) == value for item in (await items(svc, list_name)).values()
    )
