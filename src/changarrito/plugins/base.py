"""Contracts for provider plugins: what an LLM or payment provider implements.

Plugin authors subclass ``LLMProvider`` or ``PaymentProvider`` and register the *class* from a
``register_llm_providers`` / ``register_payment_providers`` hook (see ``docs/plugins.md`` and
``changarrito.plugins.hookspecs``); the host instantiates it with a ``ProviderContext``.
Methods are async; credentials arrive already validated against ``credentials_schema``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

import httpx
import msgspec
import structlog

from changarrito.adapters.http import (
    classify_status,
    error_payload,
    scrub,
    translate_transport_errors,
)
from changarrito.domain.errors import ValidationFailed
from changarrito.domain.llm import ChatMessage, LLMConfig, Reply, Usage

log = structlog.get_logger(__name__)

__all__ = [
    "ChatMessage",
    "Credentials",
    "LLMConfig",
    "LLMProvider",
    "PaymentEvent",
    "PaymentLink",
    "PaymentProvider",
    "Provider",
    "ProviderContext",
    "Reply",
    "Usage",
    "scrub",
    "secret_values",
]


class ProviderContext(msgspec.Struct, frozen=True):
    """What the host gives a provider when it is created.

    ``http`` is a shared factory of pooled ``httpx.AsyncClient``s, one per upstream host;
    ``env`` is the process environment (for base-URL overrides and platform keys).
    """

    http: Any
    env: Mapping[str, str] = msgspec.field(default_factory=dict)


class Credentials(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    """Base for credential schemas: its ``repr`` names the fields, never their values.

    Put the endpoint a key is meant for (``baseUrl``, ``endpoint``) in the *same* schema as the
    key, never in the config: a key and its endpoint then always come from one source, so a
    tenant's endpoint can never be paired with the platform's key.
    """

    def __repr__(self) -> str:
        names = ", ".join(f"{f}=***" for f in self.__struct_encode_fields__)
        return f"{type(self).__name__}({names})"

    __str__ = __repr__


def secret_values(credentials: Any) -> list[str]:
    """Every string value of a credentials object or mapping, for ``scrub``."""
    if isinstance(credentials, Mapping):
        values = list(credentials.values())
    elif isinstance(credentials, msgspec.Struct):
        values = [getattr(credentials, f) for f in credentials.__struct_fields__]
    else:
        values = []
    return [v for v in values if isinstance(v, str) and v]


class Provider(ABC):
    """Shared behaviour of every provider."""

    #: Stable id used in the API and the database (``openai``, ``stripe``...).
    id: ClassVar[str]
    #: Human name.
    name: ClassVar[str]
    #: msgspec Struct describing the secret fields a tenant supplies.
    credentials_schema: ClassVar[type[msgspec.Struct]]
    #: msgspec Struct describing the non-secret configuration.
    config_schema: ClassVar[type[msgspec.Struct]]
    #: Environment variables holding the platform's credentials, by credential field.
    platform_env: ClassVar[Mapping[str, str]] = {}

    def __init__(self, context: ProviderContext) -> None:
        self.context = context

    @classmethod
    def parse_credentials(cls, data: Mapping[str, Any]) -> Any:
        return _convert(cls.credentials_schema, data, "credentials")

    @classmethod
    def parse_config(cls, data: Mapping[str, Any]) -> Any:
        return _convert(cls.config_schema, data, "config")

    @classmethod
    def platform_credentials(cls, env: Mapping[str, str]) -> dict[str, str] | None:
        """The platform's credentials from ``env``, or ``None`` when a required one is unset."""
        values = {field: env.get(var, "") for field, var in cls.platform_env.items()}
        required = _required_fields(cls.credentials_schema)
        if not cls.platform_env or any(not values.get(f) for f in required):
            return None
        return {k: v for k, v in values.items() if v}

    @abstractmethod
    async def verify(self, credentials: Any, config: Any) -> None:
        """Makes a cheap authenticated call; raises a ``ProviderError`` when it fails."""


def _required_fields(schema: type[msgspec.Struct]) -> list[str]:
    info = msgspec.inspect.type_info(schema)
    assert isinstance(info, msgspec.inspect.StructType)
    return [f.encode_name for f in info.fields if f.required]


def _convert(schema: type[msgspec.Struct], data: Mapping[str, Any], where: str) -> Any:
    try:
        return msgspec.convert(data, schema)
    except msgspec.ValidationError as exc:
        # msgspec says e.g. "Expected `str`, got `int` - at `$.apiKey`": name the object.
        raise ValidationFailed(f"{where}: {exc}".replace("`$", f"`{where}")) from None


