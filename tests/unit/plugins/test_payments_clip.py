"""The Clip provider against a fake Clip API speaking its (integrator-documented) wire format."""

from __future__ import annotations

import base64
import json
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
    ProviderBadRequest,
    ProviderBadResponse,
    RetryableProviderError,
    ValidationFailed,
)
from changarrito.plugin import PaymentLink
from changarrito.plugins.payments import clip
from changarrito.plugins.payments.clip import ClipConfig, ClipCredentials, ClipProvider
from changarrito.testing import Notification, PaymentProviderConformance
from changarrito.testing.payment_suite import LINK_ID

API_KEY = "clip-api-key-7f3a9c21-4b5e"
SECRET_KEY = "clip-secret-key-d41d8cd98f00b204"
CREDS = ClipCredentials(api_key=API_KEY, secret_key=SECRET_KEY)
BASIC = base64.b64encode(f"{API_KEY}:{SECRET_KEY}".encode()).decode()
CONFIG = ClipConfig()
CHECKOUT_ID = "7e1b7f5c-5c4a-4b6e-9f3e-0d9a2f1c3b4d"


@pytest.fixture
def make(on_fake_upstream: MakeProvider) -> MakeProvider:
    """``make(*answers, env=...)`` → (provider, fake Clip answering in order)."""
    return partial(on_fake_upstream, ClipProvider)


def created() -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "payment_request_id": CHECKOUT_ID,
            "payment_request_url": f"https://payment-link.clip.mx/{CHECKOUT_ID}",
            "status": "CHECKOUT_CREATED",
        },
    )


async def create(provider: ClipProvider, **overrides: Any) -> PaymentLink:
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


async def test_a_payment_link_is_a_checkout_redirect_in_pesos(make: Any) -> None:
    provider, fake = make(created())

    link = await create(provider)

    assert link == PaymentLink(
        provider="clip",
        provider_id=CHECKOUT_ID,
        url=f"https://payment-link.clip.mx/{CHECKOUT_ID}",
        status="pending",
    )
    [request] = fake.requests
    assert request.method == "POST"
    assert str(request.url) == "https://api.payclip.com/v2/checkout"
    assert request.headers["authorization"] == f"Basic {BASIC}"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "amount": 149.5,
        "currency": "MXN",
        "purchase_description": "Tacos al pastor x3",
        "redirection_url": {
            "success": "https://wa.me/",
            "error": "https://wa.me/",
            "default": "https://wa.me/",
        },
        "metadata": {"external_reference": LINK_ID},
    }


async def test_configured_urls_and_base_url_are_used(make: Any) -> None:
    provider, fake = make(created(), env={"CLIP_BASE_URL": "http://clip.test/"})
    config = ClipProvider.parse_config(
        {
            "successUrl": "https://shop.mx/ok",
            "defaultUrl": "https://shop.mx",
            "webhookUrl": "https://hooks.example/webhooks/payments/clip/t1",
        }
    )

    await create(provider, config=config)

    assert str(fake.last.url) == "http://clip.test/v2/checkout"
    sent = fake.last_json()
    assert sent["redirection_url"] == {
        "success": "https://shop.mx/ok",
        "error": "https://shop.mx",
        "default": "https://shop.mx",
    }
    assert sent["webhook_url"] == "https://hooks.example/webhooks/payments/clip/t1"


@pytest.mark.parametrize(
    ("amount", "currency"),
    [(Decimal(100), "USD"), (Decimal("10.001"), "MXN"), (Decimal(0), "MXN")],
)
async def test_only_mxn_amounts_with_at_most_two_decimals_are_accepted(
    make: Any, amount: Decimal, currency: str
) -> None:
    provider, fake = make()

    with pytest.raises(ValidationFailed):
        await create(provider, amount=amount, currency=currency)

    assert fake.requests == []


async def test_a_created_checkout_without_a_url_is_a_bad_response(make: Any) -> None:
    provider, _ = make(httpx.Response(200, json={"payment_request_id": CHECKOUT_ID}))

    with pytest.raises(ProviderBadResponse):
        await create(provider)


