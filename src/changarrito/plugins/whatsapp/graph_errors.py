"""Graph API errors, classified in one place: by ``error.code`` first, by HTTP status only when
the body has no code it knows (Graph reports most failures as HTTP 400 whatever they mean, rate
limits included). Shared by the ``meta`` provider's ``verify`` and the sending client
(``changarrito.adapters.whatsapp.graph``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx

from changarrito.domain.errors import (
    FinalProviderError,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderError,
    RecipientRateLimited,
    RetryableProviderError,
)
from changarrito.plugins.upstream import classify_status, error_payload, retry_after, scrub

__all__ = [
    "AUTH_CODES",
    "BAD_REQUEST_CODES",
    "PROVIDER",
    "RECIPIENT_PAUSE",
    "REFUSALS",
    "REFUSED_CODES",
    "RETRYABLE_CODES",
    "classify_graph_error",
]

#: How Graph errors name their source (``ProviderError.provider``, messages, metrics).
PROVIDER = "whatsapp"

#: Meta's pair rate limit lets one recipient receive about one message every 6 seconds.
RECIPIENT_PAUSE = 6.0

# Graph ``error.code`` → what it means for the caller (Meta's Cloud API error codes).
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
