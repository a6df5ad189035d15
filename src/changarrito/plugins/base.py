"""Contracts for provider plugins: what an LLM or payment provider implements.

Plugin authors import these from ``changarrito.plugin`` (the one public module), subclass
``LLMProvider`` or ``PaymentProvider`` and register the *class* from a
``register_llm_providers`` / ``register_payment_providers`` hook (see ``docs/plugins.md``); the
host instantiates it with a ``ProviderContext``. Methods are async; credentials arrive already
validated against ``credentials_schema``. What every kind shares (``Provider`` and its
``call_json``) is in ``changarrito.plugins.provider`` and re-exported here.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

import httpx
import msgspec

from changarrito.domain.chat import (
    AttachmentKind,
    Audio,
    ChatMessage,
    LLMConfig,
    Reply,
    Tool,
    Transcript,
)
from changarrito.domain.payment_model import PaymentStatus
from changarrito.plugins.provider import (
    Config,
    Credentials,
    Provider,
    ProviderContext,
    secret_values,
)

__all__ = [
    "Config",
    "Credentials",
    "LLMProvider",
    "PaymentEvent",
    "PaymentLink",
    "PaymentProvider",
    "Provider",
    "ProviderContext",
    "secret_values",
]


# --- LLM ------------------------------------------------------------------------------------


class LLMProvider(Provider):
    """An LLM chat API. Subclasses set ``id``, ``name``, ``credentials_schema`` (required:
    there is no default), ``default_model`` and implement ``chat`` and ``verify``; a vendor
    that speaks OpenAI's Chat Completions format subclasses
    ``changarrito.plugin.OpenAICompatibleProvider`` instead. Mind the argument order:
    ``chat(messages, config, credentials)`` but ``verify(credentials, config)``."""

    config_schema: ClassVar[type[msgspec.Struct]] = LLMConfig
    #: Model used when neither the tenant nor ``LLM_MODEL`` names one.
    default_model: ClassVar[str]
    #: Whether ``chat`` takes ``tools=`` and reports the model's calls in
    #: ``Reply.tool_calls``. The host passes ``tools`` only when this is ``True``, so a
    #: provider whose ``chat`` has no ``tools`` parameter keeps working.
    supports_tools: ClassVar[bool] = False
    #: Whether ``chat`` sends ``ChatMessage.attachments`` (pictures, PDFs) to the model as the
    #: API's own content parts. Only then does ``reads`` name any kind: a provider written
    #: before attachments never gets one.
    supports_attachments: ClassVar[bool] = False
    #: Whether ``transcribe`` is implemented (voice notes to text).
    supports_transcription: ClassVar[bool] = False
    #: The model ``transcribe`` uses when the config names none (``transcriptionModel``).
    default_transcription_model: ClassVar[str | None] = None

    @abstractmethod
    async def chat(
        self,
        messages: Sequence[ChatMessage],
        config: Any,
        credentials: Any,
        *,
        tools: Sequence[Tool] = (),
    ) -> Reply:
        """Sends ``messages`` (the system prompt is in ``config``) and returns the reply. A
        provider with ``supports_tools`` offers ``tools`` (none: a plain chat) and returns the
        model's calls as ``Reply.tool_calls``."""

    async def transcribe(self, audio: Audio, config: Any, credentials: Any) -> Transcript:
        """The text of ``audio`` (a WhatsApp voice note is ``audio/ogg``, Opus, named
        ``*.ogg``), with the model ``transcription_model_for(config)`` and, when the config
        sets one, ``config.transcription_language``. Implement it and set
        ``supports_transcription``; raise the same ``ProviderError``s as ``chat``."""
        raise NotImplementedError(f"{self.id} does not transcribe audio")

    def transcription_model_for(self, config: Any) -> str:
        """``config.transcription_model`` when set, else ``default_transcription_model``."""
        chosen = getattr(config, "transcription_model", None) or self.default_transcription_model
        if not chosen:
            raise NotImplementedError(f"{self.id} names no transcription model")
        return chosen

    def reads(self, config: Any) -> frozenset[AttachmentKind]:
        """What the configured model reads besides text: ``image`` and/or ``pdf``. The
        tenant's ``vision`` and ``documents`` settings decide when set, else
        ``vision_default`` and ``documents_default`` for the model; always nothing when the
        provider does not ``supports_attachments``."""
        if not self.supports_attachments:
            return frozenset()
        model = self.model_for(config)
        vision = getattr(config, "vision", None)
        documents = getattr(config, "documents", None)
        kinds: set[AttachmentKind] = set()
        if vision if vision is not None else self.vision_default(model):
            kinds.add("image")
        if documents if documents is not None else self.documents_default(model):
            kinds.add("pdf")
        return frozenset(kinds)

    def vision_default(self, model: str) -> bool:
        """Whether ``model`` reads pictures when the tenant did not say (``vision``)."""
        return False

    def documents_default(self, model: str) -> bool:
        """Whether ``model`` reads PDFs when the tenant did not say (``documents``)."""
        return False

    def model_for(self, config: Any) -> str:
        """The model to ask for: ``config.model`` when set, else ``default_model``.

        ``config.model`` is the tenant's choice on a tenant's credential; on the platform's
        credential of the ``LLM_PROVIDER`` provider (only that one) the host sets it to
        ``LLM_MODEL``.
        """
        return getattr(config, "model", None) or self.default_model

    @staticmethod
    def with_system_prompt(messages: Sequence[ChatMessage], config: Any) -> list[ChatMessage]:
        """``messages`` preceded by the configured system prompt, if any."""
        prompt = getattr(config, "system_prompt", None)
        head = [ChatMessage(role="system", content=prompt)] if prompt else []
        return head + list(messages)


