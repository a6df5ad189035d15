"""The ports: what the domain needs from the outside world, as structural protocols.

Adapters implement these without inheriting from them; tests pass fakes the same way. They
are kept in one module on purpose (``docs/architecture.md``), so one file lists everything
the domain asks of the world, grouped under section comments by who asks; that makes it
longer than the house's 250-line aim. The records they speak of live in small pure modules
they import (``model``, ``chat``, ``queued``, ``payment_model``, ``whatsapp``), none of which
imports this one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from changarrito.domain.chat import (
    Attachment,
    AttachmentKind,
    Audio,
    ChatMessage,
    Reply,
    Tool,
    Transcript,
)
from changarrito.domain.conversations import ConversationSettings, Switch
from changarrito.domain.media import Capabilities, MediaFile, MediaItem, OutgoingMedia
from changarrito.domain.model import (
    AuditEntry,
    Credential,
    IntegrationType,
    PlatformDefaults,
    Resolved,
    Route,
    Secrets,
    Tenant,
    WhatsAppNumber,
)
from changarrito.domain.queued import OutboundPart, QueuedMessage, Turn
from changarrito.domain.templates import (
    GraphTemplate,
    Parameter,
    Template,
    TemplateFilters,
    TemplateKey,
    TemplateListing,
    TemplateUpdate,
)

if TYPE_CHECKING:
    from changarrito.domain.events import Event, Posted
    from changarrito.domain.payment_model import (
        DueNotice,
        EventOutcome,
        PaymentEventRecord,
        PaymentLinkRecord,
        PaymentNotice,
        PaymentStatus,
    )
    from changarrito.domain.whatsapp import Intake


class Cipher(Protocol):
    """Encrypts credential secrets; the ``context`` binds a ciphertext to its owner row.

    The envelope is a JSON-able mapping stored as-is in ``credentials`` (JSONB). It names the
    algorithm and key id, so rows written under an old key stay readable during a rotation.
    """

    name: str

    async def encrypt(self, plaintext: bytes, context: bytes) -> dict[str, Any]: ...

    async def decrypt(self, envelope: Mapping[str, Any], context: bytes) -> bytes: ...

    def is_current(self, envelope: Mapping[str, Any]) -> bool:
        """True when the envelope is under this cipher's primary key (nothing to rotate)."""
        ...


class TenantStore(Protocol):
    async def create_tenant(self, name: str) -> Tenant: ...

    async def get_tenant(self, tenant_id: UUID) -> Tenant:
        """The tenant, or ``TenantNotFound``."""
        ...

    async def list_tenants(self) -> list[Tenant]: ...

    async def delete_tenant(self, tenant_id: UUID) -> None:
        """Deletes the tenant with its credentials and numbers, or ``TenantNotFound``."""
        ...


class CredentialStore(Protocol):
    async def credentials_for(
        self, tenant_id: UUID, integration_type: IntegrationType | None = None
    ) -> list[Credential]:
        """The tenant's stored credentials (active or not), decrypted."""
        ...

    async def save_credential(
        self, credential: Credential, number: WhatsAppNumber | None = None
    ) -> Credential:
        """Inserts or replaces the (tenant, type, provider) credential, and claims ``number``
        for the tenant in the same transaction (``Conflict`` if another tenant owns it). A
        stored number is a claim Graph confirmed: only ``Integrations`` decides to pass one."""
        ...

    async def delete_credentials(
        self, tenant_id: UUID, integration_type: IntegrationType, provider: str | None = None
    ) -> int:
        """Deletes credentials (and, for WhatsApp, the tenant's numbers); returns how many."""
        ...

    async def set_verified(
        self,
        tenant_id: UUID,
        integration_type: IntegrationType,
        provider: str,
        verified: bool,
        error: str | None = None,
    ) -> None: ...

    async def number_owner(self, phone_number_id: str) -> WhatsAppNumber | None: ...

    async def number_with_credentials(
        self, phone_number_id: str
    ) -> tuple[WhatsAppNumber | None, list[Credential]]:
        """The number's owner (``None``: nobody) and that tenant's WhatsApp credentials, in
        one round trip."""
        ...

    async def numbers_for(self, tenant_id: UUID) -> list[WhatsAppNumber]: ...


