"""Payment notices on real PostgreSQL, sent by the real ``PaymentNotices`` through the inbox
to the fake Graph: filed once per link and outcome however often the provider repeats
itself, and sent once even when a worker dies holding one (its lease runs out and another
worker finds what the first one recorded).
"""

# The fixtures come from test_conversations_api (imported, then named as parameters).
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
from test_conversations_api import (  # the same world: fake Graph, app, database
    app_service,  # noqa: F401
    conversation,
    db,  # noqa: F401
    graph,  # noqa: F401
    shop,  # noqa: F401
    test_settings,  # noqa: F401
    unique_phone,
)

from changarrito.bootstrap import Service
from changarrito.domain.inbox import Notice
from changarrito.domain.model import Source
from changarrito.domain.payment_model import PaymentEventRecord, PaymentLinkRecord
from fakes.fake_graph import FakeGraph


async def linked(
    service: Service, tenant_id: uuid.UUID, conversation_id: str | None = None
) -> PaymentLinkRecord:
    """A platform Stripe link of 150.00 MXN (reference R-1), for ``conversation_id``."""
    link = PaymentLinkRecord(
        tenant_id=tenant_id,
        provider="stripe",
        provider_link_id=f"cs_test_{uuid.uuid4().hex}",
        url="https://checkout.stripe.test/c/pay/x",
        amount=Decimal("150.00"),
        currency="MXN",
        description="Listón rojo x3",
        reference="R-1",
        source=Source.PLATFORM,
        conversation_id=uuid.UUID(conversation_id) if conversation_id else None,
    )
    return await service.storage.payments.save_link(link)


def paid(link: PaymentLinkRecord, event_id: str) -> PaymentEventRecord:
    return PaymentEventRecord(
        tenant_id=link.tenant_id,
        provider="stripe",
        event_id=event_id,
        type="checkout.session.completed",
        status="paid",
        payload={},
        source=Source.PLATFORM,
        named_link_id=link.id,
        amount=link.amount,
        currency=link.currency,
    )


def to(graph: FakeGraph, phone: str) -> list[Any]:
    return [r for r in graph.sends() if r.body.get("to") == f"+{phone}"]


async def test_a_paid_link_files_one_notice_however_often_the_provider_says_so(
    app_service: Service, shop: Any, db: psycopg.AsyncConnection[Any], graph: FakeGraph
) -> None:
    tenant_id, _, number, _ = await shop()
    phone = unique_phone()
    link = await linked(
        app_service, tenant_id, await conversation(db, number, tenant_id, phone=phone)
    )
    store = app_service.storage.payments

    for event_id in ("evt_1", "evt_1", "evt_2"):
        await store.record_event(paid(link, event_id))
    assert app_service.notices is not None
    first = await app_service.notices.deliver_due("worker-a")
    again = await app_service.notices.deliver_due("worker-a")

    assert [d.state for d in first if d.notice.link.id == link.id] == ["sent"]
    assert [d for d in again if d.notice.link.id == link.id] == []
    [sent] = to(graph, phone)
    assert "Recibimos tu pago de $150.00 MXN" in sent.body["text"]["body"]
    shown = await store.get_link(tenant_id, link.id)
    assert shown is not None
    assert [(n.status, n.state, n.sent_as) for n in shown.notices] == [("paid", "sent", "text")]


async def test_a_notice_a_dead_worker_held_is_sent_once_by_the_next(
    app_service: Service, shop: Any, db: psycopg.AsyncConnection[Any], graph: FakeGraph
) -> None:
    tenant_id, _, number, _ = await shop()
    phone = unique_phone()
    link = await linked(
        app_service, tenant_id, await conversation(db, number, tenant_id, phone=phone)
    )
    store = app_service.storage.payments
    await store.record_event(paid(link, "evt_dead"))
    assert app_service.notices is not None and app_service.inbox is not None

    # Worker A leases it, sends it, and dies before recording that it did.
    [held] = [n for n in await store.claim_notices("worker-a", 50, 0.2) if n.link.id == link.id]
    key = f"payment:{link.id}:paid"
    notice = Notice(tenant_id, link.conversation_id, "paymentReceived", "¡Pagado!", {}, key)  # type: ignore[arg-type]
    await app_service.inbox.notify(notice)
    assert len(to(graph, phone)) == 1
    assert [n for n in await store.claim_notices("worker-b", 50, 30) if n.link.id == link.id] == []

    await asyncio.sleep(0.3)  # A's lease runs out
    done = [
        d for d in await app_service.notices.deliver_due("worker-b") if d.notice.link.id == link.id
    ]

    assert [(d.state, d.notice.attempts) for d in done] == [("sent", 2)]
    assert held.attempts == 1
    assert len(to(graph, phone)) == 1  # B found A's message sent: nothing more went


