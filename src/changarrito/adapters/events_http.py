"""Posting an event to the platform's receiver (the domain's ``EventPoster``), on the shared
pooled client of its host. The receiver is the operator's own URL (``CHANGARRITO_EVENTS_URL``,
trusted like a provider's base URL), so it may be on a private network. A refused connection,
a timeout or any other transport failure is an answer too: ``Posted(None, error)``, never an
exception, so a receiver that is down costs the loop nothing but the retry."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from changarrito.adapters.http import HttpClients
from changarrito.domain.events import TIMEOUT_SECONDS, Posted


class HttpEventPoster:
    def __init__(self, http: HttpClients, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self.http = http
        self.timeout = httpx.Timeout(timeout, connect=min(timeout, 5.0))

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Posted:
        client = self.http.get(url)
        try:
            response = await client.post(
                url, content=body, headers=dict(headers), timeout=self.timeout
            )
        except httpx.TimeoutException:
            return Posted(None, "the receiver did not answer in time")
        except httpx.TransportError as exc:
            return Posted(None, f"the receiver could not be reached ({type(exc).__name__})")
        return Posted(response.status_code)
