"""One way to run a Cortex search: DSL query AND a scope condition, Cortex's range and sort, and the total."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from neurocortex.store.query import compile_query, order_by, parse_range
from neurocortex.store.search_models import SearchModel


async def search(
    conn: AsyncConnection,
    model: SearchModel,
    query: Any,
    range_: str | None,
    sort: list[str] | None,
    scope: ColumnElement[bool] | None = None,
    count_limit: int | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Rows and total; with `count_limit` the total stops there (counting every match of a large table
    costs a scan of it: the UI pages show "10000+" instead)."""
    condition = compile_query(model, query)
    if scope is not None:
        condition = and_(scope, condition)
    offset, limit = parse_range(range_)
    statement = select(model.table).where(condition).order_by(*order_by(model, sort)).offset(offset)
    if limit is not None:
        statement = statement.limit(limit)
    rows = [dict(r._mapping) for r in await conn.execute(statement)]
    if (rows or offset == 0) and (limit is None or len(rows) < limit):
        total = offset + len(rows)  # the page ended early, so it holds the last row: no count needed
    elif count_limit is not None:
        matches = select(model.table.c.id).where(condition).limit(count_limit).subquery()
        total = (await conn.execute(select(func.count()).select_from(matches))).scalar_one()
    else:
        total = (
            await conn.execute(select(func.count()).select_from(model.table).where(condition))
        ).scalar_one()
    return rows, total
