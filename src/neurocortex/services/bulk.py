"""Bulk analysis: many observables × many analyzers in one call, each job created as by `run` (cache, rate
limits, TLP/PAP), an error on one never failing the others."""

from __future__ import annotations

from typing import Any

from neurocortex.auth.context import AuthContext
from neurocortex.errors import CortexError, NotFoundError, invalid_format, raise_attribute_errors
from neurocortex.fields import Fields
from neurocortex.services import jobs, verdicts, workers
from neurocortex.services.base import Services

MAX_JOBS = 10_000


async def analyzers_of(svc: Services, ctx: AuthContext, wanted: Any) -> list[dict[str, Any]]:
    """The organization's analyzers named (by id or name) in `wanted`; all of them when it is absent."""
    rows, _ = await workers.search(svc, ctx, "analyzer", {}, "all", ["+name"])
    if wanted is None:
        return rows
    if not isinstance(wanted, list) or not all(isinstance(w, str) for w in wanted):
        raise_attribute_errors("job", [invalid_format("analyzers", wanted, "array of analyzer ids or names")])
    found = []
    for name in dict.fromkeys(wanted):
        match = next((w for w in rows if name in (w["id"], w["name"])), None)
        if match is None:
            raise NotFoundError(f"analyzer {name} not found")
        found.append(match)
    return found


async def submit(svc: Services, ctx: AuthContext, fields: Fields) -> list[dict[str, Any]]:
    """One entry per (observable, analyzer accepting its data type): the job, or the error it met."""
    observables = verdicts.read_observables(fields.get("observables"))
    analyzers = await analyzers_of(svc, ctx, fields.get("analyzers"))
    common = {k: fields[k] for k in ("tlp", "pap", "message", "parameters", "label", "force") if k in fields}
    pairs = [(o, a) for o in observables for a in analyzers if o[0] in a["dataTypeList"]]
    if len(pairs) > MAX_JOBS:
        raise_attribute_errors("job", [invalid_format("observables", len(pairs), f"at most {MAX_JOBS} jobs")])
    out = []
    for (data_type, data), analyzer in pairs:
        entry = {
            "dataType": data_type,
            "data": data,
            "workerId": analyzer["id"],
            "workerName": analyzer["name"],
        }
        try:
            body = Fields(common | {"dataType": data_type, "data": data})
            job, from_cache = await jobs.create(svc, ctx, analyzer["id"], body, responder_route=False)
        except CortexError as exc:
            entry["error"] = {"type": exc.type, "message": exc.message}
        else:
            entry |= {"jobId": job["id"], "status": job["status"], "fromCache": from_cache}
        out.append(entry)
    return out
