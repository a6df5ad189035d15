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
from changarrito.adapters.postgres.pool import Pool
from changarrito.adapters.postgres.queries import QUERIES
from changarrito.domain.errors import Conflict
from changarrito.domain.model import Source
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
    )


_LINK_ROW = kwargs_row(_link)


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
                await conn.execute(QUERIES["attach_event"], {"id": event.id, "link_id": link.id})
        return EventOutcome(event=replace(event, link_id=link.id), duplicate=False, link=link)
