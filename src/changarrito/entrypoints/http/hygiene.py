"""HTTP hygiene every response and every request body gets, whatever the route.

- ``security_headers`` (a ``before_send`` hook, so it sees every response the app sends:
  handlers', problem+json errors', and the router's own 404/405): ``X-Content-Type-Options:
  nosniff`` everywhere, ``Cache-Control: no-store`` on the API (the tenant integration
  endpoints and the internal API carry credentials), and ``Connection: close`` on a 408.
- ``BodyDeadline`` (app-level middleware): a request's body must have arrived
  ``CHANGARRITO_REQUEST_TIMEOUT`` seconds after its headers did; a client that trickles it is
  answered 408 and its connection closed, so it never holds a handler.
"""

from __future__ import annotations

import asyncio

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.middleware import DefineMiddleware
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

#: Responses under these paths are never stored by a browser or a proxy.
NO_STORE_PREFIXES = ("/api/",)


async def security_headers(message: Message, scope: Scope) -> None:
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    headers["X-Content-Type-Options"] = "nosniff"
    if str(scope.get("path", "")).startswith(NO_STORE_PREFIXES):
        headers["Cache-Control"] = "no-store"
    if message["status"] == 408:
        headers["Connection"] = "close"


class BodyTooSlow(HTTPException):
    status_code = 408


class BodyDeadline:
    """Every ``receive`` of a request's body runs against one deadline, counted from the
    moment the request reached the app; once the body is complete, ``receive`` is the
    server's own again (a handler may wait on it for the disconnect)."""

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.timeout
        complete = False

        async def receive_in_time() -> ReceiveMessage:
            nonlocal complete
            if complete:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                complete = True
                raise BodyTooSlow(
                    detail=f"The request body did not arrive within {self.timeout:g} seconds."
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        await self.app(scope, receive_in_time, send)


def body_deadline(timeout: float) -> DefineMiddleware:
    return DefineMiddleware(BodyDeadline, timeout=timeout)
