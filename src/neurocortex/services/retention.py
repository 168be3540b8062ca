"""Retention: how long each organization keeps its jobs, reports and attachments, and the purge that
applies it.

A policy (the organization's `retention`, all fields optional, ages in days counted from the job's
creation):

    {"jobs": 365, "reports": 90, "attachments": 30, "byTlp": {"3": {"jobs": 30, "attachments": 7}}}

- `jobs`: the whole job goes (its report and artifacts with it);
- `reports`: the report and artifacts go, the job stays in the history (status, observable, dates);
- `attachments`: the job's uploaded file and its file artifacts are released (their metadata stays,
  marked `purged`), and their bytes leave the datastore once no job or artifact of any organization
  needs them — files are shared, being stored once by content;
- `byTlp`: stricter (or looser) ages for the jobs of one TLP.

Jobs still Waiting or InProgress are never touched. Work goes in batches, each its own transaction, so a
large purge never holds the database.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select, update

from neurocortex.auth.context import AuthContext
from neurocortex.errors import BadRequestError, NotFoundError, invalid_format, raise_attribute_errors
from neurocortex.ids import lowest_id_at, now_ms
from neurocortex.services import audit, organizations
from neurocortex.services.base import Services
from neurocortex.store import tables as t

KINDS = ("jobs", "reports", "attachments")
TLPS = (0, 1, 2, 3)
DAY_MS = 86_400_000
BATCH = 500
# an attachment nobody refers to is left alone this long: it may belong to a job being created
ORPHAN_GRACE_MS = DAY_MS
# jobs and artifacts made since the scan of what is needed began (less this, for clocks a little apart
# between nodes) are looked at again just before their files are deleted
RECHECK_MARGIN_MS = 60_000
RUNNING = ("Waiting", "InProgress")


@dataclass
class PurgeResult:
    jobs: int = 0
    reports: int = 0
    attachments: int = 0  # jobs' and artifacts' attachments released
    files: int = 0  # files removed from the datastore
    organizations: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"jobs": self.jobs, "reports": self.reports, "attachments": self.attachments,
                "files": self.files, "organizations": self.organizations}  # fmt: skip


def validate(policy: Any) -> dict[str, Any]:
    """The policy, checked: ages are positive numbers of days (null or absent: kept for ever)."""
    errors: list = []
    if not isinstance(policy, dict):
        raise_attribute_errors("retention", [invalid_format("retention", policy, "object")])
    cleaned: dict[str, Any] = {}

    def ages(source: dict[str, Any], prefix: str) -> dict[str, Any]:
        out = {}
        for key, value in source.items():
            if key not in KINDS:
                errors.append(invalid_format(f"{prefix}{key}", value, " or ".join(KINDS)))
            elif value is None:
                continue
            elif isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                errors.append(invalid_format(f"{prefix}{key}", value, "number of days > 0"))
            else:
                out[key] = value
        return out

    cleaned |= ages({k: v for k, v in policy.items() if k != "byTlp"}, "")
    by_tlp = policy.get("byTlp") or {}
    if not isinstance(by_tlp, dict):
        errors.append(invalid_format("byTlp", by_tlp, "object"))
        by_tlp = {}
    tlp_ages = {}
    for tlp, source in by_tlp.items():
        if str(tlp) not in {str(n) for n in TLPS} or not isinstance(source, dict):
            errors.append(invalid_format(f"byTlp.{tlp}", source, "object under a TLP 0-3"))
            continue
        if found := ages(source, f"byTlp.{tlp}."):
            tlp_ages[str(tlp)] = found
    raise_attribute_errors("retention", errors)
    if tlp_ages:
        cleaned["byTlp"] = tlp_ages
    return cleaned


def _age_days(policy: dict[str, Any], kind: str, tlp: int) -> float | None:
    return (policy.get("byTlp") or {}).get(str(tlp), {}).get(kind, policy.get(kind))


def _visible_org(ctx: AuthContext, org_id: str) -> None:
    if not ctx.is_superadmin and org_id != ctx.organization:
        raise NotFoundError(f"organization {org_id} not found")


async def get_policy(svc: Services, ctx: AuthContext, org_id: str) -> dict[str, Any]:
    _visible_org(ctx, org_id)
    org = await organizations.get(svc, org_id)
    if org is None:
        raise NotFoundError(f"organization {org_id} not found")
    return org.get("retention") or {}


async def set_policy(svc: Services, ctx: AuthContext, org_id: str, policy: Any) -> dict[str, Any]:
    await get_policy(svc, ctx, org_id)
    cleaned = validate(policy)
    async with svc.db.write() as conn:
        await conn.execute(
            update(t.organization)
            .where(t.organization.c.id == org_id)
            .values(retention=cleaned or None, updatedBy=ctx.user_id, updatedAt=now_ms())
        )
        await audit.write(conn, audit.by(ctx, org_id, "retention.update", "organization", org_id, cleaned))
    return cleaned


async def purge(
    svc: Services, ctx: AuthContext, org_id: str | None = None, policy: Any = None
) -> PurgeResult:
    """Apply the retention of `org_id` (a superadmin without one: every organization having a policy).
    `policy` runs a one-off policy instead of the stored one."""
    if org_id is None and not ctx.is_superadmin:
        org_id = ctx.organization
    if org_id is not None:
        stored = await get_policy(svc, ctx, org_id)
        targets = [(org_id, validate(policy) if policy is not None else stored)]
    elif policy is not None:
        raise BadRequestError("a one-off policy needs an organization")
    else:
        async with svc.db.read() as conn:
            rows = await conn.execute(select(t.organization.c.id, t.organization.c.retention))
            targets = [(org, retention) for org, retention in rows if retention]
    result = PurgeResult()
    released: set[str] = set()
    for org, org_policy in targets:
        before = (result.jobs, result.reports, result.attachments)
        await _purge_organization(svc, org, org_policy, result, released)
        counts = {"jobs": result.jobs - before[0], "reports": result.reports - before[1],
                  "attachments": result.attachments - before[2], "policy": org_policy}  # fmt: skip
        await audit.record(svc, audit.by(ctx, org, "retention.purge", "organization", org, counts))
        result.organizations.append(org)
    result.files = await collect_files(svc, released)
    return result


async def _purge_organization(
    svc: Services, org: str, policy: dict[str, Any], result: PurgeResult, released: set[str]
) -> None:
    now = now_ms()
    for tlp in TLPS:
        ended = (t.job.c.organization == org) & (t.job.c.tlp == tlp) & t.job.c.status.not_in(RUNNING)
        if days := _age_days(policy, "jobs", tlp):
            older = ended & (t.job.c.createdAt < now - int(days * DAY_MS))
            result.jobs += await _in_batches(svc, older, released, _delete_jobs)
        if days := _age_days(policy, "reports", tlp):
            older = ended & (t.job.c.createdAt < now - int(days * DAY_MS)) & (t.job.c.status == "Success")
            result.reports += await _in_batches(svc, older, released, _delete_reports)
        if days := _age_days(policy, "attachments", tlp):
            older = ended & (t.job.c.createdAt < now - int(days * DAY_MS))
            result.attachments += await _in_batches(svc, older, released, _release_attachments)


async def _in_batches(svc: Services, condition: Any, released: set[str], step: Any) -> int:
    """Run `step` over the jobs matching `condition`, BATCH at a time, until none is left to do."""
    done = 0
    last = ""
    while True:
        async with svc.db.write() as conn:
            ids = (
                (
                    await conn.execute(
                        select(t.job.c.id)
                        .where(condition, t.job.c.id > last)
                        .order_by(t.job.c.id)
                        .limit(BATCH)
                    )
                )
                .scalars()
                .all()
            )
            if not ids:
                return done
            done += await step(conn, list(ids), released)
            last = ids[-1]


async def _artifact_files(conn: Any, job_ids: list[str]) -> list[tuple[str, dict[str, Any]]]:
    rows = await conn.execute(
        select(t.artifact.c.id, t.artifact.c.attachment).where(
            t.artifact.c.job.in_(job_ids), t.artifact.c.attachment.is_not(None)
        )
    )
    return [(artifact_id, attachment) for artifact_id, attachment in rows if attachment]


async def _delete_jobs(conn: Any, job_ids: list[str], released: set[str]) -> int:
    jobs = await conn.execute(select(t.job.c.attachment).where(t.job.c.id.in_(job_ids)))
    released.update(a["id"] for (a,) in jobs if a and a.get("id"))
    released.update(a["id"] for _, a in await _artifact_files(conn, job_ids) if a.get("id"))
    await conn.execute(delete(t.artifact).where(t.artifact.c.job.in_(job_ids)))
    await conn.execute(delete(t.report).where(t.report.c.job.in_(job_ids)))
    return (await conn.execute(delete(t.job).where(t.job.c.id.in_(job_ids)))).rowcount


async def _delete_reports(conn: Any, job_ids: list[str], released: set[str]) -> int:
    released.update(a["id"] for _, a in await _artifact_files(conn, job_ids) if a.get("id"))
    await conn.execute(delete(t.artifact).where(t.artifact.c.job.in_(job_ids)))
    return (await conn.execute(delete(t.report).where(t.report.c.job.in_(job_ids)))).rowcount


async def _release_attachments(conn: Any, job_ids: list[str], released: set[str]) -> int:
    count = 0
    rows = await conn.execute(
        select(t.job.c.id, t.job.c.attachment).where(t.job.c.id.in_(job_ids), t.job.c.attachment.is_not(None))
    )
    for job_id, attachment in rows.all():
        if attachment and not attachment.get("purged"):
            released.add(attachment["id"])
            await conn.execute(
                update(t.job).where(t.job.c.id == job_id).values(attachment=attachment | {"purged": True})
            )
            count += 1
    for artifact_id, attachment in await _artifact_files(conn, job_ids):
        if not attachment.get("purged"):
            released.add(attachment["id"])
            await conn.execute(
                update(t.artifact)
                .where(t.artifact.c.id == artifact_id)
                .values(attachment=attachment | {"purged": True})
            )
            count += 1
    return count


async def needed_files(conn: Any, since_id: str | None = None) -> set[str]:
    """The files some job or artifact, of any organization, still refers to (only those made since
    `since_id`, when given: a range of primary keys, ids being time-ordered)."""
    needed: set[str] = set()
    for table in (t.job, t.artifact):
        condition = table.c.attachment.is_not(None)
        if since_id is not None:
            condition = condition & (table.c.id >= since_id)
        for (attachment,) in await conn.execute(select(table.c.attachment).where(condition)):
            if attachment and attachment.get("id") and not attachment.get("purged"):
                needed.add(attachment["id"])
    return needed


async def collect_files(svc: Services, candidates: set[str]) -> int:
    """Remove from the datastore the `candidates`, and the files nobody has referred to for a day, that
    no job or artifact needs; the number of files removed."""
    since_id = lowest_id_at(now_ms() - RECHECK_MARGIN_MS)
    async with svc.db.read() as conn:
        needed = await needed_files(conn)
        orphans = set(
            (
                await conn.execute(
                    select(t.attachment.c.id).where(t.attachment.c.createdAt < now_ms() - ORPHAN_GRACE_MS)
                )
            ).scalars()
        )
    doomed = sorted((candidates | orphans) - needed)
    removed = 0
    for start in range(0, len(doomed), BATCH):
        async with svc.db.write() as conn:
            # a job submitted meanwhile with the same file needs it again
            recent = await needed_files(conn, since_id)
            batch = [file_id for file_id in doomed[start : start + BATCH] if file_id not in recent]
            await conn.execute(delete(t.attachment).where(t.attachment.c.id.in_(batch)))
            await conn.execute(delete(t.attachment_chunk).where(t.attachment_chunk.c.attachment.in_(batch)))
        for file_id in batch:
            if svc.datastore.path(file_id) is not None:
                await asyncio.to_thread(svc.datastore.delete, file_id)
                removed += 1
    return removed
