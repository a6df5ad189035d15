"""Meta WhatsApp webhook bodies for tests and benchmarks: builders, Meta's own examples
(shaped as Meta's Cloud API webhook examples) and signing.

Builders return plain dicts; ``encode`` makes the bytes that are signed and posted, and
``signed_headers`` the ``X-Hub-Signature-256`` header for those exact bytes::

    body = encode(webhook(change(PNID, messages=[text_message("hola")])))
    await client.post("/webhooks/whatsapp", content=body, headers=signed_headers(body, SECRET))
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import uuid
from typing import Any

WABA_ID = "102290129340398"
CUSTOMER = "16505551234"
CUSTOMER_NAME = "Sheena Nelson"
CUSTOMER_BSUID = "US.13491208655302741918"
META_TEXT_WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="

_counter = itertools.count()


def new_wamid() -> str:
    """A unique wamid (Meta's are base64 of an opaque id; tests only need uniqueness)."""
    return f"wamid.TEST{next(_counter):08d}{uuid.uuid4().hex.upper()}"


def encode(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed_headers(body: bytes, secret: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, secret)}


def webhook(*changes: dict[str, Any], waba_id: str = WABA_ID) -> dict[str, Any]:
    """A webhook with one entry holding ``changes`` (see ``entries`` for several)."""
    return entries({waba_id: list(changes)})


def entries(by_waba: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba, "changes": changes} for waba, changes in by_waba.items()],
    }


def change(
    phone_number_id: str,
    *,
    messages: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    errors: list[dict[str, Any]] | None = None,
    contacts: list[dict[str, Any]] | None = None,
    display_phone_number: str = "15550783881",
) -> dict[str, Any]:
    """A ``messages`` change for one business number. ``contacts`` defaults to one contact per
    distinct sender of ``messages`` (none for ``system`` messages, as Meta does)."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": display_phone_number,
            "phone_number_id": phone_number_id,
        },
    }
    if contacts is None and messages:
        senders = {m["from"]: m for m in messages if "from" in m and m.get("type") != "system"}
        contacts = [contact(wa_id) for wa_id in senders]
    if contacts:
        value["contacts"] = contacts
    if messages is not None:
        value["messages"] = messages
    if statuses is not None:
        value["statuses"] = statuses
    if errors is not None:
        value["errors"] = errors
    return {"value": value, "field": "messages"}


def other_field(field: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"value": value, "field": field}


def contact(
    wa_id: str | None = CUSTOMER, *, name: str = CUSTOMER_NAME, user_id: str | None = None
) -> dict[str, Any]:
    c: dict[str, Any] = {"profile": {"name": name}}
    if wa_id is not None:
        c["wa_id"] = wa_id
    if user_id is not None:
        c["user_id"] = user_id
    return c


def message(
    type_: str,
    body: dict[str, Any] | list[Any] | None = None,
    *,
    wamid: str | None = None,
    sender: str | None = CUSTOMER,
    timestamp: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Any inbound message: ``message("image", {"caption": ...})``."""
    m: dict[str, Any] = {
        "id": wamid or new_wamid(),
        "timestamp": timestamp or str(int(time.time())),
        "type": type_,
    }
    if sender is not None:
        m["from"] = sender
    if body is not None:
        m[type_] = body
    m.update(extra)
    return m


def text_message(text: str = "Does it come in another color?", **kw: Any) -> dict[str, Any]:
    return message("text", {"body": text}, **kw)


def status(
    wamid: str, status_: str, *, timestamp: str | None = None, recipient: str = CUSTOMER
) -> dict[str, Any]:
    s: dict[str, Any] = {
        "id": wamid,
        "status": status_,
        "timestamp": timestamp or str(int(time.time())),
        "recipient_id": recipient,
    }
    if status_ == "failed":
        s["errors"] = [FAILED_ERROR]
    return s


FAILED_ERROR = {
    "code": 131049,
    "title": "This message was not delivered to maintain healthy ecosystem engagement.",
    "message": "This message was not delivered to maintain healthy ecosystem engagement.",
    "error_data": {
        "details": "In order to maintain a healthy ecosystem engagement, the message failed "
        "to be delivered."
    },
    "href": "/documentation/business-messaging/whatsapp/support/error-codes",
}

RATE_LIMIT_ERROR = {
    "code": 130429,
    "title": "Rate limit hit",
    "message": "Rate limit hit",
    "error_data": {
        "details": "Message failed to send because there were too many messages sent from "
        "this phone number in a short period of time"
    },
    "href": "/documentation/business-messaging/whatsapp/support/error-codes",
}


