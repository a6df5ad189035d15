"""Stripe: hosted Checkout Sessions over the REST API (form-encoded, bearer secret key).

A Payment Link would need a Price object per amount, so a one-off link is a Checkout Session
with inline ``price_data``; its ``url`` is the hosted payment page. Webhooks are checked with the
endpoint's signing secret (``Stripe-Signature``, HMAC-SHA256 over ``"{t}.{body}"``).

Our link id travels as the session's ``client_reference_id`` and ``metadata[link_id]``, and as
``payment_intent_data[metadata][link_id]``: Stripe does not copy a session's metadata onto its
PaymentIntent, but does copy a PaymentIntent's metadata onto the charge it creates when it is
confirmed (support.stripe.com "How metadata works with related objects"), so
``checkout.session.*``, ``payment_intent.*`` and ``charge.*`` events all name the link.
A declined card (``payment_intent.payment_failed``, ``charge.failed``) is ``declined``: the
buyer may try again on the same session; a cancelled intent or a failed delayed payment is
final (``failed``), an expired session ``expired``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import urlencode
from uuid import UUID

import msgspec

from changarrito import hookimpl
from changarrito.domain.errors import InvalidSignature, ProviderBadResponse, ValidationFailed
from changarrito.domain.money import THREE_DECIMAL, minor_unit_decimals
from changarrito.domain.payment_model import PaymentStatus
from changarrito.plugins.base import Config, Credentials, PaymentEvent, PaymentLink, PaymentProvider
from changarrito.plugins.upstream import decode_json

from ._common import DEFAULT_RETURN_URL, idempotency_key, text
from ._money import checked_amount, currency_code, from_minor_units, to_minor_units
from ._webhooks import (
    any_matches,
    check_freshness,
    header,
    hmac_sha256_hex,
    json_object,
    parse_datetime,
    signature_parts,
)

DEFAULT_BASE_URL = "https://api.stripe.com"
#: Seconds a signature stays valid, as in Stripe's own libraries.
SIGNATURE_TOLERANCE = 300

#: Where Stripe's API amounts depart from ISO 4217 (https://docs.stripe.com/currencies, "Zero-
#: decimal currencies" and "Special cases"): MGA is zero-decimal at Stripe (two in ISO); ISK
#: stays two-decimal in the API although only whole krónur are accepted ("an ISK amount of 100
#: represents 1 króna", support.stripe.com "Deprecation of fractional ISK charges").
_WIRE_DECIMALS = {"ISK": 2, "MGA": 0}
#: Decimals a buyer may be charged in, where Stripe allows fewer than ISO: whole ISK and MGA;
#: three-decimal currencies only in multiples of ten (the last digit must be 0).
_ALLOWED_DECIMALS = {"ISK": 0, "MGA": 0, **{code: 2 for code in THREE_DECIMAL}}


def wire_decimals(currency: str) -> int:
    """The decimals of Stripe's ``amount`` for ``currency``."""
    return _WIRE_DECIMALS.get(currency.upper(), minor_unit_decimals(currency))


class StripeCredentials(Credentials, frozen=True):
    #: Secret or restricted key (``sk_…`` / ``rk_…``).
    api_key: str
    #: The webhook endpoint's signing secret (``whsec_…``); needed to accept notifications.
    webhook_secret: str | None = None


class StripeConfig(Config, frozen=True):
    #: Where Checkout sends the buyer after paying; may contain ``{CHECKOUT_SESSION_ID}``.
    success_url: str | None = None
    #: Where the buyer goes on "back"; Checkout shows no back link when unset.
    cancel_url: str | None = None


