"""The Stripe provider against a fake Stripe speaking its documented wire format."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from functools import partial
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from payment_helpers import TENANT, MakeProvider

from changarrito.domain.errors import (
    InvalidSignature,
    ProviderAuthError,
    ProviderBadResponse,
    RetryableProviderError,
    ValidationFailed,
)
from changarrito.plugin import PaymentLink
from changarrito.plugins.payments import stripe
from changarrito.plugins.payments.stripe import StripeCredentials, StripeProvider
from changarrito.testing import Notification, PaymentProviderConformance
from changarrito.testing.payment_suite import LINK_ID

API_KEY = "sk_test_51AbCdEfGhIjKlMnOpQrStUv"
WEBHOOK_SECRET = "whsec_TopSecretSigningValue123"
CREDS = StripeCredentials(api_key=API_KEY, webhook_secret=WEBHOOK_SECRET)
CONFIG = stripe.StripeConfig()


@pytest.fixture
def make(on_fake_upstream: MakeProvider) -> MakeProvider:
    """``make(*answers, env=...)`` → (provider, fake Stripe answering in order)."""
    return partial(on_fake_upstream, StripeProvider)


def session(**extra: Any) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": "cs_test_a1",
            "object": "checkout.session",
            "url": "https://checkout.stripe.com/c/pay/cs_test_a1",
            **extra,
        },
    )


async def create(provider: StripeProvider, **overrides: Any) -> PaymentLink:
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


def form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode(), strict_parsing=True).items()}


# --- links ------------------------------------------------------------------------------------


async def test_a_payment_link_is_a_hosted_checkout_session_priced_in_cents(make: Any) -> None:
    provider, fake = make(session())

    link = await create(provider)

    assert link == PaymentLink(
        provider="stripe",
        provider_id="cs_test_a1",
        url="https://checkout.stripe.com/c/pay/cs_test_a1",
        status="pending",
    )
    [request] = fake.requests
    assert request.method == "POST"
    assert str(request.url) == "https://api.stripe.com/v1/checkout/sessions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["idempotency-key"].startswith("changarrito-")
    assert form(request) == {
        "mode": "payment",
        "line_items[0][quantity]": "1",
        "line_items[0][price_data][currency]": "mxn",
        "line_items[0][price_data][unit_amount]": "14950",
        "line_items[0][price_data][product_data][name]": "Tacos al pastor x3",
        "client_reference_id": LINK_ID,
        "metadata[link_id]": LINK_ID,
        "metadata[reference]": "order-42",
        "payment_intent_data[metadata][link_id]": LINK_ID,
        "payment_intent_data[metadata][reference]": "order-42",
        "success_url": "https://wa.me/",
    }


@pytest.mark.parametrize(
    ("amount", "currency", "unit_amount"),
    [
        (Decimal(500), "JPY", "500"),
        (Decimal("12.3"), "usd", "1230"),
        (Decimal("1.25"), "KWD", "1250"),
        # Stripe's own exceptions to ISO 4217: ISK in hundredths, MGA in whole units.
        (Decimal(500), "ISK", "50000"),
        (Decimal(500), "MGA", "500"),
    ],
)
async def test_amounts_are_sent_in_the_currencys_minor_units(
    make: Any, amount: Decimal, currency: str, unit_amount: str
) -> None:
    provider, fake = make(session())

    await create(provider, amount=amount, currency=currency)

    sent = form(fake.requests[0])
    assert sent["line_items[0][price_data][unit_amount]"] == unit_amount
    assert sent["line_items[0][price_data][currency]"] == currency.lower()


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        (Decimal("1.5"), "JPY"),
        (Decimal("10.005"), "MXN"),
        (Decimal("1.234"), "KWD"),
        (Decimal("1.5"), "ISK"),
        (Decimal("1.5"), "MGA"),
        (Decimal(0), "MXN"),
        (Decimal(-5), "MXN"),
        (Decimal("NaN"), "MXN"),
        (Decimal(10), "pesos"),
    ],
)
async def test_amounts_stripe_cannot_charge_exactly_are_refused_before_calling_it(
    make: Any, amount: Decimal, currency: str
) -> None:
    provider, fake = make()

    with pytest.raises(ValidationFailed):
        await create(provider, amount=amount, currency=currency)

    assert fake.requests == []


async def test_a_retried_request_reuses_its_idempotency_key_and_a_new_amount_gets_another(
    make: Any,
) -> None:
    provider, fake = make(session(), session(), session())

    await create(provider)
    await create(provider)
    await create(provider, amount=Decimal(150))

    first, again, other = (r.headers["idempotency-key"] for r in fake.requests)
    assert first == again != other


async def test_configured_return_urls_and_base_url_are_used(make: Any) -> None:
    provider, fake = make(session(), env={"STRIPE_BASE_URL": "http://stripe-mock:12111/"})
    config = StripeProvider.parse_config(
        {"successUrl": "https://shop.mx/ok?s={CHECKOUT_SESSION_ID}", "cancelUrl": "https://shop.mx"}
    )

    await create(provider, config=config)

    [request] = fake.requests
    assert str(request.url) == "http://stripe-mock:12111/v1/checkout/sessions"
    assert form(request)["success_url"] == "https://shop.mx/ok?s={CHECKOUT_SESSION_ID}"
    assert form(request)["cancel_url"] == "https://shop.mx"


async def test_a_session_without_a_url_is_a_bad_response(make: Any) -> None:
    provider, _ = make(httpx.Response(200, json={"id": "cs_1", "object": "checkout.session"}))

    with pytest.raises(ProviderBadResponse):
        await create(provider)


# --- verify and failures ----------------------------------------------------------------------


async def test_verify_reads_the_balance_with_the_key(make: Any) -> None:
    provider, fake = make(
        httpx.Response(200, json={"object": "balance", "livemode": False, "available": []})
    )

    await provider.verify({"apiKey": API_KEY}, None)

    [request] = fake.requests
    assert (request.method, str(request.url)) == ("GET", "https://api.stripe.com/v1/balance")
    assert request.headers["authorization"] == f"Bearer {API_KEY}"


async def test_a_rejected_key_is_an_auth_error_that_never_shows_the_key(make: Any) -> None:
    echo = {"error": {"type": "invalid_request_error", "message": f"Invalid API Key: {API_KEY}"}}
    provider, _ = make(httpx.Response(401, json=echo))

    with structlog.testing.capture_logs() as logs, pytest.raises(ProviderAuthError) as caught:
        await provider.verify(CREDS, CONFIG)

    error = caught.value
    assert not error.retryable
    assert error.status == 401
    assert error.provider_code == "invalid_request_error"
    for shown in (str(error), repr(error), repr(error.args), error.message, repr(logs)):
        assert API_KEY not in shown
        assert WEBHOOK_SECRET not in shown
    assert "[redacted]" in error.message


async def test_a_rate_limit_is_retryable_after_the_time_stripe_asks_for(make: Any) -> None:
    provider, _ = make(
        httpx.Response(429, headers={"Retry-After": "7"}, json={"error": {"type": "rate_limit"}})
    )

    with pytest.raises(RetryableProviderError) as caught:
        await create(provider)

    assert caught.value.retryable
    assert caught.value.retry_after == 7.0


def test_credentials_never_show_their_values() -> None:
    for shown in (repr(CREDS), str(CREDS), f"{CREDS!r}", repr(list(CREDS.__rich_repr__()))):
        assert API_KEY not in shown
        assert WEBHOOK_SECRET not in shown


def test_platform_credentials_come_from_the_stripe_env_vars() -> None:
    env = {"STRIPE_API_KEY": API_KEY, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}

    found = StripeProvider.platform_credentials(env)

    assert found == {"apiKey": API_KEY, "webhookSecret": WEBHOOK_SECRET}
    assert StripeProvider.parse_credentials(found) == CREDS
    assert StripeProvider.platform_credentials({"STRIPE_WEBHOOK_SECRET": "x"}) is None


# --- webhooks ---------------------------------------------------------------------------------


def stripe_event(event_type: str = "checkout.session.completed", **obj: Any) -> bytes:
    session_object = {
        "id": "cs_test_a1",
        "object": "checkout.session",
        "client_reference_id": LINK_ID,
        "metadata": {"reference": "order-42", "link_id": LINK_ID},
        "amount_total": 14950,
        "currency": "mxn",
        "payment_status": "paid",
        **obj,
    }
    event = {
        "id": "evt_1",
        "object": "event",
        "type": event_type,
        "created": 1_760_000_000,
        "data": {"object": session_object},
    }
    return json.dumps(event).encode()


async def test_a_signed_completed_checkout_is_a_paid_event(make: Any) -> None:
    provider, fake = make()
    body = stripe_event()
    headers = {"stripe-signature": stripe.sign(body, WEBHOOK_SECRET, int(time.time()))}

    event = await provider.parse_webhook(headers, body, CREDS, CONFIG, tenant_id=TENANT)

    assert (event.provider, event.event_id, event.type) == (
        "stripe",
        "evt_1",
        "checkout.session.completed",
    )
    assert (event.provider_link_id, event.link_id) == ("cs_test_a1", LINK_ID)
    assert event.status == "paid"
    assert event.reference == "order-42"
    assert (event.amount, event.currency) == (Decimal("149.50"), "MXN")
    assert event.occurred_at is not None and event.occurred_at.year == 2025
    assert fake.requests == []  # the signature is enough: no call to Stripe


@pytest.mark.parametrize(
    ("event_type", "obj"),
    [
        (
            "payment_intent.succeeded",
            {"id": "pi_1", "object": "payment_intent", "amount": 14950, "amount_received": 14950},
        ),
        ("charge.refunded", {"id": "ch_1", "object": "charge", "amount": 14950, "refunded": True}),
    ],
)
def test_intent_and_charge_events_name_the_link_by_the_metadata_stripe_copies(
    event_type: str, obj: dict[str, Any]
) -> None:
    body = json.loads(stripe_event(event_type, client_reference_id=None, **obj))
    del body["data"]["object"]["amount_total"]

    event = stripe.event_from(body)

    assert (event.link_id, event.provider_link_id) == (LINK_ID, None)
    assert (event.amount, event.currency) == (Decimal("149.50"), "MXN")


def test_only_a_summary_of_the_event_is_kept() -> None:
    body = json.loads(stripe_event(customer_details={"email": "a@b.c", "notes": "x" * 10_000}))

    event = stripe.event_from(body)

    assert event.raw == {
        "id": "evt_1",
        "type": "checkout.session.completed",
        "object": {"id": "cs_test_a1", "object": "checkout.session", "payment_status": "paid"},
    }


@pytest.mark.parametrize(
    ("event_type", "obj", "status"),
    [
        ("checkout.session.completed", {"payment_status": "unpaid"}, "pending"),
        ("checkout.session.async_payment_succeeded", {}, "paid"),
        ("checkout.session.async_payment_failed", {}, "failed"),
        ("checkout.session.expired", {"payment_status": "unpaid"}, "expired"),
        # A declined card leaves the session open: the buyer may try again.
        ("payment_intent.payment_failed", {"object": "payment_intent"}, "declined"),
        ("charge.failed", {"object": "charge"}, "declined"),
        ("payment_intent.canceled", {"object": "payment_intent"}, "failed"),
        ("charge.refunded", {"object": "charge", "refunded": True}, "refunded"),
        ("charge.refunded", {"object": "charge", "refunded": False}, "unknown"),
        ("customer.created", {"object": "customer"}, "unknown"),
    ],
)
def test_stripe_events_map_to_payment_statuses(
    event_type: str, obj: dict[str, Any], status: str
) -> None:
    event = stripe.event_from(json.loads(stripe_event(event_type, **obj)))

    assert event.status == status


def test_a_signature_made_with_another_secret_is_refused() -> None:
    body = stripe_event()
    forged = stripe.sign(body, "whsec_attacker", int(time.time()))

    with pytest.raises(InvalidSignature):
        stripe.check_signature(forged, body, WEBHOOK_SECRET)


@pytest.mark.parametrize("headers", [{}, {"Stripe-Signature": ""}, {"Stripe-Signature": "t=1"}])
async def test_a_missing_or_empty_signature_is_refused(make: Any, headers: dict[str, str]) -> None:
    provider, _ = make()

    with pytest.raises(InvalidSignature):
        await provider.parse_webhook(headers, stripe_event(), CREDS, CONFIG, tenant_id=TENANT)


async def test_without_a_webhook_secret_no_notification_is_accepted(make: Any) -> None:
    provider, _ = make()
    body = stripe_event()
    headers = {"Stripe-Signature": stripe.sign(body, WEBHOOK_SECRET, int(time.time()))}

    with pytest.raises(InvalidSignature, match="webhookSecret"):
        await provider.parse_webhook(headers, body, {"apiKey": API_KEY}, CONFIG, tenant_id=TENANT)


@pytest.mark.parametrize(("age", "accepted"), [(299, True), (301, False), (-301, False)])
def test_signatures_are_valid_for_five_minutes(age: int, accepted: bool) -> None:
    body = stripe_event()
    now = 1_760_000_000
    signature = stripe.sign(body, WEBHOOK_SECRET, now - age)

    if accepted:
        stripe.check_signature(signature, body, WEBHOOK_SECRET, now=now)
    else:
        with pytest.raises(InvalidSignature, match="300 seconds"):
            stripe.check_signature(signature, body, WEBHOOK_SECRET, now=now)


def test_any_v1_signature_may_match_and_v0_is_ignored() -> None:
    body = stripe_event()
    now = int(time.time())
    good = stripe.sign(body, WEBHOOK_SECRET, now).split("v1=")[1]

    stripe.check_signature(f"t={now},v1={'0' * 64},v1={good}", body, WEBHOOK_SECRET)
    with pytest.raises(InvalidSignature):
        stripe.check_signature(f"t={now},v0={good}", body, WEBHOOK_SECRET)


async def test_a_signed_body_that_is_not_an_event_is_a_validation_error(make: Any) -> None:
    provider, _ = make()
    headers = {"Stripe-Signature": stripe.sign(b"not json", WEBHOOK_SECRET, int(time.time()))}

    with pytest.raises(ValidationFailed):
        await provider.parse_webhook(headers, b"not json", CREDS, CONFIG, tenant_id=TENANT)


@given(body=st.binary(max_size=2048), secret=st.text(min_size=1, max_size=64))
def test_any_body_signed_with_the_secret_verifies(body: bytes, secret: str) -> None:
    now = int(time.time())

    stripe.check_signature(stripe.sign(body, secret, now), body, secret, now=now)


@given(body=st.binary(min_size=1, max_size=2048), data=st.data())
def test_changing_any_single_byte_of_a_signed_body_breaks_the_signature(
    body: bytes, data: st.DataObject
) -> None:
    now = int(time.time())
    signature = stripe.sign(body, WEBHOOK_SECRET, now)
    index = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    byte = data.draw(st.integers(min_value=0, max_value=255).filter(lambda b: b != body[index]))
    tampered = body[:index] + bytes([byte]) + body[index + 1 :]

    with pytest.raises(InvalidSignature):
        stripe.check_signature(signature, tampered, WEBHOOK_SECRET, now=now)


async def test_a_long_error_echoing_the_key_is_not_cut_inside_the_key(make: Any) -> None:
    echo = {"error": {"type": "invalid_request_error", "message": "x" * 290 + " " + API_KEY}}
    provider, _ = make(httpx.Response(401, json=echo))

    with pytest.raises(ProviderAuthError) as caught:
        await provider.verify(CREDS, CONFIG)

    assert API_KEY[:8] not in caught.value.message
    assert API_KEY[-4:] not in caught.value.message


# --- the conformance kit ----------------------------------------------------------------------


class TestStripeConformance(PaymentProviderConformance):
    provider_class = StripeProvider
    plugin = stripe
    credentials = {"apiKey": API_KEY, "webhookSecret": WEBHOOK_SECRET}
    amounts = [(Decimal("149.50"), "MXN", "14950"), (Decimal(500), "JPY", "500")]

    def link_response(self) -> httpx.Response:
        return session()

    def sent_amount(self, request: httpx.Request) -> Any:
        return form(request)["line_items[0][price_data][unit_amount]"]

    def genuine_notification(self) -> Notification:
        body = stripe_event()
        return Notification({"Stripe-Signature": stripe.sign(body, WEBHOOK_SECRET, now())}, body)

    def forged_notification(self) -> Notification:
        body = stripe_event()
        return Notification({"Stripe-Signature": stripe.sign(body, "whsec_forged", now())}, body)

    def verify_response(self) -> httpx.Response:
        return httpx.Response(200, json={"object": "balance", "available": []})


def now() -> int:
    return int(time.time())
