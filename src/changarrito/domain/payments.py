"""Payment links for tenants: create one, show it, and follow the provider's notifications.

Order of creating a link:

1. validate the request (positive amount with no more decimals than the currency has, an ISO
   4217 code, a description and a reference), naming each bad field;
2. pick the provider: the one asked for (it must be installed), else the resolved default;
3. resolve the tenant's payment credentials for it, else the platform's (``Resolver``);
4. choose the link's id, ask the provider for a hosted link carrying that id (``link_id``:
   metadata, external reference...), and store it with ``source`` tenant or platform.

A notification (``receive_notification``) is checked by the provider with the same resolved
credentials (its webhook secret, or a re-fetch with its key); only then is it stored, once per
tenant, provider and event id, as a few verified facts (``stored_payload``: at most
``MAX_STORED_PAYLOAD`` bytes, secret-looking fields removed), and it moves a link only when
``applies_to`` says the provider put that payment on that link: the event names the link (our
id echoed, or the provider's link id), was verified with the credential source that created
it, and, for a payment or refund, is for at least the link's amount in its currency. Status
moves forward only (``next_status``: a late "pending" does not undo "paid"; a declined attempt
moves nothing). There is no matching by the shop's ``reference``: it is not unique, and a
payment for one link must never settle another.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4, uuid5

from changarrito.domain.errors import NotConfigured, NotFound, ValidationFailed
from changarrito.domain.model import IntegrationType
from changarrito.domain.money import minor_unit_decimals
from changarrito.domain.payment_model import (
    EventOutcome,
    PaymentEventRecord,
    PaymentLinkRecord,
    PaymentStatus,
)
from changarrito.domain.ports import PaymentGateway, PaymentGateways, PaymentStore, Resolver

# The records are part of these use cases' signatures: importable from here too.
__all__ = [
    "EventOutcome",
    "PaymentEventRecord",
    "PaymentLinkRecord",
    "PaymentLinkRequest",
    "PaymentStatus",
    "Payments",
    "applies_to",
    "next_status",
    "redact_payload",
    "stored_payload",
    "validated",
]

#: How far along a status is: an event moves a link to a status of equal or higher rank only
#: (``unknown`` has no rank and moves nothing).
_RANK = {
    PaymentStatus.PENDING: 0,
    PaymentStatus.FAILED: 1,
    PaymentStatus.EXPIRED: 1,
    PaymentStatus.PAID: 2,
    PaymentStatus.REFUNDED: 3,
}

#: Longest ``Idempotency-Key`` a client may send (printable ASCII).
MAX_IDEMPOTENCY_KEY = 255
#: The namespace of link ids derived from a tenant's idempotency key (``uuid5``).
_IDEMPOTENT_LINKS = UUID("6f1d3c52-7a0e-4b8e-9c1d-2a4f5e6b7c8d")

MAX_DESCRIPTION = 500
MAX_REFERENCE = 200
#: Largest stored notification payload (its JSON, in bytes): a few verified facts, never the
#: provider's whole body, whoever posted it.
MAX_STORED_PAYLOAD = 4096
#: Longest event id and type stored as given; a longer id is stored as its SHA-256.
MAX_EVENT_ID = 200
MAX_EVENT_TYPE = 100
#: Longest text fact (a reference, a provider id) kept in a stored payload.
MAX_FACT = 200
#: Statuses that say money moved: an event saying one must be for the link's whole amount.
_MONEY = frozenset({PaymentStatus.PAID, PaymentStatus.REFUNDED})

REDACTED = "[redacted]"
#: Keys of a notification payload whose values are never stored.
_SECRET_KEY = re.compile(
    r"secret|token|passw|authorization|api[_-]?key|signature|cvv|security[_-]?code",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class PaymentLinkRequest:
    amount: Decimal
    currency: str
    description: str
    reference: str
    provider: str | None = None
    #: The conversation it is created for: its customer hears when it is paid (or fails).
    conversation_id: UUID | None = None


def validated(request: PaymentLinkRequest) -> PaymentLinkRequest:
    """``request`` normalised (currency upper-cased, text trimmed), or ``ValidationFailed``
    listing every bad field."""
    problems: list[tuple[str, str]] = []
    currency = request.currency.strip().upper()
    if len(currency) != 3 or not currency.isascii() or not currency.isalpha():
        problems.append(("currency", "must be a three-letter ISO 4217 code such as MXN"))
    amount = request.amount
    if not amount.is_finite() or amount <= 0:
        problems.append(("amount", "must be a positive number"))
    elif not problems:
        decimals = minor_unit_decimals(currency)
        if amount != amount.quantize(Decimal(1).scaleb(-decimals)):
            problems.append(("amount", f"{currency} allows at most {decimals} decimals"))
    description, reference = request.description.strip(), request.reference.strip()
    for name, value, limit in (
        ("description", description, MAX_DESCRIPTION),
        ("reference", reference, MAX_REFERENCE),
    ):
        if not value:
            problems.append((name, "must not be empty"))
        elif len(value) > limit:
            problems.append((name, f"must be at most {limit} characters"))
    if problems:
        raise ValidationFailed("The payment link request is not valid.", errors=problems)
    return PaymentLinkRequest(
        amount, currency, description, reference, request.provider, request.conversation_id
    )


def next_status(current: str, incoming: str) -> str:
    """The link's status after an event saying ``incoming``: forward only, ``unknown`` ignored."""
    rank = _RANK.get(PaymentStatus.of(incoming))
    if rank is None:
        return current
    return incoming if rank >= _RANK.get(PaymentStatus.of(current), 0) else current


