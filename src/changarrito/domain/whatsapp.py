"""What Meta's WhatsApp webhook delivers, as domain records, and the rules applied at intake.

Pure: the webhook adapter (``adapters/whatsapp/webhook_schema.py``) decodes the wire format and
builds these records; the Postgres adapter stores them. The rules here:

- which queue state a new inbound message starts in (``initial_state``): a routed message with
  a customer and a text to answer, or one the assistant cannot read yet (a voice note, a photo
  without a caption: ``unreadable``, told once per conversation), is ``pending``; everything
  else is stored ``ignored``;
- who the customer is (``customer_key``): the phone number when Meta gives one, else the
  business-scoped user id (BSUID);
- Meta's timestamps (``meta_time``): unix seconds as text, unreadable ones replaced;
- the monotonic status machine of outbound messages (``STATUS_ORDER``, ``advance``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from uuid import UUID

#: Meta batches at most 1,000 updates per webhook; more is not a webhook from Meta.
MAX_UPDATES = 5_000


class RouteKind(StrEnum):
    """Who a business number belongs to, as decided at intake."""

    TENANT = "tenant"
    PLATFORM = "platform"
    #: Nobody's: stored and acknowledged, never answered.
    UNROUTED = "unrouted"


class InboundState(StrEnum):
    """Queue states of an inbound message (the workers own every move after ``PENDING``)."""

    PENDING = "pending"
    PROCESSING = "processing"
    ANSWERED = "answered"
    IGNORED = "ignored"
    FAILED = "failed"
    DEAD = "dead"


#: Outbound statuses in the order they may be reached. A status only ever replaces one that
#: comes before it: ``read`` is never downgraded by a late ``delivered``; a ``read`` overrides
#: an earlier ``failed`` (the customer saw it, so it was delivered after all); ``played`` (a
#: voice message first played) implies ``read``. Statuses not listed here are stored, never
#: applied.
STATUS_ORDER: tuple[str, ...] = ("queued", "sent", "delivered", "failed", "read", "played")
_RANK = {status: rank for rank, status in enumerate(STATUS_ORDER)}


def advance(current: str, incoming: str) -> str:
    """The status of an outbound message at ``current`` after a webhook says ``incoming``."""
    if _RANK.get(incoming, -1) > _RANK.get(current, -1):
        return incoming
    return current


def final_status(current: str, incoming: Iterable[str]) -> str:
    """``advance`` over many statuses: the same answer in any arrival order."""
    for status in incoming:
        current = advance(current, status)
    return current


@dataclass(frozen=True, slots=True)
class Customer:
    """Who wrote: a phone number, a business-scoped user id (BSUID), or both."""

    phone: str | None = None
    user_id: str | None = None
    name: str | None = None

    @property
    def key(self) -> str | None:
        return customer_key(self.phone, self.user_id)


def customer_key(phone: str | None, user_id: str | None) -> str | None:
    """The customer's id in conversations: the phone number when Meta sends one (the
    recipient a reply is addressed to), else the business-scoped user id."""
    return phone or user_id or None


def meta_time(value: str | int | float | None, fallback: datetime) -> datetime:
    """Meta's timestamp (unix seconds, usually as text), or ``fallback`` when unreadable."""
    try:
        seconds = int(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        seconds = None
    if seconds is None or not 0 <= seconds < 253_402_300_800:  # before year 10000
        return fallback
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One message a customer sent to a business number (``raw``: Meta's JSON, verbatim)."""

    wamid: str
    phone_number_id: str
    route: RouteKind
    tenant_id: UUID | None
    type: str
    customer: Customer
    text: str | None
    sent_at: datetime
    raw: bytes = field(repr=False)
    display_phone_number: str | None = None
    waba_id: str | None = None
    context_wamid: str | None = None
    #: The customer sent something the assistant cannot read yet (a voice note, a photo
    #: without a caption, a type WhatsApp could not show): answered once per conversation
    #: with the "only text for now" reply.
    unreadable: bool = False
    #: An ``edit`` or ``revoke``: the wamid of the customer's message it changes.
    changes_wamid: str | None = None
    #: Seconds after its arrival that it is first due, when it is to be answered: its
    #: tenant's quiet period (a lone message is claimed once, when its customer has been
    #: quiet that long, not at once only to be put back; a burst is the worker's).
    quiet_period: float = 0.0

    @property
    def state(self) -> InboundState:
        if self.changes_wamid is not None:  # applied to the message it changes, not answered
            return InboundState.IGNORED
        return initial_state(self.route, self.customer.key, self.text, self.unreadable)


def initial_state(
    route: RouteKind, customer: str | None, text: str | None, unreadable: bool = False
) -> InboundState:
    """``pending`` (to answer) only for a routed message with a customer and a text, or
    something the assistant cannot read yet (it gets the "only text for now" reply)."""
    if route is RouteKind.UNROUTED or customer is None:
        return InboundState.IGNORED
    if not (text and text.strip()) and not unreadable:
        return InboundState.IGNORED
    return InboundState.PENDING


@dataclass(frozen=True, slots=True)
class OwnerEcho:
    """A message the shop's owner sent from the WhatsApp Business app on a coexistence
    number (an ``smb_message_echoes`` webhook): the owner is talking to this customer. (The
    change itself is also kept, verbatim, as a ``WebhookEvent``.)"""

    wamid: str
    phone_number_id: str
    route: RouteKind
    tenant_id: UUID | None
    #: The business number it was sent from (``from``) and the customer (``to``, the phone,
    #: and ``to_user_id``, the business-scoped user id; either may be missing).
    owner: str | None
    customer: str | None
    type: str
    text: str | None
    sent_at: datetime
    customer_user_id: str | None = None


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A status webhook of one of our outbound messages."""

    wamid: str
    status: str
    phone_number_id: str
    tenant_id: UUID | None
    occurred_at: datetime
    raw: bytes = field(repr=False)
    recipient_id: str | None = None
    recipient_user_id: str | None = None
    error_code: int | None = None
    error_title: str | None = None
    error_details: str | None = None


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A change of another field (``kind="field"``) or a value-level error (``"error"``)."""

    kind: str
    field: str
    payload: bytes = dataclasses.field(repr=False)
    waba_id: str | None = None
    phone_number_id: str | None = None
    tenant_id: UUID | None = None
    error_code: int | None = None


@dataclass(slots=True)
class Intake:
    """Everything one webhook delivered, ready to be stored in one go."""

    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    events: list[WebhookEvent] = field(default_factory=list)
    echoes: list[OwnerEcho] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.messages) + len(self.statuses) + len(self.events) + len(self.echoes)
