"""The inbox: a shop reads its conversations, writes to a customer, takes over and hands back.

Pure: its ports are the Protocols below (``ConversationStore``: the Postgres adapter
``adapters/postgres/conversations.py``; ``Senders`` and ``WhatsAppSender``: the credential
resolver and the Graph client the pipeline uses). Every call is scoped: ``tenant_id`` is the
caller's tenant, ``None`` the platform's own number (the internal API), and a conversation of
another scope is simply not found (never "forbidden": that would tell it exists).

Sending (``Inbox.send_text``, ``Inbox.send_media``) follows the pipeline's rules: only inside
the customer-service window (``conversations.window_open``); from the conversation's number
with the credential that replies from it; recorded *before* it is sent (no wamid yet), its
wamid recorded as soon as Meta accepts it, and a refusal recorded on the row (``failed``, with
Meta's error) before the error goes back to the caller.

What a picture or document the shop sends may be is checked first (``outgoing.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from changarrito.domain.conversations import ConversationState, window_open
from changarrito.domain.errors import (
    Conflict,
    NotConfigured,
    NotFound,
    ProviderError,
)
from changarrito.domain.errors import UnknownPhoneNumber as _UnknownPhoneNumber
from changarrito.domain.media import OutgoingMedia, filename_for
from changarrito.domain.model import utcnow
from changarrito.domain.outgoing import (
    MediaUpload,
    check_caption,
    check_filename,
    check_link,
    check_text,
    check_upload,
)
from changarrito.domain.ports import Senders, WhatsAppSender

#: Page sizes of the lists.
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
#: Switches shown with a conversation, newest first.
SWITCHES_SHOWN = 20


class ConversationNotFound(NotFound):
    """No such conversation."""

    code = "conversation-not-found"


class WindowClosed(Conflict):
    """The 24-hour customer-service window is closed (the customer last wrote more than 24
    hours ago, or never did): outside it only an approved template message can be sent."""

    code = "window-closed"


class NumberNotOwned(Conflict):
    """The conversation's number no longer belongs to this account, so nothing can be sent
    from it."""

    code = "number-not-owned"


@dataclass(frozen=True, slots=True)
class Conversation:
    id: UUID
    tenant_id: UUID | None
    phone_number_id: str
    state: ConversationState
    contact_name: str | None
    contact_phone: str | None
    contact_user_id: str | None
    window_open_until: datetime | None
    last_inbound_at: datetime | None
    last_activity_at: datetime
    state_changed_at: datetime
    state_changed_by: str
    created_at: datetime

    @property
    def recipient(self) -> str | None:
        """Who a message goes to: the phone when known, else the business-scoped user id."""
        return self.contact_phone or self.contact_user_id


@dataclass(frozen=True, slots=True)
class Switch:
    from_state: str
    to_state: str
    actor: str
    reason: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class ConversationDetail:
    conversation: Conversation
    switches: Sequence[Switch]


@dataclass(frozen=True, slots=True)
class MessageMedia:
    """What a message's picture, voice note or document is. Outbound (the shop's): sent by
    ``link`` or ``uploaded``, its ``filename`` and ``mime_type`` when known. Inbound (the
    customer's): what Meta said it is (``mime_type``, ``size``, ``filename``) and what became
    of it (``state``: received, transcribed, read, unread, failed; ``reason`` in words when it
    could not be used, ``reason_code`` as a slug)."""

    kind: str
    mime_type: str | None = None
    filename: str | None = None
    link: str | None = None
    uploaded: bool = False
    size: int | None = None
    state: str | None = None
    reason_code: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a conversation, in or out. ``rank`` orders the two directions at the
    same instant (inbound 0, outbound 1); with ``at`` and ``row_id`` it is the list's key.
    ``media``: what its picture, voice note or document is (``None``: text, or not known)."""

    direction: str
    rank: int
    row_id: int
    author: str
    type: str
    text: str | None
    wamid: str | None
    at: datetime
    status: str
    answered_with: int | None
    error_code: int | None
    error_title: str | None
    edited: bool
    deleted: bool
    media: MessageMedia | None = None


#: The position after which a list goes on: (last_activity_at, id) of conversations,
#: (at, rank, row_id) of messages.
ConversationKey = tuple[datetime, UUID]
MessageKey = tuple[datetime, int, int]


@dataclass(frozen=True, slots=True)
class Filters:
    state: ConversationState | None = None
    #: Matches the contact's name (any case) or phone (its digits, a leading ``+`` ignored).
    query: str | None = None

    @property
    def digits(self) -> str | None:
        """The query as phone digits, when it is one (``+52 55-1234`` → ``52551234``)."""
        if not self.query:
            return None
        digits = "".join(c for c in self.query.strip().removeprefix("+") if c not in " -().")
        return digits if digits.isascii() and digits.isdigit() else None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who acts: ``actor`` is recorded with a switch (``api:<subject>``, ``internal``);
    ``ref`` with a message the shop sends (the JWT subject)."""

    actor: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class FailedSend:
    code: int | None
    title: str
    details: str | None = None


@dataclass(frozen=True, slots=True)
class SentMedia:
    """What is recorded of a picture or document the shop sends (the outbound row's
    ``media``): its kind, ``link`` (none when uploaded), ``filename`` and ``mime_type``."""

    kind: str
    link: str | None = None
    filename: str | None = None
    mime_type: str | None = None


class ConversationStore(Protocol):
    async def conversations(
        self,
        tenant_id: UUID | None,
        filters: Filters,
        after: ConversationKey | None,
        limit: int,
    ) -> list[Conversation]:
        """The scope's conversations, newest activity first, after ``after``."""
        ...

    async def conversation(
        self, tenant_id: UUID | None, conversation_id: UUID
    ) -> Conversation | None: ...

    async def switches(
        self, tenant_id: UUID | None, conversation_id: UUID, limit: int
    ) -> list[Switch]:
        """The conversation's latest switches, newest first."""
        ...

    async def messages(
        self, tenant_id: UUID | None, conversation_id: UUID, after: MessageKey | None, limit: int
    ) -> list[Message]:
        """Its messages in and out, newest first, after ``after``."""
        ...

    async def record_shop_message(
        self,
        conversation: Conversation,
        recipient: str,
        text: str,
        ref: str | None,
        media: SentMedia | None = None,
    ) -> Message | None:
        """Records a message the shop is about to send (no wamid yet; with ``media`` a
        picture or document, ``text`` its caption or '') and the person's activity on the
        conversation; ``None`` when the conversation is gone."""
        ...

    async def shop_message_sent(
        self, row_id: int, wamid: str, *, media_id: str | None = None
    ) -> Message:
        """Records the wamid (and the uploaded media's id, with ``media_id``)."""
        ...

    async def shop_message_failed(self, row_id: int, failure: FailedSend) -> Message: ...

    async def switch(
        self,
        tenant_id: UUID | None,
        conversation_id: UUID,
        to_state: ConversationState,
        actor: str,
        reason: str | None,
    ) -> ConversationState | None:
        """Moves the conversation to ``to_state`` (and records the switch) unless it is in
        it already; its state after, ``None`` when there is no such conversation."""
        ...


@dataclass(frozen=True, slots=True)
class _Ready:
    conversation: Conversation
    recipient: str
    token: str


class Inbox:
    def __init__(
        self,
        conversations: ConversationStore,
        senders: Senders,
        whatsapp: WhatsAppSender,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = conversations
        self.senders = senders
        self.whatsapp = whatsapp
        self.clock = clock

    async def conversations(
        self, tenant_id: UUID | None, filters: Filters, after: ConversationKey | None, limit: int
    ) -> tuple[list[Conversation], ConversationKey | None]:
        """A page of conversations and the key of the next one (``None``: the last page)."""
        found = await self.store.conversations(tenant_id, filters, after, limit + 1)
        page = found[:limit]
        last = page[-1] if len(found) > limit and page else None
        return page, (last.last_activity_at, last.id) if last else None

    async def get(self, tenant_id: UUID | None, conversation_id: UUID) -> Conversation:
        found = await self.store.conversation(tenant_id, conversation_id)
        if found is None:
            raise ConversationNotFound()
        return found

    async def detail(self, tenant_id: UUID | None, conversation_id: UUID) -> ConversationDetail:
        conversation = await self.get(tenant_id, conversation_id)
        switches = await self.store.switches(tenant_id, conversation_id, SWITCHES_SHOWN)
        return ConversationDetail(conversation, switches)

    async def messages(
        self, tenant_id: UUID | None, conversation_id: UUID, after: MessageKey | None, limit: int
    ) -> tuple[list[Message], MessageKey | None]:
        await self.get(tenant_id, conversation_id)
        found = await self.store.messages(tenant_id, conversation_id, after, limit + 1)
        page = found[:limit]
        last = page[-1] if len(found) > limit and page else None
        return page, (last.at, last.rank, last.row_id) if last else None

    async def send_text(
        self,
        tenant_id: UUID | None,
        conversation_id: UUID,
        text: str,
        caller: Caller,
        *,
        handoff: bool = False,
    ) -> Message:
        """Sends ``text`` as the shop, inside the window only; ``handoff`` also gives the
        conversation to a person first (so the bot does not answer beside them)."""
        check_text("text", text, blank=False)
        ready = await self._ready(tenant_id, conversation_id, caller, handoff=handoff)
        recorded = await self._record(ready, text, caller, None)
        try:
            wamids = await self.whatsapp.send_text(
                ready.conversation.phone_number_id, ready.token, ready.recipient, text, None
            )
        except ProviderError as exc:
            await self.store.shop_message_failed(recorded.row_id, _failure(exc))
            raise
        return await self.store.shop_message_sent(recorded.row_id, wamids[0])

    async def send_media(
        self,
        tenant_id: UUID | None,
        conversation_id: UUID,
        media: OutgoingMedia | MediaUpload,
        caller: Caller,
        *,
        handoff: bool = False,
    ) -> Message:
        """Sends a picture or document as the shop, by ``link`` (an ``OutgoingMedia``) or
        uploaded first (a ``MediaUpload``), with the same rules as a text. Its input is
        checked before anything else (``MediaNotSendable``); the row is recorded before the
        upload, so an upload Graph refuses is recorded failed too."""
        if isinstance(media, MediaUpload):
            name = check_filename(media.kind, media.filename or media.file_name, upload=True)
            mime = check_upload(media)
            sent = SentMedia(media.kind, filename=name, mime_type=mime)
        else:
            check_link(media.link)
            name = check_filename(media.kind, media.filename)
            sent = SentMedia(media.kind, link=media.link, filename=name)
        caption = check_caption(media.caption)
        ready = await self._ready(tenant_id, conversation_id, caller, handoff=handoff)
        recorded = await self._record(ready, caption or "", caller, sent)
        number = ready.conversation.phone_number_id
        media_id = None
        try:
            if isinstance(media, MediaUpload):
                assert sent.mime_type is not None
                file_name = filename_for(media.kind, sent.mime_type, name)
                media_id = await self.whatsapp.upload_media(
                    number, ready.token, media.content, sent.mime_type, file_name
                )
            outgoing = OutgoingMedia(
                media.kind, media_id=media_id, link=sent.link, caption=caption, filename=name
            )
            wamid = await self.whatsapp.send_media(number, ready.token, ready.recipient, outgoing)
        except ProviderError as exc:
            await self.store.shop_message_failed(recorded.row_id, _failure(exc))
            raise
        return await self.store.shop_message_sent(recorded.row_id, wamid, media_id=media_id)

    async def _ready(
        self, tenant_id: UUID | None, conversation_id: UUID, caller: Caller, *, handoff: bool
    ) -> _Ready:
        """The conversation, its recipient and the token its number sends with, when a
        message may be sent now (and, with ``handoff``, the conversation given to a
        person)."""
        conversation = await self.get(tenant_id, conversation_id)
        if not window_open(conversation.window_open_until, self.clock()):
            raise WindowClosed()
        recipient = conversation.recipient
        if not recipient:
            raise Conflict("the conversation's contact has neither a phone nor a user id")
        try:
            sender = await self.senders.sender(conversation.phone_number_id)
        except _UnknownPhoneNumber as exc:
            raise NumberNotOwned() from exc
        if sender.tenant_id != conversation.tenant_id:
            raise NumberNotOwned()
        token = sender.secrets.get("accessToken")
        if not token:
            raise NotConfigured("the number's WhatsApp credential has no access token")
        if handoff:
            await self._switch(tenant_id, conversation_id, ConversationState.HUMAN, caller, None)
        return _Ready(conversation, recipient, token)

    async def _record(
        self, ready: _Ready, text: str, caller: Caller, media: SentMedia | None
    ) -> Message:
        recorded = await self.store.record_shop_message(
            ready.conversation, ready.recipient, text, caller.ref, media
        )
        if recorded is None:
            raise ConversationNotFound()
        return recorded

    async def handoff(
        self, tenant_id: UUID | None, conversation_id: UUID, caller: Caller, reason: str | None
    ) -> ConversationDetail:
        """A person takes it (the bot stops answering); already with one, nothing changes."""
        await self._switch(tenant_id, conversation_id, ConversationState.HUMAN, caller, reason)
        return await self.detail(tenant_id, conversation_id)

    async def resume(
        self, tenant_id: UUID | None, conversation_id: UUID, caller: Caller, reason: str | None
    ) -> ConversationDetail:
        """Back to the bot; already with it, nothing changes."""
        await self._switch(tenant_id, conversation_id, ConversationState.BOT, caller, reason)
        return await self.detail(tenant_id, conversation_id)

    async def _switch(
        self,
        tenant_id: UUID | None,
        conversation_id: UUID,
        to: ConversationState,
        caller: Caller,
        reason: str | None,
    ) -> None:
        state = await self.store.switch(tenant_id, conversation_id, to, caller.actor, reason)
        if state is None:
            raise ConversationNotFound()


def _failure(exc: ProviderError) -> FailedSend:
    code = exc.provider_code
    number = int(code) if code is not None and str(code).isdigit() else None
    if number is not None and number >= 2**31:  # the column is an integer
        number = None
    return FailedSend(code=number, title=exc.message[:500], details=exc.code)
