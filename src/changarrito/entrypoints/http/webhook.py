"""Meta's WhatsApp webhook: ``GET`` (the verification handshake) and ``POST`` (updates).

``POST`` answers 200 only once every update in the body is committed (through the group
commit), 401 for a missing or wrong signature or when no app secret is configured for a
number in it (never an open door), 400 for a body that is not a WhatsApp webhook, 413 past
3 MiB (``app.MAX_BODY_BYTES`` = 3 * 1024 * 1024 bytes: Meta's "3 MB", read generously).

Which app secret signs a body: each business number in it is routed (cached); a tenant's
number uses that tenant's own ``appSecret`` when it has one, any other number the platform's
``WHATSAPP_APP_SECRET``; a change that names no number uses the app of its business account.
The body must verify under *every* distinct secret so selected. A body that is not JSON
cannot name its numbers, so it is a 400 whoever signed it (nothing of it is stored).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Any

import structlog
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State

from changarrito.adapters.whatsapp.webhook_parser import (
    Destination,
    ParsedWebhook,
    parse,
    to_intake,
)
from changarrito.domain.errors import (
    InvalidSignature,
    NotConfigured,
    StorageUnavailable,
    UnknownPhoneNumber,
)
from changarrito.domain.model import utcnow
from changarrito.domain.whatsapp import RouteKind
from changarrito.entrypoints.http.metrics import WebhookMetrics, mark_webhook_outcome
from changarrito.entrypoints.http.problems import problem

if TYPE_CHECKING:
    from changarrito.adapters.postgres.whatsapp_apps import WhatsAppApps
    from changarrito.bootstrap import Container

log = structlog.get_logger("changarrito.whatsapp.webhook")

SIGNATURE_HEADER = "x-hub-signature-256"
_PREFIX = "sha256="
#: Numbers looked up for a body the platform's secret does not sign: a tenant's app signs
#: bodies about its own few numbers, and a forged body must not cost a lookup per number.
MAX_NUMBERS_UNSIGNED = 20


class WhatsAppWebhook(Controller):
    path = "/webhooks/whatsapp"
    tags = ["whatsapp"]
    middleware = [WebhookMetrics]

    @get(media_type="text/plain", summary="Meta's verification handshake")
    async def verify(self, request: Request[Any, Any, Any], state: State) -> Response[Any]:
        """200 with ``hub.challenge`` when ``hub.verify_token`` is the platform's or an active
        tenant's verify token (and ``hub.mode`` is ``subscribe``); 403 otherwise."""
        container: Container = state.container
        params = request.query_params
        mode, token = params.get("hub.mode"), params.get("hub.verify_token") or ""
        challenge = params.get("hub.challenge") or ""
        platform = container.settings.env.get("WHATSAPP_VERIFY_TOKEN", "").strip()
        ok = mode == "subscribe" and bool(token)
        ok = ok and (
            (bool(platform) and hmac.compare_digest(token.encode(), platform.encode()))
            or await _apps(container).verify_token_matches(token)
        )
        if not ok:
            log.info("whatsapp.handshake.refused", mode=mode)
            return problem(403, "verification-failed", "hub.mode or hub.verify_token is wrong.")
        log.info("whatsapp.handshake.accepted")
        return Response(challenge, media_type="text/plain", status_code=200)

    @post(status_code=200, media_type="text/plain", summary="Meta's webhook updates")
    async def receive(self, request: Request[Any, Any, Any], state: State) -> Response[Any]:
        """Stores every update of the batch durably, then answers 200."""
        container: Container = state.container
        body = await request.body()
        signature = _signature(request.headers.get(SIGNATURE_HEADER))
        hook = parse(body)
        destinations = await _verify(container, hook, body, signature)
        intake = to_intake(hook, destinations, utcnow())
        if container.intake is None:
            raise StorageUnavailable("the webhook intake is not running")
        new = await container.intake.submit(intake)
        if intake.messages and not new:
            mark_webhook_outcome(request, "duplicate")
        for m in intake.messages:
            log.info(
                "whatsapp.message.received" if m.wamid in new else "whatsapp.message.duplicate",
                tenant_id=str(m.tenant_id) if m.tenant_id else None,
                phone_number_id=m.phone_number_id,
                wamid=m.wamid,
                type=m.type,
                route=m.route.value,
                state=m.state.value,
            )
        for s in intake.statuses:
            log.debug(
                "whatsapp.status.received",
                tenant_id=str(s.tenant_id) if s.tenant_id else None,
                phone_number_id=s.phone_number_id,
                wamid=s.wamid,
                status=s.status,
                error_code=s.error_code,
            )
        for e in intake.events:
            log.info("whatsapp.event.received", kind=e.kind, field=e.field, code=e.error_code)
        return Response(b"", media_type="text/plain", status_code=200)


