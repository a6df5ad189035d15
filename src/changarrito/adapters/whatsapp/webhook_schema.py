"""Meta's WhatsApp webhook objects as msgspec Structs (from Meta's Cloud API reference), and
the text each message type gives the assistant to answer.

Every documented member is here, all optional but the ids, so that a member Meta drops or a
new one it adds never breaks decoding (unknown members are skipped; ``raw`` keeps them).
Numbers Meta documents as text (timestamps, prices) are accepted as text or number.
"""

from __future__ import annotations

import msgspec

from changarrito.domain.conversations import UNREADABLE_TYPES

Number = int | float | str


class Profile(msgspec.Struct):
    name: str | None = None
    username: str | None = None


class Contact(msgspec.Struct):
    """``value.contacts[]``: who wrote (absent for ``system`` messages)."""

    wa_id: str | None = None
    user_id: str | None = None
    parent_user_id: str | None = None
    profile: Profile | None = None


class Metadata(msgspec.Struct):
    phone_number_id: str | None = None
    display_phone_number: str | None = None


class ErrorData(msgspec.Struct):
    details: str | None = None


class Error(msgspec.Struct):
    code: int | str | None = None
    title: str | None = None
    message: str | None = None
    error_data: ErrorData | None = None
    href: str | None = None


class Context(msgspec.Struct, rename={"from_": "from"}):
    from_: str | None = None
    id: str | None = None
    forwarded: bool | None = None
    frequently_forwarded: bool | None = None


class Text(msgspec.Struct):
    body: str | None = None


class Media(msgspec.Struct):
    """``image``, ``video``, ``audio``, ``document`` and ``sticker`` bodies."""

    id: str | None = None
    mime_type: str | None = None
    sha256: str | None = None
    url: str | None = None
    caption: str | None = None
    filename: str | None = None
    voice: bool | None = None
    animated: bool | None = None


class Location(msgspec.Struct):
    latitude: float | str | None = None
    longitude: float | str | None = None
    name: str | None = None
    address: str | None = None
    url: str | None = None


class ContactName(msgspec.Struct):
    formatted_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None


class ContactPhone(msgspec.Struct):
    phone: str | None = None
    wa_id: str | None = None
    type: str | None = None


class SharedContact(msgspec.Struct):
    """One card of a ``contacts`` message (addresses, emails, org... stay in ``raw``)."""

    name: ContactName | None = None
    phones: list[ContactPhone] = []


class InteractiveReply(msgspec.Struct):
    """A button or list reply of an ``interactive`` message."""

    id: str | None = None
    title: str | None = None
    description: str | None = None


class FlowReply(msgspec.Struct):
    """A completed WhatsApp Flow (or address message): ``response_json`` is a JSON *string*,
    kept verbatim."""

    name: str | None = None
    body: str | None = None
    response_json: str | None = None


class Interactive(msgspec.Struct):
    type: str | None = None
    button_reply: InteractiveReply | None = None
    list_reply: InteractiveReply | None = None
    nfm_reply: FlowReply | None = None


class Button(msgspec.Struct):
    payload: str | None = None
    text: str | None = None


class Reaction(msgspec.Struct):
    message_id: str | None = None
    emoji: str | None = None  # omitted when the customer removes their reaction


class OrderItem(msgspec.Struct):
    product_retailer_id: str | None = None
    quantity: Number | None = None
    item_price: Number | None = None
    currency: str | None = None


class Order(msgspec.Struct):
    catalog_id: str | None = None
    text: str | None = None
    product_items: list[OrderItem] = []


class System(msgspec.Struct):
    body: str | None = None
    wa_id: str | None = None
    type: str | None = None


class Unsupported(msgspec.Struct):
    type: str | None = None


class Changed(msgspec.Struct):
    """The body of an ``edit`` or a ``revoke``: the message it changes (``original_message_id``)
    and, for an edit, the message as it is now (a ``Message`` without id, as raw JSON)."""

    original_message_id: str | None = None
    message: msgspec.Raw = msgspec.Raw(b"null")


class Message(msgspec.Struct, rename={"from_": "from"}):
    """``value.messages[]``. ``from_``/``from_user_id``: the phone and the business-scoped id."""

    id: str
    type: str = "unknown"
    timestamp: Number | None = None
    from_: str | None = None
    from_user_id: str | None = None
    context: Context | None = None
    text: Text | None = None
    image: Media | None = None
    video: Media | None = None
    audio: Media | None = None
    document: Media | None = None
    sticker: Media | None = None
    location: Location | None = None
    contacts: list[SharedContact] = []
    interactive: Interactive | None = None
    button: Button | None = None
    reaction: Reaction | None = None
    order: Order | None = None
    system: System | None = None
    unsupported: Unsupported | None = None
    edit: Changed | None = None
    revoke: Changed | None = None
    errors: list[Error] = []


