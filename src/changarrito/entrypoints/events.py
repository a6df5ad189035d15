"""``changarrito events list`` and ``changarrito events retry``: the outbox of events for the
platform's backend, for operators. Lists show ids, types, states, attempts, the receiver's
last answer and the event's key; never a credential (events carry none)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from changarrito.domain.errors import ConfigurationError, ValidationFailed
from changarrito.domain.events import Event
from changarrito.domain.ports import EventStore

if TYPE_CHECKING:
    from changarrito.bootstrap import Service


def _as_json(e: Event) -> dict[str, object]:
    return {
        "id": e.id,
        "eventId": e.event_id,
        "type": e.type,
        "tenantId": str(e.tenant_id) if e.tenant_id else None,
        "orderingKey": e.ordering_key,
        "createdAt": e.created_at.isoformat(),
        "state": e.state,
        "attempts": e.attempts,
        "lastStatus": e.last_status,
        "lastError": e.last_error,
        "deliveredAt": e.delivered_at.isoformat() if e.delivered_at else None,
        "data": dict(e.data),
    }


async def list_events(service: Service, args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= 1000:
        raise ValidationFailed("--limit must be between 1 and 1000")
    rows = await _outbox(service).events(args.state, args.limit)
    if args.json:
        print(json.dumps([_as_json(e) for e in rows]))
        return 0
    for e in rows:
        answer = f"  last: {e.last_status or '-'} {e.last_error or ''}".rstrip()
        print(
            f"{e.id:>8}  {e.created_at:%Y-%m-%d %H:%M:%S}  {e.type:<22} {e.state:<9} "
            f"tries {e.attempts}  {e.ordering_key}{answer if e.state != 'delivered' else ''}"
        )
    return 0


async def retry_events(service: Service, args: argparse.Namespace) -> int:
    if not args.ids and not args.dead:
        raise ValidationFailed("name the events to send again (their ids), or --dead for all")
    count = await _outbox(service).retry_events(None if args.dead else args.ids)
    print(f"{count} dead event{'s' if count != 1 else ''} queued again")
    return 0


def _outbox(service: Service) -> EventStore:
    if service.storage.events is None:
        raise ConfigurationError("the event outbox needs PostgreSQL")
    return service.storage.events
