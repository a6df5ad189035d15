"""Realistic, signed Meta webhook bodies for the load benches, generated before the load.

Each body is a webhook as Meta sends it in 2026 (per Meta's webhook reference): a
``whatsapp_business_account`` object, one entry per business account, a ``messages`` change
with ``metadata``, and business-scoped user ids next to the phone numbers:
``contacts[].user_id`` (which pywa 4.5 reads, ``User.from_contact``), ``profile.username``
for some users, ``messages[].from_user_id`` and ``statuses[].recipient_user_id``. Status
webhooks carry ``contacts`` too, as pywa's ``MessageStatus.from_update`` expects.

The mix, by default: 75 % one inbound text (Spanish, with accents and emoji), 15 % one status
(sent, delivered or read, with ``pricing``), 10 % a batch of 2-5 texts from different
customers of one number (what Meta sends under load). Every wamid is unique; so is every
(wamid, status). Bodies are compact JSON in UTF-8, signed over their exact bytes with the
app secret: ``X-Hub-Signature-256: sha256=<hex>``.

The file format, read by ``wrk/intake.lua`` and ``loadgen``: one body per line,
``<signature>\\t<body>`` (compact JSON never holds a raw tab or newline).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEXTS = (
    "Hola, ¿tienen tortillas de maíz hoy?",
    "¿A qué hora cierran? 🕗",
    "Quiero 2 kilos de aguacate y un refresco, por favor",
    "¿Hacen envíos a la colonia Roma?",
    "Gracias!! 🙏",
    "¿Cuánto cuesta el garrafón de agua?",
    "Buenas tardes, ¿aceptan tarjeta?",
    "Me pasas el menú del día por favor",
)
NAMES = ("María Fernández", "José Luis", "Lupita", "Ana Sofía Ramírez", "Don Chuy", "Karla 🌮")


@dataclass(frozen=True, slots=True)
class Number:
    """A business number bodies are sent to."""

    phone_number_id: str
    display_phone_number: str
    waba_id: str


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


class Generator:
    """Bodies with wamids unique across every generator of a run (``prefix`` tells them
    apart: one per round and phase)."""

    def __init__(self, numbers: Sequence[Number], prefix: str, seed: int = 0) -> None:
        self.numbers = list(numbers)
        self.prefix = prefix
        self.rng = random.Random(seed)
        self.serial = 0
        self.base_ts = 1_780_000_000

    def _wamid(self) -> str:
        self.serial += 1
        return f"wamid.HBgM{self.prefix}{self.serial:010d}FQIAEhgUM0E"

    def _customer(self) -> dict[str, Any]:
        n = self.rng.randrange(10_000_000)
        phone = f"52155{n:08d}"
        user: dict[str, Any] = {
            "phone": phone,
            "user_id": f"MX.{n * 7919 + 10**17}",
            "name": self.rng.choice(NAMES),
        }
        if self.rng.random() < 0.2:
            user["username"] = f"cliente_{n}"
        return user

    @staticmethod
    def _contact(c: dict[str, Any]) -> dict[str, Any]:
        profile = {"name": c["name"]}
        if "username" in c:
            profile["username"] = c["username"]
        return {"profile": profile, "wa_id": c["phone"], "user_id": c["user_id"]}

    def _text(self, c: dict[str, Any], token: str | None) -> dict[str, Any]:
        text = self.rng.choice(TEXTS)
        if token:
            text = f"{text} [{token}]"
        return {
            "from": c["phone"],
            "from_user_id": c["user_id"],
            "id": self._wamid(),
            "timestamp": str(self.base_ts + self.serial),
            "type": "text",
            "text": {"body": text},
        }

    def _envelope(self, number: Number, value: dict[str, Any]) -> dict[str, Any]:
        value = {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": number.display_phone_number,
                "phone_number_id": number.phone_number_id,
            },
            **value,
        }
        return {
            "object": "whatsapp_business_account",
            "entry": [{"id": number.waba_id, "changes": [{"value": value, "field": "messages"}]}],
        }

    def text(self, number: Number | None = None, token: str | None = None) -> dict[str, Any]:
        number = number or self.rng.choice(self.numbers)
        c = self._customer()
        return self._envelope(
            number, {"contacts": [self._contact(c)], "messages": [self._text(c, token)]}
        )

    def batch(self, size: int) -> dict[str, Any]:
        number = self.rng.choice(self.numbers)
        customers = [self._customer() for _ in range(size)]
        return self._envelope(
            number,
            {
                "contacts": [self._contact(c) for c in customers],
                "messages": [self._text(c, None) for c in customers],
            },
        )

    def status(self) -> dict[str, Any]:
        number = self.rng.choice(self.numbers)
        c = self._customer()
        kind = self.rng.choice(("sent", "delivered", "read"))
        status: dict[str, Any] = {
            "id": self._wamid(),
            "status": kind,
            "timestamp": str(self.base_ts + self.serial),
            "recipient_id": c["phone"],
            "recipient_user_id": c["user_id"],
        }
        if kind != "read":
            status["pricing"] = {
                "billable": True,
                "pricing_model": "PMP",
                "type": "regular",
                "category": "service",
            }
        return self._envelope(number, {"contacts": [self._contact(c)], "statuses": [status]})

    def mixed(self) -> dict[str, Any]:
        roll = self.rng.random()
        if roll < 0.75:
            return self.text()
        if roll < 0.90:
            return self.status()
        return self.batch(self.rng.randint(2, 5))


def messages_in(payload: dict[str, Any]) -> list[str]:
    """The wamids of the inbound messages of a body."""
    return [
        m["id"]
        for e in payload["entry"]
        for ch in e["changes"]
        for m in ch["value"].get("messages", [])
    ]


def write_bodies(path: Path, payloads: Iterator[dict[str, Any]], secret: str) -> dict[str, int]:
    """Writes signed bodies, one a line; returns how many bodies, messages and bytes."""
    bodies = messages = size = 0
    with path.open("wb") as out:
        for payload in payloads:
            body = encode(payload)
            assert b"\n" not in body and b"\t" not in body
            out.write(sign(body, secret).encode() + b"\t" + body + b"\n")
            bodies += 1
            messages += len(messages_in(payload))
            size += len(body)
    return {"bodies": bodies, "messages": messages, "mean_body_bytes": size // max(1, bodies)}


def read_bodies(path: Path) -> list[tuple[str, bytes]]:
    out = []
    with path.open("rb") as f:
        for line in f:
            sig, _, body = line.rstrip(b"\n").partition(b"\t")
            out.append((sig.decode(), body))
    return out
