"""Organizations: the tenants. `cortex` is the superadmins' own and can be neither changed nor removed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from neurocortex.auth.context import AuthContext
from neurocortex.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    invalid_format,
    missing_attribute,
    raise_attribute_errors,
    unknown_attribute,
)
from neurocortex.ids import now_ms
from neurocortex.services import audit
from neurocortex.services.base import Services, as_dict
from neurocortex.store import tables as t
from neurocortex.store.query import run_stats
from neurocortex.store.search import search as store_search
from neurocortex.store.search_models import ORGANIZATION

CORTEX_ORG = "cortex"
STATUSES = ("Active", "Locked")


async def get(svc: Services, org_id: str) -> dict[str, Any] | None:
    async with svc.db.read() as conn:
        return as_dict(
            (await conn.execute(select(t.organization).where(t.organization.c.id == org_id))).first()
        )


async def get_visible(svc: Services, ctx: AuthContext, org_id: str) -> dict[str, Any]:
    """An orgadmin sees only their own organization; anything else is 'not found'."""
    org = await get(svc, org_id)
    if org is None or (not ctx.is_superadmin and not ctx.is_init and org_id != ctx.organization):
        raise NotFoundError(f"organization {org_id} not found")
    return org


async def create(svc: Services, ctx: AuthContext, fields: dict[str, Any]) -> dict[str, Any]:
    errors = [
        unknown_attribute(k, v) for k, v in fields.items() if k not in ("name", "description", "status")
    ]
    name, description = fields.get("name"), fields.get("description")
    status = fields.get("status", "Active")
    if not isinstance(name, str) or not name.strip():
        errors.append(missing_attribute("name") if name is None else invalid_format("name", name, "string"))
    if not isinstance(description, str):
        errors.append(
            missing_attribute("description")
            if description is None
            else invalid_format("description", description, "string")
        )
    if status not in STATUSES:
        errors.append(invalid_format("status", status, "Active|Locked"))
    raise_attribute_errors("organization", errors)
    row = {
        "id": name,
        "description": description,
        "status": status,
        "createdBy": ctx.user_id,
        "createdAt": now_ms(),
    }
    try:
        async with svc.db.write() as conn:
            await conn.execute(insert(t.organization).values(row))
            about = {"description": description, "status": status}
            await audit.write(conn, audit.by(ctx, name, "organization.create", "organization", name, about))
    except IntegrityError:
        raise ConflictError(f"organization {name} already exists") from None
    svc.publish(ctx.user_id, ctx.request_id, "organization", name, "Creation", name, row)
    return row


async def update_organization(
    svc: Services, ctx: AuthContext, org_id: str, fields: dict[str, Any]
) -> dict[str, Any]:
    if org_id == CORTEX_ORG:
        raise BadRequestError("Cortex organization can't be updated")
    errors = [unknown_attribute(k, v) for k, v in fields.items() if k not in ("description", "status")]
    changes: dict[str, Any] = {}
    if "description" in fields:
        if not isinstance(fields["description"], str):
            errors.append(invalid_format("description", fields["description"], "string"))
        changes["description"] = fields["description"]
    if "status" in fields:
        if fields["status"] not in STATUSES:
            errors.append(invalid_format("status", fields["status"], "Active|Locked"))
        changes["status"] = fields["status"]
    raise_attribute_errors("organization", errors)
    return await _apply(svc, ctx, org_id, changes, "organization.update")


async def lock(svc: Services, ctx: AuthContext, org_id: str) -> None:
    if org_id == CORTEX_ORG:
        raise BadRequestError("Cortex organization can't be removed")
    await _apply(svc, ctx, org_id, {"status": "Locked"}, "organization.lock")


async def _apply(
    svc: Services, ctx: AuthContext, org_id: str, changes: dict[str, Any], action: str
) -> dict[str, Any]:
    async with svc.db.write() as conn:
        about = {"changes": dict(changes)}
        if changes:
            changes |= {"updatedBy": ctx.user_id, "updatedAt": now_ms()}
            await conn.execute(update(t.organization).where(t.organization.c.id == org_id).values(changes))
        org = as_dict(
            (await conn.execute(select(t.organization).where(t.organization.c.id == org_id))).first()
        )
        if changes and org is not None:
            await audit.write(conn, audit.by(ctx, org_id, action, "organization", org_id, about))
    svc.users_cache.clear()  # a locked organization locks its users out at once
    if org is None:
        raise NotFoundError(f"organization {org_id} not found")
    svc.publish(ctx.user_id, ctx.request_id, "organization", org_id, "Update", org_id, org, changes)
    return org


async def search(
    svc: Services, query: Any, range_: str | None, sort: list[str] | None
) -> tuple[list[dict[str, Any]], int]:
    async with svc.db.read() as conn:
        return await store_search(conn, ORGANIZATION, query, range_, sort)


async def aggregate(svc: Services, query: Any, aggregations: Any) -> dict[str, Any]:
    """`_stats`: Cortex's aggregations over organizations (cortex4py's `count` uses it)."""
    async with svc.db.read() as conn:
        return await run_stats(conn, ORGANIZATION, query, aggregations)


async def stats(svc: Services, org_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Users by status and worker counts, for `nstats=true`."""
    result = {org: {"users": {"Ok": 0, "Locked": 0, "total": 0}, "workers": {"total": 0}} for org in org_ids}
    if not org_ids:
        return result
    async with svc.db.read() as conn:
        users = await conn.execute(
            select(t.user.c.organization, t.user.c.status, func.count())
            .where(t.user.c.organization.in_(org_ids))
            .group_by(t.user.c.organization, t.user.c.status)
        )
        for org, status, count in users:
            result[org]["users"][status] = count
            result[org]["users"]["total"] += count
        workers = await conn.execute(
            select(t.worker.c.organization, func.count())
            .where(t.worker.c.organization.in_(org_ids))
            .group_by(t.worker.c.organization)
        )
        for org, count in workers:
            result[org]["workers"]["total"] = count
    return result


async def ensure_cortex_org(svc: Services) -> None:
    if await get(svc, CORTEX_ORG) is None:
        try:
            async with svc.db.write() as conn:
                await conn.execute(
                    insert(t.organization).values(
                        id=CORTEX_ORG,
                        description="Default organization",
                        status="Active",
                        createdBy="init",
                        createdAt=now_ms(),
                    )
                )
        except IntegrityError:
            pass  # another node created it at the same moment
