"""Wire shapes of the conversations API (``/api/v1/conversations``, and the internal API's
``/api/v1/internal/conversations`` for the platform's own number): msgspec Structs, camelCase.

A message's ``id`` is ``in_<n>`` (the customer's) or ``out_<n>`` (ours: the bot's, the shop's
through this API, the owner's from the WhatsApp Business app). Nothing here carries Meta's raw
payload or a credential.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Schema

from changarrito.domain import inbox
from changarrito.domain.conversations import window_open
from changarrito.entrypoints.http.schemas import Wire

MessageText = Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
Reason = Annotated[str, msgspec.Meta(max_length=500)]


# --- requests -------------------------------------------------------------------------------


class TextMessageCreate(
    Wire, frozen=True, forbid_unknown_fields=True, tag_field="type", tag="text"
):
    """A text the shop sends as itself (1 to 4,096 characters), inside the customer-service
    window only. ``handoff`` true also gives the conversation to a person (the bot stops
    answering it) in the same call."""

    text: MessageText
    handoff: bool = False


class ImageMessageCreate(
    Wire, frozen=True, forbid_unknown_fields=True, tag_field="type", tag="image"
):
    """A picture (JPEG or PNG) the shop sends by ``link``: a public ``https://`` URL with a
    host name (no IP address, no ``localhost`` or ``.local``/``.internal`` name, no user
    name or password, no port but 443), up to 2,048 characters; Meta fetches it. ``caption``
    up to 1,024 characters. To upload the file itself, send ``multipart/form-data``."""

    link: str
    caption: str | None = None
    handoff: bool = False


class DocumentMessageCreate(
    Wire, frozen=True, forbid_unknown_fields=True, tag_field="type", tag="document"
):
    """A document (PDF, plain text, Word, Excel, PowerPoint) the shop sends by ``link``
    (the same rules as a picture's), with an optional ``caption`` (up to 1,024 characters)
    and the ``filename`` the customer sees: a plain name (no ``/`` or ``\\``), up to 240
    characters."""

    link: str
    caption: str | None = None
    filename: str | None = None
    handoff: bool = False


TemplateName = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
TemplateLanguage = Annotated[str, msgspec.Meta(min_length=2, max_length=15)]


class TemplateMessageCreate(
    Wire, frozen=True, forbid_unknown_fields=True, tag_field="type", tag="template"
):
    """An approved template of the number's account (``GET /api/v1/templates``), sent at
    any time, inside the window or not. ``parameters`` fill it:

    - a list: the body's, in order (``["Ana", "$150.00 MXN"]``);
    - or an object: ``header`` (a string, or ``{"type": "image" | "video" | "document",
      "link" | "id", "filename"?}``, or ``{"type": "location", "latitude", "longitude",
      "name"?, "address"?}``), ``body`` (a list, or an object by name for a template with
      named parameters), ``buttons`` (``[{"index": 0, "text" | "payload" | "couponCode"}]``).

    A body value is a string, or ``{"type": "currency", "fallbackValue", "code",
    "amount1000"}`` or ``{"type": "dateTime", "fallbackValue"}``. Missing or extra values, a
    template that is not approved, or a category the operator does not allow are refused
    before anything reaches Meta."""

    name: TemplateName
    language: TemplateLanguage
    parameters: Any = None
    handoff: bool = False


class MessageStart(Wire, frozen=True, forbid_unknown_fields=True):
    """The first message to a customer: ``to`` a phone number in international format
    (``+5215512345678``) or a business-scoped user id (``US.1349...``), sent as an approved
    template (``type`` ``template``) from the tenant's own number."""

    to: Annotated[str, msgspec.Meta(min_length=1, max_length=140)]
    type: Literal["template"]
    name: TemplateName
    language: TemplateLanguage
    parameters: Any = None


MessageCreate = (
    TextMessageCreate | ImageMessageCreate | DocumentMessageCreate | TemplateMessageCreate
)


#: Fields of a ``multipart/form-data`` upload (``conversations.read_upload`` reads them).
UPLOAD_FIELDS = ("type", "file", "caption", "filename", "handoff")

#: The OpenAPI schema of an upload (msgspec has no Struct for a file part).
UPLOAD_FORM = Schema(
    type=OpenAPIType.OBJECT,
    description="A picture or document uploaded to send (each field at most once; the "
    "service's request body limit, 3 MiB, is the upload's limit: send a larger file by "
    "`link`). The file's bytes must be what its part's `Content-Type` says (JPEG, PNG and "
    "PDF by their signature; a generic `application/octet-stream` is read from the bytes); "
    "pictures: `image/jpeg`, `image/png`; documents: `application/pdf`, `text/plain`, Word, "
    "Excel, PowerPoint.",
    required=["type", "file"],
    properties={
        "type": Schema(type=OpenAPIType.STRING, enum=["image", "document"]),
        "file": Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY),
        "caption": Schema(type=OpenAPIType.STRING, description="Up to 1,024 characters."),
        "filename": Schema(
            type=OpenAPIType.STRING,
            description="Documents only: the name the customer sees (default: the uploaded "
            "file's own), a plain name up to 240 characters ending as its type does.",
        ),
        "handoff": Schema(
            type=OpenAPIType.BOOLEAN, description="`true`: a person takes the conversation."
        ),
    },
)


