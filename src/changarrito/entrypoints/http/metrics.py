"""``GET /metrics`` (every role); the webhook counts and times its own requests
(``webhook.py``).

The scrape reads the queue's depth from PostgreSQL first (cached a few seconds, so scrapes
cannot hammer the database), then renders this process's registry. ``changarrito worker`` has
no HTTP server: it serves the same registry on ``CHANGARRITO_METRICS_PORT`` (``serve_worker``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from litestar import Response, get
from litestar.datastructures import State

if TYPE_CHECKING:
    from changarrito.bootstrap import Service

log = structlog.get_logger("changarrito.metrics")

#: The classic text format, which every Prometheus reads (Litestar adds the charset).
CONTENT_TYPE = "text/plain; version=0.0.4"


@get("/metrics", media_type=CONTENT_TYPE, tags=["health"], summary="Prometheus metrics")
async def metrics(state: State) -> Response[bytes]:
    """This process's metrics in the Prometheus text format."""
    service: Service = state.service
    await service.metrics.refresh_queue()
    return Response(service.metrics.render(), media_type=CONTENT_TYPE)