def applies_to(event: PaymentEventRecord, link: PaymentLinkRecord) -> bool:
    """Whether ``event`` may move ``link``: the provider put this payment on this link.

    - same tenant and provider, and verified with the credential source that created the link
      (a platform-account event never moves a link of the tenant's own account, nor back);
    - the event names the link, by our id echoed in the provider's object or by the provider's
      link id, and contradicts neither;
    - a payment or refund (``paid``, ``refunded``) is in the link's currency for at least its
      amount; one that does not say its amount or currency moves nothing.
    """
    if (event.tenant_id, event.provider, event.source) != (
        link.tenant_id,
        link.provider,
        link.source,
    ):
        return False
    if event.named_link_id is None and event.provider_link_id is None:
        return False
    if event.named_link_id is not None and event.named_link_id != link.id:
        return False
    if event.provider_link_id is not None and event.provider_link_id != link.provider_link_id:
        return False
    if PaymentStatus.of(event.status) in _MONEY:
        return (
            event.currency is not None
            and event.currency.upper() == link.currency
            and event.amount is not None
            and event.amount.is_finite()
            and event.amount >= link.amount
        )
    return True


def bounded_event_id(event_id: str) -> str:
    """``event_id`` as stored: itself when short, else ``sha256:<hex>`` of it (still stable)."""
    if len(event_id) <= MAX_EVENT_ID:
        return event_id
    return "sha256:" + hashlib.sha256(event_id.encode()).hexdigest()


