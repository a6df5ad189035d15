"""Contracts for provider plugins: what an LLM or payment provider implements.

Plugin authors subclass ``LLMProvider`` or ``PaymentProvider`` and register the *class* from a
``register_llm_providers`` / ``register_payment_providers`` hook (see ``docs/plugins.md`` and
``changarrito.plugins.hookspecs``); the host instantiates it with a ``ProviderContext``.
Methods are async; credentials arrive already validated against ``credentials_schema``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal

import msgspec

from changarrito.domain.errors import ValidationFailed


class ProviderContext(msgspec.Struct, frozen=True):
    """What the host gives a provider when it is created.

    ``http`` is a shared factory of pooled ``httpx.AsyncClient``s, one per upstream host;
    ``env`` is the process environment (for base-URL overrides and platform keys).
    """

    http: Any
    env: Mapping[str, str] = msgspec.field(default_factory=dict)


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


class ChatMessage(msgspec.Struct, frozen=True):
    role: Literal["system", "user", "assistant"]
    content: str


class Usage(msgspec.Struct, frozen=True):
    input_tokens: int = 0
    output_tokens: int = 0


class Reply(msgspec.Struct, frozen=True):
    """One LLM answer. ``source`` (tenant/platform) is filled in by the caller that resolved
    the credential, for billing and support."""

    text: str
    model: str
    usage: Usage
    latency_ms: float
    provider: str
    source: str | None = None


class LLMConfig(msgspec.Struct, frozen=True, rename="camel"):
    """Non-secret LLM settings common to every provider."""

    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    system_prompt: str | None = None
    fallback_text: str | None = None


class LLMProvider(Provider):
    config_schema: ClassVar[type[msgspec.Struct]] = LLMConfig
    #: Model used when neither the tenant nor ``LLM_MODEL`` names one.
    default_model: ClassVar[str]

    @abstractmethod
    async def chat(self, messages: Sequence[ChatMessage], config: Any, credentials: Any) -> Reply:
        """Sends ``messages`` (the system prompt is in ``config``) and returns the reply."""


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
