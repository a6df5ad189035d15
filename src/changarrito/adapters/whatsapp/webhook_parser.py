"""Decoding Meta's WhatsApp webhook into the domain's records.

``parse(body)`` decodes a POST body once, or raises ``InvalidWebhook`` (a 400). Decoding is
lenient where Meta may evolve: unknown fields are skipped, unknown message types and fields are
kept (as their raw JSON), every member but the ids is optional, and numbers that Meta might
send as text are accepted either way. ``to_intake`` turns the parsed webhook into the domain's
records once the business numbers are routed. Every message, status and event keeps its JSON
exactly as sent (``msgspec.Raw``), for the ``raw`` columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from changarrito.adapters.whatsapp.webhook_schema import (
    Contact,
    Echo,
    EchoValue,
    Error,
    Message,
    MessageStatus,
    Value,
    text_to_answer,
    unreadable,
)
from changarrito.domain.errors import InvalidWebhook
from changarrito.domain.whatsapp import (
    MAX_UPDATES,
    Customer,
    InboundMessage,
    Intake,
    OwnerEcho,
    RouteKind,
    StatusUpdate,
    WebhookEvent,
    meta_time,
)

OBJECT = "whatsapp_business_account"
MESSAGES_FIELD = "messages"
#: What the owner sends from the WhatsApp Business app on a coexistence number.
ECHOES_FIELD = "smb_message_echoes"


class _Change(msgspec.Struct):
    field: str
    value: msgspec.Raw = msgspec.Raw(b"null")


class _Entry(msgspec.Struct):
    id: str | None = None
    changes: list[_Change] = []


class _Webhook(msgspec.Struct):
    object: str
    entry: list[_Entry]


class _Probe(msgspec.Struct):
    """The business number of a change of another field, when its value names one."""

    metadata: dict[str, Any] | None = None


_webhook = msgspec.json.Decoder(_Webhook)
_value = msgspec.json.Decoder(Value)
_message = msgspec.json.Decoder(Message)
_status = msgspec.json.Decoder(MessageStatus)
_error = msgspec.json.Decoder(Error)
_probe = msgspec.json.Decoder(_Probe)
_echoes = msgspec.json.Decoder(EchoValue)
_echo = msgspec.json.Decoder(Echo)


@dataclass(frozen=True, slots=True)
class ParsedChange:
    field: str
    waba_id: str | None
    raw: bytes
    #: The decoded value of a ``messages`` change (``None`` for other fields).
    value: Value | None
    #: The business number it concerns (``value.metadata.phone_number_id``), when named.
    phone_number_id: str | None
    #: The decoded value of an ``smb_message_echoes`` change that names its number.
    echoes: EchoValue | None = None


@dataclass(frozen=True, slots=True)
class ParsedWebhook:
    changes: list[ParsedChange]

    @property
    def phone_number_ids(self) -> set[str]:
        return {c.phone_number_id for c in self.changes if c.phone_number_id is not None}

    @property
    def unnumbered_wabas(self) -> set[str | None]:
        """Business accounts of changes that name no number (their app decides the secret)."""
        return {c.waba_id for c in self.changes if c.phone_number_id is None}

    def accounts_of(self, phone_number_id: str) -> set[str | None]:
        """The business accounts (``entry[].id``) naming this number (their apps sign it)."""
        return {c.waba_id for c in self.changes if c.phone_number_id == phone_number_id}


def parse(body: bytes) -> ParsedWebhook:
    """The decoded webhook, or ``InvalidWebhook`` saying why it is not one."""
    body = _sanitised(body)
    try:
        hook = _webhook.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise InvalidWebhook(f"not a WhatsApp webhook: {_why(exc)}") from None
    if hook.object != OBJECT:
        raise InvalidWebhook(f"not a WhatsApp webhook: object is not {OBJECT!r}")
    changes: list[ParsedChange] = []
    updates = 0
    for entry in hook.entry:
        for change in entry.changes:
            raw = bytes(change.value)
            if change.field == MESSAGES_FIELD:
                try:
                    value = _value.decode(raw)
                except (msgspec.DecodeError, RecursionError) as exc:
                    raise InvalidWebhook(f"not a WhatsApp webhook: {_why(exc)}") from None
                pnid = value.metadata.phone_number_id if value.metadata else None
                updates += len(value.messages) + len(value.statuses) + len(value.errors)
                if (value.messages or value.statuses) and pnid is None:
                    raise InvalidWebhook(
                        "not a WhatsApp webhook: messages or statuses without "
                        "value.metadata.phone_number_id"
                    )
            elif change.field == ECHOES_FIELD and (echoes := _echo_value(raw)) is not None:
                value, pnid = None, echoes.metadata.phone_number_id if echoes.metadata else None
                updates += len(echoes.message_echoes)
                if pnid is not None:
                    changes.append(ParsedChange(change.field, entry.id, raw, None, pnid, echoes))
                    if updates > MAX_UPDATES:
                        raise InvalidWebhook(
                            f"more than {MAX_UPDATES} updates in one webhook (Meta sends at "
                            "most 1,000)"
                        )
                    continue
            else:
                value, pnid = None, _probe_number(raw)
                updates += 1
            if updates > MAX_UPDATES:
                raise InvalidWebhook(
                    f"more than {MAX_UPDATES} updates in one webhook (Meta sends at most 1,000)"
                )
            changes.append(ParsedChange(change.field, entry.id, raw, value, pnid))
    return ParsedWebhook(changes)


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a business number's updates go (from the resolver's route)."""

    route: RouteKind
    tenant_id: UUID | None
    #: Its tenant's quiet period (``InboundMessage.quiet_period``).
    quiet_period: float = 0.0


