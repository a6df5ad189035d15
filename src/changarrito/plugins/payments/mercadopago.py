"""Mercado Pago: Checkout Pro preferences, and payment notifications checked two ways.

A link is a preference (``POST /checkout/preferences``) whose ``init_point`` is the hosted
checkout. A notification is only a pointer: after checking ``x-signature`` (when the tenant has
a webhook secret) the payment is fetched with the tenant's token, and only that answer sets the
status, so a replayed or unsigned notification can at worst cause a re-fetch.

Past the house's 250-line aim on purpose: the signature manifest, the re-fetch and the
status mapping are one provider's wire format, kept in one module as every provider is.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import UUID

import msgspec
import structlog

from changarrito import hookimpl
from changarrito.domain.errors import InvalidSignature, ProviderBadResponse, ValidationFailed
from changarrito.domain.payment_model import PaymentStatus
from changarrito.plugins.base import Config, Credentials, PaymentEvent, PaymentLink, PaymentProvider
from changarrito.plugins.upstream import decode_json

from ._common import idempotency_key, path_segment, text
from ._money import checked_amount, currency_code
from ._webhooks import (
    any_matches,
    check_freshness,
    header,
    hmac_sha256_hex,
    json_object,
    parse_datetime,
    signature_parts,
    unix_seconds,
)

log = structlog.get_logger(__name__)

DEFAULT_BASE_URL = "https://api.mercadopago.com"
#: How far ``ts`` may be from now. Generous on purpose: whether Mercado Pago re-signs its
#: retries (every 15 minutes, for days) is undocumented, and a replay is harmless because the
#: payment's status always comes from a fresh ``GET /v1/payments/{id}``.
SIGNATURE_TOLERANCE = 3600
_RESOURCE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class MercadoPagoCredentials(Credentials, frozen=True):
    #: Production ``APP_USR-…`` or test ``TEST-…`` access token.
    access_token: str
    #: The "secret signature" of the application's webhooks; unsigned notifications are
    #: accepted only when it is unset (the payment is re-fetched either way).
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
            "external_reference": reference,
            "metadata": {"reference": reference},
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
            "X-Idempotency-Key": idempotency_key(self.id, reference, content),
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
        else:
            log.warning(
                "payments.unsigned_notification", provider=self.id, tenant_id=str(tenant_id)
            )
        if not data_id or not _RESOURCE_ID.match(data_id):
            raise ValidationFailed("the mercadopago notification has no usable data.id")
        event_id = text(body.get("id")) or f"{kind}:{data_id}:{text(body.get('action'))}"
        event_type = text(body.get("action")) or kind or "unknown"
        if kind != "payment":
            # Merchant orders, chargebacks...: acknowledged, not interpreted.
            return PaymentEvent(
                provider=self.id,
                event_id=event_id,
                type=event_type,
                provider_link_id=None,
                status=PaymentStatus.UNKNOWN,
                raw={"notification": body},
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
        return _event(event_id, event_type, body, decode_json(response, dict[str, Any], self.id))


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
    now: float | None = None,
) -> None:
    """Raises ``InvalidSignature`` unless ``x-signature``'s ``v1`` is the HMAC-SHA256 of the
    manifest and its ``ts`` (seconds or milliseconds) is within ``SIGNATURE_TOLERANCE``."""
    if not signature:
        raise InvalidSignature("the x-signature header is missing")
    parts = signature_parts(signature)
    stamps = [v for k, v in parts if k == "ts"]
    signatures = [v for k, v in parts if k == "v1"]
    if len(stamps) != 1 or not signatures:
        raise InvalidSignature("the x-signature header needs one ts= and a v1= signature")
    signed = manifest(data_id=data_id, request_id=request_id, ts=stamps[0])
    if not any_matches(hmac_sha256_hex(secret, signed.encode()), signatures):
        raise InvalidSignature("the Mercado Pago signature does not match")
    check_freshness(
        unix_seconds(stamps[0]), time.time() if now is None else now, SIGNATURE_TOLERANCE
    )


_STATUS = {
    "approved": PaymentStatus.PAID,
    "authorized": PaymentStatus.PENDING,  # reserved, not captured yet
    "pending": PaymentStatus.PENDING,
    "in_process": PaymentStatus.PENDING,
    "in_mediation": PaymentStatus.PENDING,
    "rejected": PaymentStatus.FAILED,
    # Cancelled by a party, or an unpaid cash ticket timed out.
    "cancelled": PaymentStatus.FAILED,
    "refunded": PaymentStatus.REFUNDED,
    "charged_back": PaymentStatus.REFUNDED,
}


def _event(
    event_id: str, event_type: str, notification: dict[str, Any], payment: dict[str, Any]
) -> PaymentEvent:
    status = text(payment.get("status"))
    amount = payment.get("transaction_amount")
    currency = text(payment.get("currency_id"))
    return PaymentEvent(
        provider="mercadopago",
        event_id=event_id,
        type=event_type,
        # A payment does not name the preference it came from; match on ``reference``.
        provider_link_id=None,
        status=_STATUS.get(status or "", PaymentStatus.UNKNOWN),
        reference=text(payment.get("external_reference")),
        amount=Decimal(str(amount))
        if isinstance(amount, int | float) and not isinstance(amount, bool)
        else None,
        currency=currency.upper() if currency else None,
        occurred_at=parse_datetime(payment.get("date_approved"))
        or parse_datetime(payment.get("date_last_updated")),
        raw={"notification": notification, "payment": payment},
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
