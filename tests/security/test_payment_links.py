"""Payment links, tried as an attacker (issue 10, items 1, 3, 6 and 8).

HTTP in, observable effect out: links are created with a tenant JWT (``POST
/api/v1/payments/links``), notifications are posted to ``/webhooks/payments/{provider}/{tenant}``
signed with each provider's documented scheme (Stripe's ``Stripe-Signature``, checked against
the ``stripe`` SDK's own ``WebhookSignature``; Mercado Pago's ``x-signature`` manifest), and
what the attacker gets is read back with ``GET /api/v1/payments/links/{id}`` (and, for what is
stored, the notifications table of the in-memory store the service runs on).

- A payment pays only the link the provider put it on (our link id in its object), for at least
  the link's amount, in its currency, on the account that created the link: not a 0.01 USD
  payment, not another tenant's payment on the platform's shared account, not an older link's
  payment with the same reference.
- Mercado Pago notifications that cannot be verified (unsigned, and not a payment the link's
  credential can re-fetch) are refused and not stored.
- Event ids are per tenant and from verified data: pre-claiming one does not drop the genuine
  notification.
- A 250 KB notification stores at most a few kilobytes.
- A declined attempt leaves the link payable; a correctly signed Mercado Pago notification two
  hours old is still accepted.

The provider APIs are the fakes of ``fakes.payment_gateways`` (the integration suite's), which
echo what each link creation sent, as the providers do.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from changarrito.adapters.http import HttpClients
from changarrito.bootstrap import Service, build_service
from changarrito.entrypoints.http.app import create_app
from changarrito.plugins.payments.stripe import sign as stripe_sign
from changarrito.settings import Settings
from fakes.memory import MemoryPaymentStore
from fakes.payment_gateways import FakeGateways
from fakes.service import memory_storage

JWT_SECRET = "security-tests-jwt-secret-0123456789abcdef"
INTERNAL = {"X-Internal-Key": "security-tests-internal-key-0123456789"}
STRIPE_SECRET = "whsec_platformSigningSecret0000"
MP_SECRET = "mp-platform-signing-secret-0000"
ENV = {
    "JWT_SECRET": JWT_SECRET,
    "INTERNAL_API_KEY": INTERNAL["X-Internal-Key"],
    "WHATSAPP_API_BASE_URL": "https://graph.test",
    "WHATSAPP_ACCESS_TOKEN": "EAAplatformwhatsapptoken0000000000",
    "WHATSAPP_PHONE_NUMBER_ID": "100000000000001",
    "OPENAI_API_KEY": "sk-platform-openai-key-000000000000",
    # The platform's own payment accounts, shared by every tenant without credentials.
    "STRIPE_API_KEY": "sk_test_platformKEY000000000000",
    "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
    "MERCADOPAGO_ACCESS_TOKEN": "APP_USR-platform-token-0000000000",
    "MERCADOPAGO_WEBHOOK_SECRET": MP_SECRET,
}


@dataclass
class World:
    client: AsyncTestClient[Litestar]
    service: Service
    gateways: FakeGateways

    async def tenant(self, **credentials: dict[str, str]) -> tuple[uuid.UUID, dict[str, str]]:
        """A new tenant and its bearer headers; ``credentials``: its own, per provider."""
        response = await self.client.post(
            "/api/v1/internal/tenants", json={"name": "Tienda"}, headers=INTERNAL
        )
        assert response.status_code == 201, response.text
        tenant_id = uuid.UUID(response.json()["id"])
        now = int(time.time())
        claims = {"tenant_id": str(tenant_id), "sub": "owner", "iat": now, "exp": now + 600}
        auth = {"Authorization": f"Bearer {jwt.encode(claims, JWT_SECRET, algorithm='HS256')}"}
        for provider, secrets in credentials.items():
            saved = await self.client.put(
                f"/api/v1/integrations/payments/{provider}",
                json={"credentials": secrets},
                headers=auth,
            )
            assert saved.status_code == 200, saved.text
        return tenant_id, auth

    async def link(
        self, auth: dict[str, str], provider: str, amount: str, currency: str = "MXN", **body: Any
    ) -> dict[str, Any]:
        payload = {
            "provider": provider,
            "amount": amount,
            "currency": currency,
            "description": "Pedido",
            "reference": "order-77",
            **body,
        }
        response = await self.client.post("/api/v1/payments/links", json=payload, headers=auth)
        assert response.status_code == 201, response.text
        link: dict[str, Any] = response.json()
        return link

    async def status(self, auth: dict[str, str], link: dict[str, Any]) -> str:
        response = await self.client.get(f"/api/v1/payments/links/{link['id']}", headers=auth)
        assert response.status_code == 200, response.text
        status: str = response.json()["status"]
        return status

    async def post(
        self,
        provider: str,
        tenant: uuid.UUID,
        body: bytes,
        headers: dict[str, str] | None = None,
        query: str = "",
    ) -> httpx.Response:
        return await self.client.post(
            f"/webhooks/payments/{provider}/{tenant}{query}",
            content=body,
            headers={"Content-Type": "application/json", **(headers or {})},
        )

    def stored(self, tenant: uuid.UUID) -> list[Any]:
        """The tenant's stored notifications."""
        store = self.service.storage.payments
        assert isinstance(store, MemoryPaymentStore)
        return [e for e in store.events.values() if e.tenant_id == tenant]


