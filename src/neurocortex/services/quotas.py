"""Quotas: budgets shared by the workers of some definitions across organizations, managed by superadmins.

"One provider key, one quota": a quota names the worker definitions (by id) and/or `baseConfig`s it
covers, its limits over every organization and, optionally, per organization — seeds/000's Cortex 2 example
is `{"limits": [{"rate": 10000, "rateUnit": "Month"}], "organizationLimits": {"orgA": [{"rate": 5000,
"rateUnit": "Month"}]}}`. How jobs are counted against it is in services/scheduling.py.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from neurocortex.auth.context import AuthContext
from neurocortex.errors import (
    AttributeError_,
    ConflictError,
    NotFoundError,
    invalid_format,
    missing_attribute,
    raise_attribute_errors,
    read_only_attribute,
    unknown_attribute,
)
from neurocortex.ids import new_id, now_ms
from neurocortex.services import audit
from neurocortex.services.base import Services, as_dict
from neurocortex.services.workers import check_rate_limits
from neurocortex.store import tables as t

WRITABLE = ("name", "description", "workerDefinitionIds", "baseConfigs", "limits", "organizationLimits")
READ_ONLY = ("id", "_id", "createdAt", "createdBy", "updatedAt", "updatedBy")


async def _check(svc: Services, fields: dict[str, Any], errors: list[AttributeError_]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if "name" in fields:
        if isinstance(fields["name"], str) and fields["name"].strip():
            values["name"] = fields["name"]
        else:
            errors.append(invalid_format("name", fields["name"], "string"))
    if "description" in fields:
        if fields["description"] is None or isinstance(fields["description"], str):
            values["description"] = fields["description"]
        else:
            errors.append(invalid_format("description", fields["description"], "string"))
    for key in ("workerDefinitionIds", "baseConfigs"):
        if key in fields:
            value = fields[key]
            if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
                values[key] = list(dict.fromkeys(value))
            else:
                errors.append(invalid_format(key, value, "array of strings"))
    if "limits" in fields:
        limits = check_rate_limits("limits", fields["limits"], errors)
        if limits is not None:
            values["limits"] = limits
    if "organizationLimits" in fields:
        value = fields["organizationLimits"]
        if not isinstance(value, dict):
            errors.append(invalid_format("organizationLimits", value, "object"))
        else:
            checked = {}
            async with svc.db.read() as conn:
                known = set(
                    (
                        await conn.execute(
                            select(t.organization.c.id).where(t.organization.c.id.in_(list(value)))
                        )
                    ).scalars()
                )
            for org, limits in value.items():
                if org not in known:
                    errors.append(
                        invalid_format(f"organizationLimits.{org}", limits, "existing organization")
                    )
                    continue
                org_limits = check_rate_limits(f"organizationLimits.{org}", limits, errors)
                if org_limits:
                    checked[org] = org_limits
            values["organizationLimits"] = checked
    return values


def _covers_something(row: dict[str, Any], errors: list[AttributeError_]) -> None:
    if not row.get("workerDefinitionIds") and not row.get("baseConfigs"):
        errors.append(missing_attribute("workerDefinitionIds/baseConfigs"))


async def create(svc: Services, ctx: AuthContext, fields: dict[str, Any]) -> dict[str, Any]:
    errors = [unknown_attribute(k, v) for k, v in fields.items() if k not in WRITABLE]
    if "name" not in fields:
        errors.append(missing_attribute("name"))
    values = await _check(svc, fields, errors)
    row = {
        "id": new_id(),
        "description": None,
        "workerDefinitionIds": [],
        "baseConfigs": [],
        "limits": [],
        "organizationLimits": {},
        "createdBy": ctx.user_id,
        "createdAt": now_ms(),
    } | values
    _covers_something(row, errors)
    raise_attribute_errors("quota", errors)
    try:
        async with svc.db.write() as conn:
            await conn.execute(insert(t.quota).values(row))
            # quotas span organizations: their entries are the superadmins' (no organization)
            await audit.write(conn, audit.by(ctx, None, "quota.create", "quota", row["id"], values))
    except IntegrityError:
        raise ConflictError(f"quota {row['name']} already exists") from None
    _changed(svc)
    svc.publish(ctx.user_id, ctx.request_id, "quota", row["id"], "Creation", None, row)
    return row


async def get(svc: Services, quota_id: str) -> dict[str, Any]:
    async with svc.db.read() as conn:
        row = as_dict((await conn.execute(select(t.quota).where(t.quota.c.id == quota_id))).first())
    if row is None:
        raise NotFoundError(f"quota {quota_id} not found")
    return row


async def list_all(svc: Services) -> list[dict[str, Any]]:
    async with svc.db.read() as conn:
        rows = await conn.execute(select(t.quota).order_by(t.quota.c.name))
        return [dict(r._mapping) for r in rows]


async def update_quota(
    svc: Services, ctx: AuthContext, quota_id: str, fields: dict[str, Any]
) -> dict[str, Any]:
    row = await get(svc, quota_id)
    errors = [read_only_attribute(k) for k in fields if k in READ_ONLY]
    errors += [unknown_attribute(k, v) for k, v in fields.items() if k not in WRITABLE and k not in READ_ONLY]
    changes = await _check(svc, fields, errors)
    _covers_something(row | changes, errors)
    raise_attribute_errors("quota", errors)
    if changes:
        changes |= {"updatedBy": ctx.user_id, "updatedAt": now_ms()}
        try:
            async with svc.db.write() as conn:
                await conn.execute(update(t.quota).where(t.quota.c.id == quota_id).values(changes))
                about = {"changes": {k: v for k, v in changes.items() if k not in ("updatedBy", "updatedAt")}}
                await audit.write(conn, audit.by(ctx, None, "quota.update", "quota", quota_id, about))
        except IntegrityError:
            raise ConflictError(f"quota {changes.get('name')} already exists") from None
        row |= changes
        _changed(svc)
        svc.publish(ctx.user_id, ctx.request_id, "quota", quota_id, "Update", None, row, changes)
    return row


async def remove(svc: Services, ctx: AuthContext, quota_id: str) -> None:
    row = await get(svc, quota_id)
    async with svc.db.write() as conn:
        await conn.execute(delete(t.quota).where(t.quota.c.id == quota_id))
        await audit.write(conn, audit.by(ctx, None, "quota.delete", "quota", quota_id, {"name": row["name"]}))
    _changed(svc)
    svc.publish(ctx.user_id, ctx.request_id, "quota", quota_id, "Delete", None, row)


def _changed(svc: Services) -> None:
    svc.quotas_cache.clear()
    if svc.job_created is not None:
        svc.job_created(None)  # jobs held back by the old limits may start now
