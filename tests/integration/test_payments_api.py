"""Payment links and payment notifications through the HTTP API, on real PostgreSQL.

The payment providers are faked at the HTTP level (``fakes.payment_gateways``, under the app's
shared clients) speaking each provider's documented wire format; everything else is real: the
backend app, JWT auth, the credential store and its encryption, the plugins.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from litestar.testing import AsyncTestClient

from changarrito.adapters.tokens import issue_token
from changarrito.bootstrap import Service
from changarrito.domain.model import Credential, IntegrationType, Secrets
from changarrito.plugins.payments.stripe import sign as stripe_sign
from fakes.memory import MemoryPaymentStore
from fakes.payment_gateways import FakeGateways

#: These test the API, not SQL: the service runs on the in-memory fakes (``tests/fakes``);
#: ``test_fakes_match_postgres.py`` holds the fake payment store to the PostgreSQL one.
SERVICE = "memory"

TENANT_SECRETS: dict[str, dict[str, str]] = {
    "stripe": {"apiKey": "sk_test_tenantKEY11111111111", "webhookSecret": "whsec_tenantSECRET1111"},
    "mercadopago": {
        "accessToken": "APP_USR-tenant-token-2222222222",
        "webhookSecret": "mp-tenant-signing-secret-2222",
    },
    "clip": {"apiKey": "clip-tenant-api-key-3333", "secretKey": "clip-tenant-secret-3333"},
}


@dataclass
class Api:
    client: AsyncTestClient[Any]
    service: Service
    gateways: FakeGateways
    ledger: Any

    async def tenant(self, name: str = "shop") -> UUID:
        return (await self.service.storage.store.create_tenant(f"{name}-{uuid4().hex[:6]}")).id

    def auth(self, tenant_id: UUID) -> dict[str, str]:
        secret = self.service.settings.auth.jwt_secret
        assert secret
        token = issue_token(secret, tenant_id, timedelta(minutes=5))
        return {"Authorization": f"Bearer {token}"}

    async def configure(self, tenant_id: UUID, provider: str) -> dict[str, str]:
        """Stores the tenant's own credentials (distinct per tenant) for ``provider``."""
        secrets = {k: f"{v}-{tenant_id.hex[:8]}" for k, v in TENANT_SECRETS[provider].items()}
        for value in secrets.values():
            self.ledger.remember(value)  # the session's secret scan looks for them too
        await self.service.storage.store.save_credential(
            Credential(tenant_id, IntegrationType.PAYMENTS, provider, Secrets(secrets))
        )
        return secrets

    async def create_link(self, tenant_id: UUID, **body: Any) -> httpx.Response:
        payload = {"amount": "249.90", "currency": "MXN", "description": "Tacos al pastor x10"}
        payload["reference"] = f"order-{uuid4().hex[:10]}"
        payload.update(body)
        return await self.client.post(
            "/api/v1/payments/links", json=payload, headers=self.auth(tenant_id)
        )

    def stored_events(self, tenant: UUID, provider: str, event_id: str) -> list[tuple[Any, ...]]:
        """(tenant id, status, payload) of the tenant's stored notification, as the table
        holds it."""
        store = self.service.storage.payments
        assert isinstance(store, MemoryPaymentStore)
        found = store.events.get((tenant, provider, event_id))
        return [] if found is None else [(found.tenant_id, found.status, found.payload)]


@pytest.fixture
def fake_providers() -> FakeGateways:
    """Replaces the shared fake upstream (``app_service`` puts it under every client)."""
    return FakeGateways()


@pytest.fixture
def api(
    app_client: AsyncTestClient[Any],
    app_service: Service,
    fake_providers: FakeGateways,
    secret_ledger: Any,
) -> Api:
    return Api(app_client, app_service, fake_providers, secret_ledger)


def problem_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


