"""Payments over HTTP: tenants create and read payment links; providers post notifications.

- ``POST /api/v1/payments/links`` and ``GET /api/v1/payments/links/{id}`` (tenant JWT);
- ``POST /webhooks/payments/{provider}/{tenantId}``: the provider's notification, verified with
  that tenant's payment credentials (or the platform's), stored once per event id; 200 once
  stored (a duplicate is acknowledged the same way, so the provider stops retrying).

A body that does not match the schema is a 422 whose ``errors`` name each field, as the
domain's own checks (amount decimals, currency) do.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

import msgspec
import structlog
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.params import FromPath, HeaderParameter, JSONBody

from changarrito.adapters.jwt_auth import TenantPrincipal
from changarrito.domain.payments import PaymentLinkRecord, PaymentLinkRequest, Payments
from changarrito.entrypoints.http.auth import BEARER
from changarrito.entrypoints.http.limits import PAYMENT_LINKS, RATE_LIMITED, rate_limited
from changarrito.entrypoints.http.problems import problem
from changarrito.entrypoints.http.schemas import problem_responses

log = structlog.get_logger("changarrito.payments")

#: Largest notification accepted: providers send a few kilobytes.
MAX_WEBHOOK_BYTES = 256 * 1024
MAX_LINK_REQUEST_BYTES = 16 * 1024

ProviderId = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]


class PaymentLinkCreate(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    """A payment link to create. ``amount`` is in major units (``"10.50"`` MXN); send it as a
    string to keep every digit. ``provider`` defaults to the tenant's (or platform's) one.
    ``conversationId``: the conversation it is for; its customer is told on WhatsApp when it
    is paid, fails or expires (text inside the 24-hour window, the ``paymentReceived``...
    template outside it)."""

    amount: Decimal
    currency: Annotated[str, msgspec.Meta(min_length=1, max_length=8)]
    description: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    reference: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    provider: ProviderId | None = None
    conversation_id: UUID | None = None


class LinkNotice(msgspec.Struct, frozen=True, rename="camel"):
    """What the customer was told when the link became ``status`` (``paid``, ``failed``,
    ``expired``): ``state`` ``pending`` (being sent), ``sent`` (``sentAs`` ``text`` or
    ``template``), ``skipped`` (nothing could be sent; ``reasonCode`` and ``reason`` say why,
    e.g. ``window-closed`` when the window is closed and no template is configured) or
    ``failed`` (Meta refused it)."""

    status: str
    state: str
    sent_as: str | None
    reason_code: str | None
    reason: str | None
    updated_at: datetime


class HostedPaymentLink(msgspec.Struct, frozen=True, rename="camel"):
    """A hosted payment link and its latest status (``pending``, ``paid``, ``failed``,
    ``expired``, ``refunded``). ``source`` says whose credentials created it;
    ``notices``: what its conversation's customer was told of each outcome."""

    id: UUID
    provider: str
    provider_link_id: str
    url: str
    amount: str
    currency: str
    description: str
    reference: str
    status: str
    source: str
    created_at: datetime
    updated_at: datetime
    conversation_id: UUID | None = None
    notices: list[LinkNotice] = msgspec.field(default_factory=list)

    @classmethod
    def of(cls, link: PaymentLinkRecord) -> HostedPaymentLink:
        return cls(
            id=link.id,
            provider=link.provider,
            provider_link_id=link.provider_link_id,
            url=link.url,
            amount=str(link.amount),
            currency=link.currency,
            description=link.description,
            reference=link.reference,
            status=link.status,
            source=link.source.value,
            created_at=link.created_at,
            updated_at=link.updated_at,
            conversation_id=link.conversation_id,
            notices=[
                LinkNotice(n.status, n.state, n.sent_as, n.reason_code, n.reason, n.updated_at)
                for n in link.notices
            ],
        )


class NotificationReceipt(msgspec.Struct, frozen=True, rename="camel"):
    """The notification is stored (``duplicate``: it had been stored before)."""

    received: bool
    duplicate: bool


