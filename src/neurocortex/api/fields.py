"""Parsing a request into Fields: JSON objects, url-encoded forms, multipart (`_json` part + file parts)
and the query string are interchangeable; query-string values override body keys."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.datastructures import UploadFile
from starlette.requests import Request

from neurocortex.errors import BadRequestError, PayloadTooLarge
from neurocortex.fields import Fields, QueryValue, UploadedFile


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"Invalid JSON in {what}: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequestError(f"The {what} must be a JSON object")
    return value


def _multi(items: list[tuple[str, str]], forbid_underscore: bool) -> dict[str, Any]:
    collected: dict[str, Any] = {}
    for key, value in items:
        if forbid_underscore and key.startswith("_"):
            raise BadRequestError("Field starting with '_' is forbidden")
        if key in collected:
            previous = collected[key]
            collected[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            collected[key] = QueryValue(value)
    return collected


def _basename(filename: str | None) -> str:
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    return name or "noname"


async def parse_fields(request: Request, max_body: int) -> Fields:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_body:
        raise PayloadTooLarge(f"Request body exceeds the limit of {max_body} bytes")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fields = Fields()
    if content_type in ("application/json", "text/json") or content_type.endswith("+json"):
        fields.update(_json_object(await request.body(), "request body"))
    elif content_type == "application/x-www-form-urlencoded":
        form = await request.form()
        fields.update(_multi(list(form.multi_items()), forbid_underscore=True))
    elif content_type == "multipart/form-data":
        form = await request.form(max_files=100, max_fields=1000, max_part_size=16 * 1024 * 1024)
        request.state.form = form  # closed (temp files removed) by the middleware after the response
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                fields[key] = UploadedFile(
                    _basename(value.filename), value.content_type or "application/octet-stream", value.file
                )
            elif key == "_json":
                for json_key, json_value in _json_object(value.encode(), "_json part").items():
                    # TheHive 4 sends `"data": null` beside the file part named data, in either order
                    if json_value is None and isinstance(fields.get(json_key), UploadedFile):
                        continue
                    fields[json_key] = json_value
            # Cortex ignores every other data part
    fields.update(_multi(list(request.query_params.multi_items()), forbid_underscore=False))
    return fields
