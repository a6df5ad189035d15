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

from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.middleware import DefineMiddleware
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

#: Responses under these paths are never stored by a browser or a proxy.
NO_STORE_PREFIXES = ("/api/",)


_NOSNIFF = (b"x-content-type-options", b"nosniff")
_NO_STORE = (b"cache-control", b"no-store")
_CLOSE = (b"connection", b"close")


async def security_headers(message: Message, scope: Scope) -> None:
    """Appends the headers as raw pairs: this runs on every response, the webhook's too, so
    it builds no header object (the handlers never set these three themselves)."""
    if message["type"] != "http.response.start":
        return
    extra = [_NOSNIFF]
    if str(scope.get("path", "")).startswith(NO_STORE_PREFIXES):
        extra.append(_NO_STORE)
    if message["status"] == 408:
        extra.append(_CLOSE)
    message["headers"] = [*message.get("headers", ()), *extra]


class BodyTooSlow(HTTPException):
    status_code = 408


class _Timed:
    """One request's ``receive`` with its body deadline: the body still arriving
    (``waiting`` in ``receive``), complete, or past its deadline. One slotted object per
    request (closures and their cells cost more on every request)."""

    __slots__ = (
        "complete",
        "deadline",
        "expired",
        "loop",
        "receive",
        "task",
        "timeout",
        "timer",
        "waiting",
    )

    def __init__(self, receive: Receive, timeout: float) -> None:
        self.receive = receive
        self.timeout = timeout
        self.loop = asyncio.get_running_loop()
        self.deadline = self.loop.time() + timeout
        self.task = asyncio.current_task()
        self.complete = False
        self.expired = False
        self.waiting = False
        self.timer: asyncio.TimerHandle | None = None

    def expire(self) -> None:
        self.expired = True
        if self.waiting and self.task is not None:
            self.task.cancel()

    def too_slow(self) -> BodyTooSlow:
        self.complete = True
        return BodyTooSlow(
            detail=f"The request body did not arrive within {self.timeout:g} seconds."
        )

    async def __call__(self) -> ReceiveMessage:
        if self.complete:
            return await self.receive()
        if self.expired:
            raise self.too_slow()
        if self.timer is None:
            self.timer = self.loop.call_at(self.deadline, self.expire)
        self.waiting = True
        try:
            message = await self.receive()
        except asyncio.CancelledError:
            if not self.expired or self.task is None:
                raise
            self.task.uncancel()
            raise self.too_slow() from None
        finally:
            self.waiting = False
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.complete = True
            self.timer.cancel()
        return message


class BodyDeadline:
    """A request's body must have arrived ``timeout`` seconds after the request reached the
    app; once it has, ``receive`` is the server's own again (a handler may wait on it for the
    disconnect).

    This runs on every request, the webhook's too, so it arms one timer per request body
    (``loop.call_at``, about a microsecond) rather than a timeout context per ``receive``
    (about ten): when the timer fires while the request waits for more body, the waiting task
    is cancelled and the cancellation turned into ``BodyTooSlow``. It never cancels anything
    else: past the deadline outside a ``receive``, the next ``receive`` fails instead.
    """

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        timed = _Timed(receive, self.timeout)
        try:
            await self.app(scope, timed, send)
        finally:
            if timed.timer is not None:
                timed.timer.cancel()


def body_deadline(timeout: float) -> DefineMiddleware:
    return DefineMiddleware(BodyDeadline, timeout=timeout)
