"""The inbound message queue on PostgreSQL: claims, leases and what became of each message.

``MessageQueue`` leases stored inbound messages to workers (``FOR UPDATE SKIP LOCKED``, a lease
in ``locked_until`` that a crashed worker's successor reclaims once it runs out) and records
what became of them: answered, ignored, failed, retried later with backoff, or dead-lettered
once out of attempts; operators list and replay them. The workers' batch claim is fair across
tenants at a cost bounded by the batch, not by the number of tenants: it walks a ring of the
tenants with pending messages from where this queue object's previous claim stopped. The
replies recorded around each send are ``message_log.py``'s. SQL lives in ``queue.sql``.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

from psycopg.rows import class_row

from changarrito.adapters.postgres.errors import translated
from changarrito.adapters.postgres.pool import Pool
from changarrito.adapters.postgres.queries import QUERIES
from changarrito.domain.errors import Conflict, NotFound
from changarrito.domain.queued import QueuedMessage

#: Longest error text kept in ``last_error``.
MAX_ERROR_CHARS = 1000

#: A fair batch claim (``claim_batch``) examines tenants with a due message until it has
#: ``FAIR_WINDOW * limit`` of them, or ``FAIR_HOPS * limit`` tenants with pending messages in
#: all (most of them waiting for a backoff): its cost is bounded by the batch, not by the
#: number of tenants.
FAIR_WINDOW = 4
FAIR_HOPS = 32

FinalState = Literal["answered", "ignored", "failed", "dead"]


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """One row of ``changarrito messages list``: no credential, a short preview of the text."""

    id: int
    received_at: datetime
    phone_number_id: str
    customer_id: str | None
    type: str
    state: str
    attempts: int
    last_error: str | None
    text: str | None
    parts_sent: int


def _error(text: str | None) -> str | None:
    return text[:MAX_ERROR_CHARS] if text else None


def random_start() -> UUID:
    """A random place in the ring of tenants (their ids are uniformly random)."""
    return UUID(int=random.getrandbits(128))


def claim_statement(
    worker: str, limit: int, lease: float, *, one_per_conversation: bool, start: UUID
) -> tuple[str, dict[str, object]]:
    """The claim's SQL and parameters; the fair batch claim walks the ring from ``start``."""
    params: dict[str, object] = {"worker": worker, "limit": limit, "lease": lease}
    if not one_per_conversation:
        return QUERIES["claim"], params
    params["start"] = start
    params["window"] = FAIR_WINDOW * limit
    params["hops"] = FAIR_HOPS * limit
    return QUERIES["claim_batch"], params


def next_start(start: UUID, claimed: Sequence[UUID | None], limit: int) -> UUID | None:
    """Where the next fair claim starts, given the tenants of the messages this one claimed
    from ``start`` (``None``: the platform's number, at the ring's wrap point): just past the
    last tenant served in the batch's last turn, so that those after it have their turn next.
    ``None`` (a random place) when the batch was not full: the ring had nothing more."""
    if not claimed or len(claimed) < limit:
        return None
    turns = Counter(claimed)
    last_turn = max(turns.values())

    def place(tenant: UUID | None) -> tuple[int, int]:
        if tenant is None:
            return (1, 0)
        return (2 if tenant < start else 0, tenant.int)

    last = max((t for t, n in turns.items() if n == last_turn), key=place)
    if last is None:
        return UUID(int=0)  # just past the wrap point
    return UUID(int=(last.int + 1) % (1 << 128))


