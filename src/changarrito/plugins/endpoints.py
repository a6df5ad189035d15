"""Which outbound URLs a tenant may name: the one address policy for tenant-supplied endpoints.

A tenant's credentials may carry the endpoint its key is meant for (``baseUrl``, ``endpoint``:
``ENDPOINT_FIELDS``). Such a URL must be ``http(s)``, carry no user name, query or fragment
(a base URL chooses a server, never the exact request), and name a *public* host. Pure: no
I/O here. The catalog applies ``url_refusal`` when a tenant saves a credential; the HTTP
adapter's guarded transport (``changarrito.adapters.url_guard``) applies ``address_allowed``
to every address a name resolves to, at connect time, and connects to the one it checked.

Refused always: loopback, unspecified, link-local (the cloud metadata service at
169.254.169.254 among them), the known metadata addresses outside it, multicast, broadcast,
reserved and documentation ranges, and IPv4 addresses hidden in IPv6 (mapped, 6to4, NAT64)
whose IPv4 address is any of those. Refused unless the operator allows private URLs
(``CHANGARRITO_ALLOW_PRIVATE_URLS``, ``private``: ``on`` for a self-hosted LLM on the LAN):
RFC 1918, CGNAT (100.64.0.0/10) and IPv6 unique-local (fc00::/7) addresses; loopback only with
``loopback`` (an LLM on the service's own host, a test harness), never in a shared deployment.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import msgspec

__all__ = [
    "ENDPOINT_FIELDS",
    "NON_PUBLIC",
    "address_allowed",
    "endpoint_urls",
    "is_local_name",
    "literal_address",
    "same_credentials",
    "url_refusal",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Credential fields (wire names) holding an endpoint the tenant chooses.
ENDPOINT_FIELDS = ("baseUrl", "endpoint")
#: The one thing said about a refused address: no resolution detail beyond this.
NON_PUBLIC = "resolves to a non-public address"

_PRIVATE = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
#: Metadata services that sit outside link-local (AWS over IPv6, Alibaba in CGNAT).
_METADATA = tuple(
    ipaddress.ip_address(a) for a in ("fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped ``::ffff:a.b.c.d``, 6to4, NAT64)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_allowed(address: IPAddress, *, private: str = "off") -> bool:
    """Whether a tenant's endpoint may be reached at ``address`` (see the module docstring);
    ``private`` is the operator's ``off``, ``on`` or ``loopback``."""
    if isinstance(address, ipaddress.IPv6Address):
        address = _embedded_ipv4(address) or address
    if address in _METADATA:
        return False
    if private == "loopback" and address.is_loopback:
        return True
    if private in ("on", "loopback") and any(address in network for network in _PRIVATE):
        return True
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_loopback
    )


def literal_address(host: str) -> IPAddress | None:
    """``host`` as an IP address when it is one in any notation a resolver accepts
    (``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``[::1]``), else ``None``. No DNS."""
    host = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not host or not all(c in "0123456789abcdefxABCDEFX." for c in host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def is_local_name(host: str) -> bool:
    """``localhost`` and the names under it (RFC 6761), whatever DNS says."""
    name = host.rstrip(".").lower()
    return name in _LOCAL_NAMES or name.endswith(".localhost")


def url_refusal(url: str, *, private: str = "off") -> str | None:
    """Why a tenant may not use ``url`` as an endpoint (a message for the 422), or ``None``.
    Decided without DNS: a name is resolved, and each address checked, when it is connected
    to."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return "is not a valid URL"
    if parts.scheme.lower() not in ("http", "https"):
        return "must be an http:// or https:// URL"
    if "@" in parts.netloc:
        return "must not contain a user name or password"
    if "?" in url or "#" in url:
        return "must not contain a query (?) or a fragment (#)"
    if not host:
        return "must name a host"
    address = literal_address(host)
    if (is_local_name(host) and private != "loopback") or (
        address is not None and not address_allowed(address, private=private)
    ):
        return NON_PUBLIC
    return None


def endpoint_urls(credentials: Any) -> Iterator[tuple[str, str]]:
    """(wire field name, URL) of every endpoint field set in ``credentials`` (a parsed
    credentials struct or a camelCase mapping)."""
    if isinstance(credentials, msgspec.Struct):
        names = zip(
            credentials.__struct_fields__, credentials.__struct_encode_fields__, strict=True
        )
        values = {wire: getattr(credentials, attr) for attr, wire in names}
    elif isinstance(credentials, dict):
        values = credentials
    else:
        return
    for name in ENDPOINT_FIELDS:
        value = values.get(name)
        if isinstance(value, str) and value:
            yield name, value


def same_credentials(a: msgspec.Struct, b: msgspec.Struct) -> bool:
    """Whether two parsed credentials hold the same values (unset fields ignored)."""

    def present(value: msgspec.Struct) -> dict[str, Any]:
        data = msgspec.to_builtins(value)
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else {}

    return present(a) == present(b)
