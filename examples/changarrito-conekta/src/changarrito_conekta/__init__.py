"""Conekta (Mexico) for Changarrito: hosted payment links and RSA-signed webhooks.

Wire format (https://developers.conekta.com, API v2.1):

* ``https://api.conekta.io``, ``Authorization: Bearer <private key>`` (``key_…``) and
  ``Accept: application/vnd.conekta-v2.1.0+json`` on every call.
* A link is a checkout of type ``PaymentLink``: ``POST /checkouts`` with ``name``, ``type``,
  ``recurrent: false``, ``expires_at`` (unix seconds, 2 to 365 days ahead),
  ``allowed_payment_methods`` and an ``order_template`` whose ``line_items`` carry
  ``unit_price`` in cents; the answer's ``url`` is the hosted page and ``id`` the checkout id.
* Webhooks are signed with the company's webhook key (created once with ``POST
  /webhook_keys``, which answers with its ``public_key`` in PEM): the ``digest`` header is the
  RSA (PKCS#1 v1.5) signature of the SHA-256 of the raw body, base64-encoded. The tenant
  stores that public key as ``webhookPublicKey``; without it no notification is accepted.
* An event is ``{"id", "type": "order.paid", "created_at", "data": {"object": <order>}}``;
  the order carries ``amount`` (cents), ``currency``, ``metadata`` (copied from the checkout's
  ``order_template``: the host's ``link_id`` and the shop's ``reference``) and the
  ``checkout`` it came from. A declined charge (``order.declined``) leaves the link payable.

Environment: ``CONEKTA_API_KEY`` and ``CONEKTA_WEBHOOK_PUBLIC_KEY`` (the platform's account),
``CONEKTA_BASE_URL`` (override, for tests).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

from cryptography.exceptions import InvalidSignature as BadRSASignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from changarrito.plugin import (
    Config,
    Credentials,
    InvalidSignature,
    PaymentEvent,
    PaymentLink,
    PaymentProvider,
    PaymentStatus,
    ProviderBadResponse,
    ValidationFailed,
    checked_amount,
    currency_code,
    decode_json,
    from_minor_units,
    header,
    hookimpl,
    json_object,
    to_minor_units,
)

ACCEPT = "application/vnd.conekta-v2.1.0+json"
#: How long a link stays payable: Conekta accepts 2 to 365 days.
LINK_LIFETIME_DAYS = 30


class ConektaCredentials(Credentials, frozen=True):
    #: The private API key (``key_…``).
    api_key: str
    #: The webhook key's ``public_key`` (PEM); needed to accept notifications.
    webhook_public_key: str | None = None


class ConektaConfig(Config, frozen=True):
    #: Payment methods the hosted page offers.
    payment_methods: tuple[str, ...] = ("card", "cash", "bank_transfer")
    #: Where the buyer lands after paying, and after a failure.
    success_url: str | None = None
    failure_url: str | None = None


class ConektaProvider(PaymentProvider):
    id: ClassVar[str] = "conekta"
    name: ClassVar[str] = "Conekta"
    credentials_schema: ClassVar[type[Credentials]] = ConektaCredentials
    config_schema: ClassVar[type[Config]] = ConektaConfig
    default_base_url: ClassVar[str] = "https://api.conekta.io"
    base_url_env: ClassVar[str | None] = "CONEKTA_BASE_URL"
    platform_env: ClassVar[Mapping[str, str]] = {
        "apiKey": "CONEKTA_API_KEY",
        "webhookPublicKey": "CONEKTA_WEBHOOK_PUBLIC_KEY",
    }

    def error_details(self, payload: Any) -> tuple[str | None, str | None, bool]:
        """Conekta errors: ``{"type", "details": [{"message", "code"}]}``."""
        if not isinstance(payload, dict):
            return None, None, False
        details = payload.get("details")
        first = details[0] if isinstance(details, list) and details else {}
        first = first if isinstance(first, dict) else {}
        message = first.get("message") or payload.get("message")
        code = first.get("code") or payload.get("type")
        return (str(message) if message else None), (str(code) if code else None), False

    def _headers(self, creds: ConektaCredentials) -> dict[str, str]:
        return {"Authorization": f"Bearer {creds.api_key}", "Accept": ACCEPT}

    async def verify(self, credentials: Any, config: Any) -> None:
        """Lists one checkout: authenticated, creates nothing."""
        creds: ConektaCredentials = self.credentials_of(credentials)
        await self.call_json(
            "GET",
            self.platform_base_url() + "/checkouts",
            credentials=creds,
            headers=self._headers(creds),
            params={"limit": "1"},
        )

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
        creds: ConektaCredentials = self.credentials_of(credentials)
        conf: ConektaConfig = self.config_of(config)
        code = currency_code(currency)
        checked_amount(amount, code)
        if not description.strip() or not reference.strip():
            raise ValidationFailed("description and reference must not be empty")
        checkout: dict[str, Any] = {
            "name": description[:100],
            "type": "PaymentLink",
            "recurrent": False,
            "expires_at": int(time.time()) + LINK_LIFETIME_DAYS * 86400,
            "allowed_payment_methods": list(conf.payment_methods),
            "needs_shipping_contact": False,
            "order_template": {
                "line_items": [
                    {
                        "name": description,
                        "unit_price": to_minor_units(amount, code),
                        "quantity": 1,
                    }
                ],
                "currency": code,
                # Copied onto the order, so every order event names the host's link.
                "metadata": {"link_id": link_id, "reference": reference},
            },
        }
        if conf.success_url:
            checkout["success_url"] = conf.success_url
        if conf.failure_url:
            checkout["failure_url"] = conf.failure_url
        response = await self.call_json(
            "POST",
            self.platform_base_url() + "/checkouts",
            credentials=creds,
            headers={**self._headers(creds), "Content-Type": "application/json"},
            json=checkout,
        )
        body = decode_json(response, dict[str, Any], self.id)
        checkout_id, url = body.get("id"), body.get("url")
        if not isinstance(checkout_id, str) or not isinstance(url, str) or not url:
            raise ProviderBadResponse("conekta created a checkout without an id or url")
        return PaymentLink(provider=self.id, provider_id=checkout_id, url=url)

    async def parse_webhook(
        self,
        headers: Mapping[str, str],
        raw_body: bytes,
        credentials: Any,
        config: Any,
        *,
        tenant_id: UUID,
    ) -> PaymentEvent:
        """The ``digest`` signature alone proves the event genuine: Conekta is not called."""
        creds: ConektaCredentials = self.credentials_of(credentials)
        check_signature(header(headers, "digest"), raw_body, creds.webhook_public_key)
        return event_from(json_object(raw_body, self.id))


def check_signature(digest: str | None, raw_body: bytes, public_key_pem: str | None) -> None:
    """Raises ``InvalidSignature`` unless ``digest`` is the base64 RSA signature of the
    SHA-256 of ``raw_body`` made with the key whose public half is ``public_key_pem``."""
    if not public_key_pem:
        raise InvalidSignature(
            "no Conekta webhook public key is configured (credentials.webhookPublicKey or "
            "CONEKTA_WEBHOOK_PUBLIC_KEY)"
        )
    if not digest:
        raise InvalidSignature("the digest header is missing")
    try:
        key = serialization.load_pem_public_key(public_key_pem.encode())
        signature = base64.b64decode(digest, validate=True)
    except (ValueError, binascii.Error):
        raise InvalidSignature("the Conekta webhook key or digest is malformed") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidSignature("the Conekta webhook key is not an RSA key")
    try:
        key.verify(signature, raw_body, padding.PKCS1v15(), hashes.SHA256())
    except BadRSASignature:
        raise InvalidSignature("the Conekta signature does not match") from None


_STATUS = {
    "order.paid": PaymentStatus.PAID,
    "order.pending_payment": PaymentStatus.PENDING,
    # One charge declined: the buyer may pay the link with another card or method.
    "order.declined": PaymentStatus.DECLINED,
    "order.canceled": PaymentStatus.FAILED,
    "order.voided": PaymentStatus.FAILED,
    "order.expired": PaymentStatus.EXPIRED,
    "order.refunded": PaymentStatus.REFUNDED,
    "order.charged_back": PaymentStatus.REFUNDED,
}


def event_from(event: dict[str, Any]) -> PaymentEvent:
    """The ``PaymentEvent`` of a verified Conekta event."""
    event_id, event_type = _text(event.get("id")), _text(event.get("type"))
    if not event_id or not event_type:
        raise ValidationFailed("the Conekta notification is not an event (id, type)")
    order = _object(_object(event.get("data")).get("object"))
    currency = _text(order.get("currency"))
    minor = order.get("amount")
    amount = (
        from_minor_units(minor, currency)
        if currency and isinstance(minor, int) and not isinstance(minor, bool)
        else None
    )
    metadata = _object(order.get("metadata"))
    return PaymentEvent(
        provider="conekta",
        event_id=event_id,
        type=event_type,
        provider_link_id=_text(_object(order.get("checkout")).get("id")),
        status=_STATUS.get(event_type, PaymentStatus.UNKNOWN),
        link_id=_text(metadata.get("link_id")),
        reference=_text(metadata.get("reference")),
        amount=amount,
        currency=currency.upper() if currency else None,
        occurred_at=_datetime(event.get("created_at")),
        # Only what identifies the event: the host stores a small summary, not the order.
        raw={"id": event_id, "type": event_type, "order": _text(order.get("id"))},
    )


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _datetime(value: Any) -> datetime | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=UTC)
    return None


@hookimpl
def register_payment_providers(register: Any) -> None:
    register(ConektaProvider)