class StripeProvider(PaymentProvider):
    id: ClassVar[str] = "stripe"
    name: ClassVar[str] = "Stripe"
    credentials_schema: ClassVar[type[msgspec.Struct]] = StripeCredentials
    config_schema: ClassVar[type[msgspec.Struct]] = StripeConfig
    base_url_env: ClassVar[str] = "STRIPE_BASE_URL"
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL
    platform_env: ClassVar[Mapping[str, str]] = {
        "apiKey": "STRIPE_API_KEY",
        "webhookSecret": "STRIPE_WEBHOOK_SECRET",
    }
    # Stripe's errors are ``{"error": {"type", "code"?, "message"?}}``: the default
    # ``error_details`` reads them.

    async def _json(self, method: str, path: str, creds: StripeCredentials, **kw: Any) -> Any:
        response = await self.call_json(
            method, self.platform_base_url() + path, credentials=creds, **kw
        )
        return decode_json(response, dict[str, Any], self.id)

    async def verify(self, credentials: Any, config: Any) -> None:
        creds: StripeCredentials = self.credentials_of(credentials)
        body = await self._json("GET", "/v1/balance", creds, headers=_auth(creds))
        if body.get("object") != "balance":
            raise ProviderBadResponse("stripe answered /v1/balance without a balance object")

    async def create_payment_link(
        self,
        *,
        link_id: str,
        amount: Decimal,
        currency: str,
        description: str,
        reference: str,
        credentials: Any,
        config: Any,
    ) -> PaymentLink:
        creds: StripeCredentials = self.credentials_of(credentials)
        conf: StripeConfig = self.config_of(config)
        code = currency_code(currency)
        checked_amount(amount, code, decimals=_ALLOWED_DECIMALS.get(code))
        if not description.strip() or not reference.strip():
            raise ValidationFailed("description and reference must not be empty")
        form = [
            ("mode", "payment"),
            ("line_items[0][quantity]", "1"),
            ("line_items[0][price_data][currency]", code.lower()),
            (
                "line_items[0][price_data][unit_amount]",
                str(to_minor_units(amount, code, decimals=wire_decimals(code))),
            ),
            ("line_items[0][price_data][product_data][name]", description),
            ("client_reference_id", link_id),
            ("metadata[link_id]", link_id),
            ("metadata[reference]", reference),
            # Set on the PaymentIntent (and copied by Stripe onto its charges) so that their
            # events name the link too.
            ("payment_intent_data[metadata][link_id]", link_id),
            ("payment_intent_data[metadata][reference]", reference),
            ("success_url", conf.success_url or DEFAULT_RETURN_URL),
        ]
        if conf.cancel_url:
            form.append(("cancel_url", conf.cancel_url))
        content = urlencode(form).encode()
        headers = {
            **_auth(creds),
            "Content-Type": "application/x-www-form-urlencoded",
            "Idempotency-Key": idempotency_key(self.id, link_id, content),
        }
        body = await self._json(
            "POST", "/v1/checkout/sessions", creds, headers=headers, content=content
        )
        session_id, url = text(body.get("id")), text(body.get("url"))
        if not session_id or not url:
            raise ProviderBadResponse("stripe created a Checkout Session without an id or url")
        return PaymentLink(provider=self.id, provider_id=session_id, url=url)

    async def parse_webhook(
        self,
        headers: Mapping[str, str],
        raw_body: bytes,
        credentials: Any,
        config: Any,
        *,
        tenant_id: UUID,
    ) -> PaymentEvent:
        """The signature alone proves the event genuine: Stripe is not called."""
        creds: StripeCredentials = self.credentials_of(credentials)
        check_signature(header(headers, "Stripe-Signature"), raw_body, creds.webhook_secret)
        return event_from(json_object(raw_body, self.id))


def check_signature(
    signature: str | None, raw_body: bytes, secret: str | None, *, now: float | None = None
) -> None:
    """Raises ``InvalidSignature`` unless a ``v1`` signature of ``raw_body`` matches and its
    timestamp is within ``SIGNATURE_TOLERANCE`` of ``now``. ``v0`` (test-mode legacy) is
    ignored, as Stripe's libraries do."""
    if not secret:
        raise InvalidSignature(
            "no Stripe webhook signing secret is configured (credentials.webhookSecret or "
            "STRIPE_WEBHOOK_SECRET)"
        )
    if not signature:
        raise InvalidSignature("the Stripe-Signature header is missing")
    parts = signature_parts(signature)
    timestamps = [v for k, v in parts if k == "t"]
    signatures = [v for k, v in parts if k == "v1"]
    if len(timestamps) != 1 or not signatures:
        raise InvalidSignature("the Stripe-Signature header needs one t= and a v1= signature")
    try:
        timestamp = int(timestamps[0])
    except ValueError:
        raise InvalidSignature("the Stripe-Signature timestamp is not a number") from None
    expected = hmac_sha256_hex(secret, timestamps[0].encode() + b"." + raw_body)
    if not any_matches(expected, signatures):
        raise InvalidSignature("the Stripe signature does not match")
    check_freshness(timestamp, time.time() if now is None else now, SIGNATURE_TOLERANCE)


