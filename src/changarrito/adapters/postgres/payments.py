"""The payment store on PostgreSQL (the domain's ``PaymentStore``): links and notifications.

Queries are the named blocks of ``payments.sql``. An event and the status change it causes
are written in one transaction, so a notification is either fully applied or not stored (and
the provider's retry applies it). Whether an event may move the link it names is the domain's
rule (``payments.applies_to``), applied here under the link's row lock.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg.rows import kwargs_row
from psycopg.types.json import Jsonb

from changarrito.adapters.postgres.errors import translated
from changarrito.adapters.postgres.events import emit
from changarrito.adapters.postgres.pool import Pool
from changarrito.adapters.postgres.queries import QUERIES
from changarrito.domain.errors import Conflict
from changarrito.domain.model import Source, utcnow
from changarrito.domain.payment_model import DueNotice, PaymentNotice
from changarrito.domain.payments import (
    EventOutcome,
    PaymentEventRecord,
    PaymentLinkRecord,
    applies_to,
    next_status,
)


def _link(
    *,
    id: UUID,
    tenant_id: UUID,
    provider: str,
    provider_link_id: str,
    url: str,
    amount: Decimal,
    currency: str,
    description: str,
    reference: str,
    source: str,
    status: str,
    created_at: datetime,
    updated_at: datetime,
    conversation_id: UUID | None = None,
    notices: list[dict[str, Any]] | None = None,
) -> PaymentLinkRecord:
    return PaymentLinkRecord(
        id=id,
        tenant_id=tenant_id,
        provider=provider,
        provider_link_id=provider_link_id,
        url=url,
        amount=amount,
        currency=currency,
        description=description,
        reference=reference,
        source=Source(source),
        status=status,
        created_at=created_at,
        updated_at=updated_at,
        conversation_id=conversation_id,
        notices=tuple(_notice(n) for n in notices or ()),
    )


def _notice(row: dict[str, Any]) -> PaymentNotice:
    updated = row.get("updatedAt")
    return PaymentNotice(
        status=str(row["status"]),
        state=str(row["state"]),
        sent_as=row.get("sentAs"),
        reason_code=row.get("reasonCode"),
        reason=row.get("reason"),
        attempts=int(row.get("attempts") or 0),
        updated_at=datetime.fromisoformat(updated) if isinstance(updated, str) else utcnow(),
    )


def _due(*, notice_id: int, notice_status: str, attempts: int, **link: Any) -> DueNotice:
    return DueNotice(id=notice_id, link=_link(**link), status=notice_status, attempts=attempts)


_LINK_ROW = kwargs_row(_link)
_DUE_ROW = kwargs_row(_due)
#: The outcomes that tell the customer (and the platform's backend).
NOTIFIED = frozenset({"paid", "failed", "expired"})


def payment_event(
    link: PaymentLinkRecord, event: PaymentEventRecord
) -> tuple[str, UUID, str, dict[str, Any]]:
    """``payment.succeeded`` (paid) or ``payment.failed`` (failed, expired: ``status`` says
    which) for the platform's backend: the link's ids and facts, the provider's event id."""
    data = {
        "tenantId": str(link.tenant_id),
        "linkId": str(link.id),
        "provider": link.provider,
        "providerLinkId": link.provider_link_id,
        "providerEventId": event.event_id,
        "status": link.status,
        "amount": str(link.amount),
        "currency": link.currency,
        "reference": link.reference,
        "conversationId": str(link.conversation_id) if link.conversation_id else None,
        "source": link.source.value,
    }
    kind = "payment.succeeded" if link.status == "paid" else "payment.failed"
    return kind, link.tenant_id, f"payment:{link.id}", data


