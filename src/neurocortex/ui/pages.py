"""The landing page served at /index.html (where `/` and Cortex's clients redirect).

It tells an operator the server is up and what it runs; the full web UI builds on the same services.
"""

from __future__ import annotations

import html

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse

from neurocortex import CORTEX_API_VERSION, __version__

router = APIRouter()

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>neurocortex</title>
<style>
 body {{ font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #1d2733; }}
 h1 {{ font-size: 1.6rem; }} table {{ border-collapse: collapse; }} td, th {{ padding: .3rem .8rem; text-align: left; }}
 th {{ color: #55606e; font-weight: 500; }} code {{ background: #eef1f5; padding: .1rem .3rem; border-radius: 3px; }}
</style>
</head>
<body>
<main>
<h1>neurocortex {version}</h1>
<p>Cortex-compatible analysis engine (API {cortex}). Point TheHive, MISP or cortex4py at
<code>{base}</code> with an API key.</p>
<table>
<tr><th scope="row">Analyzers in the catalog</th><td>{analyzers}</td></tr>
<tr><th scope="row">Responders in the catalog</th><td>{responders}</td></tr>
<tr><th scope="row">Catalog problems</th><td>{problems}</td></tr>
<tr><th scope="row">Jobs running here</th><td>{running}</td></tr>
</table>
<p>{first_run}</p>
<p><a href="/api/docs">API reference</a> · <a href="/api/status">status</a></p>
</main>
</body>
</html>
"""


@router.get("/index.html", response_class=HTMLResponse)
async def index(request: Request) -> HTMLResponse:
    svc = request.app.state.services
    first_run = (
        "No user exists yet: create the first superadmin with <code>neurocortex init</code>."
        if not request.app.state.users_exist
        else ""
    )
    return HTMLResponse(
        PAGE.format(
            version=html.escape(__version__),
            cortex=html.escape(CORTEX_API_VERSION),
            base=html.escape(str(request.base_url)),
            analyzers=len(svc.catalog.analyzers),
            responders=len(svc.catalog.responders),
            problems=len(svc.catalog.problems),
            running=len(request.app.state.dispatcher.running),
            first_run=first_run,
        )
    )
