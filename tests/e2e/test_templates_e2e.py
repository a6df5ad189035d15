"""Templates, the window and "pago recibido" end to end, against a real ``changarrito serve``:
a shop connects its number with a ``paymentReceived`` template, syncs its templates from the
fake Graph, creates a payment link for a conversation, and the fake Stripe's signed
notification tells the customer on WhatsApp: as the template when they last wrote 25 hours
ago (the fake Graph refuses free text to them with 131047), as text when they wrote a
minute ago; a notification repeated by Stripe sends nothing more; a template paused by its
status webhook is refused before Graph.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from changarrito.adapters.tokens import issue_token
from changarrito.plugins.payments.stripe import sign as stripe_sign
from fakes._server import Answer, FakeServer, Recorded
from fakes.world import PLATFORM_APP_SECRET, SHOPS_WABA, Shop, World, module_world, running_server
from fakes.world import wait_for as wait_until
from whatsapp_payloads import encode, signed_headers, text_message, webhook

JWT_SECRET = "jwt-secret-e2e-00000000000000000000"
STRIPE_KEY = "sk_test_platformE2E000000000000"
STRIPE_SECRET = "whsec_platformE2E0000000000000"
PAGO = "pago_recibido"
PAGO_BODY = "Hola {{1}}, recibimos tu pago de {{2}} (ref. {{3}}). ¡Gracias!"


class FakeStripe(FakeServer):
    """Stripe's Checkout Sessions as far as creating one goes (PROVIDERS.md §3)."""

    def answer(self, recorded: Recorded) -> Answer:
        if recorded.method == "POST" and recorded.path == "/v1/checkout/sessions":
            sid = f"cs_test_{uuid.uuid4().hex}"
            url = f"https://checkout.stripe.test/c/pay/{sid}"
            return Answer(200, {"id": sid, "object": "checkout.session", "url": url})
        return Answer(404, {"error": {"type": "invalid_request_error", "message": "no route"}})


@pytest.fixture(scope="module")
def world(pg_admin_url: str) -> Iterator[World]:
    yield from module_world(pg_admin_url)