def to_intake(
    hook: ParsedWebhook,
    destinations: Mapping[str, Destination],
    received: datetime,
    accounts: Mapping[str, UUID] | None = None,
) -> Intake:
    """The domain records of ``hook``; ``destinations`` covers its ``phone_number_ids`` (with
    each one's quiet period), and ``accounts`` the tenant owning a business account (its
    changes naming no number)."""
    intake = Intake()
    unrouted = Destination(RouteKind.UNROUTED, None)
    owners = accounts or {}
    for change in hook.changes:
        pnid = change.phone_number_id
        if pnid is not None:
            where = destinations.get(pnid, unrouted)
        else:
            owner = owners.get(change.waba_id) if change.waba_id else None
            where = Destination(RouteKind.TENANT, owner) if owner else unrouted
        value = change.value
        if change.echoes is not None and pnid is not None:
            for raw_echo in change.echoes.message_echoes:
                echo = _owner_echo(bytes(raw_echo), pnid, where, received)
                if echo is not None:
                    intake.echoes.append(echo)
        if value is None:  # kept as sent, echoes too (their messages are stored as well)
            intake.events.append(
                WebhookEvent(
                    "field", change.field, change.raw, change.waba_id, pnid, where.tenant_id
                )
            )
            continue
        for raw_error in value.errors:
            intake.events.append(_error_event(bytes(raw_error), change, where))
        if pnid is None:
            continue
        contacts = value.contacts
        display = value.metadata.display_phone_number if value.metadata else None
        for raw_message in value.messages:
            raw = bytes(raw_message)
            message = _decode(_message, raw)
            changed = message.edit or message.revoke
            intake.messages.append(
                InboundMessage(
                    wamid=message.id,
                    phone_number_id=pnid,
                    route=where.route,
                    tenant_id=where.tenant_id,
                    type=message.type,
                    customer=_customer(message, contacts),
                    text=None if message.errors else _said(message),
                    sent_at=meta_time(message.timestamp, received),
                    raw=raw,
                    display_phone_number=display,
                    waba_id=change.waba_id,
                    context_wamid=message.context.id if message.context else None,
                    unreadable=unreadable(message),
                    changes_wamid=changed.original_message_id if changed else None,
                    quiet_period=where.quiet_period,
                )
            )
        for raw_status in value.statuses:
            raw = bytes(raw_status)
            status = _decode(_status, raw)
            error = status.errors[0] if status.errors else None
            intake.statuses.append(
                StatusUpdate(
                    wamid=status.id,
                    status=status.status,
                    phone_number_id=pnid,
                    tenant_id=where.tenant_id,
                    occurred_at=meta_time(status.timestamp, received),
                    raw=raw,
                    recipient_id=status.recipient_id,
                    recipient_user_id=status.recipient_user_id,
                    error_code=_code(error),
                    error_title=error.title if error else None,
                    error_details=error.error_data.details if error and error.error_data else None,
                )
            )
    return intake


