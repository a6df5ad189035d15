"""The pipeline's ``MessageLog`` on PostgreSQL: each message's turn (its conversation, the
burst it is part of, the history) and each reply's parts.

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
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from psycopg.rows import class_row

from changarrito.adapters.postgres.errors import translated
from changarrito.adapters.postgres.pool import Pool
from changarrito.adapters.postgres.queries import QUERIES
from changarrito.domain.chat import Attachment, ChatMessage, Reply, Transcript
from changarrito.domain.conversations import Switch
from changarrito.domain.errors import NotFound, StorageUnavailable
from changarrito.domain.media import MediaItem
from changarrito.domain.queued import OutboundPart, QueuedMessage, Turn, TurnMessage
from changarrito.domain.whatsapp import STATUS_ORDER

#: Seconds ``sent`` keeps trying to record a wamid while the database is unavailable.
SENT_PATIENCE = 30.0
#: Most waiting messages one reply answers (a longer burst is answered in several turns).
MAX_TURN = 20


@dataclass(frozen=True, slots=True)
class _TurnHead:
    conversation_id: UUID | None
    state: str
    now: datetime
    received_at: datetime
    human_active_at: datetime | None
    text_only_notice_at: datetime | None


def _switch(switch: Switch, message: QueuedMessage, turn: Turn | None) -> dict[str, object]:
    return {
        "id": turn.conversation_id if turn is not None else None,
        "tenant_id": message.tenant_id,
        "to_state": switch.to.value,
        "actor": switch.actor,
        "reason": switch.reason,
    }


class PostgresMessageLog:
    """The pipeline's ``MessageLog``: conversation history and the parts of each reply."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def turn(self, message: QueuedMessage, *, since: datetime, limit: int) -> Turn:
        """The conversation, its waiting messages and the history, in one round trip."""
        params = {"id": message.id, "since": since, "limit": max(0, limit)}
        with translated():
            async with self.pool.connection() as conn:
                head = conn.cursor(row_factory=class_row(_TurnHead))
                waiting = conn.cursor(row_factory=class_row(TurnMessage))
                history = conn.cursor()
                async with conn.pipeline():
                    await head.execute(QUERIES["turn_conversation"], params)
                    await waiting.execute(QUERIES["turn_waiting"], {**params, "waiting": MAX_TURN})
                    await history.execute(QUERIES["history"], params)
                row = await head.fetchone()
                waits = await waiting.fetchall()
                said = await history.fetchall()
        if row is None:
            raise NotFound(f"no message {message.id}")
        return Turn(
            conversation_id=row.conversation_id,
            state=row.state,
            now=row.now,
            received_at=row.received_at,
            human_active_at=row.human_active_at,
            text_only_notice_at=row.text_only_notice_at,
            waiting=tuple(waits),
            history=tuple(ChatMessage(role=role, content=text) for role, text in reversed(said)),
        )

    async def planned(self, message: QueuedMessage) -> list[OutboundPart]:
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=class_row(OutboundPart))
                await cur.execute(QUERIES["planned"], {"inbound_id": message.id})
                return await cur.fetchall()

    async def plan(
        self,
        message: QueuedMessage,
        recipient: str,
        parts: Sequence[str],
        *,
        fallback: bool,
        turn: Turn | None = None,
        notice: bool = False,
        switches: Sequence[Switch] = (),
    ) -> list[OutboundPart] | None:
        """Records every part of the reply in one transaction, the first marked as being sent,
        unless a reply is already recorded for the message (then that one stands, whole, and
        none is marked); with the turn's conversation, only while the bot answers it (else
        ``None``), joining the turn's waiting messages to the reply and applying
        ``switches`` around it."""
        conversation = turn.conversation_id if turn is not None else None
        params = {
            "inbound_id": message.id,
            "tenant_id": message.tenant_id,
            "phone_number_id": message.phone_number_id,
            "recipient": recipient,
            "texts": list(parts),
            "is_fallback": fallback,
            "conversation_id": conversation,
        }
        # One round trip: the locks serialize planners of the message and switches of its
        # conversation; the insert runs after them, so its snapshot sees a plan or a switch
        # committed meanwhile (and then inserts nothing, and that plan is read instead). The
        # insert returns what it wrote: no read-back.
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=class_row(OutboundPart))
                async with conn.pipeline(), conn.transaction():
                    await conn.execute(QUERIES["lock_message"], {"id": message.id})
                    if conversation is not None:
                        await conn.execute(QUERIES["lock_conversation"], params)
                        for switch in (s for s in switches if s.before_reply):
                            await conn.execute(
                                QUERIES["switch_conversation"], _switch(switch, message, turn)
                            )
                    await cur.execute(QUERIES["plan_parts"], params)
                    if conversation is not None and turn is not None:
                        joined = {
                            "inbound_id": message.id,
                            "waiting": [m.id for m in turn.waiting],
                            "notice": notice,
                            "conversation_id": conversation,
                        }
                        await conn.execute(QUERIES["join_turn"], joined)
                        for switch in (s for s in switches if not s.before_reply):
                            await conn.execute(
                                QUERIES["switch_conversation"], _switch(switch, message, turn)
                            )
                recorded = await cur.fetchall()
                if recorded and len(recorded) == len(parts):
                    return sorted(recorded, key=lambda p: p.part)
                await cur.execute(QUERIES["planned"], {"inbound_id": message.id})
                return await cur.fetchall() or None

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

    # --- the customer's media (``reading.MediaReader``) ---------------------------------

    async def media_items(self, inbound_ids: Sequence[int]) -> list[MediaItem]:
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=class_row(MediaItem))
                await cur.execute(QUERIES["media_items"], {"ids": list(inbound_ids)})
                return await cur.fetchall()

    async def media_outcome(
        self, inbound_id: int, state: str, reason_code: str | None, reason: str | None
    ) -> None:
        params = {
            "inbound_id": inbound_id,
            "state": state,
            "reason_code": reason_code,
            "reason": reason,
        }
        with translated():
            async with self.pool.connection() as conn:
                await conn.execute(QUERIES["media_outcome"], params)

    async def transcribed(
        self, inbound_id: int, tenant_id: UUID | None, text: str, transcript: Transcript
    ) -> str:
        usage = transcript.usage
        params = {
            "inbound_id": inbound_id,
            "tenant_id": tenant_id,
            "text": text,
            "source": transcript.source or "tenant",
            "provider": transcript.provider,
            "model": transcript.model,
            "seconds": transcript.seconds,
            "input_tokens": usage.input_tokens if usage else None,
            "output_tokens": usage.output_tokens if usage else None,
        }
        with translated():
            async with self.pool.connection() as conn:
                cur = await conn.execute(QUERIES["media_transcribed"], params)
                row = await cur.fetchone()
        stored = row[0] if row is not None else None
        return stored if isinstance(stored, str) and stored else text

    async def llm_used(self, tenant_id: UUID | None, reply: Reply, act_key: str) -> None:
        params = {
            "act_key": act_key,
            "tenant_id": tenant_id,
            "source": reply.source or "tenant",
            "provider": reply.provider,
            "model": reply.model,
            "input_tokens": max(0, reply.usage.input_tokens),
            "output_tokens": max(0, reply.usage.output_tokens),
        }
        with translated():
            async with self.pool.connection() as conn:
                await conn.execute(QUERIES["llm_used"], params)

    async def media_used(
        self, tenant_id: UUID | None, sent: Sequence[tuple[int, Attachment]], reply: Reply
    ) -> None:
        params = {
            "tenant_id": tenant_id,
            "ids": [inbound_id for inbound_id, _ in sent],
            "uses": ["image" if a.kind == "image" else "document" for _, a in sent],
            "source": reply.source or "tenant",
            "provider": reply.provider,
            "model": reply.model,
        }
        with translated():
            async with self.pool.connection() as conn:
                await conn.execute(QUERIES["media_used"], params)
