"""Jinja2 environment of the web UI and the one way pages are rendered."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from neurocortex import __version__
from neurocortex.ui.session import XSRF_FIELD, Viewer, xsrf_token

TEMPLATES = Path(__file__).resolve().parent / "templates"
TLP = {0: "WHITE", 1: "GREEN", 2: "AMBER", 3: "RED"}
PAP = TLP
# cortexutils' taxonomy levels, and the colour each is shown in
LEVELS = ("info", "safe", "suspicious", "malicious")


def _when(ms: int | None) -> str:
    if not ms:
        return ""
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _level(value: Any) -> str:
    level = str(value or "info").lower()
    return level if level in LEVELS else "info"


def _scalar(value: Any) -> bool:
    return not isinstance(value, dict | list)


environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(("html",)),
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters |= {"when": _when, "level": _level, "tlp": lambda v: TLP.get(v, str(v))}
environment.tests["scalar"] = _scalar
environment.globals |= {"TLP": TLP, "PAP": PAP, "version": __version__, "XSRF_FIELD": XSRF_FIELD}


def page(
    request: Request, template: str, viewer: Viewer | None = None, status: int = 200, **context: Any
) -> HTMLResponse:
    settings = request.app.state.services.settings
    html = environment.get_template(template).render(
        request=request,
        viewer=viewer,
        xsrf=xsrf_token(request),
        session_lifetime=settings.session_inactivity,
        session_warning=settings.session_warning,
        **context,
    )
    return HTMLResponse(html, status_code=status)
