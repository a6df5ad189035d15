"""Sending through Meta's Graph API, and the one place Graph errors are classified.

``POST {base}/{version}/{phone_number_id}/messages`` with the number's own bearer token, on the
shared pooled client of the Graph host (PROVIDERS.md §1.10). Graph reports most failures as
HTTP 400 whatever they mean, rate limits included, so ``classify_graph_error`` reads
``error.code`` first and the HTTP status only when the body has no code it knows (§1.11).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
import structlog

from changarrito.adapters.http import (
    HttpClients,
    classify_status,
    decode_json,
    error_payload,
    retry_after,
    scrub,
    translate_transport_errors,
)
from changarrito.domain.errors import (
    FinalProviderError,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderError,
    RecipientRateLimited,
    RetryableProviderError,
)
from changarrito.domain.pipeline import MAX_TEXT_CHARS, split_text

if TYPE_CHECKING:
    from changarrito.adapters.metrics import Metrics

log = structlog.get_logger(__name__)

PROVIDER = "whatsapp"

#: Graph calls answer in well under a second; a stuck one is retried, not waited on.
DEFAULT_TIMEOUT = 20.0

#: Meta's pair rate limit lets one recipient receive about one message every 6 seconds.
RECIPIENT_PAUSE = 6.0

# Graph ``error.code`` → what it means for the caller (PROVIDERS.md §1.11).
#: Busy, throttled or briefly down: the same call may succeed later.
RETRYABLE_CODES = frozenset({1, 2, 4, 17, 32, 613, 80007, 130429, 131000, 131016, 131057})
#: The token is invalid, expired or lacks a permission: fix the credential.
AUTH_CODES = frozenset({0, 10, 190, 131005, *range(200, 300)})
#: The request is wrong (parameters, template, media): fix the request.
BAD_REQUEST_CODES = frozenset({33, 100, 131008, 131009, 131021, 131051, 131052, 131053})
#: Meta will not deliver this message now; retrying it unchanged will not help.
REFUSED_CODES = frozenset({368, 131026, 131031, 131047, 131048, 131049})

#: What each refusal means, for the message recorded on the failed inbound message.
REFUSALS = {
    131047: "more than 24 hours since the customer's last message (re-engagement needs a template)",
    131026: "the message is undeliverable to this recipient",
    131048: "spam rate limit hit: the number's quality is too low",
    131049: "not delivered to maintain healthy ecosystem engagement",
    368: "the account is temporarily blocked for policy violations",
    131031: "the business account is restricted or locked",
}

_BSUID = re.compile(r"^[A-Z]{2}\.[A-Za-z0-9]{1,128}$")


def classify_graph_error(response: httpx.Response, *, secrets: Iterable[str] = ()) -> ProviderError:
    """The domain error for a failed Graph API response (by ``error.code``, then by status).

    Public for every Graph caller (sending, credential verification). The message carries
    Meta's own text and ``error_data.details``, scrubbed of ``secrets``; ``provider_code`` is
    the Graph code as text.
    """
    payload = error_payload(response)
    error = payload.get("error") if isinstance(payload, dict) else None
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    text = str(error.get("message") or f"HTTP {response.status_code}")
    if isinstance(details, str) and details and details not in text:
        text = f"{text} ({details})"
    if code in REFUSALS:
        text = f"{REFUSALS[code]}: {text}"
    text = scrub(text, secrets)
    kwargs: dict[str, Any] = {
        "provider": PROVIDER,
        "status": response.status_code,
        "provider_code": str(code) if code is not None else None,
        "retry_after": retry_after(response.headers),
    }
    if code == 131056:
        kwargs["retry_after"] = kwargs["retry_after"] or RECIPIENT_PAUSE
        return RecipientRateLimited(f"WhatsApp pair rate limit: {text}", **kwargs)
    if code in RETRYABLE_CODES:
        return RetryableProviderError(f"WhatsApp is busy or unavailable: {text}", **kwargs)
    if code in AUTH_CODES:
        return ProviderAuthError(f"WhatsApp rejected the access token: {text}", **kwargs)
    if code in BAD_REQUEST_CODES or (code is not None and 132000 <= code < 133000):
        return ProviderBadRequest(f"WhatsApp rejected the request: {text}", **kwargs)
    if code in REFUSALS or code in REFUSED_CODES:
        return FinalProviderError(f"WhatsApp refused the message: {text}", **kwargs)
    # No code we know: the HTTP status decides (5xx and 429 retryable, 401/403 auth...).
    return classify_status(PROVIDER, response, message=text, provider_code=kwargs["provider_code"])


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
