"""The audit log: who did what, to what, and when — logins (accepted or refused), API key and password
changes, users, organizations, workers and their configuration, job deletions, retention and purges.

An entry is written in the same transaction as the change it describes (`write`), so there is no change
without its entry and no entry for a change that was rolled back; events that change nothing (a login)
have their own transaction (`record`). Entries never hold a secret: passwords, keys and configuration
values are reduced to the fact that they changed (configuration: the names of the items, not the values).

Each entry belongs to the organization it concerns (the user's, the worker's...): its orgadmins see it;
superadmins see every entry, including those of no organization (a login with an unknown name).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from sqlalchemy import and_, insert, true

from neurocortex.auth.context import AuthContext
from neurocortex.ids import new_id, now_ms
from neurocortex.services.base import Services
from neurocortex.store import tables as t
from neurocortex.store.query import compile_query
from neurocortex.store.search import search as store_search
from neurocortex.store.search_models import AUDIT

# never written into an entry, at any depth
SECRET_KEYS = frozenset(
    {"password", "key", "key_hash", "key_encrypted", "configuration", "config", "preferences", "avatar",
     "secret", "token", "apiKey"}
)  # fmt: skip
EXPORT_PAGE = 1000


def entry(
    actor: str,
    organization: str | None,
    action: str,
    object_type: str,
    object_id: str | None,
    details: dict[str, Any] | None = None,
    outcome: str = "success",
    address: str | None = None,
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "createdAt": now_ms(),
        "createdBy": actor[:255],
        "organization": organization,
        "action": action,
        "objectType": object_type,
        "objectId": object_id[:255] if object_id else object_id,
        "outcome": outcome,
        "address": address,
        "details": without_secrets(details or {}),
    }


def by(
    ctx: AuthContext,
    organization: str | None,
    action: str,
    object_type: str,
    object_id: str | None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An entry for what the caller `ctx` did."""
    return entry(ctx.user_id, organization, action, object_type, object_id, details)


def without_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): without_secrets(v) for k, v in value.items() if str(k) not in SECRET_KEYS}
    if isinstance(value, list | tuple):
        return [without_secrets(v) for v in value]
    return value


async def write(conn: Any, *entries: dict[str, Any]) -> None:
    """Inside the caller's write transaction."""
    if entries:
        await conn.execute(insert(t.audit), list(entries))


async def record(svc: Services, *entries: dict[str, Any]) -> None:
    async with svc.db.write() as conn:
        await write(conn, *entries)


def _scope(ctx: AuthContext) -> Any:
    return true() if ctx.is_superadmin else t.audit.c.organization == ctx.organization


async def search(
    svc: Services, ctx: AuthContext, query: Any, range_: str | None, sort: list[str] | None
) -> tuple[list[dict[str, Any]], int]:
    async with svc.db.read() as conn:
        return await store_search(conn, AUDIT, query, range_, sort, and_(_scope(ctx)))


def export(svc: Services, ctx: AuthContext, query: Any) -> AsyncIterator[bytes]:
    """Every matching entry, oldest first, one JSON object per line, read a page at a time. A bad query
    is refused here, before the first line is sent."""
    compile_query(AUDIT, query)
    return _lines(svc, ctx, query)


async def _lines(svc: Services, ctx: AuthContext, query: Any) -> AsyncIterator[bytes]:
    offset = 0
    while True:
        rows, _ = await search(svc, ctx, query, f"{offset}-{offset + EXPORT_PAGE}", ["+createdAt", "+id"])
        for row in rows:
            yield orjson.dumps(render(row)) + b"\n"
        if len(rows) < EXPORT_PAGE:
            return
        offset += EXPORT_PAGE


def render(row: dict[str, Any]) -> dict[str, Any]:
    out = {"_id": row["id"], "id": row["id"], "_type": "audit"}
    for key in ("createdAt", "createdBy", "organization", "action", "objectType", "objectId", "outcome",
                "address", "details"):  # fmt: skip
        if row.get(key) is not None:
            out[key] = row[key]
    return out
