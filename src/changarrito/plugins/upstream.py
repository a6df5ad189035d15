"""Reading an upstream's answer: failures classified into the ``ProviderError`` tree, bodies
decoded, secrets scrubbed from anything built from them.

These are the pieces every provider shares (``Provider.call_json`` uses them, and so do the
service's own HTTP clients in ``changarrito.adapters.http``). They hold no I/O of their own
except ``translate_transport_errors``, which wraps a call made elsewhere.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec

from changarrito.domain.errors import (
    FinalProviderError,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderBadResponse,
    ProviderError,
    ProviderQuotaExceeded,
    ProviderTimeout,
    RetryableProviderError,
)

__all__ = [
    "REDACTED",
    "RefusedEndpoint",
    "classify_status",
    "decode_json",
    "error_payload",
    "json_body",
    "retry_after",
    "scrub",
    "translate_transport_errors",
]

REDACTED = "[redacted]"


class RefusedEndpoint(httpx.TransportError):
    """A tenant's endpoint is, or resolves to, a non-public address: the HTTP adapter's
    guarded transport refused to connect (``changarrito.adapters.url_guard``)."""


@asynccontextmanager
async def translate_transport_errors(provider: str, *, echo: bool = True) -> AsyncIterator[None]:
    """Maps httpx transport failures to provider errors; nothing from httpx escapes.

    ``echo=False`` (an endpoint a tenant chose) names no failure class: which one it was
    (refused, reset, not HTTP...) would map the tenant's network for it.
    """
    try:
        yield
    except RefusedEndpoint:
        raise FinalProviderError(
            f"{provider}: the endpoint resolves to a non-public address", provider=provider
        ) from None
    except httpx.TimeoutException:
        raise ProviderTimeout(f"{provider} did not answer in time", provider=provider) from None
    except httpx.TransportError as exc:
        detail = f" ({type(exc).__name__})" if echo else ""
        raise RetryableProviderError(
            f"{provider} could not be reached{detail}", provider=provider
        ) from None


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def json_body(response: httpx.Response, provider: str) -> Any:
    """The response's JSON, or ``ProviderBadResponse`` when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        raise ProviderBadResponse(
            f"{provider} answered HTTP {response.status_code} with a body that is not JSON",
            provider=provider,
            status=response.status_code,
        ) from None


def decode_json(response: httpx.Response, schema: type[Any], provider: str) -> Any:
    """The response body as ``schema`` (a msgspec type such as a ``Struct`` or
    ``dict[str, Any]``), or ``ProviderBadResponse`` (retryable) when it is not."""
    try:
        return msgspec.json.decode(response.content, type=schema)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ProviderBadResponse(
            f"{provider} answered HTTP {response.status_code} with an unexpected body ({exc})",
            provider=provider,
            status=response.status_code,
        ) from None


def error_payload(response: httpx.Response) -> Any:
    """An error response's JSON body, or ``None`` when it has none (an HTML 502 page...)."""
    try:
        return response.json()
    except ValueError:
        return None


#: Tokens that look like credentials whatever they belong to: ``sk-…``, masked echoes such as
#: ``sk-proj-****a1b2``, bearer tokens.
_KEY_LIKE = re.compile(
    r"\b(?:sk|rk|pk|ak)[-_][\w\-.*]{6,}|\S*\*{3,}\S*|(?<=Bearer )\S+", re.IGNORECASE
)
_TOKEN = re.compile(r"[^\s'\"`,;()<>]+")


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every credential value, and any partial echo of one, replaced.

    Upstreams quote keys back (OpenAI: "Incorrect API key provided: sk-abc1*****wxyz"): a token
    sharing a secret's first 8 or last 4 characters goes too, as does anything key-shaped.
    """
    values = sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True)
    for value in values:
        text = text.replace(value, REDACTED)
    marks = [(v[:8], v[-4:]) for v in values if len(v) >= 12]

    def token(match: re.Match[str]) -> str:
        word = match.group(0)
        bare = word.rstrip(".:!?")
        if any(head in bare or bare.endswith(tail) for head, tail in marks):
            return REDACTED
        return word

    if marks:
        text = _TOKEN.sub(token, text)
    return _KEY_LIKE.sub(REDACTED, text)


def classify_status(
    provider: str,
    response: httpx.Response,
    *,
    message: str,
    provider_code: str | None = None,
    quota: bool = False,
    secrets: Iterable[str] = (),
    echo: bool = True,
) -> ProviderError:
    """The error for a failed upstream response, by HTTP status.

    ``quota`` marks a response the provider's own codes identify as out of quota, credit or spend
    limit (final even on 429). Provider-specific code tables call this after reading their body.
    ``message`` is the upstream's own text: it is scrubbed of ``secrets`` (and of anything
    key-shaped) before it goes into the exception. ``echo=False`` (an endpoint a tenant chose)
    keeps the upstream's text and code out: the message only says what status it answered.
    """
    message = scrub(message, secrets)
    status = response.status_code
    if not echo:
        message, provider_code = f"the endpoint answered HTTP {status}", None
    kwargs: dict[str, Any] = {
        "provider": provider,
        "status": status,
        "provider_code": provider_code,
        "retry_after": retry_after(response.headers),
    }
    text = f"{provider} refused the call (HTTP {status}): {message}"
    unavailable = f"{provider} is unavailable (HTTP {status}): {message}"
    if not echo:
        text = unavailable = f"{provider}: {message}"
    if quota or status == 402:
        return ProviderQuotaExceeded(text, **kwargs)
    if status in (401, 403):
        return ProviderAuthError(text, **kwargs)
    if status in (408, 409, 429) or status >= 500:
        return RetryableProviderError(unavailable, **kwargs)
    if 400 <= status < 500:
        return ProviderBadRequest(text, **kwargs)
    return FinalProviderError(text, **kwargs)
