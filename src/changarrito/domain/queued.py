"""The message queue as the pipeline sees it: a claimed message, its turn, and the parts of
its reply.

Pure records: the Postgres queue (``adapters/postgres/queue.py``) claims a ``QueuedMessage``
for a worker; the message log (``adapters/postgres/message_log.py``) reads its ``Turn`` (the
conversation, the burst it belongs to, the history) and records each ``OutboundPart`` of its
reply before any is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from changarrito.domain.chat import ChatMessage


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """A stored inbound message, as a worker claimed it (``attempts`` counts this one)."""

    id: int
    wamid: str
    phone_number_id: str
    tenant_id: UUID | None
    type: str
    text: str | None
    sent_at: datetime
    attempts: int
    customer_id: str | None = None
    customer_phone: str | None = None
    customer_user_id: str | None = None
    #: Whether a reply was already recorded for it when it was claimed (``None``: unknown);
    #: ``False`` spares the pipeline reading the reply's parts back.
    has_reply: bool | None = None
    #: The worker holding its lease (``None``: not claimed). With it, the message log records
    #: the message answered in the transaction that records its reply's last wamid.
    claimed_by: str | None = None

    @property
    def recipient(self) -> str | None:
        """Whom to answer: the phone number, else the business-scoped user id."""
        return self.customer_phone or self.customer_user_id or self.customer_id


@dataclass(frozen=True, slots=True)
class OutboundPart:
    """One recorded part of a reply (``wamid`` is set once Meta accepted it)."""

    id: int
    part: int
    text: str
    wamid: str | None = None
    #: Sends started, this one included when ``sending`` is set.
    send_attempts: int = 0
    #: Already marked as being sent by this worker (``plan`` marks the first part of the reply
    #: it records, ``sent`` the part after the one it records): no ``sending`` call is due.
    sending: bool = False


@dataclass(frozen=True, slots=True)
class TurnMessage:
    """Another message of the conversation waiting to be answered: it joins the turn."""

    id: int
    wamid: str
    type: str
    text: str | None
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Turn:
    """What a claimed message's answer depends on, read in one round trip: its conversation
    (``None`` for a message stored without one), the conversation's other waiting messages
    (``waiting``: a burst, answered with it), and the history before them. ``now`` and the
    times are the database's clock."""

    conversation_id: UUID | None
    state: str
    now: datetime
    received_at: datetime
    human_active_at: datetime | None = None
    text_only_notice_at: datetime | None = None
    waiting: tuple[TurnMessage, ...] = ()
    history: tuple[ChatMessage, ...] = ()

    @property
    def last_received_at(self) -> datetime:
        """When the newest message of the turn reached us: the quiet period counts from it."""
        return max([self.received_at, *(m.received_at for m in self.waiting)])