@pytest.fixture(scope="module")
def stripe() -> Iterator[FakeStripe]:
    fake = FakeStripe()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def server(
    world: World, stripe: FakeStripe, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    env = world.env(
        STRIPE_BASE_URL=stripe.url,
        STRIPE_API_KEY=STRIPE_KEY,
        STRIPE_WEBHOOK_SECRET=STRIPE_SECRET,
        CHANGARRITO_TEMPLATE_SYNC_HOURS="0",
    )
    with running_server(env, tmp_path_factory.mktemp("serve")) as url:
        yield url


@pytest.fixture(scope="module")
def shop(world: World, server: str) -> Shop:
    """A shop on its own number and the platform's Stripe, with a ``paymentReceived``
    template configured and its templates synced."""
    shop = world.shop("merceria", "132000000000001", own_app=False)
    world.graph.add_template(
        SHOPS_WABA, PAGO, components=[{"type": "BODY", "text": PAGO_BODY}], category="UTILITY"
    )
    mapping = {
        "paymentReceived": {
            "name": PAGO,
            "language": "es_MX",
            "parameters": ["customerName", "amount", "reference"],
        }
    }
    body = {
        "credentials": {"phoneNumberId": shop.phone_number_id, "businessAccountId": SHOPS_WABA},
        "templates": mapping,
    }
    put = api(server, shop, "PUT", "/api/v1/integrations/whatsapp", json=body)
    assert put.status_code == 200, put.text
    synced = api(server, shop, "POST", "/api/v1/templates/sync")
    assert synced.status_code == 200, synced.text
    assert synced.json()["synced"] >= 1
    return shop


def api(server: str, shop: Shop, method: str, path: str, **kw: Any) -> httpx.Response:
    token = issue_token(JWT_SECRET, shop.tenant_id, timedelta(minutes=5))
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.request(method, server + path, headers=headers, timeout=10, **kw)


def customer_writes(world: World, server: str, shop: Shop, customer: str, ago: timedelta) -> str:
    """The customer's message, Meta-timestamped ``ago``; its conversation's id, once the
    worker is done with it (answered, or failed when the window had closed)."""
    sent_at = str(int(time.time() - ago.total_seconds()))
    message = text_message("¿Cuánto es?", sender=customer, timestamp=sent_at)
    world.post(server, World.text_webhook(shop.phone_number_id, message), shop.webhook_secret)
    settled = wait_until(
        "the worker", lambda: world.inbound(message["id"])["state"] in ("answered", "failed")
    )
    assert settled

    def found() -> str | None:
        listed = api(server, shop, "GET", "/api/v1/conversations", params={"q": customer})
        data = listed.json()["data"]
        return data[0]["id"] if data else None

    return wait_until("the conversation", found)


def paid_link(server: str, shop: Shop, conversation_id: str, reference: str) -> dict[str, Any]:
    body = {
        "amount": "150.00",
        "currency": "MXN",
        "description": "Listón rojo x3",
        "reference": reference,
        "provider": "stripe",
        "conversationId": conversation_id,
    }
    created = api(server, shop, "POST", "/api/v1/payments/links", json=body)
    assert created.status_code == 201, created.text
    link: dict[str, Any] = created.json()
    assert link["conversationId"] == conversation_id
    return link


def stripe_paid(server: str, shop: Shop, link: dict[str, Any], event_id: str | None = None) -> None:
    event = {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": "checkout.session.completed",
        "created": int(time.time()),
        "data": {
            "object": {
                "id": link["providerLinkId"],
                "object": "checkout.session",
                "payment_status": "paid",
                "amount_total": 15000,
                "currency": "mxn",
                "client_reference_id": link["id"],
                "metadata": {"link_id": link["id"], "reference": link["reference"]},
            }
        },
    }
    body = json.dumps(event).encode()
    signature = stripe_sign(body, STRIPE_SECRET, int(time.time()))
    response = httpx.post(
        f"{server}/webhooks/payments/stripe/{shop.tenant_id}",
        content=body,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def to_customer(world: World, customer: str) -> list[Recorded]:
    """Every message Graph accepted for ``customer`` after the bot's first answer."""
    return [
        r
        for r in world.graph.recorded(lambda r: isinstance(r.body, dict))
        if r.method == "POST"
        and r.path.endswith("/messages")
        and r.answered
        and r.status == 200
        and r.body.get("to") == f"+{customer}"
        and r.body.get("type") in ("template", "text")
    ]


def notices(server: str, shop: Shop, link: dict[str, Any]) -> list[dict[str, Any]]:
    shown = api(server, shop, "GET", f"/api/v1/payments/links/{link['id']}")
    assert shown.status_code == 200, shown.text
    found: list[dict[str, Any]] = shown.json()["notices"]
    return found


def sent_notice(server: str, shop: Shop, link: dict[str, Any]) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        found = notices(server, shop, link)
        return found[0] if found and found[0]["state"] != "pending" else None

    return wait_until("the payment notice", done)


def test_a_link_paid_25_hours_after_the_last_message_sends_the_paymentreceived_template(
    world: World, server: str, shop: Shop
) -> None:
    customer = "5215530000001"
    conversation = customer_writes(world, server, shop, customer, timedelta(hours=25))
    world.graph.close_window(customer)
    link = paid_link(server, shop, conversation, "A-25H")
    before = len(to_customer(world, customer))

    stripe_paid(server, shop, link)

    notice = sent_notice(server, shop, link)
    assert (notice["status"], notice["state"], notice["sentAs"]) == ("paid", "sent", "template")
    [sent] = to_customer(world, customer)[before:]
    assert sent.body["type"] == "template"
    assert sent.body["template"]["name"] == PAGO
    values = [p["text"] for p in sent.body["template"]["components"][0]["parameters"]]
    assert values[1:] == ["$150.00 MXN", "A-25H"]
    messages = api(server, shop, "GET", f"/api/v1/conversations/{conversation}/messages").json()
    newest = messages["data"][0]
    assert newest["type"] == "template"
    assert newest["template"]["purpose"] == "paymentReceived"
    assert newest["template"]["outsideWindow"] is True
    assert "$150.00 MXN" in newest["text"]


def test_a_link_paid_inside_the_window_sends_text_and_a_repeated_notification_nothing_more(
    world: World, server: str, shop: Shop
) -> None:
    customer = "5215530000002"
    conversation = customer_writes(world, server, shop, customer, timedelta(minutes=1))
    link = paid_link(server, shop, conversation, "B-1MIN")
    before = len(to_customer(world, customer))

    stripe_paid(server, shop, link, event_id="evt_repeated_b")

    notice = sent_notice(server, shop, link)
    assert (notice["state"], notice["sentAs"]) == ("sent", "text")
    stripe_paid(server, shop, link, event_id="evt_repeated_b")  # Stripe retries the same event
    stripe_paid(server, shop, link)  # and a second event saying paid
    time.sleep(1.5)  # the workers poll every 0.1 s: anything more would have gone by now
    sent = to_customer(world, customer)[before:]
    assert [r.body["type"] for r in sent] == ["text"]
    assert "Recibimos tu pago de $150.00 MXN" in sent[0].body["text"]["body"]
    assert len(notices(server, shop, link)) == 1


def test_without_a_template_for_a_closed_window_the_owner_sees_why_nothing_went_out(
    world: World, server: str, shop: Shop, stripe: FakeStripe
) -> None:
    customer = "5215530000003"
    conversation = customer_writes(world, server, shop, customer, timedelta(hours=30))
    world.graph.close_window(customer)
    link = paid_link(server, shop, conversation, "C-FAILS")
    before = len(to_customer(world, customer))

    event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": "checkout.session.expired",
        "created": int(time.time()),
        "data": {
            "object": {
                "id": link["providerLinkId"],
                "object": "checkout.session",
                "status": "expired",
                "payment_status": "unpaid",
                "metadata": {"link_id": link["id"], "reference": link["reference"]},
            }
        },
    }
    body = json.dumps(event).encode()
    response = httpx.post(
        f"{server}/webhooks/payments/stripe/{shop.tenant_id}",
        content=body,
        headers={"Stripe-Signature": stripe_sign(body, STRIPE_SECRET, int(time.time()))},
        timeout=10,
    )
    assert response.status_code == 200, response.text

    notice = sent_notice(server, shop, link)
    assert (notice["status"], notice["state"], notice["reasonCode"]) == (
        "expired",
        "skipped",
        "window-closed",
    )
    assert "paymentExpired" in notice["reason"]
    assert to_customer(world, customer)[before:] == []


def test_a_template_paused_by_its_status_webhook_is_refused_before_graph(
    world: World, server: str, shop: Shop
) -> None:
    customer = "5215530000004"
    conversation = customer_writes(world, server, shop, customer, timedelta(minutes=2))
    [listed] = [
        t for t in api(server, shop, "GET", "/api/v1/templates").json()["data"] if t["name"] == PAGO
    ]
    status = {
        "event": "PAUSED",
        "message_template_id": int(listed["id"]),
        "message_template_name": PAGO,
        "message_template_language": "es_MX",
        "reason": None,
        "message_template_category": "UTILITY",
    }
    payload = webhook(
        {"field": "message_template_status_update", "value": status}, waba_id=SHOPS_WABA
    )
    body = encode(payload)
    delivered = httpx.post(
        f"{server}/webhooks/whatsapp",
        content=body,
        headers=signed_headers(body, PLATFORM_APP_SECRET),
        timeout=10,
    )
    assert delivered.status_code == 200, delivered.text

    def paused() -> bool:
        shown = api(server, shop, "GET", "/api/v1/templates").json()["data"]
        return any(t["name"] == PAGO and t["status"] == "PAUSED" for t in shown)

    wait_until("the template to be paused", paused)
    before = len(world.graph.template_sends(accepted_only=False))
    send = {"type": "template", "name": PAGO, "language": "es_MX", "parameters": ["Ana", "$1", "X"]}

    response = api(
        server, shop, "POST", f"/api/v1/conversations/{conversation}/messages", json=send
    )

    assert response.status_code == 409, response.text
    assert response.json()["type"].endswith("/template-not-sendable")
    assert len(world.graph.template_sends(accepted_only=False)) == before