class Store(TenantStore, CredentialStore, Protocol):
    """Tenants, their credentials and numbers, in one store (``PostgresStore``)."""


class ResolutionCache(Protocol):
    """A short-lived cache of resolutions, scoped by tenant, invalidated on change."""

    def get_resolved(
        self, tenant_id: UUID, integration_type: IntegrationType, provider: str | None
    ) -> Resolved | None: ...

    def put_resolved(
        self,
        tenant_id: UUID,
        integration_type: IntegrationType,
        provider: str | None,
        value: Resolved,
    ) -> None: ...

    def get_route(self, phone_number_id: str) -> Route | None: ...

    def put_route(self, route: Route) -> None: ...

    def get_sender(self, phone_number_id: str) -> Resolved | None:
        """The cached WhatsApp sender of a receiving number."""
        ...

    def put_sender(self, phone_number_id: str, value: Resolved) -> None: ...

    def invalidate_tenant(self, tenant_id: UUID) -> None: ...

    def invalidate_number(self, phone_number_id: str) -> None: ...

    def clear(self) -> None: ...


class AuditLog(Protocol):
    """An append-only record of changes to tenants' integrations."""

    async def record(self, entry: AuditEntry) -> None: ...


class MetricsRecorder(Protocol):
    """What the use cases report for monitoring (``adapters.metrics.Metrics`` implements it).
    Recording never fails the caller."""

    def llm_call(
        self,
        provider: str,
        source: str,
        tenant_id: UUID | None,
        seconds: float,
        error: BaseException | None = None,
        *,
        tokens: tuple[int, int] = (0, 0),
    ) -> None:
        """One LLM chat call: who served it, from whose credential, how long, how it ended,
        and the tokens in and out the provider reported."""
        ...

    def media_download(
        self, kind: str, tenant_id: UUID | None, size: int, error: BaseException | None
    ) -> None:
        """One download of a customer's media item (its bytes, or why it failed)."""
        ...

    def transcription(
        self,
        provider: str,
        source: str,
        tenant_id: UUID | None,
        seconds: float | None,
        error: BaseException | None = None,
    ) -> None:
        """One transcription: by whom, from whose credential, how many seconds of audio."""
        ...

    def media_to_model(self, kind: str, provider: str, source: str, tenant_id: UUID | None) -> None:
        """A picture or document sent to a model."""
        ...


class Resolver(Protocol):
    """Which credential serves a tenant or a WhatsApp number, and forgetting cached answers.

    ``services.CredentialResolver`` reads the store (roles ``all`` and ``backend``);
    ``adapters.remote.RemoteResolver`` reads the backend's internal API (role ``whatsapp``).
    """

    #: What this process falls back to: the platform's credentials from its own environment.
    platform: PlatformDefaults

    async def resolve(
        self, tenant_id: UUID, itype: IntegrationType, provider: str | None = None
    ) -> Resolved: ...

    async def route(self, phone_number_id: str) -> Route: ...

    async def sender(self, phone_number_id: str) -> Resolved:
        """The WhatsApp credential that replies from ``phone_number_id``."""
        ...

    def invalidate_tenant(self, tenant_id: UUID) -> None: ...

    def invalidate_number(self, phone_number_id: str) -> None: ...


class Invalidator(Protocol):
    """What ``Integrations`` forgets after a write (the ``Resolver`` satisfies it)."""

    def invalidate_tenant(self, tenant_id: UUID) -> None: ...

    def invalidate_number(self, phone_number_id: str) -> None: ...


# --- the installed providers -----------------------------------------------------------------