def stored_payload(facts: Mapping[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
    """What is kept of a verified notification, at most ``MAX_STORED_PAYLOAD`` bytes of JSON:
    ``facts`` (scalars; text cut to ``MAX_FACT`` characters, shorter if need be), and the
    provider's ``raw`` summary when it fits, else only its size and SHA-256. ``raw`` is expected
    to be redacted already."""
    try:
        encoded = json.dumps(
            raw, default=str, sort_keys=True, separators=(",", ":"), allow_nan=False
        )
    except ValueError:  # NaN or infinity: not JSON, kept as text
        encoded = json.dumps(repr(raw))
    # PostgreSQL's jsonb takes no NUL character (removed from the values, not the JSON text:
    # a literal backslash before "u0000" is text, not an escape).
    summary: Any = _without_nul(json.loads(encoded))
    encoded = json.dumps(summary, sort_keys=True, separators=(",", ":"))
    limit, omitted = MAX_FACT, False
    while True:
        kept = {
            key: value.replace("\x00", "")[:limit] if isinstance(value, str) else value
            for key, value in facts.items()
            if isinstance(value, str | int | float | bool)
        }
        payload = {**kept, "raw": summary}
        if len(json.dumps(payload).encode()) <= MAX_STORED_PAYLOAD or limit == 0:
            return payload
        if not omitted:
            digest = hashlib.sha256(encoded.encode()).hexdigest()
            summary = {"omitted": True, "bytes": len(encoded.encode()), "sha256": digest}
            omitted = True
        else:
            limit //= 2


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    return value


def redact_payload(value: Any, secrets: Iterable[str] = ()) -> Any:
    """``value`` with secret-looking keys masked and any credential value replaced."""
    known = sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True)

    def clean(item: Any) -> Any:
        if isinstance(item, Mapping):
            return {
                str(k): REDACTED if _SECRET_KEY.search(str(k)) and v is not None else clean(v)
                for k, v in item.items()
            }
        if isinstance(item, list | tuple):
            return [clean(v) for v in item]
        if isinstance(item, str):
            for secret in known:
                item = item.replace(secret, REDACTED)
            return item
        return item

    return clean(value)


class Payments:
    """The payment use cases over a store, the credential resolver and the installed gateways."""

    def __init__(self, store: PaymentStore, resolver: Resolver, gateways: PaymentGateways) -> None:
        self.store = store
        self.resolver = resolver
        self.gateways = gateways

    async def create_link(
        self, tenant_id: UUID, request: PaymentLinkRequest, idempotency_key: str | None = None
    ) -> PaymentLinkRecord:
        """A new hosted link; with an ``idempotency_key``, the same request again (a client's
        retry after a timeout) returns the link the first one created, and no second link is
        created at the provider. The key names one request: reused for another, it is a
        ``ValidationFailed``."""
        request = validated(request)
        link_id = uuid4()
        if idempotency_key is not None:
            link_id = uuid5(_IDEMPOTENT_LINKS, f"{tenant_id}:{_checked_key(idempotency_key)}")
            earlier = await self.store.get_link(tenant_id, link_id)
            if earlier is not None:
                return _same_request(earlier, request)
        conversation = request.conversation_id
        if conversation is not None and not await self.store.has_conversation(
            tenant_id, conversation
        ):
            raise ValidationFailed(
                "The payment link request is not valid.",
                errors=[("conversationId", "is not a conversation of this account")],
            )
        installed = self.gateways.ids(IntegrationType.PAYMENTS)
        if request.provider is not None and request.provider not in installed:
            raise ValidationFailed(
                f"Unknown payment provider {request.provider!r}",
                errors=[("provider", "must be one of: " + (", ".join(installed) or "none"))],
            )
        resolved = await self.resolver.resolve(
            tenant_id, IntegrationType.PAYMENTS, request.provider
        )
        gateway = self.gateways.payment(resolved.provider)
        # The same link id again reaches the provider with the same idempotency key, so a
        # concurrent retry that also got here is answered with the same provider link.
        created = await gateway.create_payment_link(
            link_id=str(link_id),
            amount=request.amount,
            currency=request.currency,
            description=request.description,
            reference=request.reference,
            credentials=gateway.parse_credentials(resolved.secrets.reveal()),
            config=gateway.parse_config(resolved.config),
        )
        link = PaymentLinkRecord(
            id=link_id,
            tenant_id=tenant_id,
            provider=resolved.provider,
            provider_link_id=created.provider_id,
            url=created.url,
            amount=request.amount,
            currency=request.currency,
            description=request.description,
            reference=request.reference,
            source=resolved.source,
            status=_link_status(created.status),
            conversation_id=conversation,
        )
        return await self.store.save_link(link)

    async def get_link(self, tenant_id: UUID, link_id: UUID) -> PaymentLinkRecord:
        """The tenant's link; another tenant's is as absent as a missing one."""
        link = await self.store.get_link(tenant_id, link_id)
        if link is None:
            raise NotFound(f"no payment link {link_id}")
        return link

    async def receive_notification(
        self,
        provider: str,
        tenant_id: UUID,
        headers: Mapping[str, str],
        raw_body: bytes,
        query: Mapping[str, str] | None = None,
    ) -> EventOutcome:
        """Verifies a provider's notification for ``tenant_id``, then stores it (once per
        tenant, provider and event id, as ``stored_payload``) and applies it to the link it
        names when ``applies_to`` holds. Nothing is stored before the provider verified it.

        ``query`` is the notification URL's query string, which some providers sign (Mercado
        Pago's ``data.id``); it reaches the provider as ``config.query``.
        """
        gateway = self._gateway(provider)
        try:
            resolved = await self.resolver.resolve(tenant_id, IntegrationType.PAYMENTS, provider)
        except NotConfigured:
            raise NotFound(
                f"{provider} payments are not configured for this tenant nor the platform"
            ) from None
        config = dict(resolved.config)
        if query:
            config["query"] = dict(query)
        event = await gateway.parse_webhook(
            headers,
            raw_body,
            gateway.parse_credentials(resolved.secrets.reveal()),
            gateway.parse_config(config),
            tenant_id=tenant_id,
        )
        status = PaymentStatus.of(event.status).value
        currency = event.currency.strip().upper()[:8] if event.currency else None
        facts = {
            "type": event.type,
            "status": status,
            "linkId": event.link_id,
            "providerLinkId": event.provider_link_id,
            "reference": event.reference,
            "amount": str(event.amount) if event.amount is not None else None,
            "currency": currency,
        }
        record = PaymentEventRecord(
            tenant_id=tenant_id,
            provider=provider,
            event_id=bounded_event_id(event.event_id),
            type=event.type[:MAX_EVENT_TYPE],
            status=status,
            payload=stored_payload(
                redact_payload(facts, resolved.secrets.values()),
                redact_payload(dict(event.raw), resolved.secrets.values()),
            ),
            source=resolved.source,
            provider_link_id=event.provider_link_id,
            named_link_id=_uuid(event.link_id),
            amount=event.amount,
            currency=currency,
            reference=event.reference[:MAX_REFERENCE] if event.reference else None,
        )
        return await self.store.record_event(record)

    def _gateway(self, provider: str) -> PaymentGateway:
        if provider not in self.gateways.ids(IntegrationType.PAYMENTS):
            raise NotFound(f"no payment provider {provider!r} is installed")
        return self.gateways.payment(provider)


def _checked_key(key: str) -> str:
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not (key.isascii() and key.isprintable()):
        raise ValidationFailed(
            "The Idempotency-Key header is not valid.",
            errors=[
                (
                    "Idempotency-Key",
                    f"must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters",
                )
            ],
        )
    return key


def _same_request(link: PaymentLinkRecord, request: PaymentLinkRequest) -> PaymentLinkRecord:
    """``link`` when ``request`` is the one that created it; a key reused for another request
    is refused rather than answered with a link for a different amount."""
    same = (
        link.amount,
        link.currency,
        link.description,
        link.reference,
        link.conversation_id,
    ) == (
        request.amount,
        request.currency,
        request.description,
        request.reference,
        request.conversation_id,
    ) and request.provider in (None, link.provider)
    if not same:
        raise ValidationFailed(
            "This Idempotency-Key was used for a different payment link request.",
            errors=[("Idempotency-Key", "was already used for a different request")],
        )
    return link


def _uuid(value: str | None) -> UUID | None:
    """Our link id as the provider echoed it; anything that is not a UUID names no link."""
    if not value:
        return None
    try:
        return UUID(value)
    except ValueError:
        return None


def _link_status(status: str) -> str:
    """A new link's stored status: the provider's, unless it says nothing (``unknown``)."""
    known = PaymentStatus.of(status)
    return known.value if known in _RANK else PaymentStatus.PENDING.value