@pytest.fixture
async def world() -> AsyncIterator[World]:
    settings = Settings.from_env(ENV)
    gateways = FakeGateways()
    http = HttpClients(transport=httpx.MockTransport(gateways.handler))
    service = build_service(settings, memory_storage(), role="backend", http=http)
    try:
        async with AsyncTestClient(app=create_app(settings, service=service)) as client:
            yield World(client, service, gateways)
    finally:
        await service.aclose()


# --- how each provider signs -----------------------------------------------------------------


def stripe_event(event_type: str, obj: dict[str, Any], event_id: str | None = None) -> bytes:
    event = {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": obj},
    }
    return json.dumps(event).encode()


def stripe_headers(body: bytes, secret: str = STRIPE_SECRET) -> dict[str, str]:
    return {"Stripe-Signature": stripe_sign(body, secret, int(time.time()))}


def intent(world: World, session_id: str, event_amount: int, currency: str) -> dict[str, Any]:
    """The PaymentIntent Stripe made for a session: the session's ``payment_intent_data``
    metadata, as Stripe copies it."""
    form = world.gateways.sent(session_id)
    metadata = {
        key.removeprefix("payment_intent_data[metadata][").removesuffix("]"): value
        for key, value in form.items()
        if key.startswith("payment_intent_data[metadata][")
    }
    return {
        "id": f"pi_{uuid.uuid4().hex[:12]}",
        "object": "payment_intent",
        "amount": event_amount,
        "amount_received": event_amount,
        "currency": currency,
        "status": "succeeded",
        "metadata": metadata,
    }


def mercadopago_notification(
    payment_id: str, secret: str | None = MP_SECRET, *, age: int = 0, kind: str = "payment"
) -> tuple[bytes, dict[str, str], str]:
    """Body, headers and query of a Mercado Pago webhook, signed ``age`` seconds ago."""
    body = json.dumps(
        {
            "id": int(time.time() * 1000),
            "live_mode": True,
            "type": kind,
            "action": f"{kind}.updated",
            "data": {"id": payment_id},
        }
    ).encode()
    query = f"?data.id={payment_id}&type={kind}"
    if secret is None:
        return body, {}, query
    request_id = str(uuid.uuid4())
    ts = str(int(time.time()) - age)
    manifest = f"id:{payment_id};request-id:{request_id};ts:{ts};"
    v1 = hmac.new(secret.encode(), manifest.encode(), hashlib.sha256).hexdigest()
    return body, {"x-signature": f"ts={ts},v1={v1}", "x-request-id": request_id}, query


# --- item 1: a payment pays only its own link ---------------------------------------------------


async def test_a_one_cent_dollar_payment_does_not_pay_a_250_peso_link(world: World) -> None:
    victim, victim_auth = await world.tenant()
    _, attacker_auth = await world.tenant()
    target = await world.link(victim_auth, "stripe", "250.00", "MXN")
    # The attacker, on the same platform Stripe account, pays 0.01 USD on its own link with the
    # same reference; Stripe signs the PaymentIntent event with the platform's secret.
    cheap = await world.link(attacker_auth, "stripe", "0.01", "USD")
    paid = stripe_event(
        "payment_intent.succeeded", intent(world, cheap["providerLinkId"], 1, "usd")
    )
    # A 0.01 USD intent that even names the victim's link (e.g. created by hand in the account
    # with copied metadata) is no better.
    forged_metadata = intent(world, target["providerLinkId"], 1, "usd")
    named = stripe_event("payment_intent.succeeded", forged_metadata)

    replayed = await world.post("stripe", victim, paid, stripe_headers(paid))
    naming = await world.post("stripe", victim, named, stripe_headers(named))

    assert (replayed.status_code, naming.status_code) == (200, 200)
    assert await world.status(victim_auth, target) == "pending"


