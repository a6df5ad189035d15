"""The inbound message queue on PostgreSQL: claims, leases and what became of each message.

``MessageQueue`` leases stored inbound messages to workers (``FOR UPDATE SKIP LOCKED``, a lease
in ``locked_until`` that a crashed worker's successor reclaims once it runs out) and records
what became of them: answered, ignored, failed, retried later with backoff, or dead-lettered
once out of attempts; operators list and replay them. The replies recorded around each send
are ``message_log.py``'s. SQL lives in ``queue.sql``.
"""

from __future__ import annotations

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


class MessageQueue:
    """Claims and settles inbound messages. ``worker`` names the claimant in every call, so
    one queue object serves all the worker tasks of a process."""

    def __init__(self, pool: Pool, *, lease: float = 120.0, max_attempts: int = 8) -> None:
        self.pool = pool
        self.lease = lease
        self.max_attempts = max_attempts

    async def claim(
        self, worker: str, limit: int = 1, *, one_per_conversation: bool = False
    ) -> list[QueuedMessage]:
        """Leases up to ``limit`` due messages in one statement. ``one_per_conversation``
        (the workers' batches) takes only the oldest due message of each conversation, so
        that messages answered side by side never belong to the same customer."""
        params = {"worker": worker, "limit": limit, "lease": self.lease}
        query = QUERIES["claim_batch"] if one_per_conversation else QUERIES["claim"]
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=class_row(QueuedMessage))
                await cur.execute(query, params)
                return await cur.fetchall()

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
