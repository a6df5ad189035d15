"""Mercado Pago: Checkout Pro preferences, and payment notifications checked two ways.

A link is a preference (``POST /checkout/preferences``) whose ``init_point`` is the hosted
checkout; its ``external_reference`` is our link id (Mercado Pago copies it onto every payment
made through the preference) and the shop's reference goes in ``metadata``.

A notification is only a pointer, and nothing in its body is believed:

- with a webhook secret, ``x-signature`` must verify (it covers the data id, the request id
  and the timestamp); without one, only a ``payment`` notification is accepted, because it is
  then verified by the re-fetch. Any other topic (merchant orders, chargebacks...) that cannot
  be verified is refused (``InvalidSignature``), so nothing unverified is stored;
- a payment is then fetched with the same credential (``GET /v1/payments/{id}``; 404 is
  ``InvalidSignature``) and only that answer sets the status, amount, currency and link id;
  the event id is ``payment:<id>:<status>`` from that answer, never the body's ``id``;
- the signature's age is not checked: a correctly signed notification older than an hour
  (Mercado Pago retries for days after an outage) is accepted, as the official SDKs accept
  it. A replay can do no harm: the event is de-duplicated per tenant, its status is whatever
  a fresh re-fetch says, and it moves only the link its payment names.

Past the house's 250-line aim on purpose: the signature manifest, the re-fetch and the
status mapping are one provider's wire format, kept in one module as every provider is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import UUID

import msgspec

from changarrito import hookimpl
from changarrito.domain.errors import InvalidSignature, ProviderBadResponse, ValidationFailed
from changarrito.domain.payment_model import PaymentStatus
from changarrito.plugins.base import Config, Credentials, PaymentEvent, PaymentLink, PaymentProvider
from changarrito.plugins.upstream import decode_json

from ._common import idempotency_key, path_segment, text
from ._money import checked_amount, currency_code
from ._webhooks import (
    any_matches,
    header,
    hmac_sha256_hex,
    json_object,
    parse_datetime,
    signature_parts,
    unix_seconds,
)

DEFAULT_BASE_URL = "https://api.mercadopago.com"
_RESOURCE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: A notification topic as it is kept in an event id (anything else is ``other``).
_TOPIC = re.compile(r"^[a-z_.]{1,40}$")


class MercadoPagoCredentials(Credentials, frozen=True):
    #: Production ``APP_USR-…`` or test ``TEST-…`` access token.
    access_token: str
    #: The "secret signature" of the application's webhooks. With it every notification
    #: must be signed; without it only payment notifications are accepted, verified by
    #: re-fetching the payment (the payment is re-fetched either way).
    webhook_secret: str | None = None


class MercadoPagoConfig(Config, frozen=True):
    #: Where Mercado Pago posts notifications for this link (``?source_news=webhooks`` is added
    #: so only signed webhooks, not legacy IPN, arrive).
    notification_url: str | None = None
    success_url: str | None = None
    pending_url: str | None = None
    failure_url: str | None = None
    #: Send buyers to ``sandbox_init_point`` (test credentials).
    sandbox: bool = False
    #: The notification's query parameters (``data.id``, ``type``), set by the webhook route
    #: for the call to ``parse_webhook``: Mercado Pago signs the query's ``data.id``, which
    #: the headers and body alone do not carry. Unset, the body's ``data.id`` is used.
    query: dict[str, str] | None = None


class MercadoPagoProvider(PaymentProvider):
    id: ClassVar[str] = "mercadopago"
    name: ClassVar[str] = "Mercado Pago"
    credentials_schema: ClassVar[type[msgspec.Struct]] = MercadoPagoCredentials
    config_schema: ClassVar[type[msgspec.Struct]] = MercadoPagoConfig
    base_url_env: ClassVar[str] = "MERCADOPAGO_BASE_URL"
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL
    platform_env: ClassVar[Mapping[str, str]] = {
        "accessToken": "MERCADOPAGO_ACCESS_TOKEN",
        "webhookSecret": "MERCADOPAGO_WEBHOOK_SECRET",
    }

    def error_details(self, payload: Any) -> tuple[str | None, str | None, bool]:
        """Mercado Pago errors: ``{"message", "error", "status", "cause": [{"code", ...}]}``."""
        if not isinstance(payload, dict):
            return None, None, False
        code = text(payload.get("error"))
        cause = payload.get("cause")
        if code is None and isinstance(cause, list) and cause and isinstance(cause[0], dict):
            code = text(cause[0].get("code"))
        return text(payload.get("message")) or code, code, False

    def _creds(self, credentials: Any) -> MercadoPagoCredentials:
        creds: MercadoPagoCredentials = self.credentials_of(credentials)
        return creds

    async def _json(self, method: str, path: str, creds: MercadoPagoCredentials, **kw: Any) -> Any:
        response = await self.call_json(
            method, self.platform_base_url() + path, credentials=creds, **kw
        )
        return decode_json(response, dict[str, Any], self.id)

    async def verify(self, credentials: Any, config: Any) -> None:
        creds = self._creds(credentials)
        body = await self._json("GET", "/users/me", creds, headers=_auth(creds))
        if text(body.get("id")) is None:
            raise ProviderBadResponse("mercadopago answered /users/me without a user id")

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
        creds = self._creds(credentials)
        conf: MercadoPagoConfig = self.config_of(config)
        code = currency_code(currency)
        checked_amount(amount, code)
        if not description.strip() or not reference.strip():
            raise ValidationFailed("description and reference must not be empty")
        preference: dict[str, Any] = {
            "items": [
                {
                    "title": description,
                    "quantity": 1,
                    "unit_price": float(amount),
                    "currency_id": code,
                }
            ],
            "external_reference": link_id,
            "metadata": {"reference": reference, "link_id": link_id},
        }
        if conf.notification_url:
            preference["notification_url"] = _with_query(
                conf.notification_url, source_news="webhooks"
            )
        back_urls = {
            key: url
            for key, url in (
                ("success", conf.success_url),
                ("pending", conf.pending_url),
                ("failure", conf.failure_url),
            )
            if url
        }
        if back_urls:
            preference["back_urls"] = back_urls
        if conf.success_url:
            preference["auto_return"] = "approved"
        content = msgspec.json.encode(preference)
        headers = {
            **_auth(creds),
            "Content-Type": "application/json",
            "X-Idempotency-Key": idempotency_key(self.id, link_id, content),
        }
        body = await self._json(
            "POST", "/checkout/preferences", creds, headers=headers, content=content
        )
        preference_id = text(body.get("id"))
        url = text(body.get("sandbox_init_point" if conf.sandbox else "init_point"))
        if not preference_id or not url:
            raise ProviderBadResponse("mercadopago created a preference without an id or link")
        return PaymentLink(provider=self.id, provider_id=preference_id, url=url)

    async def parse_webhook(
        self,
        headers: Mapping[str, str],
        raw_body: bytes,
        credentials: Any,
        config: Any,
        *,
        tenant_id: UUID,
    ) -> PaymentEvent:
        """Checks and resolves a notification.

        ``data.id`` is read from ``config.query`` (the notification URL's query, which is what
        Mercado Pago signs) and falls back to the body's ``data.id``.
        """
        creds = self._creds(credentials)
        conf: MercadoPagoConfig = self.config_of(config)
        body = json_object(raw_body, self.id)
        query = conf.query or {}
        data = body.get("data")
        data_id = query.get("data.id") or (text(data.get("id")) if isinstance(data, dict) else None)
        kind = query.get("type") or text(body.get("type")) or text(body.get("topic"))
        if creds.webhook_secret:
            check_signature(
                header(headers, "x-signature"),
                request_id=header(headers, "x-request-id"),
                data_id=data_id,
                secret=creds.webhook_secret,
            )
        elif kind != "payment":
            raise InvalidSignature(
                "an unsigned mercadopago notification is accepted only for a payment, which is "
                "re-fetched; set a webhook secret to receive other topics"
            )
        if not data_id or not _RESOURCE_ID.match(data_id):
            raise ValidationFailed("the mercadopago notification has no usable data.id")
        if kind != "payment":
            # Signed merchant orders, chargebacks...: acknowledged, not interpreted.
            topic = kind if kind and _TOPIC.match(kind) else "other"
            return PaymentEvent(
                provider=self.id,
                event_id=f"{topic}:{data_id}",
                type=topic,
                provider_link_id=None,
                status=PaymentStatus.UNKNOWN,
                raw={"topic": topic, "id": data_id},
            )
        response = await self.call_json(
            "GET",
            f"{self.platform_base_url()}/v1/payments/{path_segment(data_id)}",
            credentials=creds,
            headers=_auth(creds),
            accept_status=(404,),
        )
        if response.status_code == 404:
            raise InvalidSignature("mercadopago has no such payment for these credentials")
        payment = decode_json(response, dict[str, Any], self.id)
        if text(payment.get("id")) not in (None, data_id):
            raise ProviderBadResponse("mercadopago answered with a different payment than asked")
        return _event(data_id, payment)


def manifest(*, data_id: str | None, request_id: str | None, ts: str) -> str:
    """The string Mercado Pago signs: ``id:{data.id};request-id:{x-request-id};ts:{ts};``,
    leaving out the parts that are absent; an alphanumeric ``data.id`` is lower-cased."""
    parts = []
    if data_id:
        parts.append(f"id:{data_id.lower() if data_id.isalnum() else data_id};")
    if request_id:
        parts.append(f"request-id:{request_id};")
    parts.append(f"ts:{ts};")
    return "".join(parts)


def check_signature(
    signature: str | None,
    *,
    request_id: str | None,
    data_id: str | None,
    secret: str,
) -> None:
    """Raises ``InvalidSignature`` unless ``x-signature``'s ``v1`` is the HMAC-SHA256 of the
    manifest. Its ``ts`` must be a number (seconds or milliseconds) but may be of any age (see
    the module docstring)."""
    if not signature:
        raise InvalidSignature("the x-signature header is missing")
    parts = signature_parts(signature)
    stamps = [v for k, v in parts if k == "ts"]
    signatures = [v for k, v in parts if k == "v1"]
    if len(stamps) != 1 or not signatures:
        raise InvalidSignature("the x-signature header needs one ts= and a v1= signature")
    signed = manifest(data_id=data_id, request_id=request_id, ts=stamps[0])
    unix_seconds(stamps[0])  # a number, or InvalidSignature
    if not any_matches(hmac_sha256_hex(secret, signed.encode()), signatures):
        raise InvalidSignature("the Mercado Pago signature does not match")


_STATUS = {
    "approved": PaymentStatus.PAID,
    "authorized": PaymentStatus.PENDING,  # reserved, not captured yet
    "pending": PaymentStatus.PENDING,
    "in_process": PaymentStatus.PENDING,
    "in_mediation": PaymentStatus.PENDING,
    # One attempt refused: the buyer may pay the same preference with another method.
    "rejected": PaymentStatus.DECLINED,
    # Cancelled by a party, or an unpaid cash ticket timed out.
    "cancelled": PaymentStatus.FAILED,
    "refunded": PaymentStatus.REFUNDED,
    "charged_back": PaymentStatus.REFUNDED,
}


def _event(payment_id: str, payment: dict[str, Any]) -> PaymentEvent:
    """The event of a re-fetched payment: every field is Mercado Pago's answer."""
    status = text(payment.get("status")) or "unknown"
    amount = payment.get("transaction_amount")
    currency = text(payment.get("currency_id"))
    metadata = payment.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    return PaymentEvent(
        provider="mercadopago",
        event_id=f"payment:{payment_id}:{status}",
        type=f"payment.{status}",
        # A payment does not name the preference it came from: its external_reference is
        # our link id.
        provider_link_id=None,
        status=_STATUS.get(status, PaymentStatus.UNKNOWN),
        link_id=text(payment.get("external_reference")),
        reference=text(metadata.get("reference")),
        amount=Decimal(str(amount))
        if isinstance(amount, int | float) and not isinstance(amount, bool)
        else None,
        currency=currency.upper() if currency else None,
        occurred_at=parse_datetime(payment.get("date_approved"))
        or parse_datetime(payment.get("date_last_updated")),
        raw={
            "id": payment_id,
            "status": status,
            "status_detail": text(payment.get("status_detail")),
            "live_mode": payment.get("live_mode") is True,
        },
    )


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    return urlunsplit(parts._replace(query=urlencode([*query, *params.items()])))


def _auth(credentials: MercadoPagoCredentials) -> dict[str, str]:
    return {"Authorization": f"Bearer {credentials.access_token}"}


@hookimpl
def register_payment_providers(register: Any) -> None:
    register(MercadoPagoProvider)