# --- LLM ------------------------------------------------------------------------------------


class LLMProvider(Provider):
    """An LLM chat API. Subclasses set ``id``, ``name``, ``credentials_schema``,
    ``default_model`` and implement ``chat`` and ``verify``; most OpenAI-compatible vendors
    only subclass ``changarrito.plugins.llm.openai_compat.OpenAICompatibleProvider``.

    Errors are classified once, here: ``call_json`` raises a ``ProviderError`` subclass
    (retryable or final) for every failure, its message scrubbed of the credentials.
    """

    config_schema: ClassVar[type[msgspec.Struct]] = LLMConfig
    #: Model used when neither the tenant nor ``LLM_MODEL`` names one.
    default_model: ClassVar[str]

    @abstractmethod
    async def chat(self, messages: Sequence[ChatMessage], config: Any, credentials: Any) -> Reply:
        """Sends ``messages`` (the system prompt is in ``config``) and returns the reply."""

    # Helpers for subclasses -----------------------------------------------------------------

    def model_for(self, config: Any) -> str:
        return getattr(config, "model", None) or self.default_model

    @staticmethod
    def with_system_prompt(messages: Sequence[ChatMessage], config: Any) -> list[ChatMessage]:
        """``messages`` preceded by the configured system prompt, if any."""
        prompt = getattr(config, "system_prompt", None)
        head = [ChatMessage(role="system", content=prompt)] if prompt else []
        return head + list(messages)

    def error_details(self, payload: Any) -> tuple[str, str | None, bool]:
        """(message, provider code, is-quota) from an error body; override per wire format.

        The default reads OpenAI-style ``{"error": {"message", "code", "type"}}``.
        """
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict):
            code = error.get("code") or error.get("type")
            return str(error.get("message") or "no details"), _str(code), False
        if isinstance(error, str):
            return error, None, False
        return "no details", None, False

    async def call_json(
        self,
        method: str,
        url: str,
        *,
        credentials: Any,
        headers: Mapping[str, str],
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Sends one request on the shared pool; returns a 2xx response or raises the
        classified ``ProviderError`` (scrubbed of ``credentials``)."""
        client: httpx.AsyncClient = self.context.http.get(url)
        started = time.perf_counter()
        async with translate_transport_errors(self.id):
            response = await client.request(
                method, url, headers=dict(headers), json=json, params=params
            )
        latency = round((time.perf_counter() - started) * 1000, 1)
        if response.is_success:
            log.debug("upstream_ok", provider=self.id, status=response.status_code, ms=latency)
            return response
        message, code, quota = self.error_details(error_payload(response))
        error = classify_status(
            self.id,
            response,
            message=message,
            provider_code=code,
            quota=quota,
            secrets=secret_values(credentials),
        )
        log.warning(
            "upstream_failed",
            provider=self.id,
            status=response.status_code,
            provider_code=error.provider_code,
            retryable=error.retryable,
            error=error.message,
            ms=latency,
        )
        raise error


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


# --- Payments -------------------------------------------------------------------------------


class PaymentLink(msgspec.Struct, frozen=True):
    provider: str
    provider_id: str
    url: str
    status: str = "pending"


class PaymentEvent(msgspec.Struct, frozen=True):
    """A provider's notification, after its signature (or a re-fetch) proved it genuine."""

    provider: str
    event_id: str
    type: str
    #: The provider's id of the link/preference/checkout the event is about.
    provider_link_id: str | None
    #: pending | paid | failed | expired | refunded | unknown
    status: str
    reference: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    occurred_at: datetime | None = None
    raw: Mapping[str, Any] = msgspec.field(default_factory=dict)


class PaymentProvider(Provider):
    #: Credential field holding the webhook signing secret, if the provider signs webhooks.
    webhook_secret_field: ClassVar[str | None] = None

    @abstractmethod
    async def create_payment_link(
        self,
        *,
        amount: Decimal,
        currency: str,
        description: str,
        reference: str,
        credentials: Any,
        config: Any,
    ) -> PaymentLink:
        """Creates a hosted payment link for ``amount`` (major units, e.g. 10.50 MXN)."""

    @abstractmethod
    async def parse_webhook(
        self, headers: Mapping[str, str], raw_body: bytes, credentials: Any, config: Any
    ) -> PaymentEvent:
        """Checks the notification's authenticity (signature, or a re-fetch where the provider
        does not sign) and returns the event; raises ``InvalidSignature`` otherwise."""
