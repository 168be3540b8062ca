"""Per-request plumbing as plain ASGI (cheap on the hot path): `Request-Time`, the body size limit,
session refresh and the XSRF cookie, and removal of spooled upload files once the answer is sent."""

from __future__ import annotations

import secrets
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from neurocortex import metrics
from neurocortex.auth.sessions import SESSION_COOKIE, XSRF_COOKIE, encode_session
from neurocortex.errors import PayloadTooLarge


class CortexMiddleware:
    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        received = 0
        status = 500

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise PayloadTooLarge(f"Request body exceeds the limit of {self.max_body} bytes")
            return message

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                nonlocal status
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["Request-Time"] = str(int((time.perf_counter() - started) * 1000))
                self._cookies(scope, state, headers)
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        finally:
            # the route's template, not the path: ids in paths would make one series per job
            route = getattr(scope.get("route"), "path", "unmatched")
            metrics.http_request(scope["method"], route, status, time.perf_counter() - started)
            form = state.get("form")
            if form is not None:
                await form.close()

    def _cookies(self, scope: Scope, state: dict, headers: MutableHeaders) -> None:
        app_state = scope["app"].state
        refresh = state.get("refresh_session")
        if refresh:
            user_id, method = refresh
            value = encode_session(
                app_state.services.box, user_id, method, app_state.services.settings.session_inactivity
            )
            headers.append("Set-Cookie", f"{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax")
            cookie_header = dict(scope["headers"]).get(b"cookie", b"").decode("latin-1")
            if f"{XSRF_COOKIE}=" not in cookie_header:
                # the UI copies this cookie into the X-CORTEX-XSRF-TOKEN header of its unsafe requests
                headers.append(
                    "Set-Cookie", f"{XSRF_COOKIE}={secrets.token_urlsafe(24)}; Path=/; SameSite=Lax"
                )
