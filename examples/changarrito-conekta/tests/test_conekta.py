"""Changarrito's payment conformance kit against the Conekta provider, plus Conekta's own
wire details (in the plugin's own CI: ``pytest examples/changarrito-conekta/tests``)."""

from __future__ import annotations

import base64
import json
import time
from decimal import Decimal
from typing import Any
from uuid import uuid4

import changarrito_conekta
import httpx
import pytest
from changarrito_conekta import ConektaProvider, check_signature, event_from
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from changarrito.plugin import InvalidSignature, PaymentStatus, ProviderAuthError
from changarrito.testing import FakeUpstream, Notification, PaymentProviderConformance
from changarrito.testing.payment_suite import LINK_ID

API_KEY = "key_test_eYvWV7gSDkNYXsmr0123"
#: Conekta keeps the private half and signs with it; the tenant stores the public half.
SIGNING_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_PEM = (
    SIGNING_KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def digest(body: bytes, key: rsa.RSAPrivateKey = SIGNING_KEY) -> str:
    """The ``digest`` header Conekta sends: base64 RSA PKCS#1 v1.5 signature of SHA-256(body)."""
    return base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()


def order_event(event_type: str = "order.paid") -> bytes:
    order = {
        "id": "ord_2tUigJ8DgBhbp6w5D",
        "object": "order",
        "amount": 14950,
        "currency": "MXN",
        "payment_status": "paid",
        "metadata": {"link_id": LINK_ID, "reference": "order-42"},
        "checkout": {"id": "42a4c95e-0db2-4ae8-9bb3-ea681acc8281", "object": "checkout"},
    }
    event = {
        "id": "5b6f4a1e8a9b2c0012345678",
        "type": event_type,
        "created_at": 1_760_000_000,
        "livemode": False,
        "data": {"object": order},
    }
    return json.dumps(event).encode()


def checkout() -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": "42a4c95e-0db2-4ae8-9bb3-ea681acc8281",
            "object": "checkout",
            "type": "PaymentLink",
            "status": "Issued",
            "url": "https://pay.conekta.com/link/9b2f6d0c1a2e4f5d",
        },
    )


class TestConektaConformance(PaymentProviderConformance):
    provider_class = ConektaProvider
    plugin = changarrito_conekta
    credentials = {"apiKey": API_KEY, "webhookPublicKey": PUBLIC_PEM}
    amounts = [(Decimal("149.50"), "MXN", 14950), (Decimal(20), "USD", 2000)]

    def link_response(self) -> httpx.Response:
        return checkout()

    def sent_amount(self, request: httpx.Request) -> Any:
        return json.loads(request.content)["order_template"]["line_items"][0]["unit_price"]

    def genuine_notification(self) -> Notification:
        body = order_event()
        return Notification({"Digest": digest(body)}, body)

    def forged_notification(self) -> Notification:
        body = order_event()
        return Notification({"Digest": digest(body, OTHER_KEY)}, body)

    def error_response(self, status: int, message: str) -> httpx.Response:
        body = {
            "object": "error",
            "type": "authentication_error" if status == 401 else "api_error",
            "details": [{"message": message, "code": "conekta.errors.authentication"}],
        }
        return httpx.Response(status, json=body)

    def verify_response(self) -> httpx.Response:
        return httpx.Response(200, json={"object": "list", "data": []})


async def test_a_link_is_a_payment_link_checkout_in_cents() -> None:
    upstream = FakeUpstream(checkout())
    provider = ConektaProvider(upstream.context())

    link = await provider.create_payment_link(
        link_id=LINK_ID,
        amount=Decimal("149.50"),
        currency="mxn",
        description="Tacos al pastor x3",
        reference="order-42",
        credentials=provider.parse_credentials({"apiKey": API_KEY}),
        config=provider.parse_config({"successUrl": "https://shop.mx/ok"}),
    )

    assert (link.provider_id, link.status) == (
        "42a4c95e-0db2-4ae8-9bb3-ea681acc8281",
        PaymentStatus.PENDING,
    )
    request = upstream.last
    assert str(request.url) == "https://api.conekta.io/checkouts"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["accept"] == "application/vnd.conekta-v2.1.0+json"
    sent = json.loads(request.content)
    assert sent["type"] == "PaymentLink" and sent["recurrent"] is False
    assert sent["success_url"] == "https://shop.mx/ok"
    assert 2 * 86400 <= sent["expires_at"] - time.time() <= 365 * 86400
    assert sent["order_template"] == {
        "line_items": [{"name": "Tacos al pastor x3", "unit_price": 14950, "quantity": 1}],
        "currency": "MXN",
        "metadata": {"link_id": LINK_ID, "reference": "order-42"},
    }
    await upstream.clients().aclose()


def test_a_signed_order_event_names_its_link_checkout_reference_and_amount() -> None:
    event = event_from(json.loads(order_event()))

    assert (event.link_id, event.provider_link_id) == (
        LINK_ID,
        "42a4c95e-0db2-4ae8-9bb3-ea681acc8281",
    )
    assert (event.reference, event.amount, event.currency) == ("order-42", Decimal("149.5"), "MXN")
    assert event.raw == {
        "id": "5b6f4a1e8a9b2c0012345678",
        "type": "order.paid",
        "order": "ord_2tUigJ8DgBhbp6w5D",
    }


@pytest.mark.parametrize(
    ("event_type", "status"),
    [
        ("order.paid", PaymentStatus.PAID),
        ("order.pending_payment", PaymentStatus.PENDING),
        ("order.expired", PaymentStatus.EXPIRED),
        ("order.declined", PaymentStatus.DECLINED),
        ("order.canceled", PaymentStatus.FAILED),
        ("order.refunded", PaymentStatus.REFUNDED),
        ("customer.created", PaymentStatus.UNKNOWN),
    ],
)
def test_order_events_map_to_payment_statuses(event_type: str, status: PaymentStatus) -> None:
    assert event_from(json.loads(order_event(event_type))).status is status


def test_a_tampered_body_breaks_the_signature() -> None:
    body = order_event()
    signature = digest(body)

    with pytest.raises(InvalidSignature):
        check_signature(signature, body.replace(b"14950", b"1"), PUBLIC_PEM)


@pytest.mark.parametrize("signature", [None, "", "not base64!"])
def test_a_missing_or_malformed_digest_is_refused(signature: str | None) -> None:
    with pytest.raises(InvalidSignature):
        check_signature(signature, order_event(), PUBLIC_PEM)


async def test_without_a_webhook_public_key_no_notification_is_accepted() -> None:
    provider = ConektaProvider(FakeUpstream().context())
    body = order_event()

    with pytest.raises(InvalidSignature, match="webhookPublicKey"):
        await provider.parse_webhook(
            {"digest": digest(body)},
            body,
            provider.parse_credentials({"apiKey": API_KEY}),
            provider.parse_config({}),
            tenant_id=uuid4(),
        )


async def test_a_rejected_key_names_conektas_error_code() -> None:
    body = {
        "type": "authentication_error",
        "details": [{"message": "Acceso no autorizado", "code": "conekta.errors.authentication"}],
    }
    provider = ConektaProvider(FakeUpstream(httpx.Response(401, json=body)).context())

    with pytest.raises(ProviderAuthError) as caught:
        await provider.verify(provider.parse_credentials({"apiKey": API_KEY}), None)

    assert caught.value.provider_code == "conekta.errors.authentication"
