"""In-memory fakes of the domain's ports, for tests that do not test SQL.

Each fake keeps the rules of its PostgreSQL adapter (``adapters/postgres/``), including the
errors it raises and their ``code``: a constraint of a table becomes a check here, and
``tests/integration/test_fakes_match_postgres.py`` runs the same scenarios against both to
keep them in step. They satisfy the protocols of ``changarrito.domain.ports`` structurally
(no inheritance) and keep what they stored in public attributes for tests to read; the
store also counts its calls (``calls``), so a test can tell a cache hit from a read.

- ``MemoryStore``: ``TenantStore`` and ``CredentialStore`` (secrets kept as ``Secrets``);
- ``MemoryAuditLog``: ``AuditLog``;
- ``MemoryPaymentStore``: ``PaymentStore``;
- ``MemoryIntake``: ``IntakeStore`` (the webhook intake's group commit);
- ``MemoryWhatsAppApps``: ``WhatsAppAppIndex``, read from a ``MemoryStore``;
- ``MemorySchema``: ``SchemaState``;
- ``MemoryMessageLog``: the pipeline's ``MessageLog``, over a ``MemoryIntake``'s messages.

One module, over the usual size, so that a test or the fakes-only composition root imports
every fake from one place; each class is short and stands alone.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from changarrito.domain.changes import Change
from changarrito.domain.chat import Attachment, ChatMessage, Reply, Transcript
from changarrito.domain.conversations import Switch
from changarrito.domain.errors import (
    ChangarritoError,
    Conflict,
    NotConfigured,
    StorageError,
    StorageUnavailable,
    TenantNotFound,
    ValidationFailed,
)
from changarrito.domain.kinds import kind_of
from changarrito.domain.media import MEDIA_TYPES, MediaItem
from changarrito.domain.model import (
    AuditEntry,
    Credential,
    IntegrationType,
    Tenant,
    WhatsAppNumber,
)
from changarrito.domain.payments import (
    EventOutcome,
    PaymentEventRecord,
    PaymentLinkRecord,
    applies_to,
    next_status,
)
from changarrito.domain.queued import OutboundPart, QueuedMessage, Turn
from changarrito.domain.whatsapp import (
    InboundMessage,
    Intake,
    RouteKind,
    StatusUpdate,
    WebhookEvent,
    final_status,
)


class _Clock:
    """The time of a write: never the same twice, so that of two writes the later is always
    the newer (as two PostgreSQL transactions' ``now()``; a fast test could otherwise see two
    writes in one microsecond, and their order would fall to their random ids)."""

    def __init__(self) -> None:
        self.last = datetime.min.replace(tzinfo=UTC)

    def __call__(self) -> datetime:
        self.last = max(datetime.now(UTC), self.last + timedelta(microseconds=1))
        return self.last


_now = _Clock()


def _json_copy(value: Mapping[str, Any]) -> dict[str, Any]:
    """``value`` as a JSONB column gives it back: a fresh dict, through JSON."""
    copied: dict[str, Any] = json.loads(json.dumps(dict(value)))
    return copied


# --- tenants and credentials ------------------------------------------------------------------


class MemoryStore:
    """Tenants, their credentials and their WhatsApp numbers, in a dict, a list and a dict.

    ``credentials`` and ``numbers`` (by phone number id) are public: tests may read or seed
    them directly. Seeded rows make their tenants exist. ``any_tenant=True`` lets the
    credential and number calls take any tenant id as existing (for unit tests that never
    create tenants; ``get_tenant`` still knows only the created ones); ``leaky=True`` makes
    ``credentials_for`` hand over every tenant's rows, like a query that forgot its ``WHERE
    tenant_id``: the domain must still only ever serve the asked-for tenant.

    Every write calls ``listeners`` with each ``Change`` it made (a tenant, a number), as the
    Postgres store's notifications reach every process, and appends them to ``changes``.
    """

    def __init__(
        self,
        credentials: Iterable[Credential] | None = None,
        numbers: Iterable[WhatsAppNumber] | None = None,
        *,
        tenants: Iterable[Tenant] | None = None,
        leaky: bool = False,
        any_tenant: bool = False,
    ) -> None:
        self.credentials: list[Credential] = list(credentials or [])
        self.numbers: dict[str, WhatsAppNumber] = {n.phone_number_id: n for n in numbers or []}
        self.tenants: dict[UUID, Tenant] = {t.id: t for t in tenants or []}
        for owner in [c.tenant_id for c in self.credentials] + [
            n.tenant_id for n in self.numbers.values()
        ]:
            self.tenants.setdefault(owner, Tenant(owner, f"tenant {owner}"))
        self.leaky = leaky
        self.any_tenant = any_tenant
        self.calls: Counter[str] = Counter()
        self.listeners: list[Callable[[Change], None]] = []
        self.changes: list[Change] = []
        self._cascades: list[Callable[[UUID], None]] = []

    def has_tenant(self, tenant_id: UUID) -> bool:
        return self.any_tenant or tenant_id in self.tenants

    def on_tenant_deleted(self, callback: Callable[[UUID], None]) -> None:
        """Calls ``callback`` when a tenant is deleted (another fake's ``ON DELETE CASCADE``)."""
        self._cascades.append(callback)

    # -- tenants ---------------------------------------------------------------------------

    async def create_tenant(self, name: str) -> Tenant:
        self.calls["create_tenant"] += 1
        if not name.strip():
            raise ValidationFailed("a tenant needs a non-empty name")
        tenant = Tenant(uuid4(), name.strip(), _now())
        self.tenants[tenant.id] = tenant
        return tenant

    async def get_tenant(self, tenant_id: UUID) -> Tenant:
        self.calls["get_tenant"] += 1
        tenant = self.tenants.get(tenant_id)
        if tenant is None:
            raise TenantNotFound(f"no tenant {tenant_id}")
        return tenant

    async def list_tenants(self) -> list[Tenant]:
        self.calls["list_tenants"] += 1
        return sorted(self.tenants.values(), key=lambda t: (t.created_at, t.id))

    async def delete_tenant(self, tenant_id: UUID) -> None:
        self.calls["delete_tenant"] += 1
        if tenant_id not in self.tenants:
            raise TenantNotFound(f"no tenant {tenant_id}")
        del self.tenants[tenant_id]
        self.credentials = [c for c in self.credentials if c.tenant_id != tenant_id]
        gone = [k for k, n in self.numbers.items() if n.tenant_id == tenant_id]
        for key in gone:
            del self.numbers[key]
        for cascade in self._cascades:
            cascade(tenant_id)
        self._notify([tenant_id], gone)

    # -- credentials -----------------------------------------------------------------------

    async def credentials_for(
        self, tenant_id: UUID, integration_type: IntegrationType | None = None
    ) -> list[Credential]:
        self.calls["credentials_for"] += 1
        self._require_tenant(tenant_id)
        return self._ordered(
            c
            for c in self.credentials
            if (self.leaky or c.tenant_id == tenant_id)
            and (integration_type is None or c.integration_type == integration_type)
        )

    async def save_credential(
        self, credential: Credential, number: WhatsAppNumber | None = None
    ) -> Credential:
        self.calls["save_credential"] += 1
        if number is not None and number.tenant_id != credential.tenant_id:
            raise ValidationFailed("a WhatsApp number can only be claimed by its own tenant")
        itype = kind_of(credential.integration_type).type
        key = (credential.tenant_id, itype, credential.provider)
        existing = next((c for c in self.credentials if _key(c) == key), None)
        if existing is None:
            if not self.has_tenant(credential.tenant_id):
                raise TenantNotFound()  # the foreign key, as errors.translate maps it
            if any(c.id == credential.id for c in self.credentials):
                raise Conflict(
                    "this conflicts with a stored record (tenant_integration_credentials_pkey)"
                )
        now = _now()
        stored = replace(
            credential,
            integration_type=itype,
            config=_json_copy(credential.config),
            id=existing.id if existing else credential.id,
            created_at=existing.created_at if existing else now,
            updated_at=now,
        )
        claimed = self._claimed(number) if number is not None else None  # may refuse: no write
        self.credentials = [c for c in self.credentials if _key(c) != key] + [stored]
        if claimed is not None:
            self.numbers[claimed.phone_number_id] = claimed
        self._notify([credential.tenant_id], [claimed.phone_number_id] if claimed else [])
        return replace(stored, config=_json_copy(stored.config))

    async def delete_credentials(
        self, tenant_id: UUID, integration_type: IntegrationType, provider: str | None = None
    ) -> int:
        self.calls["delete_credentials"] += 1
        itype = kind_of(integration_type).type
        self._require_tenant(tenant_id)

        def doomed(c: Credential) -> bool:
            return (
                c.tenant_id == tenant_id
                and c.integration_type == itype
                and (provider is None or c.provider == provider)
            )

        kept = [c for c in self.credentials if not doomed(c)]
        deleted = len(self.credentials) - len(kept)
        self.credentials = kept
        gone: list[str] = []
        if itype is IntegrationType.WHATSAPP:  # every number of the tenant, whatever provider
            gone = [k for k, n in self.numbers.items() if n.tenant_id == tenant_id]
            for number in gone:
                del self.numbers[number]
        self._notify([tenant_id], gone)
        return deleted

    async def set_verified(
        self,
        tenant_id: UUID,
        integration_type: IntegrationType,
        provider: str,
        verified: bool,
        error: str | None = None,
    ) -> None:
        self.calls["set_verified"] += 1
        itype = kind_of(integration_type).type
        key = (tenant_id, itype, provider)
        found = [i for i, c in enumerate(self.credentials) if _key(c) == key]
        if not found:
            self._require_tenant(tenant_id)
            raise NotConfigured(
                f"tenant {tenant_id} has no stored {itype.value} ({provider}) credential"
            )
        now = _now()
        for i in found:
            self.credentials[i] = replace(
                self.credentials[i],
                is_verified=verified,
                verified_at=now if verified else None,
                verification_error=error,
                updated_at=now,
            )
        self._notify([tenant_id], [])

    # -- WhatsApp numbers ------------------------------------------------------------------

    async def number_owner(self, phone_number_id: str) -> WhatsAppNumber | None:
        self.calls["number_owner"] += 1
        return self.numbers.get(phone_number_id)

    async def number_with_credentials(
        self, phone_number_id: str
    ) -> tuple[WhatsAppNumber | None, list[Credential]]:
        self.calls["number_with_credentials"] += 1
        owner = self.numbers.get(phone_number_id)
        if owner is None:
            return None, []
        return owner, self._ordered(
            c
            for c in self.credentials
            if c.tenant_id == owner.tenant_id and c.integration_type == IntegrationType.WHATSAPP
        )

    async def numbers_for(self, tenant_id: UUID) -> list[WhatsAppNumber]:
        self.calls["numbers_for"] += 1
        self._require_tenant(tenant_id)
        return [n for n in self.numbers.values() if n.tenant_id == tenant_id]

    # -- helpers ---------------------------------------------------------------------------

    def _require_tenant(self, tenant_id: UUID) -> None:
        if not self.has_tenant(tenant_id):
            raise TenantNotFound(f"no tenant {tenant_id}")

    def _claimed(self, number: WhatsAppNumber) -> WhatsAppNumber:
        """The number as claiming it stores it; ``Conflict`` when another tenant owns it."""
        owner = self.numbers.get(number.phone_number_id)
        if owner is None:
            if any(n.id == number.id for n in self.numbers.values()):
                raise Conflict("this conflicts with a stored record (tenant_whatsapp_numbers_pkey)")
            return number
        if owner.tenant_id != number.tenant_id:
            # Deliberately silent about who owns it (as the Postgres store).
            raise Conflict(
                f"WhatsApp phone number id {number.phone_number_id} is already registered "
                "to another account"
            )
        return replace(
            owner,
            phone_number=number.phone_number,
            display_name=number.display_name,
            is_active=number.is_active,
            business_account_id=number.business_account_id,
        )

    @staticmethod
    def _ordered(credentials: Iterable[Credential]) -> list[Credential]:
        """``ORDER BY priority, updated_at DESC, id``, each a copy (config is a fresh dict)."""
        by_id = sorted(credentials, key=lambda c: c.id)
        newest = sorted(by_id, key=lambda c: c.updated_at, reverse=True)
        return [replace(c, config=_json_copy(c.config)) for c in sorted(newest, key=_priority)]

    def _notify(self, tenants: Iterable[UUID], numbers: Iterable[str]) -> None:
        changes = [Change(tenant_id=t) for t in tenants]
        changes += [Change(phone_number_id=n) for n in numbers]
        self.changes.extend(changes)
        for change in changes:
            for listener in self.listeners:
                listener(change)


def _key(credential: Credential) -> tuple[UUID, IntegrationType, str]:
    return (
        credential.tenant_id,
        kind_of(credential.integration_type).type,
        credential.provider,
    )


def _priority(credential: Credential) -> int:
    return credential.priority


# --- the audit log -----------------------------------------------------------------------------

#: Longest user agent kept (as ``adapters.postgres.audit``).
MAX_USER_AGENT = 512


class MemoryAuditLog:
    """The audit log in a list (``entries``, oldest first), as the Postgres log stores it."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    async def record(self, entry: AuditEntry) -> None:
        self.entries.append(
            replace(
                entry,
                user_agent=(entry.user_agent or "")[:MAX_USER_AGENT] or None,
                details=_json_copy(entry.details),
            )
        )

    def of(self, tenant_id: UUID) -> list[AuditEntry]:
        """The tenant's entries, oldest first."""
        return [e for e in self.entries if e.tenant_id == tenant_id]


# --- payments ----------------------------------------------------------------------------------

#: The ``payment_links`` table's CHECK constraints (migration 0003).
LINK_STATUSES_STORED = frozenset({"pending", "paid", "failed", "expired", "refunded"})
_CURRENCY = re.compile(r"[A-Z]{3}")


class MemoryPaymentStore:
    """Payment links (``links`` by id) and notifications (``events`` by (tenant, provider,
    event id)).

    Given the ``MemoryStore`` of the tenants, a link or an event of an unknown tenant is
    ``TenantNotFound`` and deleting a tenant deletes its links and events, as the foreign keys
    of the Postgres tables do; without one, every tenant is taken to exist.
    """

    def __init__(self, tenants: MemoryStore | None = None) -> None:
        self.tenants = tenants
        self.links: dict[UUID, PaymentLinkRecord] = {}
        self.events: dict[tuple[UUID, str, str], PaymentEventRecord] = {}
        if tenants is not None:
            tenants.on_tenant_deleted(self._drop_tenant)

    async def save_link(self, link: PaymentLinkRecord) -> PaymentLinkRecord:
        _check_link(link)  # CHECK constraints come before the conflict (Postgres order)
        same = next(
            (
                s
                for s in self.links.values()
                if (s.provider, s.provider_link_id) == (link.provider, link.provider_link_id)
            ),
            None,
        )
        if same is not None:
            if same.tenant_id != link.tenant_id:
                raise Conflict(
                    f"this {link.provider} link is already registered to another account"
                )
            return same
        if link.id in self.links:
            raise Conflict("this conflicts with a stored record (payment_links_pkey)")
        self._require_tenant(link.tenant_id)
        now = _now()
        stored = replace(link, created_at=now, updated_at=now)
        self.links[stored.id] = stored
        return stored

    async def get_link(self, tenant_id: UUID, link_id: UUID) -> PaymentLinkRecord | None:
        link = self.links.get(link_id)
        return link if link is not None and link.tenant_id == tenant_id else None

    async def has_conversation(self, tenant_id: UUID, conversation_id: UUID) -> bool:
        return False  # conversations live in PostgreSQL only

    async def record_event(self, event: PaymentEventRecord) -> EventOutcome:
        key = (event.tenant_id, event.provider, event.event_id)
        if key in self.events:  # the table's key: (tenant, provider, event id)
            return EventOutcome(event=event, duplicate=True)
        self._require_tenant(event.tenant_id)
        event = replace(event, received_at=_now())
        stored = replace(event, link_id=None, payload=_json_copy(event.payload))
        self.events[key] = stored
        link = self._link_for(event)
        if link is None or not applies_to(event, link):
            return EventOutcome(event=event, duplicate=False)
        status = next_status(link.status, event.status)
        if status != link.status:
            link = self.links[link.id] = replace(link, status=status, updated_at=_now())
        self.events[key] = replace(stored, link_id=link.id)
        return EventOutcome(event=replace(event, link_id=link.id), duplicate=False, link=link)

    def _link_for(self, event: PaymentEventRecord) -> PaymentLinkRecord | None:
        """The tenant's link the event names: by our link id when it carries one, else by the
        provider's link id (``applies_to`` decides whether it moves it)."""

        def about(link: PaymentLinkRecord) -> bool:
            if (link.tenant_id, link.provider) != (event.tenant_id, event.provider):
                return False
            if event.named_link_id is not None:
                return link.id == event.named_link_id
            return event.provider_link_id is not None and (
                link.provider_link_id == event.provider_link_id
            )

        return next((s for s in self.links.values() if about(s)), None)

    def _require_tenant(self, tenant_id: UUID) -> None:
        if self.tenants is not None and not self.tenants.has_tenant(tenant_id):
            raise TenantNotFound()  # the foreign key, as errors.translate maps it

    def _drop_tenant(self, tenant_id: UUID) -> None:
        self.links = {k: v for k, v in self.links.items() if v.tenant_id != tenant_id}
        self.events = {k: v for k, v in self.events.items() if v.tenant_id != tenant_id}


def _check_link(link: PaymentLinkRecord) -> None:
    """The table's CHECK constraints; Postgres reports a violation as a ``StorageError``."""
    amount_ok = link.amount.is_nan() or link.amount > 0  # NaN sorts above every number there
    if not amount_ok:
        raise StorageError("the database failed (23514: payment_links_amount_check)")
    if not _CURRENCY.fullmatch(link.currency):
        raise StorageError("the database failed (23514: payment_links_currency_check)")
    if link.status not in LINK_STATUSES_STORED:
        raise StorageError("the database failed (23514: payment_links_status_check)")


# --- the WhatsApp webhook --------------------------------------------------------------------


class MemoryIntake:
    """The webhook intake: stores each message once per wamid and each status once per
    (wamid, business number, status), and keeps what it stored (``messages``, ``statuses``,
    ``events``).

    ``fail_with`` makes every ``submit`` raise it (a database that cannot be reached is
    ``StorageUnavailable``); after ``aclose`` nothing is taken, as the group commit.
    """

    def __init__(self) -> None:
        self.messages: dict[str, InboundMessage] = {}
        #: Our id of each stored message (by wamid), as the table's identity column gives it.
        self.ids: dict[str, int] = {}
        #: When each was stored (the table's ``received_at``: our clock, not Meta's).
        self.received: dict[str, datetime] = {}
        self.statuses: dict[tuple[str, str, str], StatusUpdate] = {}
        self.events: list[WebhookEvent] = []
        self.submitted: list[Intake] = []
        self.fail_with: ChangarritoError | None = None
        self.closed = False
        #: Called with the wamids that got statuses (the message log applies them).
        self.on_statuses: list[Callable[[set[str]], None]] = []

    async def submit(self, intake: Intake) -> set[str]:
        if self.closed:
            raise StorageUnavailable("the service is shutting down; the webhook was not stored")
        if self.fail_with is not None:
            raise self.fail_with
        _check_intake(intake)
        new: dict[str, InboundMessage] = {}
        for message in intake.messages:
            if message.wamid not in self.messages:
                new.setdefault(message.wamid, message)
        for status in intake.statuses:
            self.statuses.setdefault((status.wamid, status.phone_number_id, status.status), status)
        received = _now()  # one transaction, one now()
        for wamid in sorted(new):  # the insert's order
            self.ids[wamid] = len(self.ids) + 1
            self.messages[wamid] = new[wamid]
            self.received[wamid] = received
        for event in intake.events:  # once per what it says, as the table's dedup_key
            if _event_key(event) not in {_event_key(e) for e in self.events}:
                self.events.append(event)
        self.submitted.append(intake)
        if intake.statuses:
            for apply in self.on_statuses:
                apply({s.wamid for s in intake.statuses})
        return set(new)

    async def aclose(self) -> None:
        self.closed = True

    def queued(self, wamid: str, *, attempts: int = 1) -> QueuedMessage:
        """The stored message as a worker claims it."""
        m = self.messages[wamid]
        return QueuedMessage(
            id=self.ids[wamid],
            wamid=wamid,
            phone_number_id=m.phone_number_id,
            tenant_id=m.tenant_id,
            type=m.type,
            text=m.text,
            sent_at=m.sent_at,
            attempts=attempts,
            customer_id=m.customer.key,
            customer_phone=m.customer.phone,
            customer_user_id=m.customer.user_id,
        )


def _event_key(event: WebhookEvent) -> tuple[Any, ...]:
    """What makes two events one (migration 0011's ``dedup_key``; jsonb ignores key order)."""
    value = json.dumps(json.loads(event.payload), sort_keys=True)
    return (event.kind, event.field, event.waba_id, event.phone_number_id, value)


def _check_intake(intake: Intake) -> None:
    """The intake tables' CHECK constraints: a violation fails the request's transaction,
    which the group commit reports as ``StorageUnavailable``."""
    bad = any(
        (m.route is RouteKind.TENANT) != (m.tenant_id is not None) for m in intake.messages
    ) or any(e.kind not in ("field", "error") for e in intake.events)
    if bad:
        raise StorageUnavailable(
            "the webhook could not be stored (SQLSTATE 23514); it was not acknowledged"
        )


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class MemoryWhatsAppApps:
    """The tenants' own Meta apps, read from ``store``'s credentials on every call.

    Per tenant, its winning active WhatsApp credential (lowest priority, then newest, as
    resolution orders them) gives the ``verifyToken`` and the ``appSecret``; the tenant need
    not own a number. A business account belongs to the tenant (with such a credential) of
    the oldest confirmed claim on it (``store.numbers``, in claim order), never to the
    ``businessAccountId`` a credential merely names.
    """

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def on_change(self, change: Change) -> None:
        """A change notification: nothing to do, nothing is cached."""

    async def verify_token_matches(self, token: str) -> bool:
        if not token:
            return False
        presented = _digest(token)
        found = False
        for credential in self._apps().values():  # compares them all, found or not
            stored = credential.secrets.get("verifyToken")
            if stored:
                found |= hmac.compare_digest(presented, _digest(stored))
        return found

    async def app_secret(self, tenant_id: UUID) -> str | None:
        credential = self._apps().get(tenant_id)
        return (credential.secrets.get("appSecret") or None) if credential else None

    async def tenant_of_account(self, waba_id: str) -> UUID | None:
        apps = self._apps()
        for number in self.store.numbers.values():  # in claim order: the oldest first
            if number.business_account_id == waba_id and number.tenant_id in apps:
                return number.tenant_id
        return None

    def _apps(self) -> dict[UUID, Credential]:
        apps: dict[UUID, Credential] = {}
        candidates = [
            c
            for c in self.store.credentials
            if c.integration_type == IntegrationType.WHATSAPP and c.is_active
        ]
        by_id = sorted(candidates, key=lambda c: c.id, reverse=True)
        newest = sorted(by_id, key=lambda c: c.updated_at, reverse=True)
        for credential in sorted(newest, key=_priority):
            apps.setdefault(credential.tenant_id, credential)
        return apps


# --- housekeeping ----------------------------------------------------------------------------


class MemorySchema:
    """Whether the database is ready: ``pending`` migrations (none by default), or ``error``
    (e.g. ``StorageUnavailable``) raised as an unreachable database's would be."""

    def __init__(
        self, pending: Iterable[str] = (), *, error: ChangarritoError | None = None
    ) -> None:
        self.pending: list[str] = list(pending)
        self.error = error

    async def pending_migrations(self) -> list[str]:
        if self.error is not None:
            raise self.error
        return list(self.pending)


# --- the pipeline's message log ----------------------------------------------------------------

#: Message types that are never part of a conversation's history (the ``history`` query).
_NOT_HISTORY = frozenset({"reaction", "system", "unsupported"})


@dataclass(slots=True)
class OutboundRow:
    """One stored part of a reply, as a ``whatsapp_outbound_messages`` row."""

    id: int
    inbound_id: int
    part: int
    tenant_id: UUID | None
    phone_number_id: str
    recipient: str
    text: str
    is_fallback: bool
    created_at: datetime
    wamid: str | None = None
    status: str = "queued"
    send_attempts: int = 0

    def as_part(self) -> OutboundPart:
        return OutboundPart(self.id, self.part, self.text, self.wamid, self.send_attempts)


class MemoryMessageLog:
    """The replies' parts (``outbound`` by id), and the conversation history over the
    messages ``intake`` stored (without one, the history holds the replies only). Statuses
    the intake stores move the parts with their wamid, in ``STATUS_ORDER``, whichever came
    first, as ``apply_statuses`` does: only the statuses that came for the part's own number
    and tenant. ``leases`` (message id to the worker holding it, which tests set) stands for
    the queue ``sent`` settles an answered message in; ``answered`` holds those it settled."""

    def __init__(self, intake: MemoryIntake | None = None) -> None:
        self.intake = intake
        self.outbound: dict[int, OutboundRow] = {}
        self.leases: dict[int, str] = {}
        self.answered: set[int] = set()
        #: The media items by message id, the transcripts that became their message's text,
        #: and each use of an item: (message id, use, source, seconds).
        self.media: dict[int, MediaItem] = {}
        self.texts: dict[int, str] = {}
        self.uses: list[tuple[int, str, str | None, float | None]] = []
        #: The LLM calls counted in the usage ledger, by act key.
        self.llm_calls: dict[str, tuple[UUID | None, Reply]] = {}
        if intake is not None:
            intake.on_statuses.append(self._apply_statuses)

    async def turn(self, message: QueuedMessage, *, since: datetime, limit: int) -> Turn:
        """A turn without a conversation (the bot answers, nothing waits with it): the
        history of what ``intake`` stored for that customer and the replies recorded here.
        Conversations, bursts and handoffs are PostgreSQL's (tested there)."""
        now = _now()
        received = now
        if self.intake is not None:
            for wamid, number in self.intake.ids.items():
                if number == message.id:
                    received = self.intake.received.get(wamid, now)
        history = await self._history(message, since=since, limit=limit)
        return Turn(None, "bot", now, received, history=tuple(history))

    async def _history(
        self, message: QueuedMessage, *, since: datetime, limit: int
    ) -> list[ChatMessage]:
        if limit <= 0 or not message.customer_id:
            return []
        recipients = {
            r for r in (message.customer_phone, message.customer_user_id, message.customer_id) if r
        }
        said: list[tuple[datetime, int, ChatMessage]] = []
        stored = self.intake.messages.items() if self.intake is not None else ()
        ids = self.intake.ids if self.intake is not None else {}
        for wamid, m in stored:
            if (
                (m.phone_number_id, m.customer.key, m.tenant_id)
                == (message.phone_number_id, message.customer_id, message.tenant_id)
                and ids[wamid] != message.id
                and since <= m.sent_at <= message.sent_at
                and self.texts.get(ids[wamid], m.text) is not None
                and m.type not in _NOT_HISTORY
            ):
                at = self.intake.received[wamid] if self.intake is not None else m.sent_at
                content = self.texts.get(ids[wamid], m.text) or ""
                said.append((at, ids[wamid], ChatMessage(role="user", content=content)))
        replies: dict[int, list[OutboundRow]] = {}
        for row in self.outbound.values():
            if (
                (row.phone_number_id, row.tenant_id) == (message.phone_number_id, message.tenant_id)
                and row.recipient in recipients
                and row.created_at >= since
                and row.wamid is not None
                and row.inbound_id != message.id
            ):
                replies.setdefault(row.inbound_id, []).append(row)
        for inbound_id, rows in replies.items():
            text = "\n\n".join(r.text for r in sorted(rows, key=lambda r: r.part))
            at = min(r.created_at for r in rows)
            said.append((at, inbound_id, ChatMessage(role="assistant", content=text)))
        newest = sorted(said, key=lambda s: (s[0], s[1]), reverse=True)[:limit]
        return [chat for _, _, chat in reversed(newest)]

    async def planned(self, message: QueuedMessage) -> list[OutboundPart]:
        rows = [r for r in self.outbound.values() if r.inbound_id == message.id]
        return [r.as_part() for r in sorted(rows, key=lambda r: r.part)]

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
        """Records every part, the first marked as being sent, unless a reply is already
        recorded for the message (then that one is returned, none marked)."""
        if self.intake is not None and message.id not in self.intake.ids.values():
            raise Conflict("a referenced record does not exist (inbound_id_fkey)")
        if any(r.inbound_id == message.id for r in self.outbound.values()):
            return await self.planned(message)
        now = _now()
        recorded = []
        for number, text in enumerate(parts, start=1):
            row = OutboundRow(
                id=len(self.outbound) + 1,
                inbound_id=message.id,
                part=number,
                tenant_id=message.tenant_id,
                phone_number_id=message.phone_number_id,
                recipient=recipient,
                text=text,
                is_fallback=fallback,
                created_at=now,
                send_attempts=int(number == 1),
            )
            self.outbound[row.id] = row
            recorded.append(replace(row.as_part(), sending=number == 1))
        return recorded

    async def sending(self, part: OutboundPart) -> None:
        row = self.outbound.get(part.id)
        if row is not None and row.wamid is None:
            row.send_attempts += 1

    async def sent(
        self,
        part: OutboundPart,
        wamid: str,
        *,
        next_part: OutboundPart | None = None,
        answered: QueuedMessage | None = None,
    ) -> bool:
        """Records the wamid Meta returned, and applies the statuses already stored for it;
        marks ``next_part`` as being sent, or settles ``answered`` if ``leases`` says its
        worker holds it. All or nothing, as one transaction."""
        row = self.outbound.get(part.id)
        if any(r.wamid == wamid and r.id != part.id for r in self.outbound.values()):
            raise Conflict(
                "this conflicts with a stored record (whatsapp_outbound_messages_wamid_key)"
            )
        if row is not None:
            row.wamid = wamid
            if row.status == "queued":
                row.status = "sent"
            self._apply_statuses({wamid})
        if next_part is not None:
            await self.sending(next_part)
        if answered is None:
            return True
        holder = self.leases.get(answered.id)
        if holder is None or holder != answered.claimed_by:
            return False
        del self.leases[answered.id]
        self.answered.add(answered.id)
        return True

    # --- the customer's media, as ``whatsapp_media`` keeps it --------------------------

    async def media_items(self, inbound_ids: Sequence[int]) -> list[MediaItem]:
        """The items of these stored messages, filed on first sight from their webhook."""
        by_id = {n: w for w, n in self.intake.ids.items()} if self.intake is not None else {}
        found: list[MediaItem] = []
        for inbound_id in inbound_ids:
            wamid = by_id.get(inbound_id)
            stored = self.intake.messages.get(wamid) if self.intake and wamid else None
            if stored is None or stored.type not in MEDIA_TYPES:
                continue
            if inbound_id not in self.media:
                body = json.loads(stored.raw).get(stored.type) or {}
                self.media[inbound_id] = MediaItem(
                    inbound_id=inbound_id,
                    kind=stored.type,
                    media_id=_text(body.get("id"), 128),
                    mime_type=_text(body.get("mime_type"), 255),
                    sha256=_text(body.get("sha256"), 128),
                    filename=_text(body.get("filename"), 255),
                    voice=body.get("voice") is True,
                    state="received",
                    reason_code=None,
                    reason=None,
                    text=None,
                )
            text = self.texts.get(inbound_id, stored.text)
            found.append(replace(self.media[inbound_id], text=text))
        return found

    async def media_outcome(
        self, inbound_id: int, state: str, reason_code: str | None, reason: str | None
    ) -> None:
        item = self.media.get(inbound_id)
        if item is not None and item.state != "transcribed":
            self.media[inbound_id] = replace(
                item, state=state, reason_code=reason_code, reason=(reason or "")[:500] or None
            )

    async def transcribed(
        self, inbound_id: int, tenant_id: UUID | None, text: str, transcript: Transcript
    ) -> str:
        item = self.media.get(inbound_id)
        if item is None:
            return text
        if item.state == "transcribed":
            return self.texts.get(inbound_id, text)
        self.media[inbound_id] = replace(item, state="transcribed", reason_code=None, reason=None)
        self.texts[inbound_id] = text
        self.uses.append((inbound_id, "transcription", transcript.source, transcript.seconds))
        return text

    async def llm_used(self, tenant_id: UUID | None, reply: Reply, act_key: str) -> None:
        self.llm_calls[act_key] = (tenant_id, reply)

    async def media_used(
        self, tenant_id: UUID | None, sent: Sequence[tuple[int, Attachment]], reply: Reply
    ) -> None:
        for inbound_id, attachment in sent:
            use = "image" if attachment.kind == "image" else "document"
            self.uses.append((inbound_id, use, reply.source, None))
            item = self.media.get(inbound_id)
            if item is not None and item.state != "transcribed":
                self.media[inbound_id] = replace(item, state="read", reason_code=None, reason=None)

    def status_of(self, wamid: str) -> str | None:
        """The status of the part Meta knows as ``wamid``."""
        return next((r.status for r in self.outbound.values() if r.wamid == wamid), None)

    def _apply_statuses(self, wamids: set[str]) -> None:
        if self.intake is None:
            return
        for row in self.outbound.values():
            if row.wamid in wamids:
                stored = [
                    s.status
                    for s in self.intake.statuses.values()
                    if (s.wamid, s.phone_number_id, s.tenant_id)
                    == (row.wamid, row.phone_number_id, row.tenant_id)
                ]
                row.status = final_status(row.status, stored)


class MemoryRateLimits:
    """The ``RateLimiter`` in one process (``PostgresRateLimits`` on a dict): the same GCRA,
    on ``clock`` (seconds; ``time.monotonic`` unless a test steps its own)."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        import time

        self.clock = clock or time.monotonic
        self.tat: dict[tuple[UUID, str], float] = {}

    async def acquire(self, tenant_id: UUID, action: str, limit: int, period: float) -> float:
        now, interval = self.clock(), period / limit
        tat = max(self.tat.get((tenant_id, action), now), now) + interval
        if tat > now + period:
            return tat - now - period
        self.tat[(tenant_id, action)] = tat
        return 0.0


def _text(value: Any, limit: int) -> str | None:
    """A webhook field as ``left(raw ->> field, limit)`` reads it."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    return text[:limit]