class ProviderCatalog(Protocol):
    """What the use cases need of the installed providers (WhatsApp included).

    ``changarrito.plugins.catalog.RegistryCatalog`` implements it over the plugin registry.
    """

    def installed(self, itype: IntegrationType) -> list[str]: ...

    def default_model(self, provider: str) -> str | None: ...

    def normalize(
        self,
        itype: IntegrationType,
        provider: str,
        secrets: Mapping[str, str],
        config: Mapping[str, Any],
    ) -> tuple[dict[str, str], dict[str, Any]]:
        """Secrets and config checked against the provider's schemas; ``ValidationFailed``
        with field-level ``errors`` otherwise."""
        ...

    async def check_endpoints(self, secrets: Mapping[str, str]) -> None:
        """Endpoints a tenant supplied (``baseUrl``, ``endpoint``) resolved now; a
        ``ValidationFailed`` naming the field when one is, or resolves to, a non-public
        address."""
        ...

    async def verify(
        self, itype: IntegrationType, provider: str, secrets: Secrets, config: Mapping[str, Any]
    ) -> None:
        """A cheap authenticated call; a ``ProviderError`` (scrubbed) when it fails."""
        ...


# --- LLM replies (``llm.Responder``) ---------------------------------------------------------


class ChatBackend(Protocol):
    """What the use case needs of an LLM provider (``LLMProvider`` satisfies it)."""

    def parse_credentials(self, data: Mapping[str, Any]) -> Any: ...

    @property
    def supports_tools(self) -> bool:
        """Whether ``chat`` takes ``tools=`` (``Responder`` passes it only then)."""
        ...

    def parse_config(self, data: Mapping[str, Any]) -> Any: ...

    async def chat(
        self,
        messages: Sequence[ChatMessage],
        config: Any,
        credentials: Any,
        *,
        tools: Sequence[Tool] = (),
    ) -> Reply: ...

    @property
    def supports_transcription(self) -> bool: ...

    async def transcribe(self, audio: Audio, config: Any, credentials: Any) -> Transcript: ...

    def reads(self, config: Any) -> frozenset[AttachmentKind]:
        """What the configured model reads besides text (``image``, ``pdf``)."""
        ...


class ProviderLookup(Protocol):
    def llm(self, provider_id: str) -> ChatBackend:
        """The provider registered under ``provider_id``; ``ValidationFailed`` otherwise."""
        ...


class CredentialSource(Protocol):
    """The part of ``CredentialResolver`` the use case needs."""

    platform: PlatformDefaults

    async def resolve(
        self, tenant_id: UUID, itype: IntegrationType, provider: str | None = None
    ) -> Resolved: ...


# --- payments --------------------------------------------------------------------------------


class GatewayLink(Protocol):
    """What a payment provider answers when it creates a hosted link."""

    @property
    def provider_id(self) -> str: ...

    @property
    def url(self) -> str: ...

    @property
    def status(self) -> PaymentStatus: ...


class GatewayEvent(Protocol):
    """A provider notification the provider has verified. ``event_id`` (from verified data)
    identifies the provider's notification uniquely and stably across its retries: events are
    stored once per tenant, provider and event id. ``link_id`` is our link id as the provider's
    object echoes it; ``amount`` and ``currency`` what the payment is for."""

    @property
    def event_id(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def link_id(self) -> str | None: ...

    @property
    def provider_link_id(self) -> str | None: ...

    @property
    def amount(self) -> Decimal | None: ...

    @property
    def currency(self) -> str | None: ...

    @property
    def status(self) -> PaymentStatus: ...

    @property
    def reference(self) -> str | None: ...

    @property
    def raw(self) -> Mapping[str, Any]: ...


class PaymentGateway(Protocol):
    """A payment provider (``plugins.base.PaymentProvider`` satisfies it)."""

    def parse_credentials(self, data: Mapping[str, Any]) -> Any: ...

    def parse_config(self, data: Mapping[str, Any]) -> Any: ...

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
    ) -> GatewayLink: ...

    async def parse_webhook(
        self,
        headers: Mapping[str, str],
        raw_body: bytes,
        credentials: Any,
        config: Any,
        *,
        tenant_id: UUID,
    ) -> GatewayEvent:
        """The verified event of a notification for ``tenant_id``; ``InvalidSignature`` when
        it is not genuine."""
        ...


class PaymentGateways(Protocol):
    """The installed payment providers (the plugin registry satisfies it)."""

    def payment(self, provider_id: str) -> PaymentGateway: ...

    def ids(self, kind: IntegrationType) -> list[str]: ...