# --- creating and reading links -----------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "host", "auth_for"),
    [
        ("stripe", "api.stripe.com", lambda s: f"Bearer {s['apiKey']}"),
        ("mercadopago", "api.mercadopago.com", lambda s: f"Bearer {s['accessToken']}"),
        ("clip", "api.payclip.com", None),
    ],
)
async def test_a_tenant_creates_a_link_with_its_own_credentials_and_reads_it_back(
    api: Api, provider: str, host: str, auth_for: Callable[[dict[str, str]], str] | None
) -> None:
    tenant = await api.tenant()
    secrets = await api.configure(tenant, provider)

    created = await api.create_link(tenant, provider=provider, reference="order-42")

    assert created.status_code == 201, created.text
    link = created.json()
    upstream = api.gateways.last_to(host)
    if auth_for is not None:
        assert upstream.headers["authorization"] == auth_for(secrets)
    assert link["provider"] == provider
    assert link["source"] == "tenant"
    assert link["status"] == "pending"
    assert link["amount"] == "249.90" and link["currency"] == "MXN"
    assert link["reference"] == "order-42"
    assert link["url"].startswith("https://") and link["providerLinkId"] in link["url"]
    assert not any(value in created.text for value in secrets.values())

    shown = await api.client.get(f"/api/v1/payments/links/{link['id']}", headers=api.auth(tenant))
    assert shown.status_code == 200
    assert shown.json() == link


async def test_without_credentials_of_its_own_a_tenant_gets_a_link_from_the_platform_account(
    api: Api,
) -> None:
    tenant = await api.tenant()

    created = await api.create_link(tenant)

    assert created.status_code == 201, created.text
    assert created.json()["provider"] == "stripe"
    assert created.json()["source"] == "platform"
    sent = api.gateways.last_to("api.stripe.com")
    assert (
        sent.headers["authorization"]
        == f"Bearer {api.service.settings.plugins.env['STRIPE_API_KEY']}"
    )
    assert b"unit_amount%5D=24990" in sent.content


async def test_a_provider_nobody_configured_is_a_409_that_says_how_to_fix_it(api: Api) -> None:
    tenant = await api.tenant()

    body = problem_of(await api.create_link(tenant, provider="clip"), 409)

    assert body["type"].endswith("/not-configured")
    assert "CLIP_API_KEY" in body["detail"]
    assert "PUT /api/v1/integrations/payments/clip" in body["detail"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": "-5"}, "amount"),
        ({"amount": "0"}, "amount"),
        ({"amount": "10.505"}, "amount"),
        ({"amount": "NaN"}, "amount"),
        ({"amount": "ten"}, "amount"),
        ({"amount": "100.5", "currency": "JPY"}, "amount"),
        ({"currency": "MX"}, "currency"),
        ({"currency": "M1N"}, "currency"),
        ({"description": "   "}, "description"),
        ({"reference": ""}, "reference"),
        ({"reference": "r" * 201}, "reference"),
        ({"provider": "paypal"}, "provider"),
        ({"provider": "Not An Id"}, "provider"),
        ({"tip": "5"}, "tip"),
    ],
)
async def test_an_invalid_link_request_is_a_422_naming_the_field(
    api: Api, change: dict[str, Any], field: str
) -> None:
    tenant = await api.tenant()
    before = len(api.gateways.requests)

    body = problem_of(await api.create_link(tenant, **change), 422)

    assert body["type"].endswith("/validation")
    assert field in [e["field"] for e in body["errors"]], body
    assert len(api.gateways.requests) == before  # nothing reached a provider


async def test_a_link_request_missing_a_field_names_it(api: Api) -> None:
    tenant = await api.tenant()
    response = await api.client.post(
        "/api/v1/payments/links",
        json={"amount": "1.00", "currency": "MXN", "description": "x"},
        headers=api.auth(tenant),
    )
    body = problem_of(response, 422)
    assert body["errors"] == [{"field": "reference", "message": "is required"}]


