"""The WhatsApp webhook intake's writes: many webhooks' records in one transaction.

``write_intakes`` stores inbound messages (once per wamid), statuses (once per wamid, business
number and status), other events, and moves the outbound messages the statuses concern (only
those that number and tenant sent), all inside the caller's transaction, in multi-row
statements whose rows are sorted by key so that concurrent writers always lock in the same
order. Rows travel as one JSON array per statement, encoded by
msgspec with Meta's raw JSON embedded verbatim (psycopg's per-column array dumping cost about
a millisecond per array in Python). ``apply_statuses`` is public so that the worker can
re-apply statuses that arrived before it recorded a reply's wamid.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import TupleRow

from changarrito.adapters.postgres.queries import QUERIES
from changarrito.domain.conversations import opens_window
from changarrito.domain.whatsapp import (
    STATUS_ORDER,
    InboundMessage,
    InboundState,
    Intake,
    OwnerEcho,
    RouteKind,
    StatusUpdate,
    WebhookEvent,
)

Connection = AsyncConnection[TupleRow]


async def write_intakes(conn: Connection, intakes: Iterable[Intake]) -> set[str]:
    """Stores every record of ``intakes``; returns the wamids of the inbound messages that
    were new (the others were already stored, by this or another process). A message to
    answer is first due its ``quiet_period`` after it arrived."""
    messages: dict[str, InboundMessage] = {}
    statuses: dict[tuple[str, str, str], StatusUpdate] = {}
    events: list[WebhookEvent] = []
    echoes: dict[str, OwnerEcho] = {}
    for intake in intakes:
        for m in intake.messages:
            messages.setdefault(m.wamid, m)
        for e in intake.echoes:
            if e.route is not RouteKind.UNROUTED:
                echoes.setdefault(e.wamid, e)
        for s in intake.statuses:
            statuses.setdefault((s.wamid, s.phone_number_id, s.status), s)
        events.extend(intake.events)
    inserted = None
    if messages:
        rows = [messages[k] for k in sorted(messages)]
        inserted = await conn.execute(QUERIES["insert_inbound"], _inbound_columns(rows))
        changes = [m for m in rows if m.changes_wamid is not None]
        if changes:
            await conn.execute(QUERIES["apply_changes"], _change_columns(changes))
        if any(m.state is InboundState.PENDING for m in rows):
            # Delivered on commit: idle workers claim at once instead of at their next poll.
            await conn.execute(QUERIES["notify_inbound"], {"payload": ""})
    if echoes:
        ordered_echoes = [echoes[k] for k in sorted(echoes)]
        await conn.execute(QUERIES["insert_echoes"], _echo_columns(ordered_echoes))
        await conn.execute(QUERIES["switch_to_owner"], {"wamids": sorted(echoes)})
    if statuses:
        ordered = [statuses[k] for k in sorted(statuses)]
        await conn.execute(QUERIES["insert_statuses"], _status_columns(ordered))
        wamids = sorted({s.wamid for s in ordered})
        await conn.execute(
            QUERIES["apply_statuses"], {"order": list(STATUS_ORDER), "wamids": wamids}
        )
    if events:
        await conn.execute(QUERIES["insert_events"], _event_columns(events))
    # Read last: in pipeline mode every statement above was sent without waiting for this.
    return {r[0] for r in await inserted.fetchall()} if inserted is not None else set()


async def apply_statuses(conn: Connection, wamids: Sequence[str]) -> list[tuple[Any, ...]]:
    """Moves the outbound messages with these wamids by every status stored for them (the
    domain's monotonic order); returns ``(id, wamid, status)`` of the rows that changed."""
    cur = await conn.execute(
        QUERIES["apply_statuses"], {"order": list(STATUS_ORDER), "wamids": wamids}
    )
    return await cur.fetchall()


def _json(rows: list[dict[str, Any]]) -> str:
    return _encoder.encode(rows).decode("utf-8")


_encoder = msgspec.json.Encoder()


def _inbound_columns(rows: Sequence[InboundMessage]) -> dict[str, str]:
    return {
        "rows": _json(
            [
                {
                    "wamid": m.wamid,
                    "phone_number_id": m.phone_number_id,
                    "display_phone_number": m.display_phone_number,
                    "waba_id": m.waba_id,
                    "tenant_id": m.tenant_id,
                    "route": m.route.value,
                    "customer_id": m.customer.key,
                    "customer_phone": m.customer.phone,
                    "customer_user_id": m.customer.user_id,
                    "customer_name": m.customer.name,
                    "type": m.type,
                    "text": m.text,
                    "context_wamid": m.context_wamid,
                    "raw": msgspec.Raw(m.raw),
                    "sent_at": m.sent_at,
                    "state": m.state.value,
                    "opens": opens_window(m.type) and m.changes_wamid is None,
                    "wait": m.quiet_period if m.state is InboundState.PENDING else 0.0,
                }
                for m in rows
            ]
        )
    }


def _change_columns(rows: Sequence[InboundMessage]) -> dict[str, str]:
    return {
        "rows": _json(
            [
                {
                    "wamid": m.changes_wamid,
                    "phone_number_id": m.phone_number_id,
                    "customer_id": m.customer.key,
                    "kind": "revoke" if m.type == "revoke" else "edit",
                    "text": m.text,
                }
                for m in rows
            ]
        )
    }


def _echo_columns(rows: Sequence[OwnerEcho]) -> dict[str, str]:
    return {
        "rows": _json(
            [
                {
                    "wamid": e.wamid,
                    "phone_number_id": e.phone_number_id,
                    "tenant_id": e.tenant_id,
                    "owner": e.owner,
                    "customer": e.customer,
                    "customer_user_id": e.customer_user_id,
                    "type": e.type,
                    "text": e.text,
                    "sent_at": e.sent_at,
                }
                for e in rows
            ]
        )
    }


def _status_columns(rows: Sequence[StatusUpdate]) -> dict[str, str]:
    return {
        "rows": _json(
            [
                {
                    "wamid": s.wamid,
                    "status": s.status,
                    "phone_number_id": s.phone_number_id,
                    "tenant_id": s.tenant_id,
                    "recipient_id": s.recipient_id,
                    "recipient_user_id": s.recipient_user_id,
                    "occurred_at": s.occurred_at,
                    "error_code": s.error_code,
                    "error_title": s.error_title,
                    "error_details": s.error_details,
                    "raw": msgspec.Raw(s.raw),
                }
                for s in rows
            ]
        )
    }


def _event_columns(rows: Sequence[WebhookEvent]) -> dict[str, str]:
    return {
        "rows": _json(
            [
                {
                    "kind": e.kind,
                    "field": e.field,
                    "waba_id": e.waba_id,
                    "phone_number_id": e.phone_number_id,
                    "tenant_id": e.tenant_id,
                    "error_code": e.error_code,
                    "payload": msgspec.Raw(e.payload),
                }
                for e in rows
            ]
        )
    }
