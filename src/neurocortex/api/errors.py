"""The one place where errors become HTTP answers, in Cortex's `{"type","message"}` format."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request

from neurocortex.api.render import json_response
from neurocortex.errors import CortexError

log = logging.getLogger(__name__)

HTTP_TYPES = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 405: "BadRequest"}


async def _cortex_error(_request: Request, exc: Exception):
    assert isinstance(exc, CortexError)
    return json_response(exc.body(), exc.status)


async def _http_error(request: Request, exc: Exception):
    assert isinstance(exc, HTTPException)
    kind = HTTP_TYPES.get(exc.status_code, "Unknown")
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404:
        message = f"No route for {request.method} {request.url.path}"
    return json_response({"type": kind, "message": message}, exc.status_code)


async def _validation_error(_request: Request, exc: Exception):
    return json_response({"type": "BadRequest", "message": str(exc)}, 400)


async def _unexpected(request: Request, exc: Exception):
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return json_response({"type": "InternalError", "message": f"{type(exc).__name__}: {exc}"}, 500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(CortexError, _cortex_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
