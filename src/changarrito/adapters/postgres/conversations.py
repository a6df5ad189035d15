"""The inbox's store on PostgreSQL (the domain's ``inbox.ConversationStore``).

Queries are the named blocks of ``conversations.sql``; each is scoped by ``tenant_id`` (NULL:
the platform's own number), so a conversation of another scope reads as missing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.rows import class_row, kwargs_row
from psycopg.types.json import Jsonb

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
    MessageMedia,
    SentMedia,
    SentTemplate,
    Switch,
)


def _conversation(*, state: str, **columns: Any) -> Conversation:
    return Conversation(state=ConversationState(state), **columns)


def _message(
    *, media: dict[str, Any] | None, template: dict[str, Any] | None, **columns: Any
) -> Message:
    outbound = columns["direction"] == "outbound"
    return Message(
        **columns,
        media=message_media(media, outbound=outbound),
        template=message_template(template),
    )


def message_template(template: dict[str, Any] | None) -> SentTemplate | None:
    """An outbound row's template columns (as ``conversations.sql`` builds them)."""
    if not template or not isinstance(template.get("name"), str):
        return None
    return SentTemplate(
        name=template["name"],
        language=str(template.get("language") or ""),
        category=template.get("category"),
        outside_window=bool(template.get("outsideWindow")),
        purpose=template.get("purpose"),
    )


def message_media(media: dict[str, Any] | None, *, outbound: bool) -> MessageMedia | None:
    """A row's ``media`` jsonb as the domain's: an outbound row's as recorded
    (``media_record``; no ``link``: it was uploaded), an inbound one's as
    ``conversation_messages`` builds it from ``whatsapp_media``."""
    if not media or not isinstance(media.get("type"), str):
        return None

    def text(key: str) -> str | None:
        value = media.get(key)
        return value if isinstance(value, str) else None

    size = media.get("size")
    return MessageMedia(
        kind=media["type"],
        mime_type=text("mimeType"),
        filename=text("filename"),
        link=text("link"),
        uploaded=outbound and "link" not in media,
        size=size if isinstance(size, int) else None,
        state=text("state"),
        reason_code=text("reasonCode"),
        reason=text("reason"),
    )


def media_record(media: SentMedia) -> dict[str, Any]:
    """The outbound row's ``media`` (migration 0014): ``type``, ``link`` (none when
    uploaded), ``filename``, ``mimeType``; the uploaded media's ``id`` is added once Graph
    gave it (``shop_message_sent``)."""
    record: dict[str, Any] = {"type": media.kind}
    if media.link is not None:
        record["link"] = media.link
    if media.filename is not None:
        record["filename"] = media.filename
    if media.mime_type is not None:
        record["mimeType"] = media.mime_type
    return record


_CONVERSATION_ROW = kwargs_row(_conversation)
_MESSAGE_ROW = kwargs_row(_message)
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
        self,
        conversation: Conversation,
        recipient: str,
        text: str,
        ref: str | None,
        media: SentMedia | None = None,
        *,
        template: SentTemplate | None = None,
        author: str = "shop",
        idempotency_key: str | None = None,
        purpose: str | None = None,
    ) -> Message | None:
        params = {
            "conversation_id": conversation.id,
            "tenant_id": conversation.tenant_id,
            "recipient": recipient,
            "text": text,
            "author": author,
            "author_ref": ref,
            "media": Jsonb(media_record(media)) if media is not None else None,
            "template_name": template.name if template else None,
            "template_language": template.language if template else None,
            "template_category": template.category if template else None,
            "outside_window": template.outside_window if template else None,
            "purpose": template.purpose if template else purpose,
            "idempotency_key": idempotency_key,
        }
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=_MESSAGE_ROW)
                await cur.execute(QUERIES["record_shop_message"], params)
                recorded: Message | None = await cur.fetchone()
                if recorded is None and idempotency_key is not None:
                    await cur.execute(
                        QUERIES["shop_message_by_key"], {"idempotency_key": idempotency_key}
                    )
                    recorded = await cur.fetchone()
                return recorded

    async def open_conversation(
        self, tenant_id: UUID | None, phone_number_id: str, phone: str | None, user_id: str | None
    ) -> UUID | None:
        params = {
            "tenant_id": tenant_id,
            "phone_number_id": phone_number_id,
            "phone": phone,
            "user_id": user_id,
        }
        with translated():
            async with self.pool.connection() as conn:
                cur = await conn.execute(QUERIES["open_conversation"], params)
                row = await cur.fetchone()
        return row[0] if row else None

    async def shop_message_sent(
        self, row_id: int, wamid: str, *, media_id: str | None = None
    ) -> Message:
        params = {"id": row_id, "wamid": wamid, "media_id": media_id}
        return await self._update("shop_message_sent", params)

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
