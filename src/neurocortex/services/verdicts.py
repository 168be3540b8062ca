"""One verdict per observable: what the organization's analyzers said about it lately, normalized.

Each analyzer's most recent successful report on the observable (within `days`) counts once — a newer
analysis supersedes an older one of the same worker. Its summary's taxonomies carry Cortex's levels; the
observable's verdict is the worst of them, ordered malicious > suspicious > safe > info (info being no
opinion), with the taxonomies that set it as the reasons. No report at all: `unknown`.

An observable is (dataType, data); a file is ("file", its SHA-256), matching the uploaded attachment.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import and_, or_, select, tuple_

from neurocortex.auth.context import AuthContext
from neurocortex.errors import BadRequestError, invalid_format, raise_attribute_errors
from neurocortex.ids import now_ms
from neurocortex.services.base import Services
from neurocortex.store import tables as t
from neurocortex.store.search import search as store_search
from neurocortex.store.search_models import JOB

SEVERITY = {"unknown": -1, "info": 0, "safe": 1, "suspicious": 2, "malicious": 3}
DEFAULT_DAYS = 30.0
MAX_OBSERVABLES = 1000
CHUNK = 200  # observables per query (bound parameters stay well under SQLite's limit)

Observable = tuple[str, str]


def read_observables(value: Any) -> list[Observable]:
    errors = []
    if not isinstance(value, list) or len(value) > MAX_OBSERVABLES:
        raise_attribute_errors(
            "observable", [invalid_format("observables", value, f"array of at most {MAX_OBSERVABLES}")]
        )
    found = []
    for n, item in enumerate(value):
        data_type = item.get("dataType") if isinstance(item, dict) else None
        data = item.get("data") if isinstance(item, dict) else None
        if not isinstance(data_type, str) or not isinstance(data, str) or not data_type or not data:
            errors.append(invalid_format(f"observables.{n}", item, '{"dataType": string, "data": string}'))
        else:
            found.append((data_type, data))
    raise_attribute_errors("observable", errors)
    return found


def read_days(value: Any) -> float:
    if value is None:
        return DEFAULT_DAYS
    try:
        days = float(value)
    except (TypeError, ValueError):
        days = -1
    if days <= 0:
        raise BadRequestError(f"days must be a number > 0, not {value!r}")
    return days


def _matches(observables: list[Observable]) -> Any:
    """Jobs on any of these observables: by data, or for files by the attachment's hash."""
    plain = [(dt, d) for dt, d in observables if dt != "file"]
    files = [d.lower() for dt, d in observables if dt == "file"]
    conditions = []
    if plain:
        conditions.append(tuple_(t.job.c.dataType, t.job.c.data).in_(plain))
    if files:
        file_id = t.job.c.attachment["id"].as_string()
        conditions.append(and_(t.job.c.dataType == "file", file_id.in_(files)))
    return or_(*conditions)


def _observable_of(job: dict[str, Any]) -> Observable:
    if job["dataType"] == "file" and job.get("attachment"):
        return "file", job["attachment"]["id"]
    return job["dataType"], job["data"]


async def verdicts(
    svc: Services, ctx: AuthContext, observables: Iterable[Observable], days: float = DEFAULT_DAYS
) -> list[dict[str, Any]]:
    """The verdict of each observable, in the order given."""
    wanted = list(dict.fromkeys((dt, d.lower() if dt == "file" else d) for dt, d in observables))
    since = now_ms() - int(days * 86_400_000)
    latest: dict[tuple[Observable, str], dict[str, Any]] = {}
    columns = (t.job.c.id, t.job.c.workerId, t.job.c.workerName, t.job.c.dataType, t.job.c.data,
               t.job.c.attachment, t.job.c.endDate, t.job.c.createdAt)  # fmt: skip
    async with svc.db.read() as conn:
        for start in range(0, len(wanted), CHUNK):
            rows = await conn.execute(
                select(*columns)
                .where(
                    t.job.c.organization == ctx.organization,
                    t.job.c.status == "Success",
                    t.job.c.type == "analyzer",
                    t.job.c.createdAt >= since,
                    _matches(wanted[start : start + CHUNK]),
                )
                .order_by(t.job.c.createdAt.desc(), t.job.c.id.desc())
            )
            for row in rows:
                job = dict(row._mapping)
                latest.setdefault((_observable_of(job), job["workerId"]), job)  # the newest per worker
        summaries: dict[str, str] = {}
        ids = [job["id"] for job in latest.values()]
        for start in range(0, len(ids), CHUNK):
            rows = await conn.execute(
                select(t.report.c.job, t.report.c.summary).where(
                    t.report.c.job.in_(ids[start : start + CHUNK])
                )
            )
            summaries.update(dict(rows.all()))
    by_observable: dict[Observable, list[dict[str, Any]]] = {}
    for (observable, _), job in latest.items():
        by_observable.setdefault(observable, []).append(job)
    return [_verdict(o, by_observable.get(o, []), summaries) for o in wanted]


def _verdict(observable: Observable, jobs: list[dict[str, Any]], summaries: dict[str, str]) -> dict[str, Any]:
    taxonomies = []
    for job in sorted(jobs, key=lambda j: j["workerName"]):
        try:
            summary = orjson.loads(summaries.get(job["id"]) or "{}")
        except orjson.JSONDecodeError:
            summary = {}
        found = summary.get("taxonomies") if isinstance(summary, dict) else None
        for taxonomy in found if isinstance(found, list) else []:
            if not isinstance(taxonomy, dict):
                continue
            level = str(taxonomy.get("level", "info")).lower()
            taxonomies.append(
                {
                    "level": level if level in SEVERITY else "info",
                    "namespace": taxonomy.get("namespace"),
                    "predicate": taxonomy.get("predicate"),
                    "value": taxonomy.get("value"),
                    "workerName": job["workerName"],
                    "workerId": job["workerId"],
                    "jobId": job["id"],
                    "date": job["endDate"] or job["createdAt"],
                }
            )
    worst = max((tx["level"] for tx in taxonomies), key=SEVERITY.__getitem__, default="unknown")
    return {
        "dataType": observable[0],
        "data": observable[1],
        "verdict": worst,
        "reasons": [tx for tx in taxonomies if tx["level"] == worst],
        "taxonomies": taxonomies,
        "analyzers": len(jobs),
    }


async def history(
    svc: Services, ctx: AuthContext, observable: Observable, range_: str | None
) -> tuple[list[dict[str, Any]], int]:
    """Every job of the organization on the observable (but deleted ones), newest first."""
    scope = and_(
        t.job.c.organization == ctx.organization, t.job.c.status != "Deleted", _matches([observable])
    )
    async with svc.db.read() as conn:
        return await store_search(conn, JOB, {}, range_, None, scope)