async def test_a_body_that_is_not_json_is_a_400(api: Api) -> None:
    tenant = await api.tenant()
    response = await api.client.post(
        "/api/v1/payments/links",
        content=b"{not json",
        headers={**api.auth(tenant), "Content-Type": "application/json"},
    )
    problem_of(response, 400)


async def test_links_need_a_tenant_token(api: Api) -> None:
    tenant = await api.tenant()
    created = (await api.create_link(tenant)).json()

    no_token = await api.client.post("/api/v1/payments/links", json={"amount": "1"})
    forged = await api.client.get(
        f"/api/v1/payments/links/{created['id']}",
        headers={
            "Authorization": "Bearer "
            + issue_token(
                "another-secret-0123456789abcdef-0123456789", tenant, timedelta(minutes=5)
            )
        },
    )

    problem_of(no_token, 401)
    problem_of(forged, 401)


async def test_a_tenant_never_sees_another_tenants_link(api: Api) -> None:
    alice, bob = await api.tenant("alice"), await api.tenant("bob")
    link = (await api.create_link(alice)).json()

    as_bob = await api.client.get(f"/api/v1/payments/links/{link['id']}", headers=api.auth(bob))
    missing = await api.client.get(f"/api/v1/payments/links/{uuid4()}", headers=api.auth(bob))

    assert problem_of(as_bob, 404)["detail"].startswith("no payment link")
    assert problem_of(missing, 404)["type"] == problem_of(as_bob, 404)["type"]


# --- notifications --------------------------------------------------------------------------


def stripe_event(session_id: str, *, event_id: str | None = None, **obj: Any) -> bytes:
    event = {
        "id": event_id or f"evt_{uuid4().hex}",
        "object": "event",
        "type": "checkout.session.completed",
        "created": int(time.time()),
        "data": {
            "object": {
                "id": session_id,
                "object": "checkout.session",
                "payment_status": "paid",
                "amount_total": 24990,
                "currency": "mxn",
                "client_secret": "cs_live_client_secret_value_should_not_be_stored",
                **obj,
            }
        },
    }
    return json.dumps(event).encode()


async def post_stripe(api: Api, tenant: UUID, body: bytes, secret: str) -> httpx.Response:
    signature = stripe_sign(body, secret, int(time.time()))
    return await api.client.post(
        f"/webhooks/payments/stripe/{tenant}",
        content=body,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
    )


async def link_status(api: Api, tenant: UUID, link_id: str) -> str:
    shown = await api.client.get(f"/api/v1/payments/links/{link_id}", headers=api.auth(tenant))
    status: str = shown.json()["status"]
    return status


async def test_a_signed_stripe_notification_is_stored_once_and_marks_the_link_paid(
    api: Api,
) -> None:
    tenant = await api.tenant()
    secrets = await api.configure(tenant, "stripe")
    link = (await api.create_link(tenant, provider="stripe")).json()
    body = stripe_event(link["providerLinkId"], event_id=f"evt_{uuid4().hex}")
    event_id = json.loads(body)["id"]

    first = await post_stripe(api, tenant, body, secrets["webhookSecret"])
    again = await post_stripe(api, tenant, body, secrets["webhookSecret"])

    assert first.status_code == 200 and first.json() == {"received": True, "duplicate": False}
    assert again.status_code == 200 and again.json() == {"received": True, "duplicate": True}
    stored = api.stored_events(tenant, "stripe", event_id)
    assert len(stored) == 1
    assert stored[0][0] == tenant and stored[0][1] == "paid"
    assert "client_secret_value" not in json.dumps(stored[0][2])
    assert await link_status(api, tenant, link["id"]) == "paid"


async def test_a_forged_stripe_notification_is_a_401_and_changes_nothing(api: Api) -> None:
    tenant = await api.tenant()
    await api.configure(tenant, "stripe")
    link = (await api.create_link(tenant, provider="stripe")).json()
    body = stripe_event(link["providerLinkId"])

    forged = await post_stripe(api, tenant, body, "whsec_not_the_tenants_secret")
    unsigned = await api.client.post(f"/webhooks/payments/stripe/{tenant}", content=body)

    assert problem_of(forged, 401)["type"].endswith("/invalid-signature")
    problem_of(unsigned, 401)
    assert api.stored_events(tenant, "stripe", json.loads(body)["id"]) == []
    assert await link_status(api, tenant, link["id"]) == "pending"


