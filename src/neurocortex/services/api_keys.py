"""Named API keys (beyond Cortex): several per user, each with a name, an optional expiry, revocable on its
own, shown once at creation. Cortex's single key (`/api/user/:id/key`) lives on beside them unchanged."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update

from neurocortex.auth.context import AuthContext
from neurocortex.errors import (
    NotFoundError,
    invalid_format,
    missing_attribute,
    raise_attribute_errors,
    unknown_attribute,
)
from neurocortex.ids import new_id, now_ms
from neurocortex.services import users
from neurocortex.services.base import Services, as_dict
from neurocortex.services.cache import MISSING
from neurocortex.store import tables as t

KEY_PREFIX = "nck_"  # tells a named key from a Cortex key without a database lookup
CREATE_FIELDS = ("name", "expiresAt")


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def is_named_key(key: str) -> bool:
    return key.startswith(KEY_PREFIX)


async def user_for_key(svc: Services, key: str) -> dict[str, Any] | None:
    """The user (status Ok, organization Active) of an unrevoked, unexpired named key."""
    key_digest = digest(key)
    cached = svc.users_cache.get(("named-key", key_digest))
    if cached is not MISSING:
        user, expires = cached
        if expires is None or expires > now_ms():
            return user
    statement = (
        select(t.user, t.api_key.c.expiresAt.label("_keyExpiresAt"))
        .join(t.api_key, t.api_key.c.user == t.user.c.id)
        .join(t.organization, t.organization.c.id == t.user.c.organization)
        .where(
            t.api_key.c.digest == key_digest,
            t.api_key.c.revokedAt.is_(None),
            or_(t.api_key.c.expiresAt.is_(None), t.api_key.c.expiresAt > now_ms()),
            t.user.c.status == "Ok",
            t.organization.c.status == "Active",
        )
    )
    async with svc.db.read() as conn:
        row = as_dict((await conn.execute(statement)).first())
    if row is None:
        return None
    expires = row.pop("_keyExpiresAt")
    svc.users_cache.put(("named-key", key_digest), (row, expires))
    return row


async def list_keys(svc: Services, ctx: AuthContext, user_id: str) -> list[dict[str, Any]]:
    await users.self_or_admin(svc, ctx, user_id)
    statement = select(t.api_key).where(t.api_key.c.user == user_id).order_by(t.api_key.c.createdAt.desc())
    async with svc.db.read() as conn:
        return [dict(row._mapping) for row in await conn.execute(statement)]


async def create_key(
    svc: Services, ctx: AuthContext, user_id: str, fields: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """The new key's row and the key itself, which is not kept and cannot be read again."""
    owner = await users.self_or_admin(svc, ctx, user_id)
    errors = [unknown_attribute(k, v) for k, v in fields.items() if k not in CREATE_FIELDS]
    name = fields.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        errors.append(missing_attribute("name") if name is None else invalid_format("name", name, "string"))
    expires = fields.get("expiresAt")
    if expires is not None and (
        not isinstance(expires, int) or isinstance(expires, bool) or expires <= now_ms()
    ):
        errors.append(invalid_format("expiresAt", expires, "date in the future (epoch milliseconds)"))
    raise_attribute_errors("apiKey", errors)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = {
        "id": new_id(),
        "user": user_id,
        "name": name.strip(),
        "digest": digest(key),
        "prefix": key[: len(KEY_PREFIX) + 6],
        "expiresAt": expires,
        "revokedAt": None,
        "createdBy": ctx.user_id,
        "createdAt": now_ms(),
    }
    async with svc.db.write() as conn:
        await conn.execute(insert(t.api_key).values(row))
    svc.publish(
        ctx.user_id,
        ctx.request_id,
        "apiKey",
        row["id"],
        "Creation",
        owner["organization"],
        public(row),
        root_id=user_id,
    )
    return row, key


async def revoke_key(svc: Services, ctx: AuthContext, user_id: str, key_id: str) -> None:
    owner = await users.self_or_admin(svc, ctx, user_id)
    now = now_ms()
    async with svc.db.write() as conn:
        changed = await conn.execute(
            update(t.api_key)
            .where(and_(t.api_key.c.id == key_id, t.api_key.c.user == user_id))
            .values(revokedAt=func.coalesce(t.api_key.c.revokedAt, now), updatedBy=ctx.user_id, updatedAt=now)
        )
    if changed.rowcount == 0:
        raise NotFoundError(f"API key {key_id} not found")
    svc.users_cache.clear()
    svc.publish(
        ctx.user_id,
        ctx.request_id,
        "apiKey",
        key_id,
        "Update",
        owner["organization"],
        {"revokedAt": now},
        root_id=user_id,
    )


def public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "digest"}