async def test_another_tenants_one_peso_payment_does_not_pay_a_5000_peso_link(
    world: World,
) -> None:
    shop_a, auth_a = await world.tenant()
    shop_c, auth_c = await world.tenant()
    # Both on the platform's Mercado Pago account, both with an "order-77".
    cheap = await world.link(auth_a, "mercadopago", "1.00")
    target = await world.link(auth_c, "mercadopago", "5000.00")
    payment = world.gateways.pay_mercadopago(cheap["providerLinkId"])
    body, headers, query = mercadopago_notification(payment)

    to_c = await world.post("mercadopago", shop_c, body, headers, query)
    to_a = await world.post("mercadopago", shop_a, body, headers, query)

    assert (to_c.status_code, to_a.status_code) == (200, 200)
    assert await world.status(auth_c, target) == "pending"
    assert await world.status(auth_a, cheap) == "paid"  # the genuine one still works


async def test_an_older_links_payment_does_not_pay_a_newer_link_with_the_same_reference(
    world: World,
) -> None:
    shop, auth = await world.tenant()
    older = await world.link(auth, "mercadopago", "100.00")
    newer = await world.link(auth, "mercadopago", "500.00")
    payment = world.gateways.pay_mercadopago(older["providerLinkId"])
    body, headers, query = mercadopago_notification(payment)

    response = await world.post("mercadopago", shop, body, headers, query)

    assert response.status_code == 200, response.text
    assert await world.status(auth, newer) == "pending"
    assert await world.status(auth, older) == "paid"


async def test_an_unsigned_mercadopago_notification_that_cannot_be_refetched_is_refused(
    world: World,
) -> None:
    # The shop has its own Mercado Pago token and set no webhook secret.
    shop, auth = await world.tenant(mercadopago={"accessToken": "APP_USR-shop-own-token-1111"})
    target = await world.link(auth, "mercadopago", "5000.00")
    _, elsewhere_auth = await world.tenant()
    # A payment on the platform's account, which the shop's token cannot read.
    other = await world.link(elsewhere_auth, "mercadopago", "5000.00")
    foreign = world.gateways.pay_mercadopago(other["providerLinkId"])
    payment_body, _, payment_query = mercadopago_notification(foreign, None)
    order_body, _, order_query = mercadopago_notification("123456", None, kind="merchant_order")

    payment = await world.post("mercadopago", shop, payment_body, query=payment_query)
    order = await world.post("mercadopago", shop, order_body, query=order_query)

    for response in (payment, order):
        assert response.status_code == 401, response.text
        assert response.json()["type"].endswith("/invalid-signature")
    assert world.stored(shop) == []
    assert await world.status(auth, target) == "pending"


# --- item 3: event ids are per tenant, from verified data --------------------------------------


async def test_a_pre_claimed_stripe_event_id_does_not_drop_the_genuine_event(
    world: World,
) -> None:
    victim, victim_auth = await world.tenant()
    target = await world.link(victim_auth, "stripe", "250.00")
    genuine = stripe_event(
        "payment_intent.succeeded", intent(world, target["providerLinkId"], 25000, "mxn")
    )
    event_id = json.loads(genuine)["id"]
    # The attacker signs, with its own Stripe endpoint secret, an event with that id.
    own = {"apiKey": "sk_test_attackerKEY1111111111", "webhookSecret": "whsec_attacker111111"}
    attacker, _ = await world.tenant(stripe=own)
    claim = stripe_event("customer.created", {"id": "cus_1", "object": "customer"}, event_id)
    claimed = await world.post(
        "stripe", attacker, claim, stripe_headers(claim, own["webhookSecret"])
    )

    delivered = await world.post("stripe", victim, genuine, stripe_headers(genuine))

    assert claimed.status_code == 200
    assert delivered.status_code == 200 and delivered.json()["duplicate"] is False
    assert await world.status(victim_auth, target) == "paid"


