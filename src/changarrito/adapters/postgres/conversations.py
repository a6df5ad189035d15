"""The inbox's store on PostgreSQL (the domain's ``inbox.ConversationStore``).

Queries are the named blocks of ``conversations.sql``; each is scoped by ``tenant_id`` (NULL:
the platform's own number), so a conversation of another scope reads as missing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.rows import class_row, kwargs_row

from changarrito.adapters.postgres.errors import translated
from changarrito.adapters.postgres.pool import Pool
from changarrito.adapters.postgres.queries import QUERIES
from changarrito.domain.conversations import ConversationState
from changarrito.domain.errors import NotFound
from changarrito.domain.inbox import (
    Conversation,
    ConversationKey,
    FailedSend,
    Filters,
    Message,
    MessageKey,
    Switch,
)


def _conversation(*, state: str, **columns: Any) -> Conversation:
    return Conversation(state=ConversationState(state), **columns)


_CONVERSATION_ROW = kwargs_row(_conversation)
_MESSAGE_ROW = class_row(Message)
_SWITCH_ROW = class_row(Switch)


class PostgresConversations:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def conversations(
        self,
        tenant_id: UUID | None,
        filters: Filters,
        after: ConversationKey | None,
        limit: int,
    ) -> list[Conversation]:
        params = {
            "tenant_id": tenant_id,
            "state": filters.state.value if filters.state else None,
            "name": filters.query or None,
            "digits": filters.digits,
            "after_at": after[0] if after else None,
            "after_id": after[1] if after else None,
            "limit": limit,
        }
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=_CONVERSATION_ROW)
                await cur.execute(QUERIES["list_conversations"], params)
                return await cur.fetchall()

    async def conversation(
        self, tenant_id: UUID | None, conversation_id: UUID
    ) -> Conversation | None:
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=_CONVERSATION_ROW)
                params = {"id": conversation_id, "tenant_id": tenant_id}
                await cur.execute(QUERIES["get_conversation"], params)
                return await cur.fetchone()

    async def switches(
        self, tenant_id: UUID | None, conversation_id: UUID, limit: int
    ) -> list[Switch]:
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=_SWITCH_ROW)
                params = {"id": conversation_id, "tenant_id": tenant_id, "limit": limit}
                await cur.execute(QUERIES["conversation_switches"], params)
                return await cur.fetchall()

    async def messages(
        self, tenant_id: UUID | None, conversation_id: UUID, after: MessageKey | None, limit: int
    ) -> list[Message]:
        at: datetime | None = after[0] if after else None
        params = {
            "id": conversation_id,
            "tenant_id": tenant_id,
            "after_at": at,
            "after_rank": after[1] if after else None,
            "after_id": after[2] if after else None,
            "limit": limit,
        }
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=_MESSAGE_ROW)
                await cur.execute(QUERIES["conversation_messages"], params)
                return await cur.fetchall()

    async def record_shop_message(
        self, conversation: Conversation, recipient: str, text: str, ref: str | None
    ) -> Message | None:
        params = {
            "conversation_id": conversation.id,
            "tenant_id": conversation.tenant_id,
            "recipient": recipient,
            "text": text,
            "author_ref": ref,
        }
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=_MESSAGE_ROW)
                await cur.execute(QUERIES["record_shop_message"], params)
                return await cur.fetchone()

    async def shop_message_sent(self, row_id: int, wamid: str) -> Message:
        return await self._update("shop_message_sent", {"id": row_id, "wamid": wamid})

    async def shop_message_failed(self, row_id: int, failure: FailedSend) -> Message:
        params = {
            "id": row_id,
            "code": failure.code,
            "title": failure.title,
            "details": failure.details,
        }
        return await self._update("shop_message_failed", params)

    async def switch(
        self,
        tenant_id: UUID | None,
        conversation_id: UUID,
        to_state: ConversationState,
        actor: str,
        reason: str | None,
    ) -> ConversationState | None:
        params = {
            "id": conversation_id,
            "tenant_id": tenant_id,
            "to_state": to_state.value,
            "actor": actor,
            "reason": reason,
        }
        with translated():
            async with self.pool.connection() as conn:
                cur = await conn.execute(QUERIES["switch_conversation"], params)
                row = await cur.fetchone()
        return ConversationState(row[0]) if row else None

    async def _update(self, query: str, params: dict[str, Any]) -> Message:
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=_MESSAGE_ROW)
                await cur.execute(QUERIES[query], params)
                found = await cur.fetchone()
        if found is None:
            raise NotFound("the message is not recorded")
        return found
