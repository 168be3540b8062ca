"""Cortex's wire format: entity JSON with `_id`/`id`/meta fields, bare arrays with X-Total, epoch-ms dates.

Attributes never set are absent rather than null (§1.6); secrets never leave through here.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from neurocortex.ids import now_ms
from neurocortex.services.catalog import WorkerDefinition


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def json_response(content: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(content, status_code=status)


def list_response(items: list[Any], total: int) -> JSONResponse:
    return JSONResponse(items, headers={"X-Total": str(total)})


def text_response(text: str, status: int = 200) -> Response:
    return Response(text, status_code=status, media_type="text/plain")


def no_content() -> Response:
    return Response(status_code=204)


SYSTEM = ("createdBy", "createdAt", "updatedBy", "updatedAt")


def _entity(
    model: str, row: dict[str, Any], parent: str | None = None, routing: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "_id": row["id"],
        "id": row["id"],
        "_type": model,
        "_routing": routing or row["id"],
        "_parent": parent,
        "_seqNo": 1,
        "_primaryTerm": 1,
    }
    for key in SYSTEM:
        if row.get(key) is not None:
            out[key] = row[key]
    return out


def _present(out: dict[str, Any], row: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        value = row.get(key)
        if value is not None:
            out[key] = value


def organization(row: dict[str, Any], stats: dict[str, Any] | None = None) -> dict[str, Any]:
    out = _entity("organization", row)
    out |= {"name": row["id"], "description": row["description"], "status": row["status"]}
    if stats is not None:
        out["stats"] = stats
    return out


def user(row: dict[str, Any], with_preferences: bool = False) -> dict[str, Any]:
    out = _entity("user", row)
    out |= {
        "login": row["id"],
        "name": row["name"],
        "roles": [r.lower() for r in row["roles"]],
        "status": row["status"],
        "organization": row["organization"],
        "hasKey": bool(row.get("key_hash")),
        "hasPassword": bool(row.get("password")),
    }
    _present(out, row, ("avatar",))
    if with_preferences:
        try:
            out["preferences"] = orjson.loads(row.get("preferences") or "{}")
        except orjson.JSONDecodeError:
            out["preferences"] = {}
    return out


WORKER_FIELDS = (
    "name", "version", "workerDefinitionId", "description", "author", "url", "license", "command", "dockerImage",
    "dataTypeList", "baseConfig", "rate", "rateUnit", "jobCache", "jobTimeout", "type",
    # beyond Cortex, present only when set
    "maxConcurrency", "rateLimitPolicy", "rateLimits", "runner", "sandbox", "pinned",
)  # fmt: skip


def worker(row: dict[str, Any], configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    out = _entity("worker", row, parent=row["organization"], routing=row["organization"])
    _present(out, row, WORKER_FIELDS)
    out["organization"] = row["organization"]
    if row["type"] == "analyzer":
        out["analyzerDefinitionId"] = row["workerDefinitionId"]
    if configuration is not None:
        out["configuration"] = configuration
    return out


def quota(row: dict[str, Any]) -> dict[str, Any]:
    out = _entity("quota", row)
    out |= {
        "name": row["name"],
        "workerDefinitionIds": row["workerDefinitionIds"],
        "baseConfigs": row["baseConfigs"],
        "limits": row["limits"],
        "organizationLimits": row["organizationLimits"],
    }
    _present(out, row, ("description",))
    return out


def webhook(row: dict[str, Any]) -> dict[str, Any]:
    """A webhook without its secret, which is write-only."""
    out = _entity("webhook", row)
    out |= {"organization": row["organization"], "url": row["url"], "events": row["events"],
            "enabled": row["enabled"]}  # fmt: skip
    _present(out, row, ("description",))
    return out


def webhook_delivery(row: dict[str, Any]) -> dict[str, Any]:
    out = {
        "id": row["id"],
        "webhook": row["webhook"],
        "eventId": row["event"],
        "eventType": row["eventType"],
        "status": row["status"],
        "attempts": row["attempts"],
        "createdAt": row["createdAt"],
    }
    _present(out, row, ("lastStatusCode", "lastError", "lastAttemptAt", "nextAttemptAt", "deliveredAt"))
    return out


def created_responder(
    row: dict[str, Any], limits: dict[str, Any], definition: WorkerDefinition
) -> dict[str, Any]:
    """Cortex answers a responder's creation with its TLP/PAP limits; TheHive 4 offers the responder only
    for objects within them."""
    out = worker(row)
    out |= {"maxTlp": limits["tlp"], "maxPap": limits["pap"]}
    out |= {
        "version": definition.version,
        "description": definition.description,
        "author": definition.author,
        "url": definition.url,
        "license": definition.license,
        "baseConfig": definition.base_config,
    }
    return out


def definition(d: WorkerDefinition) -> dict[str, Any]:
    command = d.command_path
    return {
        "id": d.id,
        "name": d.name,
        "version": d.version,
        "description": d.description,
        "dataTypeList": list(d.data_types),
        "author": d.author,
        "url": d.url,
        "license": d.license,
        "baseConfig": d.base_config,
        "configurationItems": [item.to_json() for item in d.items],
        "dockerImage": d.docker_image,
        "command": command.name if command else None,
    }


def base_config(name: str, workers: list[str], items: tuple, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "workers": workers,
        "configurationItems": [item.to_json() for item in items],
        "config": config,
    }


JOB_FIELDS = (
    "workerDefinitionId", "workerId", "workerName", "organization", "status", "dataType", "attachment", "tlp",
    "pap", "message", "label", "type", "cacheTag", "startDate", "endDate", "errorMessage",
)  # fmt: skip


def job(row: dict[str, Any], from_cache: bool = False) -> dict[str, Any]:
    out = _entity("job", row)
    _present(out, row, JOB_FIELDS)
    out["analyzerId"] = row["workerId"]
    out["analyzerName"] = row["workerName"]
    out["analyzerDefinitionId"] = row["workerDefinitionId"]
    out["date"] = row["createdAt"]
    out["parameters"] = _object_or_empty(row["parameters"])
    if row.get("data") is not None:
        out["data"] = _parsed(row["data"]) if row["type"] == "responder" else row["data"]
    if row.get("input") is not None:
        out["input"] = _parsed(row["input"])
    if from_cache:
        # beyond Cortex (clients ignore extra keys): how old the served report is
        made = row.get("endDate") or row.get("startDate") or row["createdAt"]
        out |= {"fromCache": True, "cachedAt": made, "cacheAge": max(0, (now_ms() - made) // 1000)}
    return out


def _parsed(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _object_or_empty(text: str | None) -> dict[str, Any]:
    value = _parsed(text or "{}")
    return value if isinstance(value, dict) else {}


def report_artifact(row: dict[str, Any]) -> dict[str, Any]:
    """The fixed artifact shape of a report: TheHive 4 drops every artifact if one lacks `tlp` or `tags`."""
    out: dict[str, Any] = {
        "dataType": row["dataType"],
        "message": row.get("message"),
        "tags": row.get("tags") or [],
        "tlp": row["tlp"],
    }
    if row.get("attachment"):
        attachment = row["attachment"]
        out["attachment"] = {
            k: attachment[k] for k in ("contentType", "id", "name", "size") if k in attachment
        }
    else:
        out["data"] = row.get("data")
    return out


def job_with_report(
    row: dict[str, Any], report: dict[str, Any] | None, artifacts: list[dict[str, Any]]
) -> dict[str, Any]:
    out = job(row)
    status = row["status"]
    if status == "Success" and report is not None:
        out["report"] = {
            "summary": _object_or_empty(report["summary"]),
            "full": _object_or_empty(report["full"]),
            "success": True,
            "artifacts": [report_artifact(a) for a in artifacts],
            "operations": _parsed(report["operations"]),
        }
    elif status == "Failure":
        out["report"] = {
            "errorMessage": row.get("errorMessage") or "",
            "input": row.get("input"),
            "success": False,
        }
    else:
        out["report"] = {"InProgress": "Running", "Waiting": "Waiting", "Deleted": "Deleted"}.get(
            status, status
        )
    return out


def artifact(row: dict[str, Any]) -> dict[str, Any]:
    out = _entity("artifact", row, parent=row["report"], routing=row["job"])
    out |= {"dataType": row["dataType"], "tlp": row["tlp"], "tags": row.get("tags") or []}
    _present(out, row, ("data", "attachment", "message"))
    return out
