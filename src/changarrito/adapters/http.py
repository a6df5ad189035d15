"""Outbound HTTP: one pooled ``httpx.AsyncClient`` per upstream host.

Upstream failures are classified into the domain's provider errors in one place,
``changarrito.plugins.upstream``, which providers and the service's own clients share; its
helpers are re-exported here for the adapters that call upstreams themselves.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from changarrito.plugins.upstream import (
    REDACTED,
    classify_status,
    decode_json,
    error_payload,
    json_body,
    retry_after,
    scrub,
    translate_transport_errors,
)

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_TIMEOUT",
    "REDACTED",
    "HttpClients",
    "classify_status",
    "decode_json",
    "error_payload",
    "json_body",
    "retry_after",
    "scrub",
    "translate_transport_errors",
]

#: Explicit timeouts for every upstream call: connect fast, allow an LLM time to think.
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=60.0, write=10.0, pool=5.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class HttpClients:
    """A shared ``AsyncClient`` per scheme, host and port; closed together at shutdown.

    ``transport`` lets tests put an ``httpx.MockTransport`` under every client.
    """

    def __init__(
        self,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._timeout = timeout
        self._transport = transport
        self._clients: dict[str, httpx.AsyncClient] = {}

    def get(self, base_url: str) -> httpx.AsyncClient:
        parts = urlsplit(base_url)
        key = f"{parts.scheme}://{parts.netloc}"
        client = self._clients.get(key)
        if client is None or client.is_closed:
            client = httpx.AsyncClient(
                timeout=self._timeout,
                limits=DEFAULT_LIMITS,
                transport=self._transport,
                follow_redirects=False,
            )
            self._clients[key] = client
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()