async def test_a_notice_for_a_closed_window_without_a_template_is_skipped_with_its_reason(
    app_service: Service, shop: Any, db: psycopg.AsyncConnection[Any], graph: FakeGraph
) -> None:
    tenant_id, _, number, _ = await shop()
    phone = unique_phone()
    cid = await conversation(db, number, tenant_id, phone=phone, last_wrote=timedelta(hours=26))
    link = await linked(app_service, tenant_id, cid)
    await app_service.storage.payments.record_event(paid(link, "evt_closed"))
    assert app_service.notices is not None

    done = [d for d in await app_service.notices.deliver_due("w") if d.notice.link.id == link.id]

    assert [(d.state, d.code) for d in done] == [("skipped", "window-closed")]
    assert "paymentReceived" in (done[0].reason or "")
    assert to(graph, phone) == []
    assert graph.template_sends(accepted_only=False) == []


async def test_meta_refusing_text_inside_the_window_gets_the_purposes_template_instead(
    app_service: Service, shop: Any, db: psycopg.AsyncConnection[Any], graph: FakeGraph
) -> None:
    """Meta's known false positive: 131047 although the customer wrote minutes ago."""
    tenant_id, _, number, _ = await shop()
    phone = unique_phone()
    cid = await conversation(db, number, tenant_id, phone=phone, name="Ana")
    graph.close_window(phone)
    assert app_service.inbox is not None and app_service.templates is not None
    waba = await _account(db, number)
    graph.add_template(waba, "pago_recibido", components=[{"type": "BODY", "text": "{{1}}: {{2}}"}])
    await app_service.templates.sync(tenant_id)
    await db.execute(
        "UPDATE tenant_integration_credentials SET config = config || %s::jsonb"
        " WHERE tenant_id = %s AND integration_type = 'whatsapp'",
        (
            '{"templates": {"paymentReceived": {"name": "pago_recibido", "language": "es_MX",'
            ' "parameters": ["customerName", "amount"]}}}',
            tenant_id,
        ),
    )
    app_service.resolver.invalidate_tenant(tenant_id)
    app_service.resolver.invalidate_number(number)

    values = {"amount": "$150.00 MXN"}
    notice = Notice(tenant_id, uuid.UUID(cid), "paymentReceived", "¡Pagado!", values, "k-" + cid)
    message = await app_service.inbox.notify(notice)

    assert message.template is not None and message.template.outside_window is False
    [refused] = [r for r in graph.recorded() if r.status == 400 and r.body.get("to") == f"+{phone}"]
    assert refused.body["type"] == "text"
    [sent] = graph.template_sends()
    values_sent = [p["text"] for p in sent.body["template"]["components"][0]["parameters"]]
    assert values_sent == ["Ana", "$150.00 MXN"]
    cur = await db.execute(
        "SELECT author, purpose FROM whatsapp_outbound_messages WHERE id = %s", (message.row_id,)
    )
    assert await cur.fetchone() == ("bot", "paymentReceived")  # a notice is not the shop's


async def _account(db: psycopg.AsyncConnection[Any], number: str) -> str:
    cur = await db.execute(
        "SELECT business_account_id FROM tenant_whatsapp_numbers WHERE phone_number_id = %s",
        (number,),
    )
    row = await cur.fetchone()
    assert row is not None and row[0]
    return str(row[0])


async def test_a_link_for_another_tenants_conversation_is_refused_before_the_provider(
    app_client: Any, shop: Any, make_tenant: Any, db: psycopg.AsyncConnection[Any]
) -> None:
    tenant_id, _, number, _ = await shop()
    theirs = await conversation(db, number, tenant_id)
    _, headers = await make_tenant("Otra tienda")
    body = {
        "amount": "150.00",
        "currency": "MXN",
        "description": "Listón",
        "reference": "R-9",
        "conversationId": theirs,
    }

    response = await app_client.post("/api/v1/payments/links", json=body, headers=headers)

    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {"field": "conversationId", "message": "is not a conversation of this account"}
    ]
    cur = await db.execute(
        "SELECT count(*) FROM payment_links WHERE conversation_id = %s", (theirs,)
    )
    assert await cur.fetchone() == (0,)
