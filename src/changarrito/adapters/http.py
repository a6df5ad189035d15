"""Outbound HTTP: one pooled ``httpx.AsyncClient`` per upstream host.

A URL a tenant supplied (``get(url, tenant=True)``) gets a client of its own per host, whose
transport is the guard of ``changarrito.adapters.url_guard``: every request resolves the
host, refuses non-public addresses and connects to the address it checked. Those clients
ignore proxy variables (a proxy would connect where it liked). The platform's own URLs
(provider defaults, ``*_BASE_URL`` overrides, the Graph API) are trusted and not guarded.

Connections run on ``http_streams.AsyncioBackend`` (asyncio's own transports rather than
anyio's: a tenth of the worker's CPU under load). Upstream failures are classified into the
domain's provider errors in one place, ``changarrito.plugins.upstream``, which providers and
the service's own clients share; its helpers are re-exported here for the adapters that call
upstreams themselves.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from changarrito.adapters.http_streams import AsyncioBackend
from changarrito.adapters.url_guard import GuardedTransport, Resolve, UrlGuard, system_resolve
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


def on_asyncio(transport: httpx.AsyncBaseTransport | None) -> None:
    """Puts the connections of httpx's own transport on ``AsyncioBackend``
    (``http_streams.py``: asyncio's transports, not anyio's). httpx takes no network backend,
    so it is set on the connection pool httpx built; any other transport (a test's mock, a
    guard) is left as it is, and so is a pool a later httpx lays out otherwise
    (``tests/unit/test_http.py`` notices)."""
    pool = getattr(transport, "_pool", None)
    if isinstance(pool, httpcore.AsyncConnectionPool) and hasattr(pool, "_network_backend"):
        pool._network_backend = AsyncioBackend()


class _NoCookies(httpx.Cookies):
    """A jar that keeps nothing: a client is shared by every tenant's calls to its host, so a
    cookie one answer set must not travel with another tenant's request; and reading the
    ``Set-Cookie`` of every answer cost a few percent of the worker's CPU."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _Client(httpx.AsyncClient):
    """``httpx.AsyncClient`` without a cookie jar: each look at its cookies is an empty
    ``_NoCookies`` (a request's own ``cookies=`` still go with that request)."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NoCookies()

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        raise TypeError("the shared upstream clients keep no cookies")


class HttpClients:
    """A shared ``AsyncClient`` per scheme, host and port (and per trust: a tenant's endpoint
    never shares the platform's client); closed together at shutdown.

    ``private`` is ``CHANGARRITO_ALLOW_PRIVATE_URLS`` (``off``, ``on``, ``loopback``).
    ``transport`` lets tests put an ``httpx.MockTransport`` under every client; tenant
    endpoints' names are then resolved only by the ``resolve`` given with it (literal
    addresses and local names are checked all the same).
    """

    def __init__(
        self,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        private: str = "off",
        resolve: Resolve | None = None,
    ) -> None:
        self._timeout = timeout
        self._transport = transport
        self._clients: dict[str, httpx.AsyncClient] = {}
        if resolve is None and transport is None:
            resolve = system_resolve
        self.guard = UrlGuard(private=private, resolve=resolve)

    def get(self, base_url: str, *, tenant: bool = False) -> httpx.AsyncClient:
        """The client for ``base_url``'s host; ``tenant``: the URL came from a tenant's
        credentials, so its client is guarded (see the module docstring)."""
        parts = urlsplit(base_url)
        key = f"{'tenant+' if tenant else ''}{parts.scheme}://{parts.netloc}"
        client = self._clients.get(key)
        if client is None or client.is_closed:
            transport = self._transport
            if tenant:
                inner = transport or httpx.AsyncHTTPTransport(
                    limits=DEFAULT_LIMITS, trust_env=False
                )
                on_asyncio(inner)
                transport = GuardedTransport(inner, self.guard)
            client = _Client(
                timeout=self._timeout,
                limits=DEFAULT_LIMITS,
                transport=transport,
                follow_redirects=False,
                trust_env=not tenant,
            )
            # The client's own transport (a platform URL's; proxies keep httpx's own).
            on_asyncio(getattr(client, "_transport", None))
            self._clients[key] = client
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()
