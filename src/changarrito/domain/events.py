"""Events for the platform's backend, signed as the Standard Webhooks specification says.

Pure rules and values; the use case that delivers is ``event_delivery.EventDelivery``.

An event is filed in the transaction of the change it reports (``changarrito_emit``,
migration 0017), so it exists exactly when its change does. ``EventDelivery`` posts each,
oldest first and in order within its ``ordering_key`` (one conversation's, one payment
link's), as ``{"type", "timestamp", "data"}`` with the three headers of the specification:

- ``webhook-id``: the event's id, the same on every attempt (the receiver drops repeats);
- ``webhook-timestamp``: seconds since the epoch, of this attempt;
- ``webhook-signature``: ``v1,`` and the base64 HMAC-SHA256, keyed with the secret's bytes
  (``CHANGARRITO_EVENTS_SECRET`` is ``whsec_`` and their base64), of
  ``{webhook-id}.{webhook-timestamp}.{body}``.

A 2xx is delivered. Anything else (an error status, a timeout, a refused connection) is
tried again with backoff, up to ``MAX_ATTEMPTS`` in all, then dead-lettered: ``changarrito
events retry`` sends it again. A receiver that fails never blocks anything but the later
events of the same key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from changarrito.domain.backoff import backoff_delay
from changarrito.domain.errors import ConfigurationError

EventType = Literal[
    "message.received",
    "message.failed",
    "conversation.handoff",
    "conversation.resumed",
    "payment.succeeded",
    "payment.failed",
    "credential.unverified",
    "usage.limit_reached",
]
#: Attempts at one event before it is dead-lettered; backoff from ``RETRY_BASE`` seconds
#: (the service's ``CHANGARRITO_RETRY_BASE``), doubling, at most ``RETRY_CAP`` (with the
#: defaults, about six hours in all).
MAX_ATTEMPTS = 15
RETRY_BASE = 5.0
RETRY_CAP = 3600.0
#: How long a worker holds the events it is posting, and waits for a receiver.
LEASE_SECONDS = 60.0
TIMEOUT_SECONDS = 10.0
SECRET_PREFIX = "whsec_"
#: The longest error text kept with an event.
MAX_ERROR = 500


@dataclass(frozen=True, slots=True)
class Event:
    """A filed event: ``event_id`` is its ``webhook-id``; ``state`` pending, delivered or
    dead; ``attempts`` made so far (counting the one in hand once claimed)."""

    id: int
    event_id: str
    type: str
    tenant_id: UUID | None
    ordering_key: str
    data: Mapping[str, Any]
    created_at: datetime
    state: str = "pending"
    attempts: int = 0
    last_error: str | None = None
    last_status: int | None = None
    delivered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Posted:
    """What a receiver answered: its HTTP ``status`` (``None``: no answer, with ``error``)."""

    status: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one attempt did: ``state`` delivered, pending (to be tried again in ``delay``
    seconds) or dead."""

    event: Event
    state: str
    posted: Posted
    delay: float | None = None


@dataclass(frozen=True, slots=True)
class Receiver:
    """Where events go: the platform's endpoint and its secret's bytes."""

    url: str
    secret: bytes = field(repr=False)


def parse_secret(value: str) -> bytes:
    """The key of a ``whsec_<base64>`` secret (the prefix is optional, as the reference
    libraries take it); ``ConfigurationError`` when it is not base64 or shorter than 16
    bytes."""
    raw = value.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(
            "CHANGARRITO_EVENTS_SECRET must be whsec_ followed by base64 (e.g. "
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw)"
        ) from None
    if len(key) < 16:
        raise ConfigurationError("CHANGARRITO_EVENTS_SECRET must hold at least 16 bytes")
    return key


def sign(secret: bytes, event_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` of one attempt: ``v1,<base64 HMAC-SHA256>``."""
    signed = f"{event_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def body_of(event: Event) -> bytes:
    """The JSON the receiver gets: ``{"type", "timestamp", "data"}`` (``timestamp`` when the
    change happened, ISO 8601)."""
    envelope = {
        "type": event.type,
        "timestamp": event.created_at.isoformat().replace("+00:00", "Z"),
        "data": dict(event.data),
    }
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


def headers_for(receiver: Receiver, event: Event, body: bytes, now: float) -> dict[str, str]:
    timestamp = int(now)
    return {
        "content-type": "application/json",
        "webhook-id": event.event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(receiver.secret, event.event_id, timestamp, body),
    }


def after_failure(
    event: Event,
    posted: Posted,
    *,
    max_attempts: int = MAX_ATTEMPTS,
    base: float = RETRY_BASE,
    cap: float = RETRY_CAP,
) -> Delivery:
    """A failed attempt: tried again after a backoff (from ``base`` seconds, doubling, at
    most ``cap``), or dead once out of attempts."""
    if event.attempts >= max_attempts:
        return Delivery(event, "dead", posted)
    delay = backoff_delay(event.attempts, base=base, cap=cap)
    return Delivery(event, "pending", posted, delay)