# --- verify and failures ----------------------------------------------------------------------


async def test_verify_reads_a_checkout_that_does_not_exist_and_takes_404_as_accepted(
    make: Any,
) -> None:
    provider, fake = make(httpx.Response(404, json={"message": "Not found"}))

    await provider.verify({"apiKey": API_KEY, "secretKey": SECRET_KEY}, None)

    [request] = fake.requests
    assert request.method == "GET"
    assert request.url.path.startswith("/v2/checkout/")
    assert request.headers["authorization"] == f"Basic {BASIC}"


@pytest.mark.parametrize("status", [401, 403])
async def test_rejected_keys_are_an_auth_error_that_never_shows_them(
    make: Any, status: int
) -> None:
    body = {"message": f"bad credentials {API_KEY}:{SECRET_KEY} (Basic {BASIC})"}
    provider, _ = make(httpx.Response(status, json=body))

    with structlog.testing.capture_logs() as logs, pytest.raises(ProviderAuthError) as caught:
        await provider.verify(CREDS, CONFIG)

    for shown in (str(caught.value), repr(caught.value), repr(logs), repr(CREDS), str(CREDS)):
        assert API_KEY not in shown
        assert SECRET_KEY not in shown
        assert BASIC not in shown


async def test_verify_does_not_take_a_bad_request_for_accepted_keys(make: Any) -> None:
    provider, _ = make(httpx.Response(400, json={"message": "invalid id"}))

    with pytest.raises(ProviderBadRequest):
        await provider.verify(CREDS, CONFIG)


async def test_a_rate_limit_is_retryable_after_the_time_asked_for(make: Any) -> None:
    provider, _ = make(httpx.Response(429, headers={"Retry-After": "12"}, json={}))

    with pytest.raises(RetryableProviderError) as caught:
        await create(provider)

    assert (caught.value.retryable, caught.value.retry_after) == (True, 12.0)


def test_platform_credentials_come_from_the_clip_env_vars() -> None:
    env = {"CLIP_API_KEY": API_KEY, "CLIP_SECRET_KEY": SECRET_KEY}

    assert ClipProvider.platform_credentials(env) == {"apiKey": API_KEY, "secretKey": SECRET_KEY}
    assert ClipProvider.platform_credentials({"CLIP_API_KEY": API_KEY}) is None


# --- webhooks ---------------------------------------------------------------------------------


def notification(resource_status: str = "COMPLETED", **extra: Any) -> bytes:
    body = {
        "id": "notif-1",
        "api_version": "1.0",
        "payment_request_id": CHECKOUT_ID,
        "resource": "CHECKOUT",
        "resource_status": resource_status,
        "attempts": 1,
        "me_reference_id": "order-42",
        **extra,
    }
    return json.dumps(body).encode()


def checkout(status: str) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "payment_request_id": CHECKOUT_ID,
            "status": status,
            "amount": 149.5,
            "currency": "MXN",
            "metadata": {"external_reference": LINK_ID},
            "completed_at": "2026-01-02T16:00:00Z",
        },
    )


async def test_a_notification_is_believed_only_after_clip_confirms_it(make: Any) -> None:
    provider, fake = make(checkout("CHECKOUT_COMPLETED"))

    event = await provider.parse_webhook({}, notification(), CREDS, CONFIG, tenant_id=TENANT)

    [request] = fake.requests
    assert (request.method, str(request.url)) == (
        "GET",
        f"https://api.payclip.com/v2/checkout/{CHECKOUT_ID}",
    )
    assert request.headers["authorization"] == f"Basic {BASIC}"
    assert (event.provider, event.event_id, event.type) == (
        "clip",
        f"{CHECKOUT_ID}:CHECKOUT_COMPLETED",
        "checkout.CHECKOUT_COMPLETED",
    )
    assert (event.provider_link_id, event.link_id) == (CHECKOUT_ID, LINK_ID)
    assert event.status == "paid"
    assert (event.amount, event.currency) == (Decimal("149.5"), "MXN")
    assert event.occurred_at is not None