class Echo(Message, rename={"from_": "from"}):
    """``value.message_echoes[]`` of an ``smb_message_echoes`` change: what the owner sent
    from the WhatsApp Business app (``from``: the business number, ``to``: the customer)."""

    to: str | None = None
    to_user_id: str | None = None


class EchoValue(msgspec.Struct):
    """The value of an ``smb_message_echoes`` change (echoes stay raw, decoded one by one)."""

    metadata: Metadata | None = None
    message_echoes: list[msgspec.Raw] = []


class MessageStatus(msgspec.Struct):
    """``value.statuses[]``: sent, delivered, read, played, failed (with ``errors``)."""

    id: str
    status: str
    timestamp: Number | None = None
    recipient_id: str | None = None
    recipient_user_id: str | None = None
    errors: list[Error] = []


class Value(msgspec.Struct):
    """The value of a ``messages`` change. Messages, statuses and errors stay raw here and are
    decoded one by one, so each keeps its exact JSON."""

    messaging_product: str | None = None
    metadata: Metadata | None = None
    contacts: list[Contact] = []
    messages: list[msgspec.Raw] = []
    statuses: list[msgspec.Raw] = []
    errors: list[msgspec.Raw] = []


def text_to_answer(message: Message) -> str | None:
    """What the customer said, for the assistant; ``None`` when there is nothing to answer
    (audio, stickers, reactions, system notices, unsupported or unknown types, no caption)."""
    t = message.type
    if t == "text" and message.text:
        return _clean(message.text.body)
    if t in ("image", "video", "document"):
        media: Media | None = getattr(message, t)
        caption = _clean(media.caption) if media else None
        # The model is told what came with the words (until media is read: issue 13).
        return f"[{_MEDIA_NAMES[t]}] {caption}" if caption else None
    if t == "interactive" and message.interactive:
        return _interactive(message.interactive)
    if t == "button" and message.button:
        said = _clean(message.button.text) or _clean(message.button.payload)
        payload = message.button.payload
        return f"{said} ({payload})" if said and payload and payload != said else said
    if t == "location" and message.location:
        return _location(message.location)
    if t == "contacts" and message.contacts:
        return _contacts(message.contacts)
    if t == "order" and message.order:
        return _order(message.order)
    return None


_MEDIA_NAMES = {"image": "photo", "video": "video", "document": "document"}

#: Meta's error on the first message to a coexistence number from a companion device: the
#: owner sees it in the app, and it must never get an "I could not read that" reply.
UNAVAILABLE_ON_COEXISTENCE = 131060


def unreadable(message: Message) -> bool:
    """Whether ``message`` is something the customer sent without words to answer: a voice
    note, a photo, document, video or sticker without a caption (the workers read what they
    can of it), a type WhatsApp could not show. Reactions are not: they are stored and
    deliberately not answered."""
    if message.type not in UNREADABLE_TYPES or text_to_answer(message) is not None:
        return False
    if (
        message.type == "unsupported"
        and message.unsupported
        and message.unsupported.type
        in (
            "edit",
            "revoke",
        )
    ):
        return False  # an edit or a deletion Meta could not show: nothing new was said
    return not any(str(e.code) == str(UNAVAILABLE_ON_COEXISTENCE) for e in message.errors)


def _interactive(interactive: Interactive) -> str | None:
    """A tapped button or list row, with the id the shop gave it; a completed Flow, with
    its answers as the JSON Meta sent."""
    for kind, reply in (("button", interactive.button_reply), ("list", interactive.list_reply)):
        if reply is not None and _clean(reply.title):
            chosen = f"{reply.title} — {reply.description}" if reply.description else reply.title
            return f"[{kind} reply] {chosen}" + (f" (id: {reply.id})" if reply.id else "")
    flow = interactive.nfm_reply
    if flow is not None and _clean(flow.response_json):
        return f"[form {flow.name or 'flow'}] {flow.response_json}"
    return None


def _clean(text: str | None) -> str | None:
    return text if text and text.strip() else None


def _location(loc: Location) -> str:
    place = ", ".join(p for p in (loc.name, loc.address) if p)
    where = f" ({loc.latitude}, {loc.longitude})" if loc.latitude is not None else ""
    return f"[location] {place}{where}".rstrip()


def _contacts(cards: list[SharedContact]) -> str:
    names = []
    for card in cards:
        name = (card.name.formatted_name if card.name else None) or "?"
        phones = ", ".join(p.phone for p in card.phones if p.phone)
        names.append(f"{name} ({phones})" if phones else name)
    return "[contacts] " + "; ".join(names)


def _order(order: Order) -> str:
    items = "; ".join(
        f"{i.quantity} x {i.product_retailer_id} at {i.item_price} {i.currency or ''}".rstrip()
        for i in order.product_items
    )
    parts = [p for p in (order.text, items) if p]
    return "[order] " + " | ".join(parts) if parts else "[order]"
