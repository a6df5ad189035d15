"""``GET /metrics`` (every role) and the webhook's metering middleware.

The scrape reads the queue's depth from PostgreSQL first (cached a few seconds, so scrapes
cannot hammer the database), then renders this process's registry. ``changarrito worker`` has
no HTTP server: it serves the same registry on ``CHANGARRITO_METRICS_PORT`` (``serve_worker``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, cast

import structlog
from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from changarrito.adapters.metrics import Metrics
    from changarrito.bootstrap import Service

log = structlog.get_logger("changarrito.metrics")

#: The classic text format, which every Prometheus reads (Litestar adds the charset).
CONTENT_TYPE = "text/plain; version=0.0.4"
_OUTCOME_KEY = "changarrito.webhook_outcome"
_BY_STATUS = {
    200: "accepted",
    400: "bad-request",
    401: "invalid-signature",
    413: "too-large",
    503: "unavailable",
}


@get("/metrics", media_type=CONTENT_TYPE, tags=["health"], summary="Prometheus metrics")
async def metrics(state: State) -> Response[bytes]:
    """This process's metrics in the Prometheus text format."""
    service: Service = state.service
    await service.metrics.refresh_queue()
    return Response(service.metrics.render(), media_type=CONTENT_TYPE)


def mark_webhook_outcome(request: Request[Any, Any, Any], outcome: str) -> None:
    """Lets the webhook handler refine the outcome its status says (``duplicate``)."""
    cast(dict[str, Any], request.scope)[_OUTCOME_KEY] = outcome


class WebhookMetrics:
    """ASGI middleware of the webhook route: counts and times each POST by outcome, read
    from the final status (after the exception handlers made the problem response)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            recorder = _metrics(scope)
            if recorder is not None:
                marked = cast(dict[str, Any], scope).get(_OUTCOME_KEY)
                outcome = marked if status == 200 and marked else _BY_STATUS.get(status, "error")
                recorder.webhook(outcome, time.perf_counter() - started)


def _metrics(scope: Scope) -> Metrics | None:
    service = getattr(scope["app"].state, "service", None)
    return getattr(service, "metrics", None)
