"""The conversations API: a shop reads its customers' conversations, writes to them, takes
them over (``handoff``) and gives them back to the bot (``resume``).

The same endpoints twice, over ``domain.inbox.Inbox``:

- ``/api/v1/conversations`` (tenant JWT): the tenant's conversations; a switch is recorded as
  ``api:<the JWT's subject>``;
- ``/api/v1/internal/conversations`` (``X-Internal-Key``): the platform's own number's
  (``tenant_id`` NULL), switches recorded as ``internal``.

A conversation outside the caller's scope is a 404, whether it exists or not. Lists are newest
first, ``limit`` 1..100 (20), and go on with ``cursor`` (the page's opaque ``nextCursor``); a
cursor that is not one is a 400 ``invalid-cursor``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal
from uuid import UUID

from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter

from changarrito.adapters.internal_api import INTERNAL_PREFIX
from changarrito.adapters.jwt_auth import TenantPrincipal
from changarrito.domain.conversations import ConversationState
from changarrito.domain.errors import ValidationFailed
from changarrito.domain.inbox import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Caller,
    ConversationKey,
    Filters,
    Inbox,
    MessageKey,
    check_text,
)
from changarrito.domain.model import utcnow
from changarrito.entrypoints.http import cursors
from changarrito.entrypoints.http.auth import BEARER, INTERNAL, require_internal_key
from changarrito.entrypoints.http.conversation_schemas import (
    Conversation,
    ConversationDetail,
    ConversationMessage,
    ConversationPage,
    MessageCreate,
    MessagePage,
    SwitchRequest,
    TextMessageCreate,
)
from changarrito.entrypoints.http.cursors import MAX_CURSOR_CHARS, InvalidCursor
from changarrito.entrypoints.http.problems import PROBLEM_JSON
from changarrito.entrypoints.http.schemas import Problem, problem_responses

PREFIX = "/api/v1/conversations"
#: A message is at most 4,096 characters; escaped in JSON that stays well under this.
MAX_BODY_BYTES = 64 * 1024

Limit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="Page size (1 to 100).")]
Cursor = Annotated[
    str | None,
    QueryParameter(
        max_length=MAX_CURSOR_CHARS, description="The previous page's `nextCursor`.", required=False
    ),
]
StateFilter = Annotated[
    Literal["bot", "human", "closed"] | None,
    QueryParameter(name="state", description="Only conversations in this state.", required=False),
]
Query = Annotated[
    str | None,
    QueryParameter(
        max_length=100,
        description="A part of the contact's name (any case) or phone (digits; a leading + "
        "is ignored).",
        required=False,
    ),
]

WINDOW_CLOSED = {
    409: ResponseSpec(
        Problem,
        description="`window-closed`: the 24-hour customer-service window is closed, so only "
        "a template message can be sent; `number-not-owned`, `not-configured`: the number "
        "cannot send.",
        media_type=PROBLEM_JSON,
        generate_examples=False,
    )
}
READ = problem_responses(400, 401, 404, 503)
LIST = problem_responses(400, 401, 422, 503)
SEND = {**problem_responses(400, 401, 404, 413, 422, 502, 503), **WINDOW_CLOSED}
SWITCH = problem_responses(400, 401, 404, 413, 503)


class UnsupportedMessageType(ValidationFailed):
    """Only text messages can be sent for now."""

    code = "unsupported-message-type"


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose conversations: a tenant's (``tenant_id``) or the platform's number's (None)."""

    tenant_id: UUID | None
    caller: Caller


async def tenant_scope(principal: NamedDependency[TenantPrincipal]) -> Scope:
    actor = f"api:{principal.subject or principal.tenant_id}"
    return Scope(principal.tenant_id, Caller(actor=actor, ref=principal.subject or None))


def internal_scope() -> Scope:
    return Scope(None, Caller(actor="internal", ref="internal"))


# --- cursors ---------------------------------------------------------------------------------


def conversation_cursor(key: ConversationKey | None) -> str | None:
    return cursors.encode("c", key[0].isoformat(), str(key[1])) if key else None


def conversation_key(cursor: str | None) -> ConversationKey | None:
    if not cursor:
        return None
    at, ident = cursors.decode(cursor, "c", 2)
    try:
        return cursors.timestamp(at), UUID(str(ident))
    except ValueError as exc:
        raise InvalidCursor() from exc


def message_cursor(key: MessageKey | None) -> str | None:
    return cursors.encode("m", key[0].isoformat(), key[1], key[2]) if key else None


def message_key(cursor: str | None) -> MessageKey | None:
    if not cursor:
        return None
    at, rank, row = cursors.decode(cursor, "m", 3)
    valid = all(type(v) is int for v in (rank, row)) and rank in (0, 1) and 0 < row < 2**63
    if not valid:
        raise InvalidCursor()
    return cursors.timestamp(at), rank, row


# --- the endpoints ----------------------------------------------------------------------------


