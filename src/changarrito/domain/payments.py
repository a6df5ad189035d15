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
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

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
    "next_status",
    "redact_payload",
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

MAX_DESCRIPTION = 500
MAX_REFERENCE = 200

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
    rank = _RANK.get(PaymentStatus.of(incoming))
    if rank is None:
        return current
    return incoming if rank >= _RANK.get(PaymentStatus.of(current), 0) else current


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
            status=_link_status(created.status),
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
            tenant_id=tenant_id,
        )
        record = PaymentEventRecord(
            tenant_id=tenant_id,
            provider=provider,
            event_id=event.event_id,
            type=event.type,
            status=PaymentStatus.of(event.status).value,
            payload=redact_payload(dict(event.raw), resolved.secrets.values()),
            provider_link_id=event.provider_link_id,
            reference=event.reference,
        )
        return await self.store.record_event(record)

    def _gateway(self, provider: str) -> PaymentGateway:
        if provider not in self.gateways.ids(IntegrationType.PAYMENTS):
            raise NotFound(f"no payment provider {provider!r} is installed")
        return self.gateways.payment(provider)


def _link_status(status: str) -> str:
    """A new link's stored status: the provider's, unless it says nothing (``unknown``)."""
    known = PaymentStatus.of(status)
    return known.value if known in _RANK else PaymentStatus.PENDING.value