class PaymentStore(Protocol):
    async def save_link(self, link: PaymentLinkRecord) -> PaymentLinkRecord:
        """Stores a new link; the same provider link again (an idempotent retry) returns the
        stored one. ``Conflict`` if that provider link belongs to another tenant."""
        ...

    async def get_link(self, tenant_id: UUID, link_id: UUID) -> PaymentLinkRecord | None:
        """The tenant's link ``link_id``; ``None`` when missing or another tenant's."""
        ...

    async def record_event(self, event: PaymentEventRecord) -> EventOutcome:
        """Stores the event unless its (tenant, provider, event id) is already stored, and in
        the same transaction moves the tenant's link it names (by ``named_link_id``, else by
        provider link id) to ``payments.next_status`` when ``payments.applies_to`` holds;
        a link with a conversation that this moves to paid, failed or expired gets its
        notice filed in the same transaction (once per link and status)."""
        ...

    async def has_conversation(self, tenant_id: UUID, conversation_id: UUID) -> bool:
        """Whether the tenant has this conversation (a link may be created for it)."""
        ...


class EventStore(Protocol):
    """The outbox of events for the platform's backend (``events.EventDelivery``)."""

    async def claim_events(self, worker: str, limit: int, lease: float) -> list[Event]:
        """Leases up to ``limit`` due events, the oldest pending one of each ordering key
        (a key's next waits until the one before is delivered or dead)."""
        ...

    async def event_delivered(self, row_id: int, status: int | None) -> None: ...

    async def event_failed(
        self, row_id: int, delay: float | None, error: str, status: int | None
    ) -> None:
        """Due again in ``delay`` seconds, or dead (``None``)."""
        ...

    async def events(self, state: str | None, limit: int, before: int | None = None) -> list[Event]:
        """The newest events (of ``state``), before row ``before``."""
        ...

    async def retry_events(self, row_ids: Sequence[int] | None) -> int:
        """Gives these dead events (every dead one for ``None``) a fresh set of attempts;
        how many."""
        ...


class EventPoster(Protocol):
    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Posted:
        """POSTs an event (within the poster's own time limit); what the receiver answered
        (never raises for its failure)."""
        ...


class NoticeStore(Protocol):
    """The payment notices waiting to be sent (``payment_notices.PaymentNotices``)."""

    async def claim_notices(self, worker: str, limit: int, lease: float) -> list[DueNotice]:
        """Leases up to ``limit`` due notices to ``worker`` for ``lease`` seconds (one a
        dead worker held is due again once its lease ran out); each with its link."""
        ...

    async def settle_notice(
        self, notice_id: int, outcome: PaymentNotice, outbound_id: int | None
    ) -> None:
        """Records what became of it (sent, skipped, failed) and releases it."""
        ...

    async def retry_notice(self, notice_id: int, delay: float, reason: str) -> None:
        """Releases it to be tried again in ``delay`` seconds."""
        ...


# --- the message pipeline (``pipeline.Pipeline``) --------------------------------------------


class Senders(Protocol):
    async def sender(self, phone_number_id: str) -> Resolved: ...


class Verifications(Protocol):
    async def set_verified(
        self,
        tenant_id: UUID,
        integration_type: IntegrationType,
        provider: str,
        verified: bool,
        error: str | None = None,
    ) -> None: ...


