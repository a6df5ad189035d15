"""The inbox: a shop reads its conversations, writes to a customer, takes over and hands back.

Pure: its ports are the Protocols below (``ConversationStore``: the Postgres adapter
``adapters/postgres/conversations.py``; ``Senders`` and ``WhatsAppSender``: the credential
resolver and the Graph client the pipeline uses). Every call is scoped: ``tenant_id`` is the
caller's tenant, ``None`` the platform's own number (the internal API), and a conversation of
another scope is simply not found (never "forbidden": that would tell it exists).

Sending (``Inbox.send_text``) follows the pipeline's rules: only inside the customer-service
window (``conversations.window_open``); from the conversation's number with the credential
that replies from it; recorded *before* it is sent (no wamid yet), its wamid recorded as soon
as Meta accepts it, and a refusal recorded on the row (``failed``, with Meta's error) before
the error goes back to the caller.
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
    ValidationFailed,
)
from changarrito.domain.errors import UnknownPhoneNumber as _UnknownPhoneNumber
from changarrito.domain.model import utcnow
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
class Message:
    """One message of a conversation, in or out. ``rank`` orders the two directions at the
    same instant (inbound 0, outbound 1); with ``at`` and ``row_id`` it is the list's key."""

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
        self, conversation: Conversation, recipient: str, text: str, ref: str | None
    ) -> Message | None:
        """Records a message the shop is about to send (no wamid yet) and the person's
        activity on the conversation; ``None`` when the conversation is gone."""
        ...

    async def shop_message_sent(self, row_id: int, wamid: str) -> Message: ...

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
        recorded = await self.store.record_shop_message(conversation, recipient, text, caller.ref)
        if recorded is None:
            raise ConversationNotFound()
        try:
            wamids = await self.whatsapp.send_text(
                conversation.phone_number_id, token, recipient, text, None
            )
        except ProviderError as exc:
            await self.store.shop_message_failed(recorded.row_id, _failure(exc))
            raise
        return await self.store.shop_message_sent(recorded.row_id, wamids[0])

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


def check_text(field: str, value: str, *, blank: bool = True) -> None:
    """``ValidationFailed`` for text PostgreSQL cannot store (a NUL, a lone surrogate) and,
    unless ``blank``, for text with nothing but whitespace."""
    problem = None
    if "\x00" in value:
        problem = "must not contain NUL characters"
    elif not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            problem = "must be valid Unicode text (no lone surrogates)"
    if problem is None and not blank and not value.strip():
        problem = "must not be blank"
    if problem is not None:
        raise ValidationFailed(f"{field} {problem}", errors=[(field, problem)])


def _failure(exc: ProviderError) -> FailedSend:
    code = exc.provider_code
    number = int(code) if code is not None and str(code).isdigit() else None
    if number is not None and number >= 2**31:  # the column is an integer
        number = None
    return FailedSend(code=number, title=exc.message[:500], details=exc.code)
