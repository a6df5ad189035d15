"""The connect-time guard for endpoints a tenant supplied (DNS rebinding included).

``GuardedTransport`` wraps the transport of a tenant endpoint's client: for every request it
resolves the host (every IPv4 and IPv6 address, through the event loop's ``getaddrinfo``, so
nothing blocks), refuses the request unless *every* address passes the one policy,
``changarrito.plugins.endpoints.address_allowed``, and sends it to the address it checked:
the URL carries that IP, while the ``Host`` header and the TLS server name (SNI, and so the
certificate check) stay on the name. A name that resolved to a public address when the
credential was saved and to a private one now is refused before any connection is made.

A refusal is ``RefusedEndpoint`` (an httpx transport error, so it leaves through the same
door as every other), which ``translate_transport_errors`` turns into a final provider error
that says only that the endpoint "resolves to a non-public address".
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import httpx

from changarrito.plugins.endpoints import address_allowed, is_local_name, literal_address
from changarrito.plugins.upstream import RefusedEndpoint

__all__ = ["GuardedTransport", "Resolve", "UrlGuard", "system_resolve"]

#: ``(host, port)`` → every address the name resolves to, as text.
Resolve = Callable[[str, int], Awaitable[list[str]]]
#: Seconds a name may take to resolve.
RESOLVE_TIMEOUT = 5.0


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address of ``host`` (IPv4 and IPv6), from the event loop's ``getaddrinfo``."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class UrlGuard:
    """Resolves a tenant endpoint's host and returns the one public address to connect to.

    ``private`` is ``CHANGARRITO_ALLOW_PRIVATE_URLS`` (``off``, ``on``, ``loopback``);
    ``resolve`` defaults to ``system_resolve``; ``None`` (only for an injected test
    transport, which decides itself where a request goes) checks literal addresses and
    local names but leaves other names unresolved.
    """

    def __init__(self, *, private: str = "off", resolve: Resolve | None = None) -> None:
        self.private = private
        self.resolve = resolve

    def allowed(self, address: str) -> bool:
        ip = literal_address(address)
        return ip is not None and address_allowed(ip, private=self.private)

    async def address(self, host: str, port: int) -> str:
        """The address to connect to for ``host``; ``RefusedEndpoint`` when ``host`` is, or
        resolves to, any non-public address; ``httpx.ConnectError`` when it does not
        resolve."""
        if is_local_name(host) and self.private != "loopback":
            raise RefusedEndpoint("refused")
        literal = literal_address(host)
        if literal is not None:
            if not address_allowed(literal, private=self.private):
                raise RefusedEndpoint("refused")
            return str(literal)
        if self.resolve is None:
            return host
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT):
                addresses = await self.resolve(host, port)
        except TimeoutError:
            raise httpx.ConnectTimeout("name resolution timed out") from None
        except OSError:
            raise httpx.ConnectError("name does not resolve") from None
        if not addresses:
            raise httpx.ConnectError("name does not resolve")
        if not all(self.allowed(a.split("%", 1)[0]) for a in addresses):
            raise RefusedEndpoint("refused")
        return addresses[0].split("%", 1)[0]


class GuardedTransport(httpx.AsyncBaseTransport):
    """``inner``, reached only at addresses ``guard`` checked (see the module docstring)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, guard: UrlGuard) -> None:
        self.inner = inner
        self.guard = guard

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https") or url.userinfo or url.fragment:
            raise RefusedEndpoint("refused")
        host = url.host
        address = await self.guard.address(host, url.port or (443 if url.scheme == "https" else 80))
        if address != host:
            # Host header already names ``host``; the TLS server name must too.
            request.url = url.copy_with(host=address)
            request.extensions = {**request.extensions, "sni_hostname": host}
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
