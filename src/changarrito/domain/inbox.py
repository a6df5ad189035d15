"""The inbox: a shop reads its conversations, writes to a customer, takes over and hands back.

Pure: its ports are the Protocols below (``ConversationStore``: the Postgres adapter
``adapters/postgres/conversations.py``; ``Senders`` and ``WhatsAppSender``: the credential
resolver and the Graph client the pipeline uses). Every call is scoped: ``tenant_id`` is the
caller's tenant, ``None`` the platform's own number (the internal API), and a conversation of
another scope is simply not found (never "forbidden": that would tell it exists).

Sending follows the pipeline's rules: from the conversation's number with the credential
that replies from it; recorded *before* it is sent (no wamid yet), its wamid recorded as soon
as Meta accepts it, and a refusal recorded on the row (``failed``, with Meta's error) before
the error goes back to the caller. What may go depends on the customer-service window
(``conversations.window_open``, by Meta's timestamp of the customer's last message):

- a text (``send_text``) inside it; outside it, the shop's ``handoffReply`` template when one
  is configured (``templates`` of the WhatsApp integration; the operator's for the platform's
  number), else ``WindowClosed`` (409 ``window-closed``);
- a picture or document (``send_media``) inside it only;
- an approved template (``send_template``, ``start``) at any time, checked against the synced
  template first (``template_send.prepare``: status, category, parameters);
- a message for a purpose (``notify``: a payment notice) as text inside the window, as the
  purpose's template outside it, once per ``idempotency_key``. Graph's 131047 (re-engagement)
  on a text we thought inside the window (Meta's known false positive) is answered by
  sending the purpose's template instead.

What a picture or document the shop sends may be is checked first (``outgoing.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from uuid import UUID

from changarrito.domain.conversations import ConversationState, send_as, window_open
from changarrito.domain.errors import (
    Conflict,
    NotConfigured,
    NotFound,
    ProviderError,
    ValidationFailed,
)
from changarrito.domain.errors import UnknownPhoneNumber as _UnknownPhoneNumber
from changarrito.domain.media import OutgoingMedia, filename_for
from changarrito.domain.model import Resolved, Source, utcnow
from changarrito.domain.outgoing import (
    MediaUpload,
    check_caption,
    check_filename,
    check_link,
    check_text,
    check_upload,
)
from changarrito.domain.ports import Resolver, TemplateStore, WhatsAppSender
from changarrito.domain.template_send import (
    MappedTemplate,
    PreparedTemplate,
    TemplateArguments,
    TemplateNotFound,
    arguments_in_order,
    mapping_from_json,
    prepare,
)
from changarrito.domain.template_sync import own_whatsapp
from changarrito.domain.templates import Template, TemplateFilters

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


class NoTemplateForPurpose(WindowClosed):
    """The 24-hour customer-service window is closed and no template is configured for this
    purpose (``templates`` of PUT /api/v1/integrations/whatsapp), so nothing can be sent."""


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
class SentTemplate:
    """What is recorded of an approved template sent (the outbound row's ``template_*``):
    its name, language and category as synced, whether the window was closed, and the
    purpose it was sent for (``None``: the shop chose it)."""

    name: str
    language: str
    category: str | None = None
    outside_window: bool = False
    purpose: str | None = None


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
    template: SentTemplate | None = None


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
        *,
        template: SentTemplate | None = None,
        author: str = "shop",
        idempotency_key: str | None = None,
        purpose: str | None = None,
    ) -> Message | None:
        """Records a message about to be sent (no wamid yet; with ``media`` a picture or
        document, ``text`` its caption or ''; with ``template`` an approved template, ``text``
        what the customer reads) and, for the ``shop`` author, the person's activity on the
        conversation; ``None`` when the conversation is gone. With an ``idempotency_key``:
        the row an earlier attempt recorded under it, taken again, or as it is when Meta
        accepted it already (its wamid set: not to be sent again). ``purpose``: what a text
        was sent for (a template's is its own)."""
        ...

    async def open_conversation(
        self, tenant_id: UUID | None, phone_number_id: str, phone: str | None, user_id: str | None
    ) -> UUID | None:
        """The conversation with the customer of that phone or business-scoped user id on
        the number (filed now when new, its window closed); ``None`` when neither is given."""
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
class TemplateRequest:
    """A template the shop sends: its ``name`` and ``language`` as synced, and its values."""

    name: str
    language: str
    arguments: TemplateArguments = field(default_factory=TemplateArguments)


@dataclass(frozen=True, slots=True)
class TemplatePolicy:
    """The operator's rules for templates: the categories a tenant's own number may send
    (``None``: any) and the platform's number may send, and the operator's purpose mapping
    of the platform's templates (``CHANGARRITO_WHATSAPP_TEMPLATES``)."""

    tenant_categories: frozenset[str] | None = None
    platform_categories: frozenset[str] | None = frozenset({"UTILITY"})
    platform_templates: Mapping[str, MappedTemplate] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Notice:
    """A message sent for a purpose, once: ``text`` inside the window, the purpose's
    template filled with ``values`` (``customerName``, ``amount``...) outside it."""

    tenant_id: UUID | None
    conversation_id: UUID
    purpose: str
    text: str
    values: Mapping[str, str]
    idempotency_key: str
    ref: str | None = None


#: Graph's code for a free-form message outside the window (PROVIDERS.md 1.11).
REENGAGEMENT = "131047"
#: A business-scoped user id (``US.13491208655302741918``), as Graph's ``recipient`` takes it.
BSUID = re.compile(r"^[A-Z]{2}\.[A-Za-z0-9]{1,128}$")
#: What ``customerName`` is when the contact has no name.
NAMELESS_CUSTOMER = "cliente"


@dataclass(frozen=True, slots=True)
class _Ready:
    conversation: Conversation
    recipient: str
    token: str
    sender: Resolved
    now: datetime

    @property
    def window_until(self) -> datetime | None:
        return self.conversation.window_open_until

    @property
    def window_open(self) -> bool:
        return window_open(self.window_until, self.now)


def recipient_of(to: str) -> tuple[str | None, str | None]:
    """``to`` as (phone digits, business-scoped user id): ``+52 1 55-1234-5678`` is a phone,
    ``US.1349...`` a user id; anything else is a ``ValidationFailed``."""
    value = (to or "").strip()
    if BSUID.match(value):
        return None, value
    digits = "".join(c for c in value.removeprefix("+") if c not in " -().")
    if digits.isascii() and digits.isdigit() and 8 <= len(digits) <= 15:
        return digits, None
    problem = "must be a phone number in international format (+52...) or a business-scoped user id"
    raise ValidationFailed(f"to {problem}", errors=[("to", problem)])


class Inbox:
    def __init__(
        self,
        conversations: ConversationStore,
        senders: Resolver,
        whatsapp: WhatsAppSender,
        *,
        templates: TemplateStore | None = None,
        policy: TemplatePolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = conversations
        self.senders = senders
        self.whatsapp = whatsapp
        self.templates = templates
        self.policy = policy or TemplatePolicy()
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
        """Sends ``text`` as the shop: inside the window as it is, outside it as the
        ``handoffReply`` template (its ``text`` parameter the message) when one is
        configured, else ``WindowClosed``; ``handoff`` also gives the conversation to a
        person first (so the bot does not answer beside them)."""
        check_text("text", text, blank=False)
        ready = await self._ready(tenant_id, conversation_id, caller, handoff=handoff)
        mapped = self._mapped(ready.sender, "handoffReply")
        way = send_as(ready.window_until, ready.now, template=mapped is not None)
        if way == "text":
            return await self._free_text(ready, text, caller, "shop", None)
        if mapped is None:
            raise WindowClosed()
        values = {"customerName": _customer_name(ready), "text": text}
        return await self._by_template(ready, "handoffReply", mapped, values, caller, "shop", None)

    async def _free_text(
        self,
        ready: _Ready,
        text: str,
        caller: Caller,
        author: str,
        key: str | None,
        purpose: str | None = None,
    ) -> Message:
        recorded = await self._record(
            ready, text, caller, None, author=author, key=key, purpose=purpose
        )
        if recorded.wamid:
            return recorded
        try:
            wamids = await self.whatsapp.send_text(
                ready.conversation.phone_number_id, ready.token, ready.recipient, text, None
            )
        except ProviderError as exc:
            await self.store.shop_message_failed(recorded.row_id, _failure(exc))
            raise
        return await self.store.shop_message_sent(recorded.row_id, wamids[0])

    async def send_template(
        self,
        tenant_id: UUID | None,
        conversation_id: UUID,
        request: TemplateRequest,
        caller: Caller,
        *,
        handoff: bool = False,
    ) -> Message:
        """Sends an approved template of the number's account, at any time, once it is
        checked against the synced template (``TemplateNotFound``, ``TemplateNotSendable``,
        ``TemplateCategoryNotAllowed``, ``TemplateParametersInvalid``: before Graph)."""
        ready = await self._ready(tenant_id, conversation_id, caller, handoff=handoff)
        template = await self._template(ready.sender, request.name, request.language)
        prepared = self._prepare(ready.sender, template, request.arguments)
        return await self._send_prepared(ready, prepared, caller)

    async def start(
        self, tenant_id: UUID | None, to: str, request: TemplateRequest, caller: Caller
    ) -> tuple[Conversation, Message]:
        """Writes first to a customer (``to``: a phone or a business-scoped user id) from the
        tenant's own number, with an approved template: the conversation is found or filed
        (its window stays as it is) and the template sent as by ``send_template``."""
        phone, user_id = recipient_of(to)
        number = await self._own_number(tenant_id)
        sender = await self._sender_of(number, tenant_id)
        template = await self._template(sender, request.name, request.language)
        prepared = self._prepare(sender, template, request.arguments)  # before anything is filed
        conversation_id = await self.store.open_conversation(tenant_id, number, phone, user_id)
        if conversation_id is None:
            raise ConversationNotFound()
        ready = await self._ready(tenant_id, conversation_id, caller, handoff=False)
        message = await self._send_prepared(ready, prepared, caller)
        return await self.get(tenant_id, conversation_id), message

    async def notify(self, notice: Notice) -> Message:
        """Sends ``notice`` once (see the module): the message as sent, or as an earlier
        attempt sent it. ``NoTemplateForPurpose`` when the window is closed and the purpose
        has no template."""
        caller = Caller(actor="notice", ref=notice.ref)
        ready = await self._ready(notice.tenant_id, notice.conversation_id, caller, handoff=False)
        key, purpose = notice.idempotency_key, notice.purpose
        mapped = self._mapped(ready.sender, purpose)
        way = send_as(ready.window_until, ready.now, template=mapped is not None)
        if way == "text":
            try:
                return await self._free_text(ready, notice.text, caller, "bot", key, purpose)
            except ProviderError as exc:
                if str(exc.provider_code) != REENGAGEMENT or mapped is None:
                    raise
        if mapped is None:
            raise NoTemplateForPurpose(
                "The customer last wrote more than 24 hours ago and no "
                f"{purpose} template is configured, so nothing was sent."
            )
        values = {"customerName": _customer_name(ready), **notice.values}
        return await self._by_template(ready, purpose, mapped, values, caller, "bot", key)

    async def _by_template(
        self,
        ready: _Ready,
        purpose: str,
        mapped: MappedTemplate,
        values: Mapping[str, str],
        caller: Caller,
        author: str,
        key: str | None,
    ) -> Message:
        template = await self._template(ready.sender, mapped.name, mapped.language)
        arguments = arguments_in_order(template, [values.get(f, "") for f in mapped.parameters])
        prepared = self._prepare(ready.sender, template, arguments)
        return await self._send_prepared(
            ready, prepared, caller, purpose=purpose, author=author, key=key
        )

    async def _send_prepared(
        self,
        ready: _Ready,
        prepared: PreparedTemplate,
        caller: Caller,
        *,
        purpose: str | None = None,
        author: str = "shop",
        key: str | None = None,
    ) -> Message:
        sent = SentTemplate(
            prepared.name, prepared.language, prepared.category, not ready.window_open, purpose
        )
        recorded = await self._record(
            ready, prepared.text, caller, None, template=sent, author=author, key=key
        )
        if recorded.wamid:
            return recorded
        try:
            wamid = await self.whatsapp.send_template(
                ready.conversation.phone_number_id,
                ready.token,
                ready.recipient,
                prepared.name,
                prepared.language,
                prepared.components,
            )
        except ProviderError as exc:
            await self.store.shop_message_failed(recorded.row_id, _failure(exc))
            raise
        return await self.store.shop_message_sent(recorded.row_id, wamid)

    def _prepare(
        self, sender: Resolved, template: Template, arguments: TemplateArguments
    ) -> PreparedTemplate:
        own = sender.source is Source.TENANT
        policy = self.policy
        allowed = policy.tenant_categories if own else policy.platform_categories
        return prepare(template, arguments, allowed_categories=allowed)

    def _mapped(self, sender: Resolved, purpose: str) -> MappedTemplate | None:
        """The template configured for ``purpose`` on the number: the tenant's own mapping
        for its own number, the operator's for the platform's."""
        if sender.source is not Source.TENANT:
            return self.policy.platform_templates.get(purpose)
        try:
            return mapping_from_json(sender.config.get("templates")).get(purpose)
        except ValidationFailed:  # stored before a rule changed: as if none
            return None

    async def _template(self, sender: Resolved, name: str, language: str) -> Template:
        """The synced template of the number's account (the tenant's own, or the
        platform's) with this name and language."""
        if self.templates is None:
            raise NotConfigured("templates need the PostgreSQL store")
        owner = sender.tenant_id if sender.source is Source.TENANT else None
        listed = await self.templates.templates(owner, TemplateFilters(name=name), None, 100)
        found = next((t for t in listed if t.language == language), None)
        if found is None:
            raise TemplateNotFound(
                f"No synced template {name!r} in language {language!r}: sync the templates "
                "(POST /api/v1/templates/sync) or check the name and language."
            )
        return found

    async def _own_number(self, tenant_id: UUID | None) -> str:
        """The number a tenant writes first from: its own (``NoOwnWhatsApp`` for a tenant on
        the platform's number); the platform's for ``None``."""
        config, _ = await own_whatsapp(self.senders, tenant_id)
        number = config.get("phoneNumberId")
        if not number:
            raise NotConfigured("the WhatsApp credential names no phoneNumberId")
        return str(number)

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
        if not ready.window_open:
            raise WindowClosed()
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
        """The conversation, its recipient, the credential its number sends with and
        whether its window is open (and, with ``handoff``, the conversation given to a
        person)."""
        conversation = await self.get(tenant_id, conversation_id)
        recipient = conversation.recipient
        if not recipient:
            raise Conflict("the conversation's contact has neither a phone nor a user id")
        sender = await self._sender_of(conversation.phone_number_id, conversation.tenant_id)
        token = sender.secrets.get("accessToken")
        if not token:
            raise NotConfigured("the number's WhatsApp credential has no access token")
        if handoff:
            await self._switch(tenant_id, conversation_id, ConversationState.HUMAN, caller, None)
        return _Ready(conversation, recipient, token, sender, self.clock())

    async def _sender_of(self, phone_number_id: str, tenant_id: UUID | None) -> Resolved:
        try:
            sender = await self.senders.sender(phone_number_id)
        except _UnknownPhoneNumber as exc:
            raise NumberNotOwned() from exc
        if sender.tenant_id != tenant_id:
            raise NumberNotOwned()
        return sender

    async def _record(
        self,
        ready: _Ready,
        text: str,
        caller: Caller,
        media: SentMedia | None,
        *,
        template: SentTemplate | None = None,
        author: str = "shop",
        key: str | None = None,
        purpose: str | None = None,
    ) -> Message:
        recorded = await self.store.record_shop_message(
            ready.conversation,
            ready.recipient,
            text,
            caller.ref,
            media,
            template=template,
            author=author,
            idempotency_key=key,
            purpose=purpose,
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


def _customer_name(ready: _Ready) -> str:
    name = (ready.conversation.contact_name or "").strip()
    return " ".join(name.split()) or NAMELESS_CUSTOMER


def _failure(exc: ProviderError) -> FailedSend:
    code = exc.provider_code
    number = int(code) if code is not None and str(code).isdigit() else None
    if number is not None and number >= 2**31:  # the column is an integer
        number = None
    return FailedSend(code=number, title=exc.message[:500], details=exc.code)