_MISSING = re.compile(r"missing required field `([^`]+)`")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")


def body_validation_problem(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A body that breaks the schema: 422 naming each field (Litestar's 400 otherwise)."""
    assert isinstance(exc, ValidationException)
    errors = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        message = str(item.get("message", "is not valid"))
        field = str(item.get("key") or "body")
        missing, unknown = _MISSING.search(message), _UNKNOWN.search(message)
        if missing:
            field, message = missing.group(1), "is required"
        elif unknown:
            field, message = unknown.group(1), "is not a field of this request"
        elif field == "data":
            field = "body"
        errors.append({"field": field, "message": message})
    return problem(422, "validation", "The request body is not valid.", errors=errors)


class PaymentLinksController(Controller):
    path = "/api/v1/payments/links"
    tags = ["payments"]
    security = BEARER
    exception_handlers = {ValidationException: body_validation_problem}

    @post(
        "/",
        status_code=201,
        request_max_body_size=MAX_LINK_REQUEST_BYTES,
        guards=[rate_limited(PAYMENT_LINKS)],
        responses={**problem_responses(400, 401, 409, 413, 422, 502, 503), **RATE_LIMITED},
    )
    async def create_link(
        self,
        data: JSONBody[PaymentLinkCreate],
        principal: NamedDependency[TenantPrincipal],
        payments: NamedDependency[Payments],
        idempotency_key: Annotated[
            str | None,
            HeaderParameter(
                name="Idempotency-Key",
                required=False,
                description="Send the same value when retrying the same request: the link "
                "the first request created is returned, and no second link is created.",
            ),
        ] = None,
    ) -> HostedPaymentLink:
        """Creates a hosted payment link with the tenant's payment credentials, or the
        platform's when the tenant has none."""
        link = await payments.create_link(
            principal.tenant_id,
            PaymentLinkRequest(
                amount=data.amount,
                currency=data.currency,
                description=data.description,
                reference=data.reference,
                provider=data.provider,
                conversation_id=data.conversation_id,
            ),
            idempotency_key,
        )
        log.info(
            "payments.link_created",
            link_id=str(link.id),
            provider=link.provider,
            source=link.source.value,
        )
        return HostedPaymentLink.of(link)

    @get(
        "/{link_id:uuid}",
        responses=problem_responses(401, 404, 503),
    )
    async def show_link(
        self,
        link_id: FromPath[UUID],
        principal: NamedDependency[TenantPrincipal],
        payments: NamedDependency[Payments],
    ) -> HostedPaymentLink:
        """The tenant's payment link and its latest status."""
        return HostedPaymentLink.of(await payments.get_link(principal.tenant_id, link_id))


@post(
    "/webhooks/payments/{provider:str}/{tenant_id:uuid}",
    status_code=200,
    tags=["payments", "webhooks"],
    request_max_body_size=MAX_WEBHOOK_BYTES,
    responses=problem_responses(401, 404, 413, 422, 502, 503),
)
async def payment_webhook(
    request: Request[Any, Any, Any],
    provider: FromPath[str],
    tenant_id: FromPath[UUID],
    payments: NamedDependency[Payments],
) -> NotificationReceipt:
    """A payment provider's notification about a tenant's payment (signed, or re-fetched from
    the provider where it does not sign)."""
    raw = await request.body()
    query = {key: request.query_params.get(key, "") for key in request.query_params}
    outcome = await payments.receive_notification(
        provider, tenant_id, dict(request.headers), raw, query
    )
    log.info(
        "payments.notification",
        provider=provider,
        tenant_id=str(tenant_id),
        event_id=outcome.event.event_id,
        status=outcome.event.status,
        duplicate=outcome.duplicate,
        link_id=str(outcome.link.id) if outcome.link else None,
    )
    return NotificationReceipt(received=True, duplicate=outcome.duplicate)


#: What the backend role registers (see ``app.handlers_for``).
PAYMENT_HANDLERS: list[Any] = [PaymentLinksController, payment_webhook]
