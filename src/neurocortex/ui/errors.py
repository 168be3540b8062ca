"""How the web UI answers a problem: a redirection to the login page, or an HTML page with the message.

The API keeps Cortex's JSON errors; only paths under /ui/ get pages.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from neurocortex.errors import CortexError
from neurocortex.ui.session import LoginRequired, current_viewer
from neurocortex.ui.templating import page


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    if request.headers.get("HX-Request"):
        # htmx swaps answers into the page: tell it to load the login page instead
        return Response(status_code=204, headers={"HX-Redirect": exc.target})
    return RedirectResponse(exc.target, status_code=303)


def install(app: FastAPI) -> None:
    api_handler = app.exception_handlers[CortexError]

    async def cortex_error(request: Request, exc: Exception) -> Response:
        if not request.url.path.startswith("/ui/"):
            return await api_handler(request, exc)
        assert isinstance(exc, CortexError)
        viewer = await current_viewer(request)
        return page(request, "error.html", viewer, status=exc.status, error=exc)

    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(CortexError, cortex_error)