class SwitchRequest(Wire, frozen=True, forbid_unknown_fields=True):
    """Why (optional; recorded with the switch)."""

    reason: Reason | None = None


# --- responses ------------------------------------------------------------------------------


class ConversationContact(Wire, frozen=True):
    """The customer: WhatsApp profile name, phone (digits, as WhatsApp gives them) and
    business-scoped user id; any may be missing (never both phone and user id)."""

    name: str | None
    phone: str | None
    user_id: str | None


class Conversation(Wire, frozen=True):
    """A conversation with one customer of one business number. ``state``: ``bot`` (the
    assistant answers), ``human`` (a person does; the bot is silent), ``closed``.
    ``windowOpen``: whether a free-form message may be sent now (until
    ``windowOpenUntil``, 24 hours after the customer's last message)."""

    id: str
    state: str
    contact: ConversationContact
    phone_number_id: str
    window_open_until: datetime | None
    window_open: bool
    last_inbound_at: datetime | None
    last_activity_at: datetime
    state_changed_at: datetime
    state_changed_by: str
    created_at: datetime

    @classmethod
    def fields_of(cls, c: inbox.Conversation, now: datetime) -> dict[str, Any]:
        return {
            "id": str(c.id),
            "state": c.state.value,
            "contact": ConversationContact(
                name=c.contact_name, phone=c.contact_phone, user_id=c.contact_user_id
            ),
            "phone_number_id": c.phone_number_id,
            "window_open_until": c.window_open_until,
            "window_open": window_open(c.window_open_until, now),
            "last_inbound_at": c.last_inbound_at,
            "last_activity_at": c.last_activity_at,
            "state_changed_at": c.state_changed_at,
            "state_changed_by": c.state_changed_by,
            "created_at": c.created_at,
        }

    @classmethod
    def of(cls, c: inbox.Conversation, now: datetime) -> Conversation:
        return cls(**cls.fields_of(c, now))


class ConversationSwitch(Wire, frozen=True):
    """A change of state: from, to, who (``api:<subject>``, ``internal``, ``owner:<phone>``,
    ``model``, ``idle``, ``customer``), why, when."""

    from_: str = msgspec.field(name="from")
    to: str
    actor: str
    reason: str | None
    at: datetime


class ConversationDetail(Conversation, frozen=True):
    """A conversation with its latest switches (up to 20, newest first)."""

    switches: list[ConversationSwitch]

    @classmethod
    def of_detail(cls, d: inbox.ConversationDetail, now: datetime) -> ConversationDetail:
        switches = [
            ConversationSwitch(
                from_=s.from_state, to=s.to_state, actor=s.actor, reason=s.reason, at=s.at
            )
            for s in d.switches
        ]
        return cls(**cls.fields_of(d.conversation, now), switches=switches)


class ConversationPage(Wire, frozen=True):
    """Newest activity first; pass ``nextCursor`` as ``cursor`` for the next page (``null``:
    this is the last one)."""

    data: list[Conversation]
    next_cursor: str | None