class ConversationEndpoints(Controller):
    """The endpoints both APIs share; a subclass says whose conversations (``whose``)."""

    request_max_body_size = MAX_BODY_BYTES

    @get("/", responses=LIST, summary="Conversations, newest activity first")
    async def list_conversations(
        self,
        whose: NamedDependency[Scope],
        inbox: NamedDependency[Inbox],
        in_state: StateFilter = None,
        q: Query = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> ConversationPage:
        """Filter by ``state``, search by the contact's name or phone with ``q``."""
        if q is not None:
            check_text("q", q)
        filters = Filters(
            state=ConversationState(in_state) if in_state else None, query=(q or "").strip() or None
        )
        page, after = await inbox.conversations(
            whose.tenant_id, filters, conversation_key(cursor), limit
        )
        now = utcnow()
        return ConversationPage(
            data=[Conversation.of(c, now) for c in page], next_cursor=conversation_cursor(after)
        )

    @get("/{conversation_id:uuid}", responses=READ, summary="A conversation and its switches")
    async def get_conversation(
        self,
        whose: NamedDependency[Scope],
        inbox: NamedDependency[Inbox],
        conversation_id: FromPath[UUID],
    ) -> ConversationDetail:
        detail = await inbox.detail(whose.tenant_id, conversation_id)
        return ConversationDetail.of_detail(detail, utcnow())

    @get(
        "/{conversation_id:uuid}/messages",
        responses=READ,
        summary="A conversation's messages, in and out, newest first",
    )
    async def list_messages(
        self,
        whose: NamedDependency[Scope],
        inbox: NamedDependency[Inbox],
        conversation_id: FromPath[UUID],
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> MessagePage:
        page, after = await inbox.messages(
            whose.tenant_id, conversation_id, message_key(cursor), limit
        )
        return MessagePage(
            data=[ConversationMessage.of(m) for m in page], next_cursor=message_cursor(after)
        )

    @post(
        "/{conversation_id:uuid}/messages",
        status_code=201,
        responses=SEND,
        summary="Send a text as the shop (inside the 24-hour window)",
    )
    async def send_message(
        self,
        whose: NamedDependency[Scope],
        inbox: NamedDependency[Inbox],
        conversation_id: FromPath[UUID],
        data: JSONBody[MessageCreate],
    ) -> ConversationMessage:
        """Sent from the conversation's number with its WhatsApp credential, recorded as
        the shop's; outside the window a 409 ``window-closed`` (a template is needed)."""
        if not isinstance(data, TextMessageCreate):
            kind = type(data).__struct_config__.tag
            raise UnsupportedMessageType(
                f"sending {kind} messages is not supported yet; send a text",
                errors=[("type", f"{kind} is not supported yet")],
            )
        sent = await inbox.send_text(
            whose.tenant_id, conversation_id, data.text, whose.caller, handoff=data.handoff
        )
        return ConversationMessage.of(sent)

    @post(
        "/{conversation_id:uuid}/handoff",
        status_code=200,
        responses=SWITCH,
        summary="A person takes the conversation over (the bot stops answering it)",
    )
    async def handoff(
        self,
        whose: NamedDependency[Scope],
        inbox: NamedDependency[Inbox],
        conversation_id: FromPath[UUID],
        data: JSONBody[SwitchRequest | None] = None,
    ) -> ConversationDetail:
        """Already with a person: nothing changes (no new switch)."""
        reason = _reason(data)
        detail = await inbox.handoff(whose.tenant_id, conversation_id, whose.caller, reason)
        return ConversationDetail.of_detail(detail, utcnow())

    @post(
        "/{conversation_id:uuid}/resume",
        status_code=200,
        responses=SWITCH,
        summary="Give the conversation back to the bot",
    )
    async def resume(
        self,
        whose: NamedDependency[Scope],
        inbox: NamedDependency[Inbox],
        conversation_id: FromPath[UUID],
        data: JSONBody[SwitchRequest | None] = None,
    ) -> ConversationDetail:
        """Already with the bot: nothing changes (no new switch)."""
        reason = _reason(data)
        detail = await inbox.resume(whose.tenant_id, conversation_id, whose.caller, reason)
        return ConversationDetail.of_detail(detail, utcnow())


def _reason(data: SwitchRequest | None) -> str | None:
    reason = (data.reason or "").strip() if data is not None else ""
    if reason:
        check_text("reason", reason)
    return reason or None


class TenantConversations(ConversationEndpoints):
    path = PREFIX
    tags = ["conversations"]
    security = BEARER
    dependencies = {"whose": Provide(tenant_scope)}


class PlatformConversations(ConversationEndpoints):
    """The platform's own number's conversations."""

    path = f"{INTERNAL_PREFIX}/conversations"
    tags = ["internal"]
    guards = [require_internal_key]
    security = INTERNAL
    dependencies = {"whose": Provide(internal_scope, sync_to_thread=False)}


#: What the backend role registers (see ``app.handlers_for``).
CONVERSATION_HANDLERS: list[Any] = [TenantConversations, PlatformConversations]
