"""MISP calling neurocortex as a module server (spec/cortex-api.md §3.8, clients.md §3): the analyzers of the
caller's organization listed as MISP modules, and a MISP attribute run through one of them.

MISP reads an `{"error": ...}` answer and shows its message; everything that goes wrong in a query is
answered that way, never as an exception.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import io
from typing import Any

import orjson
from sqlalchemy import select

from neurocortex import zipcrypto
from neurocortex.auth.context import AuthContext
from neurocortex.errors import CortexError
from neurocortex.fields import Fields, UploadedFile
from neurocortex.misp import modules, types
from neurocortex.services import jobs
from neurocortex.services.base import Services, as_dict
from neurocortex.services.cache import MISSING
from neurocortex.store import tables as t

QUERY_WAIT_SECONDS = 20 * 60  # Cortex's; MISP itself gives up after Plugin.Cortex_timeout (120 s)
SAMPLE_PASSWORD = "infected"
FILE_RESULT_LIMIT = 10 * 1024**2
"""Largest file artifact sent back to MISP with its content; a larger one is sent as its file name."""
INTERNAL_TAGS = (modules.TYPE_TAG, modules.OBJECT_TAG, modules.RELATION_TAG)
NOT_ATTRIBUTES = frozenset({"module", "event_id", "attribute_uuid", "config", "timeout", "data", "attribute"})


class QueryError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@functools.lru_cache(maxsize=4096)
def _inputs(data_types: tuple[str, ...]) -> list[str]:
    return list(dict.fromkeys(name for data_type in data_types for name in types.misp_types(data_type)))


async def module_list(svc: Services, ctx: AuthContext) -> list[dict[str, Any]]:
    """One MISP module per analyzer of the organization whose definition is in the catalog, as Cortex. The
    list is kept a few seconds per organization (cleared by any worker change on this node): MISP asks for
    it on every event page and gives the answer one second."""
    key = ("misp-modules", ctx.organization)
    cached = svc.workers_cache.get(key)
    if cached is not MISSING:
        return cached
    statement = select(t.worker).where(
        t.worker.c.organization == ctx.organization, t.worker.c.type == "analyzer"
    )
    async with svc.db.read() as conn:
        rows = [dict(row._mapping) for row in await conn.execute(statement.order_by(t.worker.c.name))]
    found = []
    for row in rows:
        definition = svc.catalog.get("analyzer", row["workerDefinitionId"])
        if definition is None:
            continue
        found.append(
            {
                "name": row["name"],
                "type": "cortex",
                "mispattributes": {"input": _inputs(tuple(row["dataTypeList"] or ())), "output": []},
                "meta": {
                    "module-type": ["cortex"],
                    "description": row["description"],
                    "author": definition.author,
                    "version": definition.version,
                    "config": [],
                },
            }
        )
    svc.workers_cache.put(key, found)
    return found


def _attribute(body: dict[str, Any]) -> tuple[str, Any]:
    """(MISP type, value): the first key that is a MISP attribute type, whatever comes before it (MISP puts
    event_id, attribute_uuid, config... around it), or a `misp_standard` `attribute` object."""
    standard = body.get("attribute")
    if isinstance(standard, dict) and isinstance(standard.get("type"), str):
        return standard["type"], standard.get("value")
    for key, value in body.items():
        if key not in NOT_ATTRIBUTES and key in types.ATTRIBUTE_TYPES:
            return key, value
    raise QueryError("Request doesn't contain data to analyze")


def _file(body: dict[str, Any], misp_type: str, value: str, max_size: int) -> UploadedFile:
    """The file of an `attachment` (base64 content) or a `malware-sample` (base64 of a ZIP protected with
    the password `infected`). MISP sends the content in `data` and the file name (`name|md5` for a sample)
    as the value; Cortex's older form has the base64 content as the value."""
    standard = body.get("attribute") if isinstance(body.get("attribute"), dict) else {}
    encoded = body.get("data", standard.get("data"))
    if isinstance(encoded, str):
        name = value.split("|", 1)[0] if misp_type == "malware-sample" else value
    else:
        encoded, name = value, ""
    try:
        content = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise QueryError(f"The {misp_type} content is not valid base64") from None
    if misp_type == "malware-sample":
        try:
            entry, content = zipcrypto.first_file(content, SAMPLE_PASSWORD, max_size)
        except zipcrypto.ZipError as exc:
            raise QueryError(
                f"The malware-sample is not a ZIP protected with the password infected: {exc}"
            ) from None
        name = name or entry
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    return UploadedFile(name or "noname", "application/octet-stream", io.BytesIO(content))


