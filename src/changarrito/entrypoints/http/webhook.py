"""Meta's WhatsApp webhook over HTTP: ``GET`` (the verification handshake) and ``POST``.

``POST`` answers 200 only once every update in the body is committed, 401 for a missing or
wrong signature or when no app secret is configured for a number in it, 400 for a body that
is not a WhatsApp webhook, 413 past 3 MiB (``app.MAX_BODY_BYTES`` = 3 * 1024 * 1024 bytes:
Meta's "3 MB", read generously). The rules (which app secret signs which number, routing,
de-duplication) are the service's ``WebhookIntake`` (``adapters/whatsapp/intake.py``); this
module only speaks HTTP and writes the log lines (one per delivery at INFO).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import structlog
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency

from changarrito.bootstrap import Service
from changarrito.domain.whatsapp import Intake, RouteKind
from changarrito.entrypoints.http.metrics import WebhookMetrics, mark_webhook_outcome
from changarrito.entrypoints.http.problems import problem

log = structlog.get_logger("changarrito.whatsapp.webhook")

SIGNATURE_HEADER = "x-hub-signature-256"
_SIGNATURE_NAME = SIGNATURE_HEADER.encode("ascii")


def _signature(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """``X-Hub-Signature-256`` straight from the ASGI scope's raw pairs (names arrive
    lower-cased): building Litestar's ``Headers`` mapping for one header cost more."""
    for name, value in headers:
        if name.lower() == _SIGNATURE_NAME:
            return value.decode("latin-1")
    return None


class WhatsAppWebhook(Controller):
    path = "/webhooks/whatsapp"
    tags = ["whatsapp"]
    middleware = [WebhookMetrics]

    @get(media_type="text/plain", summary="Meta's verification handshake")
    async def verify(
        self, request: Request[Any, Any, Any], service: NamedDependency[Service]
    ) -> Response[Any]:
        """200 with ``hub.challenge`` when ``hub.verify_token`` is the platform's or an active
        tenant's verify token (and ``hub.mode`` is ``subscribe``); 403 otherwise."""
        params = request.query_params
        mode, token = params.get("hub.mode"), params.get("hub.verify_token") or ""
        challenge = params.get("hub.challenge") or ""
        if not await service.webhook.handshake(mode, token):
            log.info("whatsapp.handshake.refused", mode=mode)
            return problem(403, "verification-failed", "hub.mode or hub.verify_token is wrong.")
        log.info("whatsapp.handshake.accepted")
        return Response(challenge, media_type="text/plain", status_code=200)

    @post(status_code=200, media_type="text/plain", summary="Meta's webhook updates")
    async def receive(
        self, request: Request[Any, Any, Any], service: NamedDependency[Service]
    ) -> Response[Any]:
        """Stores every update of the batch durably, then answers 200."""
        body = await request.body()
        received = await service.webhook.receive(body, _signature(request.scope["headers"]))
        intake, new = received.intake, received.new
        if intake.messages and not new:
            mark_webhook_outcome(request, "duplicate")
        _log_delivery(intake, new)
        return Response(b"", media_type="text/plain", status_code=200)


def _log_delivery(intake: Intake, new: set[str]) -> None:
    """One INFO line per delivery (a batch of 1,000 updates is one line, not 1,000: at INFO
    the per-update lines cost more than storing them); each update's own line at DEBUG."""
    if not log.is_enabled_for(logging.INFO):
        return
    messages, statuses, events = intake.messages, intake.statuses, intake.events
    tenants = {m.tenant_id for m in messages} | {s.tenant_id for s in statuses}
    log.info(
        "whatsapp.webhook.received",
        messages=len(messages),
        new=len(new),
        statuses=len(statuses),
        events=len(events),
        unrouted=sum(m.route is RouteKind.UNROUTED for m in messages),
        tenant_ids=sorted(str(t) for t in tenants if t is not None),
        fields=sorted({e.field for e in events}),
    )
    if not log.is_enabled_for(logging.DEBUG):
        return
    for m in messages:
        log.debug(
            "whatsapp.message.received" if m.wamid in new else "whatsapp.message.duplicate",
            tenant_id=str(m.tenant_id) if m.tenant_id else None,
            phone_number_id=m.phone_number_id,
            wamid=m.wamid,
            type=m.type,
            route=m.route.value,
            state=m.state.value,
        )
    for s in statuses:
        log.debug(
            "whatsapp.status.received",
            tenant_id=str(s.tenant_id) if s.tenant_id else None,
            phone_number_id=s.phone_number_id,
            wamid=s.wamid,
            status=s.status,
            error_code=s.error_code,
        )
    for e in events:
        log.debug("whatsapp.event.received", kind=e.kind, field=e.field, code=e.error_code)
