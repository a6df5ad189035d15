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

``POST /api/v1/messages`` (and ``/api/v1/internal/messages``) writes first to a customer with
an approved template, filing the conversation when new.

``POST .../messages`` takes JSON (a text, a template, or a picture or document by ``link``) up
to 64 KiB,
or a ``multipart/form-data`` upload of a picture or document (``read_upload``) up to the app's
request body limit (``app.MAX_BODY_BYTES``, 3 MiB, below WhatsApp's own 5 MB and 100 MB: past
it a 413 ``body-too-large`` says to send the file by link): the endpoint sets no limit of its
own, so the app's holds; the others with a body take 64 KiB. One handler reads both: its
request class (``SendRequest``) gives no JSON for a multipart body, which the handler then
reads as a form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal
from uuid import UUID

from litestar import Controller, Request, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.exceptions import ValidationException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody
from litestar.params import FromPath, JSONBody, QueryParameter

from changarrito.adapters.internal_api import INTERNAL_PREFIX
from changarrito.adapters.jwt_auth import TenantPrincipal
from changarrito.domain.conversations import ConversationState
from changarrito.domain.inbox import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Caller,
    ConversationKey,
    Filters,
    Inbox,
    Message,
    MessageKey,
    TemplateRequest,
)
from changarrito.domain.media import MAX_BYTES, OutgoingMedia
from changarrito.domain.model import utcnow
from changarrito.domain.outgoing import MediaUpload, check_text
from changarrito.domain.template_send import arguments_from_json
from changarrito.entrypoints.http import cursors
from changarrito.entrypoints.http.auth import BEARER, INTERNAL, require_internal_key
from changarrito.entrypoints.http.conversation_schemas import (
    UPLOAD_FIELDS,
    UPLOAD_FORM,
    Conversation,
    ConversationDetail,
    ConversationMessage,
    ConversationPage,
    DocumentMessageCreate,
    ImageMessageCreate,
    MessageCreate,
    MessagePage,
    MessageStart,
    StartedConversation,
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
        "a template message can be sent (a text goes as the `handoffReply` template when one "
        "is configured); `template-not-sendable`: the template is not approved (paused, "
        "rejected...); `template-category-not-allowed`: the operator does not allow its "
        "category; `number-not-owned`, `not-configured`, `no-own-whatsapp`: the number "
        "cannot send.",
        media_type=PROBLEM_JSON,
        generate_examples=False,
    )
}
READ = problem_responses(400, 401, 404, 503)
LIST = problem_responses(400, 401, 422, 503)
SEND = {**problem_responses(400, 401, 404, 413, 422, 502, 503), **WINDOW_CLOSED}
SWITCH = problem_responses(400, 401, 404, 413, 503)


MULTIPART = RequestEncodingType.MULTI_PART.value
#: What a 413 says of JSON; an upload's limit is the app's (``SendRequest.upload_limit``).
JSON_TOO_LARGE = f"A JSON message is at most {MAX_BODY_BYTES // 1024} KiB."
#: Were the app to set no body limit: WhatsApp's largest file, and room for the form.
UPLOAD_FALLBACK_BYTES = MAX_BYTES["document"] + MAX_BODY_BYTES


def upload_too_large(limit: int) -> str:
    return (
        f"An upload is at most {limit / (1024 * 1024):.3g} MiB (this service's request body "
        "limit, below WhatsApp's own): send a larger picture or document by its link."
    )