def _said(message: Message) -> str | None:
    """The text to answer; for an ``edit``, the text of the message as edited (it replaces
    the original's: the edit itself is never answered)."""
    if message.type == "edit" and message.edit:
        try:
            edited = msgspec.json.decode(bytes(message.edit.message), type=_EditedMessage)
        except (msgspec.DecodeError, RecursionError):
            return None  # an edit we cannot read leaves the original as it was
        return text_to_answer(edited)
    return text_to_answer(message)


class _EditedMessage(Message):
    """The message inside an ``edit`` (Meta omits its id)."""

    id: str = ""


def _echo_value(raw: bytes) -> EchoValue | None:
    try:
        return _echoes.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None  # kept as an event, as any other field Meta sends


def _owner_echo(raw: bytes, pnid: str, where: Destination, received: datetime) -> OwnerEcho | None:
    try:
        echo = _echo.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise InvalidWebhook(f"not a WhatsApp webhook: {_why(exc)}") from None
    if not (echo.to or echo.to_user_id):
        return None
    return OwnerEcho(
        wamid=echo.id,
        phone_number_id=pnid,
        route=where.route,
        tenant_id=where.tenant_id,
        owner=echo.from_,
        customer=echo.to,
        customer_user_id=echo.to_user_id,
        type=echo.type,
        text=_said(echo),
        sent_at=meta_time(echo.timestamp, received),
    )


def _customer(message: Message, contacts: list[Contact]) -> Customer:
    phone, user_id = message.from_, message.from_user_id
    # The contact naming the sender; else the only one (a plain loop: this runs per message).
    contact = contacts[0] if len(contacts) == 1 else None
    for c in contacts:
        if (phone and c.wa_id == phone) or (user_id and c.user_id == user_id):
            contact = c
            break
    name = None
    if contact is not None:
        phone = phone or contact.wa_id
        user_id = user_id or contact.user_id
        name = contact.profile.name if contact.profile else None
    return Customer(phone=phone or None, user_id=user_id or None, name=name)


def _error_event(raw: bytes, change: ParsedChange, where: Destination) -> WebhookEvent:
    try:
        code = _code(_error.decode(raw))
    except msgspec.DecodeError:
        code = None
    return WebhookEvent(
        "error", change.field, raw, change.waba_id, change.phone_number_id, where.tenant_id, code
    )


def _code(error: Error | None) -> int | None:
    if error is None or error.code is None:
        return None
    try:
        code = int(error.code)
    except ValueError:
        return None
    return code if -(2**31) <= code < 2**31 else None


def _decode(decoder: msgspec.json.Decoder[Any], raw: bytes) -> Any:
    try:
        return decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise InvalidWebhook(f"not a WhatsApp webhook: {_why(exc)}") from None


def _probe_number(raw: bytes) -> str | None:
    try:
        probe = _probe.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None
    pnid = (probe.metadata or {}).get("phone_number_id")
    return pnid if isinstance(pnid, str) else None


def _why(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)[:200]


def _sanitised(body: bytes) -> bytes:
    """``body`` as text PostgreSQL can store: valid UTF-8 (else ``InvalidWebhook``) and, in
    the rare body that escapes a NUL character (``\\u0000``, refused by ``jsonb`` and ``text``),
    re-encoded without it. Signatures are checked on the original bytes, never on these."""
    if not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidWebhook("not a WhatsApp webhook: the body is not UTF-8") from None
    if b"\\u0000" not in body:
        return body
    try:
        data = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise InvalidWebhook(f"not a WhatsApp webhook: {_why(exc)}") from None
    return msgspec.json.encode(_without_nul(data))


def _without_nul(data: Any) -> Any:
    if isinstance(data, str):
        return data.replace("\x00", "")
    if isinstance(data, list):
        return [_without_nul(v) for v in data]
    if isinstance(data, dict):
        return {_without_nul(k): _without_nul(v) for k, v in data.items()}
    return data
