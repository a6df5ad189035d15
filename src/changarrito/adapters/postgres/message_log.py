"""The pipeline's ``MessageLog`` on PostgreSQL: conversation history and each reply's parts.

A reply is recorded whole, split into parts, before any part is sent (``plan``, which marks
the first part as being sent); each part's wamid is recorded as soon as Meta returns it
(``sent``), in one transaction with the mark of the next part or, after the last one, the
message answered in the queue. SQL lives in ``message_log.sql`` (``apply_statuses`` in
``messages.sql``, ``finish`` in ``queue.sql``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime

from psycopg.rows import class_row

from changarrito.adapters.postgres.errors import translated
from changarrito.adapters.postgres.pool import Pool
from changarrito.adapters.postgres.queries import QUERIES
from changarrito.domain.chat import ChatMessage
from changarrito.domain.errors import StorageUnavailable
from changarrito.domain.queued import OutboundPart, QueuedMessage
from changarrito.domain.whatsapp import STATUS_ORDER

#: Seconds ``sent`` keeps trying to record a wamid while the database is unavailable.
SENT_PATIENCE = 30.0


class PostgresMessageLog:
    """The pipeline's ``MessageLog``: conversation history and the parts of each reply."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def history(
        self, message: QueuedMessage, *, since: datetime, limit: int
    ) -> list[ChatMessage]:
        if limit <= 0 or not message.customer_id:
            return []
        recipients = sorted(
            {
                r
                for r in (message.customer_phone, message.customer_user_id, message.customer_id)
                if r
            }
        )
        params = {
            "id": message.id,
            "phone_number_id": message.phone_number_id,
            "customer_id": message.customer_id,
            "recipients": recipients,
            "tenant_id": message.tenant_id,
            "since": since,
            "until": message.sent_at,
            "limit": limit,
        }
        with translated():
            async with self.pool.connection() as conn:
                cur = await conn.execute(QUERIES["history"], params)
                rows = await cur.fetchall()
        return [ChatMessage(role=role, content=content) for role, content in reversed(rows)]

    async def planned(self, message: QueuedMessage) -> list[OutboundPart]:
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=class_row(OutboundPart))
                await cur.execute(QUERIES["planned"], {"inbound_id": message.id})
                return await cur.fetchall()

    async def plan(
        self, message: QueuedMessage, recipient: str, parts: Sequence[str], *, fallback: bool
    ) -> list[OutboundPart]:
        """Records every part of the reply in one transaction, the first marked as being sent,
        unless a reply is already recorded for the message (then that one stands, whole, and
        none is marked)."""
        params = {
            "inbound_id": message.id,
            "tenant_id": message.tenant_id,
            "phone_number_id": message.phone_number_id,
            "recipient": recipient,
            "texts": list(parts),
            "is_fallback": fallback,
        }
        # One round trip: the lock serializes planners of the message; the insert runs after
        # it, so its snapshot sees a plan committed meanwhile (and then inserts nothing, and
        # that plan is read instead). The insert returns what it wrote: no read-back.
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=class_row(OutboundPart))
                async with conn.pipeline(), conn.transaction():
                    await conn.execute(QUERIES["lock_message"], {"id": message.id})
                    await cur.execute(QUERIES["plan_parts"], params)
                recorded = await cur.fetchall()
                if recorded and len(recorded) == len(parts):
                    return sorted(recorded, key=lambda p: p.part)
                await cur.execute(QUERIES["planned"], {"inbound_id": message.id})
                return await cur.fetchall()

    async def sending(self, part: OutboundPart) -> None:
        with translated():
            async with self.pool.connection() as conn:
                await conn.execute(QUERIES["sending"], {"id": part.id})

    async def sent(
        self,
        part: OutboundPart,
        wamid: str,
        *,
        next_part: OutboundPart | None = None,
        answered: QueuedMessage | None = None,
    ) -> bool:
        """Records the wamid Meta returned, and applies any status webhook that arrived for
        it before this commit (Meta can be that fast); in the same transaction, marks
        ``next_part`` as being sent, or settles ``answered`` (``finish``) if its worker still
        holds its lease. Returns whether it settled ``answered`` (true without one)."""
        statuses = {"order": list(STATUS_ORDER), "wamids": [wamid]}
        finish = None
        if answered is not None:  # the queue's own ``finish``, under the lease check
            finish = {
                "worker": answered.claimed_by,
                "id": answered.id,
                "state": "answered",
                "error": None,
            }
        # Meta has the part: losing its wamid now would send it again on the retry. While
        # the database is away (a restart, a failover), keep trying for a while.
        deadline = time.monotonic() + SENT_PATIENCE
        while True:
            try:
                # One round trip: BEGIN, the wamid, the statuses (``apply_statuses``), the
                # next part's mark or the queue's outcome, COMMIT.
                with translated():
                    async with self.pool.connection() as conn:
                        cur = conn.cursor()
                        async with conn.pipeline(), conn.transaction():
                            await conn.execute(QUERIES["sent"], {"id": part.id, "wamid": wamid})
                            await conn.execute(QUERIES["apply_statuses"], statuses)
                            if next_part is not None:
                                await conn.execute(QUERIES["sending"], {"id": next_part.id})
                            if finish is not None:
                                await cur.execute(QUERIES["finish"], finish)
                        return finish is None or await cur.fetchone() is not None
            except StorageUnavailable:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