def every_type() -> dict[str, tuple[dict[str, Any], str | None]]:
    """One message (with a fresh wamid) of every type Meta's webhook reference documents,
    and the text to answer each gives (``None``: nothing to answer)."""
    return {
        "text": (
            text_message("Does it come in another color?"),
            "Does it come in another color?",
        ),
        "image": (
            message(
                "image",
                {
                    "caption": "Taj Mahal",
                    "mime_type": "image/jpeg",
                    "sha256": "SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=",
                    "id": "1003383421387256",
                    "url": "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=133",
                },
            ),
            "[photo] Taj Mahal",
        ),
        "video": (
            message("video", {"caption": "Unboxing", "id": "2", "mime_type": "video/mp4"}),
            "[video] Unboxing",
        ),
        "audio": (
            message("audio", {"id": "3", "mime_type": "audio/ogg; codecs=opus", "voice": True}),
            None,
        ),
        "document": (
            message("document", {"caption": "Invoice", "filename": "inv.pdf", "id": "4"}),
            "[document] Invoice",
        ),
        "sticker": (
            message("sticker", {"id": "5", "mime_type": "image/webp", "animated": False}),
            None,
        ),
        "location": (
            message(
                "location",
                {
                    "latitude": 19.4326,
                    "longitude": -99.1332,
                    "name": "Zócalo",
                    "address": "CDMX",
                },
            ),
            "[location] Zócalo, CDMX (19.4326, -99.1332)",
        ),
        "contacts": (
            message(
                "contacts",
                [
                    {
                        "name": {"formatted_name": "Ana López"},
                        "phones": [{"phone": "+52 55 1234 5678"}],
                    }
                ],
            ),
            "[contacts] Ana López (+52 55 1234 5678)",
        ),
        "button_reply": (
            message(
                "interactive",
                {
                    "type": "button_reply",
                    "button_reply": {"id": "cancel-button", "title": "Cancel"},
                },
                context={"from": "15550783881", "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MEM2"},
            ),
            "[button reply] Cancel (id: cancel-button)",
        ),
        "list_reply": (
            message(
                "interactive",
                {
                    "type": "list_reply",
                    "list_reply": {
                        "id": "priority_express",
                        "title": "Priority Mail Express",
                        "description": "Next Day to 2 Days",
                    },
                },
            ),
            "[list reply] Priority Mail Express — Next Day to 2 Days (id: priority_express)",
        ),
        "button": (
            message("button", {"payload": "STOP", "text": "Stop promotions"}),
            "Stop promotions (STOP)",
        ),
        "flow_reply": (
            message(
                "interactive",
                {
                    "type": "nfm_reply",
                    "nfm_reply": {
                        "name": "flow",
                        "body": "Sent",
                        "response_json": '{"flow_token": "t1", "talla": "XL", "color": "rojo"}',
                    },
                },
                context={"from": "15550783881", "id": "wamid.FLOW"},
            ),
            '[form flow] {"flow_token": "t1", "talla": "XL", "color": "rojo"}',
        ),
        "reaction": (message("reaction", {"message_id": "wamid.X", "emoji": "👍"}), None),
        "reaction_removed": (message("reaction", {"message_id": "wamid.X"}), None),
        "order": (
            message(
                "order",
                {
                    "catalog_id": "cat1",
                    "text": "Please deliver today",
                    "product_items": [
                        {
                            "product_retailer_id": "SKU1",
                            "quantity": 2,
                            "item_price": 10.5,
                            "currency": "MXN",
                        }
                    ],
                },
            ),
            "[order] Please deliver today | 2 x SKU1 at 10.5 MXN",
        ),
        "system": (
            message(
                "system",
                {
                    "body": "User Sheena Nelson changed from 16505551234 to 12195555358",
                    "wa_id": "12195555358",
                    "type": "user_changed_number",
                },
            ),
            None,
        ),
        "unsupported": (
            message(
                "unsupported",
                {"type": "edit"},
                errors=[
                    {
                        "code": 131051,
                        "title": "Message type unknown",
                        "message": "Message type unknown",
                        "error_data": {"details": "Message type is currently not supported."},
                    }
                ],
            ),
            None,
        ),
        "a_future_type": (message("poll_vote", {"poll_id": "p1", "options": [1, 2]}), None),
    }


def meta_text_example(phone_number_id: str = "106540352242922") -> dict[str, Any]:
    """Meta's text-message webhook example, verbatim but for the number."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": phone_number_id,
                            },
                            "contacts": [
                                {"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}
                            ],
                            "messages": [
                                {
                                    "from": "16505551234",
                                    "id": META_TEXT_WAMID,
                                    "timestamp": "1749416383",
                                    "type": "text",
                                    "text": {"body": "Does it come in another color?"},
                                }
                            ],
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def batch(phone_number_id: str, n: int) -> dict[str, Any]:
    """``n`` text messages from ``n`` customers to one number, in one change."""
    msgs = [text_message(f"hola {i}", sender=f"5215500{i:06d}") for i in range(n)]
    return webhook(change(phone_number_id, messages=msgs))