async def test_a_platform_link_is_confirmed_with_the_platform_webhook_secret(api: Api) -> None:
    tenant = await api.tenant()
    link = (await api.create_link(tenant)).json()
    assert link["source"] == "platform"

    response = await post_stripe(
        api,
        tenant,
        stripe_event(link["providerLinkId"]),
        api.service.settings.plugins.env["STRIPE_WEBHOOK_SECRET"],
    )

    assert response.status_code == 200, response.text
    assert await link_status(api, tenant, link["id"]) == "paid"


async def test_a_notification_posted_for_another_tenant_never_moves_this_tenants_link(
    api: Api,
) -> None:
    alice, mallory = await api.tenant("alice"), await api.tenant("mallory")
    alice_secrets = await api.configure(alice, "stripe")
    mallory_secrets = await api.configure(mallory, "stripe")
    link = (await api.create_link(alice, provider="stripe")).json()
    body = stripe_event(link["providerLinkId"])

    # Alice's genuine event sent to Mallory's URL does not verify there...
    wrong_door = await post_stripe(api, mallory, body, alice_secrets["webhookSecret"])
    # ...and Mallory signing an event about Alice's session is stored as Mallory's, unmatched.
    self_signed = await post_stripe(api, mallory, body, mallory_secrets["webhookSecret"])

    problem_of(wrong_door, 401)
    assert self_signed.status_code == 200
    assert await link_status(api, alice, link["id"]) == "pending"


async def test_a_late_pending_notification_does_not_undo_a_payment(api: Api) -> None:
    tenant = await api.tenant()
    secrets = await api.configure(tenant, "stripe")
    link = (await api.create_link(tenant, provider="stripe")).json()
    paid = stripe_event(link["providerLinkId"])
    pending = stripe_event(link["providerLinkId"], payment_status="unpaid")

    await post_stripe(api, tenant, paid, secrets["webhookSecret"])
    late = await post_stripe(api, tenant, pending, secrets["webhookSecret"])

    assert late.status_code == 200
    assert await link_status(api, tenant, link["id"]) == "paid"


def mercadopago_signature(secret: str, data_id: str, request_id: str) -> str:
    ts = str(int(time.time()))
    manifest = f"id:{data_id};request-id:{request_id};ts:{ts};"
    digest = hmac.new(secret.encode(), manifest.encode(), hashlib.sha256).hexdigest()
    return f"ts={ts},v1={digest}"


async def test_a_mercadopago_notification_is_confirmed_by_refetching_the_payment(
    api: Api,
) -> None:
    tenant = await api.tenant()
    secrets = await api.configure(tenant, "mercadopago")
    link = (await api.create_link(tenant, provider="mercadopago", reference="mp-order-7")).json()
    assert api.gateways.sent(link["providerLinkId"])["external_reference"] == link["id"]
    payment_id = api.gateways.pay_mercadopago(link["providerLinkId"])
    body = json.dumps(
        {
            "id": int(payment_id) + 1,
            "type": "payment",
            "action": "payment.updated",
            "data": {"id": payment_id},
        }
    ).encode()
    signature = mercadopago_signature(secrets["webhookSecret"], payment_id, "req-1")

    response = await api.client.post(
        f"/webhooks/payments/mercadopago/{tenant}?data.id={payment_id}&type=payment",
        content=body,
        headers={"x-signature": signature, "x-request-id": "req-1"},
    )

    assert response.status_code == 200, response.text
    refetch = api.gateways.last_to("api.mercadopago.com")
    assert refetch.url.path == f"/v1/payments/{payment_id}"
    assert refetch.headers["authorization"] == f"Bearer {secrets['accessToken']}"
    assert await link_status(api, tenant, link["id"]) == "paid"