class WhatsAppSender(Protocol):
    async def send_text(
        self, phone_number_id: str, token: str, to: str, body: str, reply_to_wamid: str | None
    ) -> list[str]: ...

    async def mark_read(
        self, phone_number_id: str, token: str, wamid: str, *, typing: bool = False
    ) -> None: ...

    async def download_media(
        self, media_id: str, token: str, *, kind: str, phone_number_id: str | None = None
    ) -> MediaFile:
        """The customer's ``kind`` item, checked against ``media.py``'s limits and hash
        (``MediaRefused`` otherwise)."""
        ...

    async def upload_media(
        self, phone_number_id: str, token: str, content: bytes, mime_type: str, filename: str
    ) -> str:
        """Uploads a file for ``phone_number_id`` to send; returns Graph's media id."""
        ...

    async def send_media(
        self,
        phone_number_id: str,
        token: str,
        to: str,
        media: OutgoingMedia,
        reply_to_wamid: str | None = None,
    ) -> str:
        """Sends a picture or document; returns its wamid."""
        ...

    async def send_template(
        self,
        phone_number_id: str,
        token: str,
        to: str,
        name: str,
        language: str,
        components: Sequence[Mapping[str, Any]],
        *,
        callback_data: str | None = None,
    ) -> str:
        """Sends an approved template (``components``: Graph's, filled in); returns its
        wamid."""
        ...


class MediaLog(Protocol):
    """The record of the customer's media items (``reading.MediaReader``)."""

    async def media_items(self, inbound_ids: Sequence[int]) -> list[MediaItem]:
        """The items of these messages (only those of a media type), filed on first sight
        from what Meta's webhook said, with their state and their message's current text."""
        ...

    async def media_outcome(
        self, inbound_id: int, state: str, reason_code: str | None, reason: str | None
    ) -> None:
        """Records what became of an item (``unread``, ``failed``) and why; a transcribed
        item keeps its state."""
        ...

    async def transcribed(
        self, inbound_id: int, tenant_id: UUID | None, text: str, transcript: Transcript
    ) -> str:
        """Stores ``text`` as the message's text, once, with the transcription's use (who,
        how many seconds); returns the text stored (the first one, when it was already)."""
        ...

    async def media_used(
        self, tenant_id: UUID | None, sent: Sequence[tuple[int, Attachment]], reply: Reply
    ) -> None:
        """Records that the call which made ``reply`` sent these items to the model."""
        ...


class MessageLog(MediaLog, Protocol):
    async def llm_used(self, tenant_id: UUID | None, reply: Reply, act_key: str) -> None:
        """Counts an LLM call in the usage ledger (its tokens, provider, model and whose key
        paid), once per ``act_key``."""
        ...

    async def turn(self, message: QueuedMessage, *, since: datetime, limit: int) -> Turn:
        """The message's conversation, its other waiting messages, and up to ``limit``
        earlier messages since ``since`` (oldest first, without the turn's own)."""
        ...

    async def planned(self, message: QueuedMessage) -> list[OutboundPart]: ...

    async def plan(
        self,
        message: QueuedMessage,
        recipient: str,
        parts: Sequence[str],
        *,
        fallback: bool,
        turn: Turn | None = None,
        notice: bool = False,
        switches: Sequence[Switch] = (),
    ) -> list[OutboundPart] | None:
        """Records the reply's parts once, the first marked as being sent (``sending``, one
        attempt counted); returns the recorded ones (a concurrent plan wins, none marked).
        With the ``turn``, in the same transaction: first the ``switches`` before the reply
        (an idle conversation back to the bot), then the reply only if the conversation is
        the bot's and the message was not deleted (else ``None``: nothing recorded), then the
        turn's waiting messages joined to it, the "only text" ``notice`` marked as given, and
        the switches after it (a handoff)."""
        ...

    async def sending(self, part: OutboundPart) -> None:
        """Counts a send attempt of ``part`` (unless it has a wamid)."""
        ...

    async def sent(
        self,
        part: OutboundPart,
        wamid: str,
        *,
        next_part: OutboundPart | None = None,
        answered: QueuedMessage | None = None,
    ) -> bool:
        """Records the wamid Meta returned for ``part`` and, in the same transaction, marks
        ``next_part`` as being sent, or records ``answered`` (its last part) answered in the
        queue if its worker (``claimed_by``) still holds its lease. Returns whether
        ``answered`` was settled (true without one)."""
        ...


