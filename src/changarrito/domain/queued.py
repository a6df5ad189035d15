"""The message queue as the pipeline sees it: a claimed message and the parts of its reply.

Pure records: the Postgres queue (``adapters/postgres/queue.py``) claims a ``QueuedMessage``
for a worker, and the message log (``adapters/postgres/message_log.py``) records each
``OutboundPart`` of its reply before any is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


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
