"""Calling a payment API: explicit timeouts, one error classifier, secrets scrubbed.

Every request goes through ``Upstream``, which uses the shared ``changarrito.adapters.http``
helpers (transport errors, status classification, JSON decoding) and removes the tenant's
credential values from any message built from an upstream body, since error bodies sometimes
echo the key they rejected.
"""

from __future__ import annotations

import hashlib
import time
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
import msgspec
import structlog

from changarrito.adapters.http import (
    classify_status,
    error_payload,
    json_body,
    scrub,
    translate_transport_errors,
)
from changarrito.domain.errors import ProviderBadResponse
from changarrito.plugins.base import Credentials as BaseCredentials
from changarrito.plugins.base import PaymentProvider, secret_values

log = structlog.get_logger(__name__)

#: Payment APIs answer in a few seconds; a hung call should fail well before a webhook's
#: sender (Mercado Pago waits 22 s) or a chat user gives up.
PAYMENTS_TIMEOUT = httpx.Timeout(connect=5.0, read=20.0, write=10.0, pool=5.0)

#: Where the buyer lands after paying when the shop configured nothing: back in WhatsApp,
#: where the conversation that produced the link lives.
DEFAULT_RETURN_URL = "https://wa.me/"

#: Reads a provider's error body into (human message, provider code).
ErrorReader = Callable[[Any], tuple[str | None, str | None]]


class Credentials(BaseCredentials, frozen=True):
    """Base of the payment credential schemas: every field is secret. The base hides values
    from ``repr``; rich's pretty-printer (tracebacks with locals) is covered here too."""

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return [(name, "***") for name in self.__struct_fields__]

    def secrets(self) -> list[str]:
        """The values to scrub from anything built from an upstream answer."""
        return secret_values(self)


def path_segment(value: str) -> str:
    """``value`` quoted as one URL path segment (ids from webhook bodies are untrusted)."""
    return quote(value, safe="")


def idempotency_key(provider: str, reference: str, *payload: object) -> str:
    """A stable key for one link request: a retry of the same request reuses the upstream
    result instead of creating a second link; a different amount gets its own key."""
    material = "\x1f".join([provider, reference, *(str(p) for p in payload)])
    return f"changarrito-{hashlib.sha256(material.encode()).hexdigest()[:40]}"


def base_url(env: Mapping[str, str], variable: str, default: str) -> str:
    return (env.get(variable) or default).rstrip("/")


class Upstream:
    """One provider API as seen with one set of credentials."""

    def __init__(
        self,
        *,
        provider: str,
        client: httpx.AsyncClient,
        base_url: str,
        secrets: Iterable[str],
        read_error: ErrorReader,
    ) -> None:
        self.provider = provider
        self.client = client
        self.base_url = base_url
        self.secrets = [s for s in secrets if s]
        self.read_error = read_error

    async def send(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        content: bytes | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """Sends the request; transport failures become provider errors."""
        started = time.perf_counter()
        async with translate_transport_errors(self.provider):
            response = await self.client.request(
                method,
                self.base_url + path,
                headers=headers,
                content=content,
                json=json,
                timeout=PAYMENTS_TIMEOUT,
            )
        log.debug(
            "payments.upstream_call",
            provider=self.provider,
            method=method,
            path=path,
            status=response.status_code,
            elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return response

    def raise_for_status(self, response: httpx.Response) -> None:
        """Raises the classified ``ProviderError`` unless the response is a success."""
        if response.is_success:
            return
        body = error_payload(response)
        message, code = self.read_error(body) if body is not None else (None, None)
        error = classify_status(
            self.provider,
            response,
            # Scrubbed before it is cut short, so no secret survives as a truncated prefix.
            message=scrub(message or response.reason_phrase or "no detail", self.secrets)[:300],
            provider_code=scrub(code, self.secrets) if code else None,
            secrets=self.secrets,
        )
        log.info(
            "payments.upstream_refused",
            provider=self.provider,
            status=response.status_code,
            error=error.code,
            provider_code=error.provider_code,
        )
        raise error

    async def json(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        content: bytes | None = None,
        json: Any = None,
        if_missing: Exception | None = None,
    ) -> dict[str, Any]:
        """Sends the request and returns its JSON object, or raises a ``ProviderError``
        (or ``if_missing`` on a 404, for lookups of ids that came from outside)."""
        response = await self.send(method, path, headers=headers, content=content, json=json)
        if response.status_code == 404 and if_missing is not None:
            raise if_missing
        self.raise_for_status(response)
        body = json_body(response, self.provider)
        if not isinstance(body, dict):
            raise ProviderBadResponse(
                f"{self.provider} answered with JSON that is not an object",
                provider=self.provider,
                status=response.status_code,
            )
        return body


class HttpPaymentProvider(PaymentProvider):
    """A payment provider reached over HTTP: builds its ``Upstream`` in one place, on the
    shared client pool, at ``<PROVIDER>_BASE_URL`` or the documented default."""

    #: Environment variable that points the provider elsewhere (fakes, proxies).
    base_url_env: ClassVar[str]
    default_base_url: ClassVar[str]

    def _api(self, credentials: Credentials) -> Upstream:
        url = base_url(self.context.env, self.base_url_env, self.default_base_url)
        return Upstream(
            provider=self.id,
            client=self.context.http.get(url),
            base_url=url,
            secrets=credentials.secrets(),
            read_error=self.read_error,
        )

    @staticmethod
    @abstractmethod
    def read_error(body: Any) -> tuple[str | None, str | None]:
        """(message, code) out of the provider's error body."""


def text(value: Any) -> str | None:
    """``value`` when it is a non-empty string (or a number, as text); else ``None``."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | str):
        return str(value) or None
    return None


def as_struct(schema: type[msgspec.Struct], value: Any, parse: Callable[[Any], Any]) -> Any:
    """``value`` as a ``schema`` instance: the host passes parsed structs, but a raw mapping
    (or ``None`` for an empty config) is parsed here rather than failing on attribute access."""
    if isinstance(value, schema):
        return value
    if value is None:
        value = {}
    if isinstance(value, Mapping):
        return parse(value)
    raise TypeError(f"expected {schema.__name__} or a mapping, got {type(value).__name__}")
