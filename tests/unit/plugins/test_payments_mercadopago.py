"""The Mercado Pago provider against a fake API speaking its documented wire format."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from decimal import Decimal
from functools import partial
from typing import Any

import httpx
import pytest
import structlog
from payment_helpers import TENANT, MakeProvider

from changarrito.domain.errors import (
    InvalidSignature,
    ProviderAuthError,
    RetryableProviderError,
    ValidationFailed,
)
from changarrito.plugin import PaymentLink
from changarrito.plugins.payments import mercadopago
from changarrito.plugins.payments.mercadopago import (
    MercadoPagoConfig,
    MercadoPagoCredentials,
    MercadoPagoProvider,
)
from changarrito.testing import Notification, PaymentProviderConformance
from changarrito.testing.payment_suite import LINK_ID

TOKEN = "APP_USR-1234567890123456-010203-abcdefabcdefabcdef-99887766"
SECRET = "mp-webhook-secret-0123456789abcdef"
CREDS = MercadoPagoCredentials(access_token=TOKEN, webhook_secret=SECRET)
CONFIG = MercadoPagoConfig()
REQUEST_ID = "bb56a2f1-6aae-46ac-982e-9dcd3581d08e"


@pytest.fixture
def make(on_fake_upstream: MakeProvider) -> MakeProvider:
    """``make(*answers, env=...)`` → (provider, fake MercadoPago answering in order)."""
    return partial(on_fake_upstream, MercadoPagoProvider)


def preference() -> httpx.Response:
    return httpx.Response(
        201,
        json={
            "id": "123456-abcd",
            "init_point": "https://www.mercadopago.com.mx/checkout/v1/redirect?pref_id=123456-abcd",
            "sandbox_init_point": "https://sandbox.mercadopago.com.mx/checkout/v1/redirect?pref_id=123456-abcd",
        },
    )


async def create(provider: MercadoPagoProvider, **overrides: Any) -> PaymentLink:
    args: dict[str, Any] = {
        "link_id": LINK_ID,
        "amount": Decimal("149.50"),
        "currency": "MXN",
        "description": "Tacos al pastor x3",
        "reference": "order-42",
        "credentials": CREDS,
        "config": CONFIG,
        **overrides,
    }
    return await provider.create_payment_link(**args)


# --- links ------------------------------------------------------------------------------------


async def test_a_payment_link_is_a_checkout_pro_preference(make: Any) -> None:
    provider, fake = make(preference())

    link = await create(provider)

    assert link == PaymentLink(
        provider="mercadopago",
        provider_id="123456-abcd",
        url="https://www.mercadopago.com.mx/checkout/v1/redirect?pref_id=123456-abcd",
        status="pending",
    )
    [request] = fake.requests
    assert request.method == "POST"
    assert str(request.url) == "https://api.mercadopago.com/checkout/preferences"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-idempotency-key"].startswith("changarrito-")
    assert json.loads(request.content) == {
        "items": [
            {
                "title": "Tacos al pastor x3",
                "quantity": 1,
                "unit_price": 149.5,
                "currency_id": "MXN",
            }
        ],
        "external_reference": LINK_ID,
        "metadata": {"reference": "order-42", "link_id": LINK_ID},
    }


async def test_configured_urls_become_notification_and_back_urls(make: Any) -> None:
    provider, fake = make(preference(), env={"MERCADOPAGO_BASE_URL": "http://mp.test"})
    config = MercadoPagoProvider.parse_config(
        {
            "notificationUrl": "https://hooks.example/webhooks/payments/mercadopago/t1?x=1",
            "successUrl": "https://shop.mx/ok",
            "failureUrl": "https://shop.mx/ko",
            "sandbox": True,
        }
    )

    link = await create(provider, config=config)

    assert link.url.startswith("https://sandbox.mercadopago.com.mx/")
    assert str(fake.last.url) == "http://mp.test/checkout/preferences"
    sent = fake.last_json()
    assert sent["notification_url"] == (
        "https://hooks.example/webhooks/payments/mercadopago/t1?x=1&source_news=webhooks"
    )
    assert sent["back_urls"] == {"success": "https://shop.mx/ok", "failure": "https://shop.mx/ko"}
    assert sent["auto_return"] == "approved"


async def test_a_retried_request_reuses_its_idempotency_key(make: Any) -> None:
    provider, fake = make(preference())

    await create(provider)
    await create(provider)
    await create(provider, reference="order-43")

    first, again, other = (r.headers["x-idempotency-key"] for r in fake.requests)
    assert first == again != other


@pytest.mark.parametrize(
    ("amount", "currency"),
    [(Decimal("10.5"), "CLP"), (Decimal("0.001"), "MXN"), (Decimal(0), "ARS")],
)
async def test_amounts_the_currency_cannot_express_are_refused_before_calling(
    make: Any, amount: Decimal, currency: str
) -> None:
    provider, fake = make()

    with pytest.raises(ValidationFailed):
        await create(provider, amount=amount, currency=currency)

    assert fake.requests == []


# --- verify and failures ----------------------------------------------------------------------


async def test_verify_asks_who_the_token_belongs_to(make: Any) -> None:
    provider, fake = make(httpx.Response(200, json={"id": 123, "site_id": "MLM"}))

    await provider.verify({"accessToken": TOKEN}, None)

    assert (fake.last.method, str(fake.last.url)) == ("GET", "https://api.mercadopago.com/users/me")
    assert fake.last.headers["authorization"] == f"Bearer {TOKEN}"


async def test_a_rejected_token_is_an_auth_error_that_never_shows_it(make: Any) -> None:
    body = {"message": f"invalid access token {TOKEN}", "error": "unauthorized", "status": 401}
    provider, _ = make(httpx.Response(401, json=body))

    with structlog.testing.capture_logs() as logs, pytest.raises(ProviderAuthError) as caught:
        await provider.verify(CREDS, CONFIG)

    assert caught.value.provider_code == "unauthorized"
    for shown in (str(caught.value), repr(caught.value), repr(logs), repr(CREDS)):
        assert TOKEN not in shown
        assert SECRET not in shown


async def test_a_rate_limit_is_retryable_after_the_time_asked_for(make: Any) -> None:
    provider, _ = make(httpx.Response(429, headers={"retry-after": "3"}, json={"message": "slow"}))

    with pytest.raises(RetryableProviderError) as caught:
        await create(provider)

    assert (caught.value.retryable, caught.value.retry_after) == (True, 3.0)


def test_platform_credentials_come_from_the_mercadopago_env_vars() -> None:
    env = {"MERCADOPAGO_ACCESS_TOKEN": TOKEN, "MERCADOPAGO_WEBHOOK_SECRET": SECRET}

    found = MercadoPagoProvider.platform_credentials(env)

    assert found == {"accessToken": TOKEN, "webhookSecret": SECRET}
    assert MercadoPagoProvider.platform_credentials({}) is None


# --- webhooks ---------------------------------------------------------------------------------

PAYMENT_ID = "999999999"


def notification(data_id: str = PAYMENT_ID, kind: str = "payment") -> bytes:
    body = {
        "id": 12345,
        "live_mode": True,
        "type": kind,
        "date_created": "2026-01-02T10:00:00Z",
        "user_id": 44444,
        "api_version": "v1",
        "action": f"{kind}.updated",
        "data": {"id": data_id},
    }
    return json.dumps(body).encode()


def signed(manifest: str, ts: int | None = None, **headers: str) -> dict[str, str]:
    """Headers as Mercado Pago sends them, signing ``manifest`` (with ``{ts}`` filled in)."""
    ts = int(time.time()) if ts is None else ts
    v1 = hmac.new(SECRET.encode(), manifest.format(ts=ts).encode(), hashlib.sha256).hexdigest()
    return {"x-signature": f"ts={ts},v1={v1}", "x-request-id": REQUEST_ID, **headers}


def query(data_id: str = PAYMENT_ID) -> MercadoPagoConfig:
    return MercadoPagoConfig(query={"data.id": data_id, "type": "payment"})


def payment(status: str = "approved") -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": int(PAYMENT_ID),
            "status": status,
            "status_detail": "accredited",
            "external_reference": LINK_ID,
            "metadata": {"reference": "order-42", "link_id": LINK_ID},
            "transaction_amount": 149.5,
            "currency_id": "MXN",
            "date_approved": "2026-01-02T10:00:00.000-06:00",
        },
    )


async def test_a_signed_notification_is_resolved_by_fetching_the_payment(make: Any) -> None:
    provider, fake = make(payment())
    headers = signed(f"id:{PAYMENT_ID};request-id:{REQUEST_ID};ts:{{ts}};")

    event = await provider.parse_webhook(headers, notification(), CREDS, query(), tenant_id=TENANT)

    [request] = fake.requests
    assert request.method == "GET"
    assert str(request.url) == f"https://api.mercadopago.com/v1/payments/{PAYMENT_ID}"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert (event.provider, event.event_id, event.type) == (
        "mercadopago",
        f"payment:{PAYMENT_ID}:approved",  # from the fetched payment, not the body's "id"
        "payment.approved",
    )
    assert (event.status, event.link_id, event.reference) == ("paid", LINK_ID, "order-42")
    assert (event.amount, event.currency) == (Decimal("149.5"), "MXN")
    assert event.occurred_at is not None and event.occurred_at.utcoffset() is not None


async def test_header_names_are_matched_whatever_their_case(make: Any) -> None:
    provider, _ = make(payment())
    lower = signed(f"id:{PAYMENT_ID};request-id:{REQUEST_ID};ts:{{ts}};")
    headers = {"X-Signature": lower["x-signature"], "X-Request-Id": REQUEST_ID}

    event = await provider.parse_webhook(headers, notification(), CREDS, query(), tenant_id=TENANT)

    assert event.status == "paid"


async def test_the_manifest_leaves_out_an_absent_request_id(make: Any) -> None:
    provider, _ = make(payment())
    headers = signed(f"id:{PAYMENT_ID};ts:{{ts}};")
    del headers["x-request-id"]

    event = await provider.parse_webhook(headers, notification(), CREDS, query(), tenant_id=TENANT)

    assert event.status == "paid"


def test_the_manifest_leaves_out_every_absent_part() -> None:
    assert mercadopago.manifest(data_id=None, request_id=None, ts="1") == "ts:1;"
    assert mercadopago.manifest(data_id="7", request_id=None, ts="1") == "id:7;ts:1;"
    assert mercadopago.manifest(data_id=None, request_id="r", ts="1") == "request-id:r;ts:1;"


async def test_an_alphanumeric_data_id_is_signed_lower_cased(make: Any) -> None:
    order_id = "ORD01JQ4S4KY8HWQ6NA5PXB65B3D3"
    provider, fake = make()
    headers = signed(f"id:{order_id.lower()};request-id:{REQUEST_ID};ts:{{ts}};")
    config = MercadoPagoConfig(query={"data.id": order_id, "type": "order"})

    event = await provider.parse_webhook(
        headers, notification(order_id, "order"), CREDS, config, tenant_id=TENANT
    )

    assert event.status == "unknown"  # not a payment: acknowledged, not interpreted
    assert fake.requests == []


async def test_without_the_query_the_bodys_data_id_is_the_one_signed(make: Any) -> None:
    provider, fake = make(payment())
    headers = signed(f"id:{PAYMENT_ID};request-id:{REQUEST_ID};ts:{{ts}};")

    await provider.parse_webhook(headers, notification(), CREDS, None, tenant_id=TENANT)

    assert fake.last.url.path == f"/v1/payments/{PAYMENT_ID}"


async def test_the_signed_query_id_is_fetched_not_the_bodys(make: Any) -> None:
    provider, fake = make(payment())
    headers = signed(f"id:{PAYMENT_ID};request-id:{REQUEST_ID};ts:{{ts}};")

    await provider.parse_webhook(headers, notification("555"), CREDS, query(), tenant_id=TENANT)

    assert fake.last.url.path == f"/v1/payments/{PAYMENT_ID}"


@pytest.mark.parametrize("unit", [1, 1000], ids=["seconds", "milliseconds"])
async def test_ts_is_accepted_in_seconds_or_milliseconds(make: Any, unit: int) -> None:
    provider, _ = make(payment())
    ts = int(time.time()) * unit
    headers = signed(f"id:{PAYMENT_ID};request-id:{REQUEST_ID};ts:{{ts}};", ts=ts)

    event = await provider.parse_webhook(headers, notification(), CREDS, query(), tenant_id=TENANT)

    assert event.status == "paid"


@pytest.mark.parametrize("unit", [1, 1000], ids=["seconds", "milliseconds"])
async def test_a_correct_signature_two_hours_old_is_accepted(make: Any, unit: int) -> None:
    provider, fake = make(payment())
    ts = (int(time.time()) - 2 * 3600) * unit
    headers = signed(f"id:{PAYMENT_ID};request-id:{REQUEST_ID};ts:{{ts}};", ts=ts)

    event = await provider.parse_webhook(headers, notification(), CREDS, query(), tenant_id=TENANT)

    assert event.status == "paid"
    assert len(fake.requests) == 1  # still re-fetched: the payment decides


async def test_a_signature_whose_ts_is_not_a_number_is_refused(make: Any) -> None:
    provider, fake = make(payment())
    v1 = hmac.new(SECRET.encode(), f"id:{PAYMENT_ID};ts:soon;".encode(), hashlib.sha256)
    headers = {"x-signature": f"ts=soon,v1={v1.hexdigest()}"}

    with pytest.raises(InvalidSignature):
        await provider.parse_webhook(headers, notification(), CREDS, query(), tenant_id=TENANT)

    assert fake.requests == []


@pytest.mark.parametrize(
    "manifest",
    [
        f"id:{PAYMENT_ID};request-id:another-request;ts:{{ts}};",
        f"id:1;request-id:{REQUEST_ID};ts:{{ts}};",
        f"id:{PAYMENT_ID};request-id:{REQUEST_ID};ts:{{ts}}",
    ],
    ids=["other-request-id", "other-data-id", "no-trailing-semicolon"],
)
async def test_a_forged_signature_is_refused_without_calling_mercado_pago(
    make: Any, manifest: str
) -> None:
    provider, fake = make(payment())

    with pytest.raises(InvalidSignature):
        await provider.parse_webhook(
            signed(manifest), notification(), CREDS, query(), tenant_id=TENANT
        )

    assert fake.requests == []


@pytest.mark.parametrize(
    "headers", [{}, {"x-signature": ""}, {"x-signature": "ts=1"}, {"x-signature": "v1=abc"}]
)
async def test_a_missing_signature_is_refused_when_a_secret_is_set(
    make: Any, headers: dict[str, str]
) -> None:
    provider, fake = make(payment())

    with pytest.raises(InvalidSignature):
        await provider.parse_webhook(headers, notification(), CREDS, query(), tenant_id=TENANT)

    assert fake.requests == []


async def test_without_a_secret_the_fetched_payment_alone_decides(make: Any) -> None:
    provider, fake = make(payment("rejected"))

    event = await provider.parse_webhook(
        {}, notification(), {"accessToken": TOKEN}, query(), tenant_id=TENANT
    )

    assert (event.status, event.event_id) == ("declined", f"payment:{PAYMENT_ID}:rejected")
    assert len(fake.requests) == 1


async def test_without_a_secret_a_payment_it_cannot_fetch_is_refused(make: Any) -> None:
    provider, _ = make(httpx.Response(404, json={"message": "Payment not found"}))

    with pytest.raises(InvalidSignature):
        await provider.parse_webhook(
            {}, notification(), {"accessToken": TOKEN}, query(), tenant_id=TENANT
        )


@pytest.mark.parametrize("kind", ["merchant_order", "topic_chargebacks_wh", "order"])
async def test_without_a_secret_a_topic_that_is_not_a_payment_is_refused_without_a_call(
    make: Any, kind: str
) -> None:
    provider, fake = make()
    config = MercadoPagoConfig(query={"data.id": PAYMENT_ID, "type": kind})

    with pytest.raises(InvalidSignature):
        await provider.parse_webhook(
            {}, notification(kind=kind), {"accessToken": TOKEN}, config, tenant_id=TENANT
        )

    assert fake.requests == []


async def test_a_signed_topic_that_is_not_a_payment_keeps_only_its_id(make: Any) -> None:
    provider, fake = make()
    headers = signed(f"id:{PAYMENT_ID};request-id:{REQUEST_ID};ts:{{ts}};")
    config = MercadoPagoConfig(query={"data.id": PAYMENT_ID, "type": "merchant_order"})

    event = await provider.parse_webhook(
        headers, notification(kind="merchant_order"), CREDS, config, tenant_id=TENANT
    )

    assert (event.event_id, event.status) == (f"merchant_order:{PAYMENT_ID}", "unknown")
    assert event.raw == {"topic": "merchant_order", "id": PAYMENT_ID}
    assert fake.requests == []


async def test_a_notification_for_a_payment_mercado_pago_does_not_know_is_refused(
    make: Any,
) -> None:
    provider, _ = make(httpx.Response(404, json={"message": "Payment not found"}))
    headers = signed(f"id:{PAYMENT_ID};request-id:{REQUEST_ID};ts:{{ts}};")

    with pytest.raises(InvalidSignature):
        await provider.parse_webhook(headers, notification(), CREDS, query(), tenant_id=TENANT)


async def test_a_data_id_that_is_not_an_id_is_never_put_in_a_url(make: Any) -> None:
    provider, fake = make(payment())
    bad = "../../users/me"
    headers = signed(f"id:{bad};request-id:{REQUEST_ID};ts:{{ts}};")

    with pytest.raises(ValidationFailed):
        await provider.parse_webhook(
            headers, notification(bad), CREDS, query(bad), tenant_id=TENANT
        )

    assert fake.requests == []


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("pending", "pending"),
        ("in_process", "pending"),
        ("rejected", "declined"),  # the buyer may try again on the same preference
        ("cancelled", "failed"),
        ("refunded", "refunded"),
        ("charged_back", "refunded"),
        ("something_new", "unknown"),
    ],
)
async def test_payment_statuses_map_to_event_statuses(
    make: Any, status: str, expected: str
) -> None:
    provider, _ = make(payment(status))
    headers = signed(f"id:{PAYMENT_ID};request-id:{REQUEST_ID};ts:{{ts}};")

    event = await provider.parse_webhook(headers, notification(), CREDS, query(), tenant_id=TENANT)

    assert event.status == expected


# --- the conformance kit ----------------------------------------------------------------------


class TestMercadoPagoConformance(PaymentProviderConformance):
    provider_class = MercadoPagoProvider
    plugin = mercadopago
    credentials = {"accessToken": TOKEN, "webhookSecret": SECRET}
    amounts = [(Decimal("149.50"), "MXN", 149.5), (Decimal(1200), "CLP", 1200)]

    def link_response(self) -> httpx.Response:
        return preference()

    def sent_amount(self, request: httpx.Request) -> Any:
        return json.loads(request.content)["items"][0]["unit_price"]

    def genuine_notification(self) -> Notification:
        return Notification(
            signed(f"id:{PAYMENT_ID};request-id:{REQUEST_ID};ts:{{ts}};"),
            notification(),
            answers=(payment("approved"),),
            config={"query": {"data.id": PAYMENT_ID, "type": "payment"}},
        )

    def forged_notification(self) -> Notification:
        genuine = self.genuine_notification()
        headers = {**genuine.headers, "x-signature": f"ts={int(time.time())},v1={'0' * 64}"}
        return Notification(headers, genuine.body, genuine.answers, genuine.config)

    def verify_response(self) -> httpx.Response:
        return httpx.Response(200, json={"id": 123, "site_id": "MLM"})