async def _worker_named(svc: Services, ctx: AuthContext, name: str) -> dict[str, Any]:
    statement = select(t.worker).where(
        t.worker.c.organization == ctx.organization, t.worker.c.type == "analyzer", t.worker.c.name == name
    )
    async with svc.db.read() as conn:
        worker = as_dict((await conn.execute(statement)).first())
    if worker is None:
        raise QueryError(f"Module {name} not found", 404)
    return worker


async def query(svc: Services, ctx: AuthContext, body: Any) -> tuple[dict[str, Any], int]:
    """(answer, HTTP status): run the attribute through the analyzer named `module` and wait for its end
    (at once for a cached or finished job)."""
    try:
        if not isinstance(body, dict):
            raise QueryError("The request body must be a JSON object")
        module = body.get("module")
        if not isinstance(module, str) or not module:
            raise QueryError("Module parameter is not present in request")
        misp_type, value = _attribute(body)
        if not isinstance(value, str):
            raise QueryError("Data has invalid type (expected string)")
        worker = await _worker_named(svc, ctx, module)
        data_type = types.data_type(misp_type)
        fields = Fields(dataType=data_type, tlp=0, pap=0, message="", parameters={})
        if data_type == "file":
            # decoding and unzipping a large sample must not hold the event loop
            fields["attachment"] = await asyncio.to_thread(
                _file, body, misp_type, value, svc.settings.max_upload_size
            )
        else:
            fields["data"] = value
        job, _ = await jobs.create(svc, ctx, worker["id"], fields, responder_route=False)
        job = (await jobs.wait_for_report(svc, ctx, job["id"], QUERY_WAIT_SECONDS)).job
    except QueryError as exc:
        return {"error": exc.message}, exc.status
    except CortexError as exc:  # rate limit, bad input...
        return {"error": exc.message}, exc.status
    return await _answer(svc, job), 200


async def _answer(svc: Services, job: dict[str, Any]) -> dict[str, Any]:
    if job["status"] == "Failure":
        return {"error": job["errorMessage"] or "This job has failed, without message!"}
    if job["status"] == "Deleted":
        return {"error": "This job has been deleted"}
    if job["status"] != "Success":
        return {"error": "This job hasn't finished yet"}
    report, artifacts = await jobs.report_of(svc, job)
    if report is None:
        return {"error": "This job has no report"}
    results = await asyncio.to_thread(lambda: [_result(svc, artifact) for artifact in artifacts])
    cortex = orjson.dumps({"full": report["full"], "summary": report["summary"]}).decode()
    results.append({"types": ["cortex"], "values": [cortex]})
    return {"results": results}


def _result(svc: Services, artifact: dict[str, Any]) -> dict[str, Any]:
    """An artifact as a MISP module result: every MISP type of its data type for MISP to choose from; a file
    with its content (base64) when it is small enough for MISP to store."""
    attachment = artifact.get("attachment")
    if attachment:
        path = svc.datastore.path(attachment["id"])
        result: dict[str, Any] = {
            "types": ["attachment"],
            "values": [attachment.get("name") or attachment["id"]],
        }
        if path is not None and attachment.get("size", 0) <= FILE_RESULT_LIMIT:
            result["data"] = base64.b64encode(path.read_bytes()).decode()
        else:
            result["types"] = ["filename"]
    else:
        # the exact type when the artifact came from a MISP module (runners/misp_modules.py tags it)
        tagged = [
            tag.removeprefix(modules.TYPE_TAG)
            for tag in artifact.get("tags") or []
            if tag.startswith(modules.TYPE_TAG)
        ]
        known = [name for name in tagged if name in types.ATTRIBUTE_TYPES]
        result = {
            "types": known[:1] or list(types.misp_types(artifact["dataType"])),
            "values": [artifact["data"]],
        }
    if artifact.get("message"):
        result["comment"] = artifact["message"]
    tags = [tag for tag in artifact.get("tags") or [] if not tag.startswith(INTERNAL_TAGS)]
    if tags:
        result["tags"] = tags
    return result


async def enabled_where(svc: Services, definition_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
    """For each definition id, the (organization, worker name) of the analyzers enabled from it."""
    statement = (
        select(t.worker.c.workerDefinitionId, t.worker.c.organization, t.worker.c.name)
        .where(t.worker.c.type == "analyzer", t.worker.c.workerDefinitionId.in_(definition_ids))
        .order_by(t.worker.c.organization, t.worker.c.name)
    )
    found: dict[str, list[tuple[str, str]]] = {definition_id: [] for definition_id in definition_ids}
    async with svc.db.read() as conn:
        for definition_id, organization, name in await conn.execute(statement):
            found[definition_id].append((organization, name))
    return found