async def test_a_clip_notification_is_believed_only_after_clip_confirms_it(api: Api) -> None:
    tenant = await api.tenant()
    await api.configure(tenant, "clip")
    link = (await api.create_link(tenant, provider="clip")).json()
    request_id = link["providerLinkId"]
    notification = json.dumps({"payment_request_id": request_id, "resource": "CHECKOUT"})

    unknown = await api.client.post(
        f"/webhooks/payments/clip/{tenant}", content=b'{"payment_request_id": "made-up-id"}'
    )
    api.gateways.set_clip_status(request_id, "CHECKOUT_COMPLETED")
    confirmed = await api.client.post(f"/webhooks/payments/clip/{tenant}", content=notification)

    problem_of(unknown, 401)
    assert confirmed.status_code == 200, confirmed.text
    assert await link_status(api, tenant, link["id"]) == "paid"


@pytest.mark.parametrize(
    "path", ["/webhooks/payments/paypal/{tenant}", "/webhooks/payments/stripe/{other}"]
)
async def test_a_notification_for_an_unknown_provider_or_tenant_is_a_404(
    api: Api, path: str
) -> None:
    tenant = await api.tenant()
    url = path.format(tenant=tenant, other=uuid4())
    body = stripe_event("cs_test_x")

    response = await api.client.post(
        url, content=body, headers={"Stripe-Signature": stripe_sign(body, "x", int(time.time()))}
    )

    problem_of(response, 404)


async def test_a_notification_larger_than_the_limit_is_a_413(api: Api) -> None:
    tenant = await api.tenant()
    response = await api.client.post(
        f"/webhooks/payments/stripe/{tenant}", content=b"{" + b" " * (300 * 1024) + b"}"
    )
    problem_of(response, 413)


async def _post_link(
    api: Api, tenant: UUID, key: str | bytes | None, **body: Any
) -> httpx.Response:
    payload = {"amount": "249.90", "currency": "MXN", "description": "Tacos", "reference": "o-9"}
    payload.update(body)
    headers: dict[str, str | bytes] = {**api.auth(tenant)}
    if key is not None:
        headers["Idempotency-Key"] = key
    return await api.client.post("/api/v1/payments/links", json=payload, headers=headers)


async def test_a_retried_link_request_with_its_idempotency_key_returns_the_first_link(
    api: Api,
) -> None:
    tenant = await api.tenant()
    first = await _post_link(api, tenant, "order-9-attempt")
    calls = len(api.gateways.requests)

    again = await _post_link(api, tenant, "order-9-attempt")

    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json()
    assert len(api.gateways.requests) == calls  # no second link at the provider


async def test_without_an_idempotency_key_the_same_request_twice_makes_two_links(
    api: Api,
) -> None:
    tenant = await api.tenant()
    ids = {(await _post_link(api, tenant, None)).json()["id"] for _ in range(2)}
    assert len(ids) == 2


async def test_an_idempotency_key_reused_for_another_amount_is_refused(api: Api) -> None:
    tenant = await api.tenant()
    assert (await _post_link(api, tenant, "k-1")).status_code == 201

    other = await _post_link(api, tenant, "k-1", amount="10.00")

    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"


async def test_the_same_idempotency_key_of_two_tenants_names_two_links(api: Api) -> None:
    a, b = await api.tenant("a"), await api.tenant("b")
    link_a = (await _post_link(api, a, "shared-key")).json()
    link_b = await _post_link(api, b, "shared-key")

    assert link_b.status_code == 201
    assert link_b.json()["id"] != link_a["id"]


@pytest.mark.parametrize(
    "key", ["", "x" * 256, "caf\u00e9".encode()], ids=["empty", "long", "utf8"]
)
async def test_an_unusable_idempotency_key_is_a_422(api: Api, key: str | bytes) -> None:
    tenant = await api.tenant()
    response = await _post_link(api, tenant, key)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"