class MessageMedia(Wire, frozen=True):
    """A message's picture, voice note or document. ``type``: ``image``, ``document``,
    ``audio``, ``video``, ``sticker``.

    The shop's (outbound): ``link`` when sent by link, ``uploaded`` true when the file was
    uploaded, ``filename`` (documents), ``mimeType`` (uploads) and ``caption`` (the message's
    text, ``null`` without one). The customer's (inbound): what WhatsApp said it is
    (``mimeType``, ``size`` in bytes, ``filename``) and what became of it: ``state``
    ``received`` (not used yet), ``transcribed`` (the text is its transcript), ``read`` (the
    assistant saw it), ``unread`` (the assistant cannot read this kind) or ``failed``, with
    ``reason`` (in words, for the shop) and ``reasonCode`` (``too-large``,
    ``type-not-allowed``, ``hash-mismatch``, ``expired``, ...) when it could not be used.
    Fields of the other direction are ``null``."""

    type: str
    mime_type: str | None
    filename: str | None
    caption: str | None
    link: str | None
    uploaded: bool | None
    size: int | None
    state: str | None
    reason_code: str | None
    reason: str | None

    @classmethod
    def of(cls, m: inbox.Message) -> MessageMedia | None:
        media = m.media
        if media is None:
            return None
        outbound = m.direction == "outbound"
        return cls(
            type=media.kind,
            mime_type=media.mime_type,
            filename=media.filename,
            caption=(m.text or None) if outbound else None,
            link=media.link,
            uploaded=media.uploaded if outbound else None,
            size=media.size,
            state=media.state,
            reason_code=media.reason_code,
            reason=media.reason,
        )


class MessageTemplate(Wire, frozen=True):
    """The approved template an outbound message is: its name, language and category when
    sent, whether the window was closed, and the purpose it was sent for (``paymentReceived``,
    ``handoffReply``...; ``null``: the shop chose it)."""

    name: str
    language: str
    category: str | None
    outside_window: bool
    purpose: str | None

    @classmethod
    def of(cls, m: inbox.Message) -> MessageTemplate | None:
        t = m.template
        if t is None:
            return None
        return cls(t.name, t.language, t.category, t.outside_window, t.purpose)


class MessageError(Wire, frozen=True):
    """Why Meta did not take (or deliver) it: Graph's error code and title."""

    code: int | None
    title: str | None


class ConversationMessage(Wire, frozen=True):
    """One message. ``author``: ``customer`` (inbound), ``bot``, ``shop`` (sent through this
    API) or ``owner`` (from the WhatsApp Business app). ``at``: when we received it
    (inbound) or recorded it (outbound). ``status``: inbound, its place in the answering
    queue (``pending``, ``processing``, ``answered``, ``ignored``, ``failed``, ``dead``; a
    message answered together with another shows that one's, and ``answeredWith`` names
    it); outbound, its delivery (``queued``, ``sent``, ``delivered``, ``read``, ``played``,
    ``failed``, with ``error``). ``media``: the picture, voice note or document of an
    ``image``, ``document``, ``audio``, ``video`` or ``sticker`` message (``null`` for text,
    and for a customer's item not looked at yet). ``template``: the template a ``template``
    message is (``text`` then what the customer reads)."""

    id: str
    direction: Literal["inbound", "outbound"]
    author: str
    type: str
    text: str | None
    wamid: str | None
    at: datetime
    status: str
    answered_with: str | None
    error: MessageError | None
    edited: bool
    deleted: bool
    media: MessageMedia | None
    template: MessageTemplate | None = None

    @classmethod
    def of(cls, m: inbox.Message) -> ConversationMessage:
        inbound = m.direction == "inbound"
        failed = not inbound and (m.status == "failed" or m.error_code is not None)
        return cls(
            id=f"{'in' if inbound else 'out'}_{m.row_id}",
            direction="inbound" if inbound else "outbound",
            author=m.author,
            type=m.type,
            text=m.text,
            wamid=m.wamid,
            at=m.at,
            status=m.status,
            answered_with=f"in_{m.answered_with}" if m.answered_with is not None else None,
            error=MessageError(code=m.error_code, title=m.error_title) if failed else None,
            edited=m.edited,
            deleted=m.deleted,
            media=MessageMedia.of(m),
            template=MessageTemplate.of(m),
        )


class StartedConversation(Wire, frozen=True):
    """The conversation written to first, and the template message sent."""

    conversation: Conversation
    message: ConversationMessage


class MessagePage(Wire, frozen=True):
    """Newest first; pass ``nextCursor`` as ``cursor`` for older ones (``null``: no more)."""

    data: list[ConversationMessage]
    next_cursor: str | None