async def test_the_event_id_and_what_is_kept_come_from_clip_not_from_the_notification(
    make: Any,
) -> None:
    provider, _ = make(checkout("CHECKOUT_COMPLETED"))
    body = notification(id="a-pre-claimed-id", padding="x" * 100_000)

    event = await provider.parse_webhook({}, body, CREDS, CONFIG, tenant_id=TENANT)

    assert event.event_id == f"{CHECKOUT_ID}:CHECKOUT_COMPLETED"
    assert "a-pre-claimed-id" not in json.dumps(event.raw)
    assert len(json.dumps(event.raw)) < 200


async def test_a_notification_claiming_payment_is_not_paid_when_clip_says_otherwise(
    make: Any,
) -> None:
    provider, _ = make(checkout("CHECKOUT_PENDING"))

    event = await provider.parse_webhook(
        {}, notification("COMPLETED"), CREDS, CONFIG, tenant_id=TENANT
    )

    assert event.status == "pending"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("CHECKOUT_CREATED", "pending"),
        ("CHECKOUT_COMPLETED", "paid"),
        ("COMPLETED", "paid"),
        ("CHECKOUT_CANCELED", "failed"),
        ("CHECKOUT_EXPIRED", "expired"),
        ("CHECKOUT_REFUNDED", "refunded"),
        ("SOMETHING_NEW", "unknown"),
    ],
)
def test_checkout_statuses_map_to_event_statuses(status: str, expected: str) -> None:
    assert clip.checkout_status(status) == expected


async def test_a_notification_for_a_checkout_clip_does_not_know_is_refused(make: Any) -> None:
    provider, _ = make(httpx.Response(404, json={"message": "not found"}))

    with pytest.raises(InvalidSignature):
        await provider.parse_webhook({}, notification(), CREDS, CONFIG, tenant_id=TENANT)


async def test_clip_answering_about_another_checkout_is_a_bad_response(make: Any) -> None:
    other = {"payment_request_id": "someone-else", "status": "CHECKOUT_COMPLETED"}
    provider, _ = make(httpx.Response(200, json=other))

    with pytest.raises(ProviderBadResponse):
        await provider.parse_webhook({}, notification(), CREDS, CONFIG, tenant_id=TENANT)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        json.dumps({"resource": "CHECKOUT"}).encode(),
        json.dumps({"payment_request_id": "../../v1/secrets"}).encode(),
    ],
)
async def test_a_notification_without_a_usable_checkout_id_is_refused_without_a_call(
    make: Any, body: bytes
) -> None:
    provider, fake = make()

    with pytest.raises(ValidationFailed):
        await provider.parse_webhook({}, body, CREDS, CONFIG, tenant_id=TENANT)

    assert fake.requests == []


# --- the conformance kit ----------------------------------------------------------------------


class TestClipConformance(PaymentProviderConformance):
    provider_class = ClipProvider
    plugin = clip
    credentials = {"apiKey": API_KEY, "secretKey": SECRET_KEY}
    amounts = [(Decimal("149.50"), "MXN", 149.5), (Decimal(20), "MXN", 20.0)]

    def link_response(self) -> httpx.Response:
        return created()

    def sent_amount(self, request: httpx.Request) -> Any:
        return json.loads(request.content)["amount"]

    def genuine_notification(self) -> Notification:
        # Clip does not sign: the re-fetched checkout is what proves the notification.
        return Notification({}, notification(), answers=(checkout("CHECKOUT_COMPLETED"),))

    def forged_notification(self) -> Notification:
        unknown = httpx.Response(404, json={"message": "not found"})
        return Notification({}, notification(), answers=(unknown,))

    def verify_response(self) -> httpx.Response:
        return httpx.Response(404, json={"message": "checkout not found"})
