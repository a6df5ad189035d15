"""Clip (Mexico): Checkout Redirect links over ``api.payclip.com``.

Clip documents no signature for its checkout webhook, so a notification is never trusted: its
``payment_request_id`` is re-fetched with the same credential (``GET /v2/checkout/{id}``; a 404
is ``InvalidSignature``) and only Clip's answer is used: the status, amount and currency, the
checkout id (the provider's link id) and ``metadata.external_reference``, which is our link id.
The event id is derived from that answer (``<checkout id>:<status>``), never from the body's
``id``, and the body is not kept. Auth is HTTP Basic ``base64(api_key:secret_key)``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

import msgspec

from changarrito import hookimpl
from changarrito.domain.errors import InvalidSignature, ProviderBadResponse, ValidationFailed
from changarrito.domain.payment_model import PaymentStatus
from changarrito.plugins.base import Config, Credentials, PaymentEvent, PaymentLink, PaymentProvider
from changarrito.plugins.upstream import decode_json

from ._common import DEFAULT_RETURN_URL, path_segment, text
from ._money import checked_amount, currency_code
from ._webhooks import json_object, parse_datetime

DEFAULT_BASE_URL = "https://api.payclip.com"
#: An id no checkout has: ``verify`` asks for it (see ``ClipProvider.verify``).
_NO_SUCH_CHECKOUT = "00000000-0000-0000-0000-000000000000"
_RESOURCE_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


class ClipCredentials(Credentials, frozen=True):
    api_key: str
    secret_key: str

    def secrets(self) -> list[str]:
        # The Basic token is the pair in base64: an echo of it is as bad as the key itself.
        return [*super().secrets(), _basic_token(self)]


class ClipConfig(Config, frozen=True):
    #: Where Clip sends the buyer after paying, after a failure, and otherwise.
    success_url: str | None = None
    error_url: str | None = None
    default_url: str | None = None
    #: Where Clip posts the checkout webhook for this link.
    webhook_url: str | None = None


class ClipProvider(PaymentProvider):
    id: ClassVar[str] = "clip"
    name: ClassVar[str] = "Clip"
    credentials_schema: ClassVar[type[msgspec.Struct]] = ClipCredentials
    config_schema: ClassVar[type[msgspec.Struct]] = ClipConfig
    base_url_env: ClassVar[str] = "CLIP_BASE_URL"
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL
    platform_env: ClassVar[Mapping[str, str]] = {
        "apiKey": "CLIP_API_KEY",
        "secretKey": "CLIP_SECRET_KEY",
    }

    def error_details(self, payload: Any) -> tuple[str | None, str | None, bool]:
        """Clip's error bodies are undocumented: take the usual ``message``/``error`` fields."""
        if not isinstance(payload, dict):
            return None, None, False
        message = (
            text(payload.get("message"))
            or text(payload.get("detail"))
            or text(payload.get("error"))
        )
        return message, text(payload.get("error_code")) or text(payload.get("code")), False

    def _creds(self, credentials: Any) -> ClipCredentials:
        creds: ClipCredentials = self.credentials_of(credentials)
        return creds

    def _checkout_url(self, request_id: str) -> str:
        return f"{self.platform_base_url()}/v2/checkout/{path_segment(request_id)}"

    async def verify(self, credentials: Any, config: Any) -> None:
        """Clip has no "who am I" endpoint. The least harmful authenticated call is reading a
        checkout that does not exist: 404 means the credentials were accepted (the lookup ran),
        401/403 that they were not. Nothing is created and no real checkout is read."""
        creds = self._creds(credentials)
        await self.call_json(
            "GET",
            self._checkout_url(_NO_SUCH_CHECKOUT),
            credentials=creds,
            headers=_headers(creds),
            accept_status=(404,),
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
        creds = self._creds(credentials)
        conf: ClipConfig = self.config_of(config)
        if currency_code(currency) != "MXN":
            raise ValidationFailed(f"Clip only charges in MXN, not {currency}")
        checked_amount(amount, "MXN")
        if not description.strip() or not reference.strip():
            raise ValidationFailed("description and reference must not be empty")
        fallback = conf.default_url or DEFAULT_RETURN_URL
        checkout: dict[str, Any] = {
            "amount": float(amount),
            "currency": "MXN",
            "purchase_description": description,
            "redirection_url": {
                "success": conf.success_url or fallback,
                "error": conf.error_url or fallback,
                "default": fallback,
            },
            # Clip echoes its metadata on the checkout; the shop's reference stays with us.
            "metadata": {"external_reference": link_id},
        }
        if conf.webhook_url:
            checkout["webhook_url"] = conf.webhook_url
        response = await self.call_json(
            "POST",
            self.platform_base_url() + "/v2/checkout",
            credentials=creds,
            headers={**_headers(creds), "Content-Type": "application/json"},
            content=msgspec.json.encode(checkout),
        )
        body = decode_json(response, dict[str, Any], self.id)
        request_id = text(body.get("payment_request_id"))
        url = text(body.get("payment_request_url"))
        if not request_id or not url:
            raise ProviderBadResponse("clip created a checkout without an id or url")
        return PaymentLink(provider=self.id, provider_id=request_id, url=url)

    async def parse_webhook(
        self,
        headers: Mapping[str, str],
        raw_body: bytes,
        credentials: Any,
        config: Any,
        *,
        tenant_id: UUID,
    ) -> PaymentEvent:
        """Re-fetches the checkout the notification names; nothing else in it is trusted."""
        creds = self._creds(credentials)
        body = json_object(raw_body, self.id)
        request_id = text(body.get("payment_request_id"))
        if not request_id or not _RESOURCE_ID.match(request_id):
            raise ValidationFailed("the clip notification has no usable payment_request_id")
        response = await self.call_json(
            "GET",
            self._checkout_url(request_id),
            credentials=creds,
            headers=_headers(creds),
            accept_status=(404,),
        )
        if response.status_code == 404:
            raise InvalidSignature("clip has no such checkout for these credentials")
        checkout = decode_json(response, dict[str, Any], self.id)
        fetched_id = text(checkout.get("payment_request_id"))
        if fetched_id is not None and fetched_id != request_id:
            raise ProviderBadResponse("clip answered with a different checkout than asked for")
        status = (text(checkout.get("status")) or "unknown")[:40]
        amount = checkout.get("amount")
        metadata = checkout.get("metadata")
        currency = text(checkout.get("currency"))
        return PaymentEvent(
            provider=self.id,
            event_id=f"{request_id}:{status}",
            type=f"checkout.{status}",
            provider_link_id=request_id,
            status=checkout_status(status),
            link_id=text(metadata.get("external_reference"))
            if isinstance(metadata, dict)
            else None,
            amount=Decimal(str(amount))
            if isinstance(amount, int | float) and not isinstance(amount, bool)
            else None,
            currency=currency.upper() if currency else "MXN",
            occurred_at=parse_datetime(checkout.get("completed_at"))
            or parse_datetime(checkout.get("modified_at")),
            raw={"payment_request_id": request_id, "status": status},
        )


_STATUS = {
    "CREATED": PaymentStatus.PENDING,
    "PENDING": PaymentStatus.PENDING,  # a first attempt was declined; the buyer may retry
    "COMPLETED": PaymentStatus.PAID,
    "CANCELED": PaymentStatus.FAILED,  # five declined attempts
    "CANCELLED": PaymentStatus.FAILED,
    "EXPIRED": PaymentStatus.EXPIRED,
    "REFUNDED": PaymentStatus.REFUNDED,
}


def checkout_status(status: str) -> PaymentStatus:
    """Clip's ``CHECKOUT_COMPLETED`` (or bare ``COMPLETED``) → ``paid``, and so on."""
    return _STATUS.get(status.upper().removeprefix("CHECKOUT_"), PaymentStatus.UNKNOWN)


def _basic_token(credentials: ClipCredentials) -> str:
    pair = f"{credentials.api_key}:{credentials.secret_key}".encode()
    return base64.b64encode(pair).decode()


def _headers(credentials: ClipCredentials) -> dict[str, str]:
    return {"Authorization": f"Basic {_basic_token(credentials)}", "Accept": "application/json"}


@hookimpl
def register_payment_providers(register: Any) -> None:
    register(ClipProvider)
