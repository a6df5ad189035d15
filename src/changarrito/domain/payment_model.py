"""The payment vocabulary shared by the use cases, the ports and the providers: a link's and an
event's status, and the records the payment store keeps.

It imports nothing of the other payment modules, so ``payments`` (the use cases) and ``ports``
(the store's protocol) can both depend on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

from changarrito.domain.model import Source, utcnow


class PaymentStatus(StrEnum):
    """Where a payment stands, in the words every provider's own statuses map to.

    A link starts ``pending``; the host moves it forward only, whatever order events arrive
    in: ``failed`` and ``expired`` may still become ``paid`` (a buyer retries a declined card),
    ``paid`` may become ``refunded``, never the reverse. ``unknown`` is for an event that says
    nothing about the payment (a partial refund, a customer update): it is stored and changes
    no link.
    """

    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"
    REFUNDED = "refunded"
    UNKNOWN = "unknown"

    @classmethod
    def of(cls, value: str) -> PaymentStatus:
        """``value`` as a status; anything outside the vocabulary is ``UNKNOWN``."""
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN


@dataclass(frozen=True, slots=True)
class PaymentLinkRecord:
    """A hosted payment link created for a tenant, with its latest status (a
    ``PaymentStatus`` value other than ``unknown``)."""

    tenant_id: UUID
    provider: str
    provider_link_id: str
    url: str
    amount: Decimal
    currency: str
    description: str
    reference: str
    source: Source
    status: str = PaymentStatus.PENDING.value
    id: UUID = field(default_factory=uuid4)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class PaymentEventRecord:
    """A verified provider notification, as stored (``payload`` holds no secret).

    An event is stored once per provider and ``event_id``: the provider's event id is what tells
    a retried notification from a new one, so it must be unique and stable across retries.
    """

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