class MessageQueue:
    """Claims and settles inbound messages. ``worker`` names the claimant in every call, so
    one queue object serves all the worker tasks of a process."""

    def __init__(self, pool: Pool, *, lease: float = 120.0, max_attempts: int = 8) -> None:
        self.pool = pool
        self.lease = lease
        self.max_attempts = max_attempts
        #: Where the next fair batch claim starts in the ring of tenants (None: anywhere).
        self._ring_start: UUID | None = None

    async def claim(
        self, worker: str, limit: int = 1, *, one_per_conversation: bool = False
    ) -> list[QueuedMessage]:
        """Leases up to ``limit`` due messages in one statement. ``one_per_conversation``
        (the workers' batches) takes only the oldest due message of each conversation, so
        that messages answered side by side never belong to the same customer, and is fair
        across tenants: each batch continues the ring of tenants where the previous one of
        this queue object stopped (``next_start``)."""
        start = self._ring_start or random_start()
        query, params = claim_statement(
            worker, limit, self.lease, one_per_conversation=one_per_conversation, start=start
        )
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=class_row(QueuedMessage))
                await cur.execute(query, params)
                claimed = await cur.fetchall()
        if one_per_conversation:
            self._ring_start = next_start(start, [m.tenant_id for m in claimed], limit)
        return claimed

    async def extend(self, worker: str, ids: Sequence[int]) -> set[int]:
        """Renews the lease of ``ids``; returns those this worker still holds."""
        if not ids:
            return set()
        params = {"worker": worker, "ids": list(ids), "lease": self.lease}
        with translated():
            async with self.pool.connection() as conn:
                cur = await conn.execute(QUERIES["extend"], params)
                return {row[0] for row in await cur.fetchall()}

    async def finish(
        self, worker: str, message_id: int, state: FinalState, error: str | None = None
    ) -> bool:
        """Settles a claimed message; false when this worker no longer held its lease."""
        params = {"worker": worker, "id": message_id, "state": state, "error": _error(error)}
        with translated():
            async with self.pool.connection() as conn:
                cur = await conn.execute(QUERIES["finish"], params)
                return await cur.fetchone() is not None

    async def retry(
        self,
        worker: str,
        message: QueuedMessage,
        *,
        delay: float,
        error: str | None,
        per_recipient: bool = False,
    ) -> str | None:
        """Back to ``pending`` in ``delay`` seconds, or ``dead`` when out of attempts; returns
        the new state (``None`` when the lease was lost). ``per_recipient`` also holds back the
        customer's other waiting messages."""
        params = {
            "worker": worker,
            "id": message.id,
            "delay": delay,
            "error": _error(error),
            "max_attempts": self.max_attempts,
        }
        with translated():
            async with self.pool.connection() as conn, conn.transaction():
                cur = await conn.execute(QUERIES["retry"], params)
                row = await cur.fetchone()
                if row is not None and per_recipient and message.customer_id:
                    await conn.execute(
                        QUERIES["delay_recipient"],
                        {
                            "delay": delay,
                            "phone_number_id": message.phone_number_id,
                            "customer_id": message.customer_id,
                        },
                    )
        return str(row[0]) if row is not None else None

    async def defer(self, worker: str, message: QueuedMessage, *, delay: float) -> bool:
        """Back to ``pending`` in ``delay`` seconds without using up an attempt, with its
        conversation's other waiting messages (a burst still going on: ``queue.sql``
        ``defer``); false when this worker no longer held the lease."""
        params = {"worker": worker, "id": message.id, "delay": delay}
        with translated():
            async with self.pool.connection() as conn:
                cur = await conn.execute(QUERIES["defer"], params)
                row = await cur.fetchone()
        return bool(row and row[0])

    async def requeue(self, message_id: int) -> None:
        """Gives a failed or dead message a fresh set of attempts, and wakes the workers."""
        with translated():
            async with self.pool.connection() as conn, conn.transaction():
                cur = await conn.execute(QUERIES["requeue"], {"id": message_id})
                if await cur.fetchone() is None:
                    cur = await conn.execute(QUERIES["message_state"], {"id": message_id})
                    row = await cur.fetchone()
                    if row is None:
                        raise NotFound(f"no message {message_id}")
                    raise Conflict(
                        f"message {message_id} is {row[0]}: only failed or dead messages can "
                        "be retried"
                    )
                await conn.execute(QUERIES["notify_inbound"], {"payload": str(message_id)})

    async def recent(
        self, tenant_id: UUID | None, *, limit: int = 20, state: str | None = None
    ) -> list[MessageSummary]:
        """The latest messages of ``tenant_id`` (``None``: the platform's number and numbers
        nobody owns), newest first."""
        params = {"tenant_id": tenant_id, "limit": limit, "state": state}
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=class_row(MessageSummary))
                await cur.execute(QUERIES["recent"], params)
                return await cur.fetchall()
