"""The WhatsApp webhook intake's writes: many webhooks' records in one transaction.

``write_intakes`` stores inbound messages (once per wamid), statuses (once per wamid and
status), other events, and moves the outbound messages the statuses concern, all inside the
caller's transaction, in multi-row statements whose rows are sorted by key so that concurrent
writers always lock in the same order. ``apply_statuses`` is public so that the worker can
re-apply statuses that arrived before it recorded a reply's wamid.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from importlib.resources import files
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import TupleRow

from changarrito.adapters.postgres.queries import parse
from changarrito.domain.whatsapp import (
    STATUS_ORDER,
    InboundMessage,
    Intake,
    StatusUpdate,
    WebhookEvent,
)

SQL: dict[str, str] = parse(
    files("changarrito.adapters.postgres").joinpath("messages.sql").read_text(encoding="utf-8")
)

Connection = AsyncConnection[TupleRow]


async def write_intakes(conn: Connection, intakes: Iterable[Intake]) -> set[str]:
    """Stores every record of ``intakes``; returns the wamids of the inbound messages that
    were new (the others were already stored, by this or another process)."""
    messages: dict[str, InboundMessage] = {}
    statuses: dict[tuple[str, str], StatusUpdate] = {}
    events: list[WebhookEvent] = []
    for intake in intakes:
        for m in intake.messages:
            messages.setdefault(m.wamid, m)
        for s in intake.statuses:
            statuses.setdefault((s.wamid, s.status), s)
        events.extend(intake.events)
    new: set[str] = set()
    if messages:
        rows = [messages[k] for k in sorted(messages)]
        cur = await conn.execute(SQL["insert_inbound"], _inbound_columns(rows))
        new = {r[0] for r in await cur.fetchall()}
    if statuses:
        ordered = [statuses[k] for k in sorted(statuses)]
        await conn.execute(SQL["insert_statuses"], _status_columns(ordered))
        await apply_statuses(conn, sorted({s.wamid for s in ordered}))
    if events:
        await conn.execute(SQL["insert_events"], _event_columns(events))
    return new


async def apply_statuses(conn: Connection, wamids: Sequence[str]) -> list[tuple[Any, ...]]:
    """Moves the outbound messages with these wamids by every status stored for them (the
    domain's monotonic order); returns ``(id, wamid, status)`` of the rows that changed."""
    cur = await conn.execute(SQL["apply_statuses"], {"order": list(STATUS_ORDER), "wamids": wamids})
    return await cur.fetchall()


def _text(raw: bytes) -> str:
    return raw.decode("utf-8")


def _inbound_columns(rows: Sequence[InboundMessage]) -> dict[str, list[Any]]:
    return {
        "wamid": [m.wamid for m in rows],
        "phone_number_id": [m.phone_number_id for m in rows],
        "display_phone_number": [m.display_phone_number for m in rows],
        "waba_id": [m.waba_id for m in rows],
        "tenant_id": [m.tenant_id for m in rows],
        "route": [m.route.value for m in rows],
        "customer_id": [m.customer.key for m in rows],
        "customer_phone": [m.customer.phone for m in rows],
        "customer_user_id": [m.customer.user_id for m in rows],
        "customer_name": [m.customer.name for m in rows],
        "type": [m.type for m in rows],
        "text": [m.text for m in rows],
        "context_wamid": [m.context_wamid for m in rows],
        "raw": [_text(m.raw) for m in rows],
        "sent_at": [m.sent_at for m in rows],
        "state": [m.state.value for m in rows],
    }


def _status_columns(rows: Sequence[StatusUpdate]) -> dict[str, list[Any]]:
    return {
        "wamid": [s.wamid for s in rows],
        "status": [s.status for s in rows],
        "phone_number_id": [s.phone_number_id for s in rows],
        "tenant_id": [s.tenant_id for s in rows],
        "recipient_id": [s.recipient_id for s in rows],
        "recipient_user_id": [s.recipient_user_id for s in rows],
        "occurred_at": [s.occurred_at for s in rows],
        "error_code": [s.error_code for s in rows],
        "error_title": [s.error_title for s in rows],
        "error_details": [s.error_details for s in rows],
        "raw": [_text(s.raw) for s in rows],
    }


def _event_columns(rows: Sequence[WebhookEvent]) -> dict[str, list[Any]]:
    return {
        "kind": [e.kind for e in rows],
        "field": [e.field for e in rows],
        "waba_id": [e.waba_id for e in rows],
        "phone_number_id": [e.phone_number_id for e in rows],
        "tenant_id": [e.tenant_id for e in rows],
        "error_code": [e.error_code for e in rows],
        "payload": [_text(e.payload) for e in rows],
    }
