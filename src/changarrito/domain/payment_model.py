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
    in: ``failed`` and ``expired`` are final outcomes of the link (a cancelled payment, an
    expired session) that a late ``paid`` still overrides, and ``paid`` may become
    ``refunded``, never the reverse. ``declined`` is one attempt that did not go through
    while the buyer can still pay the same link (a declined card, a rejected payment): it is
    stored and leaves the link as it is. ``unknown`` is for an event that says nothing about
    the payment (a partial refund, a customer update): stored, and changes no link either.
    """

    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"
    REFUNDED = "refunded"
    DECLINED = "declined"
    UNKNOWN = "unknown"

    @classmethod
    def of(cls, value: str) -> PaymentStatus:
        """``value`` as a status; anything outside the vocabulary is ``UNKNOWN``."""
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN


@dataclass(frozen=True, slots=True)
class PaymentNotice:
    """What the customer was told when the link became ``status`` (paid, failed, expired):
    ``state`` pending (to send), sent (``sent_as`` text or template), skipped (nothing could
    be sent: ``reason``), failed (Meta refused it: ``reason``)."""

    status: str
    state: str
    sent_as: str | None = None
    reason_code: str | None = None
    reason: str | None = None
    attempts: int = 0
    updated_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class PaymentLinkRecord:
    """A hosted payment link created for a tenant, with its latest status (``pending``,
    ``paid``, ``failed``, ``expired`` or ``refunded``). ``id`` is chosen before the provider is
    called and travels in the provider's object, so that its events can name the link.
    ``conversation_id``: the conversation it was created for, whose customer hears of its
    outcome (``notices``)."""

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
    conversation_id: UUID | None = None
    notices: tuple[PaymentNotice, ...] = ()


@dataclass(frozen=True, slots=True)
class PaymentEventRecord:
    """A verified provider notification, as stored (``payload``: a few verified facts, no
    secret, at most ``payments.MAX_STORED_PAYLOAD`` bytes).

    An event is stored once per tenant, provider and ``event_id``: the event id, taken from
    verified data only, is what tells a retried notification from a new one, so it must be
    unique and stable across retries. ``source`` is whose credential verified it;
    ``named_link_id``, ``amount`` and ``currency`` are what the provider says about the payment
    (our link id as its object echoes it), which ``payments.applies_to`` holds against a link.
    ``link_id`` is the link the event was applied to, once stored.
    """

    tenant_id: UUID
    provider: str
    event_id: str
    type: str
    status: str
    payload: Mapping[str, Any]
    source: Source
    provider_link_id: str | None = None
    named_link_id: UUID | None = None
    amount: Decimal | None = None
    currency: str | None = None
    reference: str | None = None
    link_id: UUID | None = None
    id: UUID = field(default_factory=uuid4)
    received_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """What storing a notification did: ``duplicate`` when its event id was already stored
    for the tenant; ``link`` the link it applied to (``None`` when it applies to none)."""

    event: PaymentEventRecord
    duplicate: bool
    link: PaymentLinkRecord | None = None


@dataclass(frozen=True, slots=True)
class DueNotice:
    """A notice to send now: the link (with its conversation) became ``status``; this is
    attempt number ``attempts`` (1 the first time)."""

    id: int
    link: PaymentLinkRecord
    status: str
    attempts: int