async def test_a_pre_claimed_clip_notification_id_does_not_drop_the_genuine_one(
    world: World,
) -> None:
    clip = {"apiKey": "clip-victim-key-2222", "secretKey": "clip-victim-secret-2222"}
    victim, victim_auth = await world.tenant(clip=clip)
    target = await world.link(victim_auth, "clip", "250.00")
    rogue = {"apiKey": "clip-attacker-key-3333", "secretKey": "clip-attacker-secret-3333"}
    attacker, attacker_auth = await world.tenant(clip=rogue)
    own = await world.link(attacker_auth, "clip", "1.00")
    # Clip never signs: the attacker posts, for its own real checkout, the id Clip will use.
    claim = {"id": "clip-notification-1", "payment_request_id": own["providerLinkId"]}
    claimed = await world.post("clip", attacker, json.dumps(claim).encode())
    world.gateways.set_clip_status(target["providerLinkId"], "CHECKOUT_COMPLETED")
    genuine = {"id": "clip-notification-1", "payment_request_id": target["providerLinkId"]}

    delivered = await world.post("clip", victim, json.dumps(genuine).encode())

    assert claimed.status_code == 200
    assert delivered.status_code == 200 and delivered.json()["duplicate"] is False
    assert await world.status(victim_auth, target) == "paid"


# --- item 6: what a notification stores -----------------------------------------------------------


async def test_a_250_kb_notification_stores_at_most_a_few_kilobytes(world: World) -> None:
    clip = {"apiKey": "clip-shop-key-4444", "secretKey": "clip-shop-secret-4444"}
    shop, auth = await world.tenant(clip=clip)
    link = await world.link(auth, "clip", "250.00")
    padding = "x" * (250 * 1024)
    # Anyone can post to Clip's URL: the checkout is real, the rest is filler.
    unsigned = {"payment_request_id": link["providerLinkId"], "filler": padding}
    # A signed Stripe event may be as large (a session with long custom fields).
    signed = stripe_event(
        "checkout.session.completed",
        {"id": "cs_x", "object": "checkout.session", "custom": padding},
    )

    posted = await world.post("clip", shop, json.dumps(unsigned).encode())
    stripe_posted = await world.post("stripe", shop, signed, stripe_headers(signed))

    assert (posted.status_code, stripe_posted.status_code) == (200, 200)
    stored = world.stored(shop)
    assert len(stored) == 2
    for event in stored:
        assert len(json.dumps(event.payload).encode()) <= 4096
    assert await world.status(auth, link) == "pending"


# --- item 8: attempts that are not final, signatures that age ------------------------------------


async def test_a_declined_card_leaves_the_link_payable_and_a_later_success_pays_it(
    world: World,
) -> None:
    shop, auth = await world.tenant()
    link = await world.link(auth, "stripe", "250.00")
    declined = intent(world, link["providerLinkId"], 0, "mxn") | {
        "status": "requires_payment_method"
    }
    failed = stripe_event("payment_intent.payment_failed", declined)
    charge = {"id": "ch_1", "object": "charge", "amount": 25000, "currency": "mxn"}
    charge_failed = stripe_event("charge.failed", charge | {"metadata": declined["metadata"]})
    succeeded = stripe_event(
        "payment_intent.succeeded", intent(world, link["providerLinkId"], 25000, "mxn")
    )

    await world.post("stripe", shop, failed, stripe_headers(failed))
    await world.post("stripe", shop, charge_failed, stripe_headers(charge_failed))
    after_decline = await world.status(auth, link)
    await world.post("stripe", shop, succeeded, stripe_headers(succeeded))

    assert after_decline == "pending"
    assert await world.status(auth, link) == "paid"


async def test_a_rejected_mercadopago_payment_leaves_the_link_payable(world: World) -> None:
    shop, auth = await world.tenant()
    link = await world.link(auth, "mercadopago", "250.00")
    payment = world.gateways.pay_mercadopago(link["providerLinkId"], status="rejected")
    body, headers, query = mercadopago_notification(payment)

    rejected = await world.post("mercadopago", shop, body, headers, query)
    after_rejection = await world.status(auth, link)
    world.gateways.set_mercadopago_status(link["providerLinkId"], payment, "approved")
    body, headers, query = mercadopago_notification(payment)
    approved = await world.post("mercadopago", shop, body, headers, query)

    assert (rejected.status_code, approved.status_code) == (200, 200)
    assert after_rejection == "pending"
    assert await world.status(auth, link) == "paid"


async def test_a_correctly_signed_mercadopago_notification_two_hours_old_is_accepted(
    world: World,
) -> None:
    shop, auth = await world.tenant()
    link = await world.link(auth, "mercadopago", "250.00")
    payment = world.gateways.pay_mercadopago(link["providerLinkId"])
    body, headers, query = mercadopago_notification(payment, age=2 * 3600)

    response = await world.post("mercadopago", shop, body, headers, query)

    assert response.status_code == 200, response.text
    assert await world.status(auth, link) == "paid"