class Replier(Protocol):
    async def reply(
        self,
        tenant_id: UUID | None,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[Tool] = (),
    ) -> Reply: ...

    async def fallback_text(self, tenant_id: UUID | None) -> str: ...

    async def capabilities(self, tenant_id: UUID | None) -> Capabilities:
        """What the tenant's assistant takes in besides text (its model's ``reads``, and
        whether a voice note can be transcribed for it)."""
        ...

    async def transcribe(self, tenant_id: UUID | None, audio: Audio) -> Transcript:
        """The text of ``audio``, by the credential the transcription policy picks
        (``resolution.resolve_transcriber``); its ``source`` says whose."""
        ...

    async def conversation_settings(self, tenant_id: UUID | None) -> ConversationSettings:
        """The quiet period, idle time and texts of the tenant's conversations."""
        ...


# --- the webhook intake and the processes' housekeeping --------------------------------------


class IntakeStore(Protocol):
    """Stores what one Meta webhook delivered, durably (the HTTP 200 waits for it)."""

    async def submit(self, intake: Intake) -> set[str]:
        """Stores every update of ``intake`` once; returns the wamids of the messages that
        were new (a redelivered message is not in it)."""
        ...


class WhatsAppAppIndex(Protocol):
    """The tenants' own Meta apps, for the webhook: verify tokens, app secrets and which
    tenant a WhatsApp Business Account belongs to."""

    async def verify_token_matches(self, token: str) -> bool:
        """True when ``token`` is an active tenant's ``verifyToken`` (constant-time)."""
        ...

    async def app_secret(self, tenant_id: UUID) -> str | None: ...

    async def tenant_of_account(self, waba_id: str) -> UUID | None:
        """The tenant (with an active WhatsApp credential) of the oldest confirmed claim on a
        number of this account (``WhatsAppNumber.business_account_id``); never a tenant whose
        credential merely names the account."""
        ...


class SchemaState(Protocol):
    """Whether the database is ready to serve (``GET /ready``)."""

    async def pending_migrations(self) -> list[str]:
        """Names of shipped migrations not yet applied; ``StorageError`` when unreachable."""
        ...


class RateLimiter(Protocol):
    """Per-tenant allowances of calls that spend someone's provider quota (the tenant API's
    verify and payment-link creation): a burst of ``limit`` calls, then one every
    ``period / limit`` seconds (GCRA). On PostgreSQL every process counts in the same row,
    so the limit is global."""

    async def acquire(self, tenant_id: UUID, action: str, limit: int, period: float) -> float:
        """Takes one call of ``action`` for ``tenant_id``: ``0.0`` when it is allowed, else
        the seconds until one will be (nothing is taken then)."""
        ...


# --- message templates (``template_sync.TemplateCatalog``) ---------------------------------


class TemplateSource(Protocol):
    """Graph's templates of a WhatsApp Business Account (``adapters.whatsapp.graph``)."""

    async def message_templates(self, waba_id: str, token: str) -> TemplateListing:
        """Every template of the account, read with ``token`` (paged; ``complete`` False when
        the listing stopped at the page cap); a ``ProviderError`` when Graph refuses."""
        ...


class TemplateStore(Protocol):
    """The synced templates, scoped by owner (``tenant_id``; ``None``: the platform's)."""

    async def templates(
        self,
        tenant_id: UUID | None,
        filters: TemplateFilters,
        after: TemplateKey | None,
        limit: int,
    ) -> list[Template]:
        """The owner's templates by name, language (and row id), after ``after``."""
        ...

    async def replace_templates(
        self,
        tenant_id: UUID | None,
        waba_id: str,
        listed: Sequence[tuple[GraphTemplate, Sequence[Parameter]]],
        *,
        complete: bool,
    ) -> tuple[int, int]:
        """Stores what Graph listed for the owner's account; when ``complete``, removes the
        owner's templates it did not list (and those of any other account). Returns
        ``(stored, removed)``."""
        ...

    async def apply_update(self, update: TemplateUpdate) -> int:
        """Applies a webhook's news to the templates it names (every owner's copy of that
        account's template); how many rows changed."""
        ...

    async def template_owners(self) -> list[UUID]:
        """Tenants with an active WhatsApp credential of their own (whose templates sync)."""
        ...

    async def synced_within(self, tenant_id: UUID | None, seconds: float) -> bool:
        """Whether a sync listed any of the owner's templates in the last ``seconds``."""
        ...