class PostgresPaymentStore:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def save_link(self, link: PaymentLinkRecord) -> PaymentLinkRecord:
        params: dict[str, Any] = {
            "id": link.id,
            "tenant_id": link.tenant_id,
            "provider": link.provider,
            "provider_link_id": link.provider_link_id,
            "url": link.url,
            "amount": link.amount,
            "currency": link.currency,
            "description": link.description,
            "reference": link.reference,
            "status": link.status,
            "source": link.source.value,
            "conversation_id": link.conversation_id,
        }
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=_LINK_ROW)
                await cur.execute(QUERIES["insert_link"], params)
                stored: PaymentLinkRecord | None = await cur.fetchone()
        if stored is None:
            raise Conflict(f"this {link.provider} link is already registered to another account")
        return stored

    async def get_link(self, tenant_id: UUID, link_id: UUID) -> PaymentLinkRecord | None:
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=_LINK_ROW)
                await cur.execute(QUERIES["get_link"], {"id": link_id, "tenant_id": tenant_id})
                found: PaymentLinkRecord | None = await cur.fetchone()
        return found

    async def record_event(self, event: PaymentEventRecord) -> EventOutcome:
        params = {
            "id": event.id,
            "tenant_id": event.tenant_id,
            "provider": event.provider,
            "event_id": event.event_id,
            "type": event.type,
            "status": event.status,
            "source": event.source.value,
            "payload": Jsonb(dict(event.payload)),
        }
        with translated():
            async with self.pool.connection() as conn, conn.transaction():
                cur = await conn.execute(QUERIES["insert_event"], params)
                inserted = await cur.fetchone()
                if inserted is None:
                    return EventOutcome(event=event, duplicate=True)
                event = replace(event, received_at=inserted[0])
                links = conn.cursor(row_factory=_LINK_ROW)
                await links.execute(
                    QUERIES["link_for_event"],
                    {
                        "tenant_id": event.tenant_id,
                        "provider": event.provider,
                        "named_link_id": event.named_link_id,
                        "provider_link_id": event.provider_link_id,
                    },
                )
                link: PaymentLinkRecord | None = await links.fetchone()
                if link is None or not applies_to(event, link):
                    return EventOutcome(event=event, duplicate=False)
                status = next_status(link.status, event.status)
                if status != link.status:
                    await links.execute(
                        QUERIES["set_link_status"], {"id": link.id, "status": status}
                    )
                    link = await links.fetchone() or link
                    if status in NOTIFIED:
                        await emit(conn, *payment_event(link, event))
                    if link.conversation_id is not None and status in NOTIFIED:
                        notice = {
                            "link_id": link.id,
                            "tenant_id": link.tenant_id,
                            "conversation_id": link.conversation_id,
                            "status": status,
                        }
                        await conn.execute(QUERIES["file_notice"], notice)
                await conn.execute(QUERIES["attach_event"], {"id": event.id, "link_id": link.id})
        return EventOutcome(event=replace(event, link_id=link.id), duplicate=False, link=link)

    async def has_conversation(self, tenant_id: UUID, conversation_id: UUID) -> bool:
        with translated():
            async with self.pool.connection() as conn:
                params = {"id": conversation_id, "tenant_id": tenant_id}
                cur = await conn.execute(QUERIES["has_conversation"], params)
                row = await cur.fetchone()
        return bool(row and row[0])

    async def claim_notices(self, worker: str, limit: int, lease: float) -> list[DueNotice]:
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=_DUE_ROW)
                params = {"worker": worker, "limit": limit, "lease": lease}
                await cur.execute(QUERIES["claim_notices"], params)
                return await cur.fetchall()

    async def settle_notice(
        self, notice_id: int, outcome: PaymentNotice, outbound_id: int | None
    ) -> None:
        params = {
            "id": notice_id,
            "state": outcome.state,
            "sent_as": outcome.sent_as,
            "reason_code": outcome.reason_code,
            "reason": outcome.reason[:500] if outcome.reason else None,
            "outbound_id": outbound_id,
        }
        with translated():
            async with self.pool.connection() as conn:
                await conn.execute(QUERIES["settle_notice"], params)

    async def retry_notice(self, notice_id: int, delay: float, reason: str) -> None:
        params = {"id": notice_id, "delay": delay, "reason": reason[:500]}
        with translated():
            async with self.pool.connection() as conn:
                await conn.execute(QUERIES["retry_notice"], params)
