"""Sending through Meta's Graph API (its errors are classified by the ``meta`` provider's
``changarrito.plugins.whatsapp.graph_errors.classify_graph_error``).

``POST {base}/{version}/{phone_number_id}/messages`` with the number's own bearer token, on the
shared pooled client of the Graph host. Graph reports most failures as
HTTP 400 whatever they mean, rate limits included, so ``classify_graph_error`` reads
``error.code`` first and the HTTP status only when the body has no code it knows.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
import structlog

from changarrito.adapters.http import HttpClients, decode_json, translate_transport_errors
from changarrito.domain.errors import FinalProviderError, ProviderBadRequest, ProviderError
from changarrito.domain.text import MAX_TEXT_CHARS, split_text
from changarrito.plugins.whatsapp.graph_errors import (
    PROVIDER,
    classify_graph_error,
)

if TYPE_CHECKING:
    from changarrito.adapters.metrics import Metrics

log = structlog.get_logger(__name__)

#: Graph calls answer in well under a second; a stuck one is retried, not waited on.
DEFAULT_TIMEOUT = 20.0

_BSUID = re.compile(r"^[A-Z]{2}\.[A-Za-z0-9]{1,128}$")


class _SentMessage(msgspec.Struct):
    id: str


class SendResponse(msgspec.Struct):
    """The part of Graph's send response we read: ``messages[0].id`` is the new wamid."""

    messages: list[_SentMessage]


def recipient_fields(to: str) -> dict[str, str]:
    """``to`` as Graph wants it: a phone number in E.164 with its ``+`` (without it Meta
    prepends the business number's country code), or a business-scoped user id in
    ``recipient`` when the customer has no phone number in the webhook (§1.7)."""
    to = to.strip()
    if _BSUID.match(to):
        return {"recipient": to}
    digits = to.removeprefix("+")
    return {"to": f"+{digits}" if digits.isdigit() else to}


class GraphClient:
    """Sends text messages and read receipts from one WhatsApp Business number.

    The token is passed per call (it belongs to the number, resolved per message); the HTTP
    client is the shared pooled one of the Graph host.
    """

    def __init__(
        self,
        http: HttpClients,
        base_url: str,
        version: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        metrics: Metrics | None = None,
    ) -> None:
        self.http = http
        self.metrics = metrics
        self.base_url = base_url.rstrip("/")
        self.version = version.strip("/")
        self.timeout = httpx.Timeout(timeout, connect=min(timeout, 5.0))

    def messages_url(self, phone_number_id: str) -> str:
        if not phone_number_id.isdigit():
            raise ProviderBadRequest(
                f"not a WhatsApp phone number id: {phone_number_id!r}", provider=PROVIDER
            )
        return f"{self.base_url}/{self.version}/{phone_number_id}/messages"

    async def send_text(
        self,
        phone_number_id: str,
        token: str,
        to: str,
        body: str,
        reply_to_wamid: str | None = None,
    ) -> list[str]:
        """Sends ``body`` to ``to`` and returns the wamid of each message sent, in order.

        A body over 4,096 characters goes as several messages, split on paragraph, sentence
        or word boundaries and sent one after the other; only the first quotes
        ``reply_to_wamid`` (``context.message_id``).
        """
        parts = split_text(body, MAX_TEXT_CHARS)
        if not parts:
            raise ProviderBadRequest("refusing to send an empty WhatsApp message")
        wamids: list[str] = []
        for index, part in enumerate(parts):
            message: dict[str, Any] = {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                **recipient_fields(to),
                "type": "text",
                "text": {"preview_url": False, "body": part},
            }
            if reply_to_wamid and index == 0:
                message["context"] = {"message_id": reply_to_wamid}
            response = await self._post(phone_number_id, token, message)
            sent: SendResponse = decode_json(response, SendResponse, PROVIDER)
            if not sent.messages:
                raise FinalProviderError(
                    "WhatsApp accepted the message but returned no message id",
                    provider=PROVIDER,
                    status=response.status_code,
                )
            wamids.append(sent.messages[0].id)
        return wamids

    async def mark_read(
        self, phone_number_id: str, token: str, wamid: str, *, typing: bool = False
    ) -> None:
        """Marks the inbound message ``wamid`` as read (blue ticks), optionally showing the
        typing indicator until the reply arrives or 25 seconds pass."""
        message: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": wamid,
        }
        if typing:
            message["typing_indicator"] = {"type": "text"}
        await self._post(phone_number_id, token, message)

    async def _post(self, phone_number_id: str, token: str, body: dict[str, Any]) -> httpx.Response:
        url = self.messages_url(phone_number_id)
        client = self.http.get(url)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        kind = "read" if body.get("status") == "read" else "message"
        try:
            async with translate_transport_errors(PROVIDER):
                response = await client.post(url, json=body, headers=headers, timeout=self.timeout)
        except ProviderError as exc:
            self._count(kind, exc)
            raise
        if response.is_success:
            self._count(kind, None)
            return response
        error = classify_graph_error(response, secrets=[token])
        self._count(kind, error)
        log.warning(
            "whatsapp.graph_failed",
            status=response.status_code,
            graph_code=error.provider_code,
            retryable=error.retryable,
            error=error.message,
        )
        raise error

    def _count(self, kind: str, error: ProviderError | None) -> None:
        if self.metrics is not None:
            self.metrics.graph_call(kind, error, error.provider_code if error else None)