def sign(raw_body: bytes, secret: str, timestamp: int) -> str:
    """A ``Stripe-Signature`` value for ``raw_body`` (for tests and local tooling)."""
    signature = hmac_sha256_hex(secret, str(timestamp).encode() + b"." + raw_body)
    return f"t={timestamp},v1={signature}"


def event_from(event: dict[str, Any]) -> PaymentEvent:
    """The ``PaymentEvent`` for a verified Stripe event object."""
    event_id, event_type = text(event.get("id")), text(event.get("type"))
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not event_id or not event_type or not isinstance(obj, dict):
        raise ValidationFailed("the Stripe notification is not an event (id, type, data.object)")
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    currency = text(obj.get("currency"))
    # A session's total; what a PaymentIntent received; a charge's amount.
    minor = obj.get("amount_total", obj.get("amount_received", obj.get("amount")))
    amount = (
        from_minor_units(minor, currency, decimals=wire_decimals(currency))
        if currency and isinstance(minor, int) and not isinstance(minor, bool)
        else None
    )
    session = obj.get("object") == "checkout.session"
    return PaymentEvent(
        provider="stripe",
        event_id=event_id,
        type=event_type,
        provider_link_id=text(obj.get("id")) if session else None,
        status=_status(event_type, obj),
        link_id=text(metadata.get("link_id"))
        or (text(obj.get("client_reference_id")) if session else None),
        reference=text(metadata.get("reference")),
        amount=amount,
        currency=currency.upper() if currency else None,
        occurred_at=parse_datetime(event.get("created")),
        raw=_summary(event_id, event_type, obj),
    )


def _summary(event_id: str, event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    """What is kept of a verified event: its ids and the object's state, not the object."""
    kept = ("id", "object", "status", "payment_status", "payment_intent", "livemode", "refunded")
    return {
        "id": event_id,
        "type": event_type,
        "object": {key: obj[key] for key in kept if isinstance(obj.get(key), str | bool)},
    }


def _status(event_type: str, obj: dict[str, Any]) -> PaymentStatus:
    if event_type == "checkout.session.completed":
        # Delayed methods (OXXO, SPEI) complete the session before the money arrives; the
        # async_payment_* events follow.
        paid = obj.get("payment_status") in ("paid", "no_payment_required")
        return PaymentStatus.PAID if paid else PaymentStatus.PENDING
    if event_type == "charge.refunded":
        # A partial refund says nothing about the link as a whole.
        return PaymentStatus.REFUNDED if obj.get("refunded") is True else PaymentStatus.UNKNOWN
    return _STATUS_BY_EVENT.get(event_type, PaymentStatus.UNKNOWN)


_STATUS_BY_EVENT = {
    "checkout.session.async_payment_succeeded": PaymentStatus.PAID,
    # A delayed method (OXXO, SPEI) that failed: the session is complete, nothing more to pay.
    "checkout.session.async_payment_failed": PaymentStatus.FAILED,
    "checkout.session.expired": PaymentStatus.EXPIRED,
    "payment_intent.succeeded": PaymentStatus.PAID,
    "payment_intent.processing": PaymentStatus.PENDING,
    # A declined attempt: the session stays open and the buyer may try another card.
    "payment_intent.payment_failed": PaymentStatus.DECLINED,
    "charge.failed": PaymentStatus.DECLINED,
    "payment_intent.canceled": PaymentStatus.FAILED,
}


def _auth(credentials: StripeCredentials) -> dict[str, str]:
    return {"Authorization": f"Bearer {credentials.api_key}"}


@hookimpl
def register_payment_providers(register: Any) -> None:
    register(StripeProvider)
