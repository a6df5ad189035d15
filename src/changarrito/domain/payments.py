"""Payment links for tenants: create one, show it, and follow the provider's notifications.

Order of creating a link:

1. validate the request (positive amount with no more decimals than the currency has, an ISO
   4217 code, a description and a reference), naming each bad field;
2. pick the provider: the one asked for (it must be installed), else the resolved default;
3. resolve the tenant's payment credentials for it, else the platform's (``Resolver``);
4. ask the provider for a hosted link, and store it with ``source`` tenant or platform.

A notification (``receive_notification``) is checked by the provider with the same resolved
credentials (its webhook secret, or a re-fetch with its key), stored once per provider event id
with secret-looking fields removed, and moves its link's status forward (never backward: a late
"pending" does not undo "paid").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from changarrito.domain.errors import NotConfigured, NotFound, ValidationFailed
from changarrito.domain.model import IntegrationType, Source, utcnow
from changarrito.domain.ports import PaymentGateway, PaymentGateways, PaymentStore, Resolver

#: Statuses a link can have; an event may also say ``unknown``, which changes nothing.
LINK_STATUSES = ("pending", "paid", "failed", "expired", "refunded")
#: How far along a status is: an event moves a link to a status of equal or higher rank only.
_RANK = {"pending": 0, "failed": 1, "expired": 1, "paid": 2, "refunded": 3}

MAX_DESCRIPTION = 500
MAX_REFERENCE = 200

#: ISO 4217 currencies without a minor unit, and those with three decimals (the rest have two).
_ZERO_DECIMAL = frozenset(
    "BIF CLP DJF GNF ISK JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split()  # noqa: SIM905
)
_THREE_DECIMAL = frozenset(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"])

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


@dataclass(frozen=True, slots=True)
class PaymentLinkRecord:
    """A hosted payment link created for a tenant, with its latest status."""

    tenant_id: UUID
    provider: str
    provider_link_id: str
    url: str
    amount: Decimal
    currency: str
    description: str
    reference: str
    source: Source
    status: str = "pending"
    id: UUID = field(default_factory=uuid4)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class PaymentEventRecord:
    """A verified provider notification, as stored (``payload`` holds no secret)."""

    tenant_id: UUID
    provider: str
    event_id: str
    type: str
    status: str
    payload: Mapping[str, Any]
    provider_link_id: str | None = None
    reference: str | None = None
    link_id: UUID | None = None
    id: UUID = field(default_factory=uuid4)
    received_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """What storing a notification did: ``duplicate`` when its event id was already stored."""

    event: PaymentEventRecord
    duplicate: bool
    link: PaymentLinkRecord | None = None


def minor_unit_decimals(currency: str) -> int:
    """Decimals of the currency's minor unit: JPY 0, MXN 2, KWD 3."""
    if currency in _ZERO_DECIMAL:
        return 0
    if currency in _THREE_DECIMAL:
        return 3
    return 2


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
    return PaymentLinkRequest(amount, currency, description, reference, request.provider)


def next_status(current: str, incoming: str) -> str:
    """The link's status after an event saying ``incoming``: forward only, ``unknown`` ignored."""
    if incoming not in _RANK:
        return current
    return incoming if _RANK[incoming] >= _RANK.get(current, 0) else current


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

    async def create_link(self, tenant_id: UUID, request: PaymentLinkRequest) -> PaymentLinkRecord:
        request = validated(request)
        installed = self.gateways.ids("payment")
        if request.provider is not None and request.provider not in installed:
            raise ValidationFailed(
                f"Unknown payment provider {request.provider!r}",
                errors=[("provider", "must be one of: " + (", ".join(installed) or "none"))],
            )
        resolved = await self.resolver.resolve(
            tenant_id, IntegrationType.PAYMENTS, request.provider
        )
        gateway = self.gateways.payment(resolved.provider)
        created = await gateway.create_payment_link(
            amount=request.amount,
            currency=request.currency,
            description=request.description,
            reference=request.reference,
            credentials=gateway.parse_credentials(resolved.secrets.reveal()),
            config=gateway.parse_config(resolved.config),
        )
        link = PaymentLinkRecord(
            tenant_id=tenant_id,
            provider=resolved.provider,
            provider_link_id=created.provider_id,
            url=created.url,
            amount=request.amount,
            currency=request.currency,
            description=request.description,
            reference=request.reference,
            source=resolved.source,
            status=created.status if created.status in _RANK else "pending",
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
        """Verifies, stores (once) and applies a provider's notification for ``tenant_id``.

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
        )
        record = PaymentEventRecord(
            tenant_id=tenant_id,
            provider=provider,
            event_id=event.event_id,
            type=event.type,
            status=event.status,
            payload=redact_payload(dict(event.raw), resolved.secrets.values()),
            provider_link_id=event.provider_link_id,
            reference=event.reference,
        )
        return await self.store.record_event(record)

    def _gateway(self, provider: str) -> PaymentGateway:
        if provider not in self.gateways.ids("payment"):
            raise NotFound(f"no payment provider {provider!r} is installed")
        return self.gateways.payment(provider)