class SendRequest(Request[Any, Any, Any]):
    """The send endpoint's request: JSON up to 64 KiB, or a ``multipart/form-data`` upload
    up to the app's limit, each over its limit a 413 that says which; a multipart body is no
    JSON (``json()`` is ``None``: the handler reads ``form()``)."""

    @property
    def is_upload(self) -> bool:
        return self.content_type[0] == MULTIPART

    @property
    def upload_limit(self) -> int:
        """The app's request body limit (the endpoint sets none of its own)."""
        return self.route_handler.resolve_request_max_body_size() or UPLOAD_FALLBACK_BYTES

    async def body(self) -> bytes:
        limit = self.upload_limit if self.is_upload else MAX_BODY_BYTES
        detail = upload_too_large(limit) if self.is_upload else JSON_TOO_LARGE
        if (self.content_length or 0) > limit:
            raise RequestEntityTooLarge(detail=detail)
        try:
            body = await super().body()
        except RequestEntityTooLarge:
            raise RequestEntityTooLarge(detail=detail) from None
        if len(body) > limit:
            raise RequestEntityTooLarge(detail=detail)
        return body

    async def json(self) -> Any:
        if self.is_upload:
            return None
        return await super().json()


@dataclass
class SendOperation(Operation):
    """The send endpoint's OpenAPI operation: its JSON body, and the multipart upload."""

    def __post_init__(self) -> None:
        if isinstance(self.request_body, RequestBody):
            self.request_body.content[MULTIPART] = OpenAPIMediaType(schema=UPLOAD_FORM)


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
    """The endpoints both APIs share; a subclass says whose conversations (``whose``). Each
    endpoint with a body says how big it may be (the send: the app's limit, for uploads)."""

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
        summary="Send a text, picture, document or template as the shop",
        request_class=SendRequest,
        operation_class=SendOperation,
    )
    async def send_message(
        self,
        whose: NamedDependency[Scope],
        inbox: NamedDependency[Inbox],
        conversation_id: FromPath[UUID],
        request: Request[Any, Any, Any],
        data: JSONBody[MessageCreate | None] = None,
    ) -> ConversationMessage:
        """Sent from the conversation's number with its WhatsApp credential, recorded as
        the shop's. A text, picture or document goes inside the 24-hour window only; outside
        it a 409 ``window-closed`` (a text goes as the ``handoffReply`` template when the
        shop configured one). A ``template`` goes at any time, checked first against the
        synced template: ``template-not-found`` (404), ``template-not-sendable`` and
        ``template-category-not-allowed`` (409), ``template-parameters-invalid`` (422, each
        missing or extra value named).

        A picture or document goes by ``link`` (JSON) or uploaded (``multipart/form-data``:
        ``type``, ``file``, ``caption``, ``filename``, ``handoff``); a link, caption, file
        name or file that cannot be sent is a 422 naming why (``media-link-refused``,
        ``caption-too-long``, ``media-filename-refused``, ``media-type-not-allowed``,
        ``media-content-mismatch``, ``media-too-large``), and nothing is sent."""
        sent: Message
        if data is None:
            if not isinstance(request, SendRequest) or not request.is_upload:
                raise ValidationException("A message body is required.")
            upload, handoff = await read_upload(request)
            sent = await inbox.send_media(
                whose.tenant_id, conversation_id, upload, whose.caller, handoff=handoff
            )
        elif isinstance(data, TextMessageCreate):
            sent = await inbox.send_text(
                whose.tenant_id, conversation_id, data.text, whose.caller, handoff=data.handoff
            )
        elif isinstance(data, ImageMessageCreate | DocumentMessageCreate):
            filename = data.filename if isinstance(data, DocumentMessageCreate) else None
            kind: Literal["image", "document"] = (
                "image" if isinstance(data, ImageMessageCreate) else "document"
            )
            media = OutgoingMedia(kind, link=data.link, caption=data.caption, filename=filename)
            sent = await inbox.send_media(
                whose.tenant_id, conversation_id, media, whose.caller, handoff=data.handoff
            )
        else:
            arguments = arguments_from_json(data.parameters)
            template = TemplateRequest(data.name, data.language, arguments)
            sent = await inbox.send_template(
                whose.tenant_id, conversation_id, template, whose.caller, handoff=data.handoff
            )
        return ConversationMessage.of(sent)

    @post(
        "/{conversation_id:uuid}/handoff",
        status_code=200,
        responses=SWITCH,
        summary="A person takes the conversation over (the bot stops answering it)",
        request_max_body_size=MAX_BODY_BYTES,
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
        request_max_body_size=MAX_BODY_BYTES,
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


async def read_upload(request: Request[Any, Any, Any]) -> tuple[MediaUpload, bool]:
    """The upload of a ``multipart/form-data`` send, and its ``handoff``. Every field at most
    once, none but ``UPLOAD_FIELDS`` (``filename`` only for a document), ``file`` a file;
    otherwise a 400 ``invalid-request`` naming the field. The file's bytes are checked by
    the inbox (``outgoing.check_upload``)."""
    form = await request.form()
    problems: list[dict[str, str]] = []
    values: dict[str, Any] = {}
    for name, value in form.multi_items():
        if name not in UPLOAD_FIELDS:
            problems.append({"key": name, "message": "is not a field of an upload"})
        elif name in values:
            problems.append({"key": name, "message": "is given more than once"})
        values[name] = value
    kind, file = values.get("type"), values.get("file")
    if kind not in ("image", "document"):
        problems.append({"key": "type", "message": "must be image or document"})
    if not isinstance(file, UploadFile):
        problems.append({"key": "file", "message": "must be a file"})
    text_fields = [n for n in ("type", "caption", "filename", "handoff") if n in values]
    for name in text_fields:
        if not isinstance(values[name], str):
            problems.append({"key": name, "message": "must be text, not a file"})
    if "filename" in values and kind == "image":
        problems.append({"key": "filename", "message": "is only for documents"})
    handoff = values.get("handoff", "false")
    if handoff not in ("true", "false"):
        problems.append({"key": "handoff", "message": "must be true or false"})
    try:
        if problems or not isinstance(file, UploadFile):
            raise ValidationException("The upload is malformed.", extra=problems)
        content = await file.read()
    finally:
        for _, value in form.multi_items():
            if isinstance(value, UploadFile):
                await value.close()
    upload = MediaUpload(
        kind="image" if kind == "image" else "document",
        content=content,
        declared_type=file.content_type,
        file_name=file.filename,
        caption=values.get("caption"),
        filename=values.get("filename"),
    )
    return upload, handoff == "true"


def _reason(data: SwitchRequest | None) -> str | None:
    reason = (data.reason or "").strip() if data is not None else ""
    if reason:
        check_text("reason", reason)
    return reason or None


class MessageStarts(Controller):
    """``POST /api/v1/messages``: write first to a customer, with a template."""

    @post(
        "/",
        status_code=201,
        responses=SEND,
        summary="Start a conversation with a template",
        request_max_body_size=MAX_BODY_BYTES,
    )
    async def start_conversation(
        self,
        whose: NamedDependency[Scope],
        inbox: NamedDependency[Inbox],
        data: JSONBody[MessageStart],
    ) -> StartedConversation:
        """Sends an approved template to ``to`` (a phone in international format, or a
        business-scoped user id) from the tenant's own number, filing the contact and its
        conversation when new (the window stays closed until the customer writes). The
        template is checked as for ``POST /api/v1/conversations/{id}/messages``; a tenant on
        the platform's number has no number of its own to write from (409
        ``no-own-whatsapp``)."""
        request = TemplateRequest(data.name, data.language, arguments_from_json(data.parameters))
        conversation, message = await inbox.start(whose.tenant_id, data.to, request, whose.caller)
        return StartedConversation(
            conversation=Conversation.of(conversation, utcnow()),
            message=ConversationMessage.of(message),
        )


class TenantMessageStarts(MessageStarts):
    path = "/api/v1/messages"
    tags = ["conversations"]
    security = BEARER
    dependencies = {"whose": Provide(tenant_scope)}


class PlatformMessageStarts(MessageStarts):
    """The same from the platform's own number."""

    path = f"{INTERNAL_PREFIX}/messages"
    tags = ["internal"]
    guards = [require_internal_key]
    security = INTERNAL
    dependencies = {"whose": Provide(internal_scope, sync_to_thread=False)}


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
CONVERSATION_HANDLERS: list[Any] = [
    TenantConversations,
    PlatformConversations,
    TenantMessageStarts,
    PlatformMessageStarts,
]
