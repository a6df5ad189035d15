"""``changarrito messages list`` and ``changarrito messages retry``: the queue for operators.

Lists show ids, states, attempts, the last error and a short preview of the customer's text;
never a credential (errors are stored already scrubbed).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING
from uuid import UUID

from changarrito.adapters.postgres.queue import MessageQueue, MessageSummary
from changarrito.domain.errors import ConfigurationError, ValidationFailed

if TYPE_CHECKING:
    from changarrito.bootstrap import Service

PREVIEW_CHARS = 40


def parse_tenant(text: str) -> UUID | None:
    """A tenant id, or ``None`` for ``platform`` (the platform's own number)."""
    if text.strip().lower() == "platform":
        return None
    try:
        return UUID(text)
    except ValueError:
        raise ValidationFailed(
            f"--tenant must be a tenant id (a UUID) or 'platform', got {text!r}"
        ) from None


def _preview(text: str | None) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"


def _as_json(m: MessageSummary) -> dict[str, object]:
    return {
        "id": m.id,
        "receivedAt": m.received_at.isoformat(),
        "phoneNumberId": m.phone_number_id,
        "customer": m.customer_id,
        "type": m.type,
        "state": m.state,
        "attempts": m.attempts,
        "partsSent": m.parts_sent,
        "lastError": m.last_error,
        "preview": _preview(m.text),
    }


async def list_messages(service: Service, args: argparse.Namespace) -> int:
    tenant = parse_tenant(args.tenant)
    if tenant is not None:
        await service.storage.store.get_tenant(tenant)  # an unknown tenant is an error, not a blank
    if not 1 <= args.limit <= 1000:
        raise ValidationFailed("--limit must be between 1 and 1000")
    rows = await _queue(service).recent(tenant, limit=args.limit, state=args.state)
    if args.json:
        print(json.dumps([_as_json(m) for m in rows]))
        return 0
    for m in rows:
        error = f"  error: {m.last_error}" if m.last_error and m.state != "answered" else ""
        print(
            f"{m.id:>8}  {m.received_at:%Y-%m-%d %H:%M:%S}  {m.state:<10} "
            f"tries {m.attempts}  sent {m.parts_sent}  {m.type:<11} {m.customer_id or '-'}  "
            f"{_preview(m.text)}{error}"
        )
    return 0


async def retry_message(service: Service, message_id: int) -> int:
    await _queue(service).requeue(message_id)
    print(f"message {message_id} queued again")
    return 0


def _queue(service: Service) -> MessageQueue:
    if service.storage.queue is None:
        raise ConfigurationError("the message queue needs PostgreSQL")
    return service.storage.queue
