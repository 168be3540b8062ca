"""Webhooks: where an organization's job events are POSTed, managed by its orgadmins, with their delivery log.

The secret that signs the deliveries is encrypted at rest and write-only: no answer ever contains it.
Sending is execution/webhook_sender.py; the deliveries are queued by services/job_events.py.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, func, insert, select, update

from neurocortex.auth.context import AuthContext
from neurocortex.errors import (
    AttributeError_,
    NotFoundError,
    invalid_format,
    missing_attribute,
    raise_attribute_errors,
    read_only_attribute,
    unknown_attribute,
)
from neurocortex.ids import new_id, now_ms
from neurocortex.services.base import Services, as_dict
from neurocortex.services.job_events import EVENT_TYPES
from neurocortex.store import tables as t
from neurocortex.store.query import parse_range

WRITABLE = ("url", "secret", "events", "enabled", "description")
READ_ONLY = ("id", "_id", "organization", "createdAt", "createdBy", "updatedAt", "updatedBy")
MIN_SECRET_LENGTH = 16


def _check(fields: dict[str, Any], errors: list[AttributeError_]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if "url" in fields:
        url = fields["url"]
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is not None and parts.scheme in ("http", "https") and parts.hostname:
            values["url"] = url
        else:
            errors.append(invalid_format("url", url, "http(s) URL"))
    if "secret" in fields:
        secret = fields["secret"]
        if isinstance(secret, str) and len(secret) >= MIN_SECRET_LENGTH:
            values["secret"] = secret
        else:
            # the value is not echoed back: it is a secret, even a bad one
            errors.append(
                invalid_format("secret", "***", f"string of {MIN_SECRET_LENGTH} characters or more")
            )
    if "events" in fields:
        types = fields["events"]
        if isinstance(types, list) and all(v in EVENT_TYPES.values() for v in types):
            values["events"] = list(dict.fromkeys(types))
        else:
            errors.append(invalid_format("events", types, f"array of {', '.join(EVENT_TYPES.values())}"))
    if "enabled" in fields:
        if isinstance(fields["enabled"], bool):
            values["enabled"] = fields["enabled"]
        else:
            errors.append(invalid_format("enabled", fields["enabled"], "boolean"))
    if "description" in fields:
        if fields["description"] is None or isinstance(fields["description"], str):
            values["description"] = fields["description"]
        else:
            errors.append(invalid_format("description", fields["description"], "string"))
    return values


async def create(svc: Services, ctx: AuthContext, fields: dict[str, Any]) -> dict[str, Any]:
    errors = [unknown_attribute(k, v) for k, v in fields.items() if k not in WRITABLE]
    errors += [missing_attribute(k) for k in ("url", "secret") if k not in fields]
    values = _check(fields, errors)
    raise_attribute_errors("webhook", errors)
    row = {
        "id": new_id(),
        "organization": ctx.organization,
        "description": None,
        "events": [],
        "enabled": True,
        "createdBy": ctx.user_id,
        "createdAt": now_ms(),
    } | values
    row["secret"] = svc.box.encrypt(values["secret"])
    async with svc.db.write() as conn:
        await conn.execute(insert(t.webhook).values(row))
    return row


async def get(svc: Services, ctx: AuthContext, webhook_id: str) -> dict[str, Any]:
    statement = select(t.webhook).where(
        t.webhook.c.id == webhook_id, t.webhook.c.organization == ctx.organization
    )
    async with svc.db.read() as conn:
        row = as_dict((await conn.execute(statement)).first())
    if row is None:
        raise NotFoundError(f"webhook {webhook_id} not found")
    return row


async def list_own(svc: Services, ctx: AuthContext) -> list[dict[str, Any]]:
    statement = (
        select(t.webhook).where(t.webhook.c.organization == ctx.organization).order_by(t.webhook.c.createdAt)
    )
    async with svc.db.read() as conn:
        return [dict(r._mapping) for r in await conn.execute(statement)]


async def update_webhook(
    svc: Services, ctx: AuthContext, webhook_id: str, fields: dict[str, Any]
) -> dict[str, Any]:
    row = await get(svc, ctx, webhook_id)
    errors = [read_only_attribute(k) for k in fields if k in READ_ONLY]
    errors += [unknown_attribute(k, v) for k, v in fields.items() if k not in WRITABLE and k not in READ_ONLY]
    changes = _check(fields, errors)
    raise_attribute_errors("webhook", errors)
    if changes:
        if "secret" in changes:
            changes["secret"] = svc.box.encrypt(changes["secret"])
        changes |= {"updatedBy": ctx.user_id, "updatedAt": now_ms()}
        async with svc.db.write() as conn:
            await conn.execute(update(t.webhook).where(t.webhook.c.id == webhook_id).values(changes))
        row |= changes
    return row


async def remove(svc: Services, ctx: AuthContext, webhook_id: str) -> None:
    await get(svc, ctx, webhook_id)
    async with svc.db.write() as conn:
        await conn.execute(delete(t.webhook_delivery).where(t.webhook_delivery.c.webhook == webhook_id))
        await conn.execute(delete(t.webhook).where(t.webhook.c.id == webhook_id))


async def deliveries(
    svc: Services, ctx: AuthContext, webhook_id: str, range_: str | None
) -> tuple[list[dict[str, Any]], int]:
    """A webhook's delivery log, newest first."""
    await get(svc, ctx, webhook_id)
    offset, limit = parse_range(range_)
    mine = t.webhook_delivery.c.webhook == webhook_id
    statement = (
        select(t.webhook_delivery)
        .where(mine)
        .order_by(t.webhook_delivery.c.createdAt.desc(), t.webhook_delivery.c.event.desc())
        .offset(offset)
        .limit(limit)
    )
    async with svc.db.read() as conn:
        rows = [dict(r._mapping) for r in await conn.execute(statement)]
        total = await conn.scalar(select(func.count()).select_from(t.webhook_delivery).where(mine))
    return rows, int(total or 0)