def _apps(container: Container) -> WhatsAppApps:
    if container.whatsapp_apps is None:
        raise StorageUnavailable("the index of tenants' WhatsApp apps is not running")
    return container.whatsapp_apps


def _signature(header: str | None) -> bytes:
    """The hex digest of ``X-Hub-Signature-256``, or ``InvalidSignature``."""
    value = (header or "").strip()
    if not value.startswith(_PREFIX) or not value.isascii():
        raise InvalidSignature("X-Hub-Signature-256 is missing or not sha256=<hex>")
    return value[len(_PREFIX) :].strip().lower().encode("ascii")


def _signed(secret: str, body: bytes, signature: bytes) -> bool:
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode("ascii")
    return hmac.compare_digest(expected, signature)


async def _verify(
    container: Container, hook: ParsedWebhook, body: bytes, signature: bytes
) -> dict[str, Destination]:
    """Routes the body's numbers and checks the signature under each distinct app secret;
    returns where each number's updates go. ``InvalidSignature`` when any check fails."""
    platform = container.settings.env.get("WHATSAPP_APP_SECRET", "").strip() or None
    by_platform = platform is not None and _signed(platform, body, signature)
    numbers = hook.phone_number_ids
    if not by_platform and len(numbers) > MAX_NUMBERS_UNSIGNED:
        raise InvalidSignature("the signature does not match")
    destinations: dict[str, Destination] = {}
    secrets: set[str | None] = set()
    for pnid in numbers:
        # The number's sender credential (one cached lookup, or one round trip) carries the
        # owning tenant's app secret, fresh from the same read as its route; in the whatsapp
        # role it comes through the backend like every other credential.
        own: str | None = None
        try:
            sender = await container.resolver.sender(pnid)
            tenant_id = sender.tenant_id
            own = sender.secrets.get("appSecret") if tenant_id is not None else None
        except UnknownPhoneNumber:
            destinations[pnid] = Destination(RouteKind.UNROUTED, None)
            secrets.add(platform)
            continue
        except NotConfigured:  # routed, but no sending credential: the platform's app signs
            tenant_id = (await container.resolver.route(pnid)).tenant_id
        if tenant_id is None:
            destinations[pnid] = Destination(RouteKind.PLATFORM, None)
        else:
            destinations[pnid] = Destination(RouteKind.TENANT, tenant_id)
        secrets.add(own or platform)
    for waba in hook.unnumbered_wabas if hook.changes else {None}:
        owner = await _apps(container).tenant_of_account(waba) if waba else None
        own = await _apps(container).app_secret(owner) if owner else None
        secrets.add(own or platform)
    if None in secrets:
        raise InvalidSignature(
            "no app secret is configured for this webhook: set WHATSAPP_APP_SECRET or the "
            "tenant's appSecret"
        )
    for secret in secrets:
        assert secret is not None
        if not (by_platform and secret == platform) and not _signed(secret, body, signature):
            raise InvalidSignature("the signature does not match")
    return destinations
