"""What the built-in payment providers share besides ``Provider.call_json``: stable
idempotency keys, safe URL segments, lenient reading of JSON fields, the default return URL."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

#: Where the buyer lands after paying when the shop configured nothing: back in WhatsApp,
#: where the conversation that produced the link lives.
DEFAULT_RETURN_URL = "https://wa.me/"


def path_segment(value: str) -> str:
    """``value`` quoted as one URL path segment (ids from webhook bodies are untrusted)."""
    return quote(value, safe="")


def idempotency_key(provider: str, link_id: str, *payload: object) -> str:
    """A stable key for one link request (the host's ``link_id`` and what is sent): a retry
    of the same request reuses the upstream result instead of creating a second link, and
    every new link, even for the same order and amount, gets its own key."""
    material = "\x1f".join([provider, link_id, *(str(p) for p in payload)])
    return f"changarrito-{hashlib.sha256(material.encode()).hexdigest()[:40]}"


def text(value: Any) -> str | None:
    """``value`` when it is a non-empty string (or a number, as text); else ``None``."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | str):
        return str(value) or None
    return None