# --- Payments -------------------------------------------------------------------------------

#: Payment APIs answer in a few seconds; a hung call should fail well before a webhook's
#: sender (Mercado Pago waits 22 s) or a chat user gives up.
PAYMENTS_TIMEOUT = httpx.Timeout(connect=5.0, read=20.0, write=10.0, pool=5.0)


class PaymentLink(msgspec.Struct, frozen=True):
    """A hosted payment page the provider created: send the buyer to ``url``."""

    provider: str
    #: The provider's id of the link (checkout session, preference...), as its events name it.
    provider_id: str
    url: str
    status: PaymentStatus = PaymentStatus.PENDING


class PaymentEvent(msgspec.Struct, frozen=True):
    """A provider's notification, after its signature (or a re-fetch) proved it genuine.

    Every field comes from verified data (the signed body, or the provider's answer to the
    re-fetch), never from an unsigned body. A ``paid`` or ``refunded`` event moves a link only
    when it names it (``link_id`` or ``provider_link_id``) and its ``amount`` and ``currency``
    cover the link's.
    """

    provider: str
    #: Identifies this notification uniquely and stably across the provider's retries (its
    #: signed event id, or one derived from the re-fetched object such as
    #: ``payment:<id>:<status>``): the host stores an event once per tenant, provider and
    #: event id and acknowledges a repeat without applying it again.
    event_id: str
    #: The provider's own event type (``checkout.session.completed``, ``payment.updated``).
    type: str
    #: The provider's id of the link/preference/checkout the event is about.
    provider_link_id: str | None
    status: PaymentStatus
    #: Our link id (``create_payment_link``'s ``link_id``) as the provider's object echoes it
    #: (metadata, external reference): what ties a payment to its link when the event does
    #: not name the provider's link id.
    link_id: str | None = None
    #: The shop's reference given to ``create_payment_link``, when the event carries it
    #: (stored for the record; it matches nothing).
    reference: str | None = None
    #: What the payment is for, in major units and ISO 4217 (required to pay a link).
    amount: Decimal | None = None
    currency: str | None = None
    occurred_at: datetime | None = None
    #: A small summary of what the provider said (ids, statuses): stored after secret-looking
    #: fields are masked, and only as a hash when the stored event would pass 4 KiB.
    raw: Mapping[str, Any] = msgspec.field(default_factory=dict)


class PaymentProvider(Provider):
    """A payment gateway: hosted links, and the notifications about them."""

    timeout: ClassVar[httpx.Timeout | None] = PAYMENTS_TIMEOUT
    config_schema: ClassVar[type[msgspec.Struct]] = Config

    @abstractmethod
    async def create_payment_link(
        self,
        *,
        link_id: str,
        amount: Decimal,
        currency: str,
        description: str,
        reference: str,
        credentials: Any,
        config: Any,
    ) -> PaymentLink:
        """Creates a hosted payment link for ``amount`` (major units, e.g. 10.50 MXN).

        ``link_id`` is the host's id of the link (a UUID): put it in the provider's object
        where the provider copies it onto every payment and event (metadata, external
        reference) and return it as ``PaymentEvent.link_id``; ``reference`` is the shop's own
        order reference, for its records (it need not be unique)."""

    @abstractmethod
    async def parse_webhook(
        self,
        headers: Mapping[str, str],
        raw_body: bytes,
        credentials: Any,
        config: Any,
        *,
        tenant_id: UUID,
    ) -> PaymentEvent:
        """Checks the notification's authenticity (signature, or a re-fetch where the provider
        does not sign) with ``tenant_id``'s credentials and returns the event; raises
        ``InvalidSignature`` otherwise."""
