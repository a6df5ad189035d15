"""Events for the platform's backend on real PostgreSQL: filed in the transaction of the
change they report (a switch made through the API, a payment notification, a credential that
stopped working, a message given up on), never when events are off, and delivered signed to
a local receiver that checks every signature with the ``standardwebhooks`` verifier: retried
when it fails, in order within a conversation.
"""

# The fixtures come from test_conversations_api (imported, then named as parameters).
# ruff: noqa: F811

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from standardwebhooks.webhooks import Webhook
from test_conversations_api import (  # the same world: fake Graph, app, database
    API,
    app_service,  # noqa: F401
    conversation,
    db,  # noqa: F401
    graph,  # noqa: F401
    shop,  # noqa: F401
    test_settings,  # noqa: F401
)
from test_payment_notices import linked, paid

from changarrito.adapters.events_http import HttpEventPoster
from changarrito.adapters.postgres.events import set_enabled
from changarrito.bootstrap import Service
from changarrito.domain.event_delivery import EventDelivery
from changarrito.domain.events import Receiver, parse_secret
from changarrito.domain.model import IntegrationType
from fakes._server import Answer, FakeServer, Recorded

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Receiver_(FakeServer):
    """The platform's backend: verifies each delivery with the reference verifier (401 when
    it does not verify), then answers the next scripted status (204 when none)."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[int] = []
        self.verified: list[dict[str, Any]] = []

    def answer(self, recorded: Recorded) -> Answer:
        try:
            event = Webhook(SECRET).verify(recorded.raw, recorded.headers)
        except Exception:  # the reference verifier raises a few kinds
            return Answer(401, {"error": "bad signature"})
        status = self.statuses.pop(0) if self.statuses else 204
        if status < 300:
            self.verified.append({"id": recorded.headers.get("webhook-id"), **event})
        return Answer(status, {})


@pytest.fixture
def receiver() -> Iterator[Receiver_]:
    fake = Receiver_()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
async def events_on(app_service: Service) -> AsyncIterator[None]:
    assert app_service.storage.pool is not None
    await set_enabled(app_service.storage.pool, True)
    try:
        yield
    finally:
        await set_enabled(app_service.storage.pool, False)


def delivery(service: Service, receiver: Receiver_) -> EventDelivery:
    assert service.storage.events is not None
    poster = HttpEventPoster(service.http, timeout=2)
    return EventDelivery(
        service.storage.events, poster, Receiver(receiver.url + "/events", parse_secret(SECRET))
    )


async def filed(db: psycopg.AsyncConnection[Any], key: str) -> list[tuple[Any, ...]]:
    cur = await db.execute(
        "SELECT type, data, state FROM changarrito_events WHERE ordering_key = %s ORDER BY id",
        (key,),
    )
    return await cur.fetchall()


async def test_with_events_off_a_handoff_files_nothing(
    app_client: Any, shop: Any, db: psycopg.AsyncConnection[Any]
) -> None:
    tenant_id, headers, number, _ = await shop()
    cid = await conversation(db, number, tenant_id)

    response = await app_client.post(f"{API}/{cid}/handoff", json={}, headers=headers)

    assert response.status_code == 200, response.text
    assert await filed(db, f"conversation:{cid}") == []


async def test_a_handoff_and_a_resume_reach_the_receiver_signed_and_in_order(
    app_client: Any,
    app_service: Service,
    shop: Any,
    db: psycopg.AsyncConnection[Any],
    receiver: Receiver_,
    events_on: None,
) -> None:
    tenant_id, headers, number, _ = await shop()
    cid = await conversation(db, number, tenant_id)
    for action in ("handoff", "resume"):
        response = await app_client.post(
            f"{API}/{cid}/{action}", json={"reason": "pedido especial"}, headers=headers
        )
        assert response.status_code == 200, response.text
    # Only this conversation's events are due (other tests' are settled), and the first
    # delivery fails: the second must wait for it.
    await db.execute(
        "UPDATE changarrito_events SET state = 'delivered' WHERE state = 'pending'"
        " AND ordering_key <> %s",
        (f"conversation:{cid}",),
    )
    receiver.statuses = [503]
    outbox = delivery(app_service, receiver)

    first = [d for d in await outbox.deliver_due("w") if d.event.ordering_key.endswith(cid)]
    assert [(d.event.type, d.state) for d in first] == [("conversation.handoff", "pending")]
    await db.execute(
        "UPDATE changarrito_events SET due_at = now() WHERE ordering_key = %s",
        (f"conversation:{cid}",),
    )
    second = [d for d in await outbox.deliver_due("w") if d.event.ordering_key.endswith(cid)]
    third = [d for d in await outbox.deliver_due("w") if d.event.ordering_key.endswith(cid)]

    assert [(d.event.type, d.state) for d in second + third] == [
        ("conversation.handoff", "delivered"),
        ("conversation.resumed", "delivered"),
    ]
    mine = [e for e in receiver.verified if e["data"].get("conversationId") == cid]
    assert [e["type"] for e in mine] == ["conversation.handoff", "conversation.resumed"]
    assert mine[0]["data"] | {"at": None} == {
        "tenantId": str(tenant_id),
        "conversationId": cid,
        "phoneNumberId": number,
        "from": "bot",
        "to": "human",
        "actor": f"api:user-of-{tenant_id}",
        "reason": "pedido especial",
        "at": None,
    }
    assert first[0].event.event_id == second[0].event.event_id  # the same webhook-id again


async def test_a_paid_link_files_one_payment_succeeded_however_often_it_is_notified(
    app_service: Service, shop: Any, db: psycopg.AsyncConnection[Any], events_on: None
) -> None:
    tenant_id, _, _, _ = await shop()
    store = app_service.storage.payments
    link = await linked(app_service, tenant_id)
    for event_id in ("evt_a", "evt_a", "evt_b"):
        await store.record_event(paid(link, event_id))

    [(kind, data, state)] = await filed(db, f"payment:{link.id}")
    assert (kind, state) == ("payment.succeeded", "pending")
    assert data | {"providerEventId": None} == {
        "tenantId": str(tenant_id),
        "linkId": str(link.id),
        "provider": "stripe",
        "providerLinkId": link.provider_link_id,
        "providerEventId": None,
        "status": "paid",
        "amount": "150.00",
        "currency": "MXN",
        "reference": "R-1",
        "conversationId": None,
        "source": "platform",
    }


async def test_a_credential_that_stopped_working_files_credential_unverified_once(
    app_service: Service, shop: Any, db: psycopg.AsyncConnection[Any], events_on: None
) -> None:
    tenant_id, _, _, token = await shop()
    store = app_service.storage.store
    for _ in range(3):  # every failing send says so again; the event is for the change
        await store.set_verified(
            tenant_id, IntegrationType.WHATSAPP, "meta", False, "Graph 190: token revoked"
        )

    [(kind, data, _)] = await filed(db, f"credential:{tenant_id}:whatsapp")
    assert kind == "credential.unverified"
    assert data == {
        "tenantId": str(tenant_id),
        "integration": "whatsapp",
        "provider": "meta",
        "reason": "Graph 190: token revoked",
    }
    assert token not in str(data)


async def test_a_message_given_up_on_files_message_failed(
    app_service: Service, shop: Any, db: psycopg.AsyncConnection[Any], events_on: None
) -> None:
    tenant_id, _, number, _ = await shop()
    cid = await conversation(db, number, tenant_id)
    cur = await db.execute(
        "INSERT INTO whatsapp_inbound_messages (wamid, phone_number_id, tenant_id, route,"
        " customer_id, customer_phone, type, text, raw, sent_at, state, conversation_id)"
        " VALUES (%s, %s, %s, 'tenant', 'c', 'c', 'text', 'hola', '{}', now(), 'pending', %s)"
        " RETURNING id",
        (f"wamid.{uuid.uuid4().hex}", number, tenant_id, cid),
    )
    row = await cur.fetchone()
    assert row is not None
    await db.execute(
        "UPDATE whatsapp_inbound_messages SET state = 'dead', attempts = 8,"
        " last_error = 'no answer after 7 attempts' WHERE id = %s",
        (row[0],),
    )

    [(kind, data, _)] = [
        e for e in await filed(db, f"conversation:{cid}") if e[0] != "message.received"
    ]
    assert kind == "message.failed"
    assert (data["messageId"], data["state"], data["reason"]) == (
        f"in_{row[0]}",
        "dead",
        "no answer after 7 attempts",
    )


async def test_customer_messages_stored_in_one_statement_file_one_message_received_each(
    shop: Any, db: psycopg.AsyncConnection[Any], events_on: None
) -> None:
    """The intake stores a batch in one statement; a redelivered message is not stored again,
    so it files nothing again (the webhook path itself is in the end-to-end tests)."""
    tenant_id, _, number, _ = await shop()
    cid = await conversation(db, number, tenant_id)
    wamids = [f"wamid.{uuid.uuid4().hex}" for _ in range(2)]
    insert = (
        "INSERT INTO whatsapp_inbound_messages (wamid, phone_number_id, tenant_id, route,"
        " customer_id, customer_phone, type, text, raw, sent_at, state, conversation_id)"
        " SELECT w, %s, %s, 'tenant', '5215500000001', '5215500000001', 'text', 'hola', '{}',"
        " now(), 'pending', %s FROM unnest(%s::text[]) AS w ON CONFLICT DO NOTHING"
    )
    for _ in range(2):
        await db.execute(insert, (number, tenant_id, cid, wamids))

    received = [
        (data["wamid"], data["customerPhone"], data["messageId"].startswith("in_"))
        for kind, data, _ in await filed(db, f"conversation:{cid}")
        if kind == "message.received"
    ]
    assert received == [(w, "5215500000001", True) for w in wamids]
