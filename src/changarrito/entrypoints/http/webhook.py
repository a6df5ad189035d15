"""Meta's WhatsApp webhook over HTTP: ``GET`` (the verification handshake) and ``POST``.

``POST`` answers 200 only once every update in the body is committed, 401 for a missing or
wrong signature or when no app secret is configured for a number in it, 400 for a body that
is not a WhatsApp webhook, 413 past 3 MiB (``app.MAX_BODY_BYTES`` = 3 * 1024 * 1024 bytes:
Meta's "3 MB", read generously). The rules (which app secret signs which number, routing,
de-duplication) are the service's ``WebhookIntake`` (``adapters/whatsapp/intake.py``); this
module only speaks HTTP, counts and times each ``POST`` by outcome, and writes the log lines
(one per delivery at INFO).

The route is a plain ASGI handler, not a Litestar controller: it is the service's hot path
(every customer message and every delivery status comes through it), and Litestar's
per-request work for a handler (dependency injection, signature model, response object) cost
about a fifth of the server's CPU per delivery. Errors still go through the app's exception
handlers, so a failure is the same RFC 9457 problem as anywhere else, and the app's
middleware (the body deadline) and ``before_send`` hooks (the security headers) apply.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

import msgspec
import structlog
from litestar import Litestar, asgi
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException, InternalServerException, MethodNotAllowedException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    PathItem,
    RequestBody,
    Schema,
)
from litestar.types import HTTPScope, Receive, Scope, Send

from changarrito.domain.errors import ChangarritoError
from changarrito.domain.whatsapp import Intake, RouteKind
from changarrito.entrypoints.http.problems import PROBLEM_JSON, problem_document, status_for

if TYPE_CHECKING:
    from changarrito.bootstrap import Service

log = structlog.get_logger("changarrito.whatsapp.webhook")

PATH = "/webhooks/whatsapp"
SIGNATURE_HEADER = "x-hub-signature-256"
_SIGNATURE_NAME = SIGNATURE_HEADER.encode("ascii")
_CONTENT_LENGTH = b"content-length"
_TEXT = b"text/plain; charset=utf-8"
_PROBLEM = PROBLEM_JSON.encode("ascii")
#: What each final status counts as (``duplicate`` is a 200 whose messages were all known).
OUTCOME_BY_STATUS = {
    200: "accepted",
    400: "bad-request",
    401: "invalid-signature",
    413: "too-large",
    503: "unavailable",
}


@asgi(PATH, copy_scope=False)
async def whatsapp_webhook(scope: Scope, receive: Receive, send: Send) -> None:
    """``POST``: Meta's webhook updates; ``GET``: Meta's verification handshake."""
    http = cast(HTTPScope, scope)
    method = http["method"]
    service: Service = http["app"].state.service
    if method == "POST":
        await _receive(service, http, receive, send)
    elif method == "GET":
        await _handshake(service, http, receive, send)
    else:
        raise MethodNotAllowedException(headers={"Allow": "GET, POST"})


async def _receive(service: Service, scope: HTTPScope, receive: Receive, send: Send) -> None:
    """Stores every update of the batch durably, then answers 200; counted and timed by the
    outcome its status says."""
    started = time.perf_counter()
    outcome = "error"
    try:
        limit = scope["app"].request_max_body_size  # the app's (``app.MAX_BODY_BYTES``)
        body = await _body(scope, receive, limit if isinstance(limit, int) else math.inf)
        received = await service.webhook.receive(body, _signature(scope["headers"]))
        intake, new = received.intake, received.new
        outcome = "duplicate" if intake.messages and not new else "accepted"
        _log_delivery(intake, new)
        await _answer(send, 200, _TEXT, b"")
    except Exception as exc:
        outcome = OUTCOME_BY_STATUS.get(_status_of(exc), "error")
        raise  # the app's exception handlers answer it (a problem+json)
    finally:
        service.metrics.webhook(outcome, time.perf_counter() - started)


async def _handshake(service: Service, scope: HTTPScope, receive: Receive, send: Send) -> None:
    """200 with ``hub.challenge`` when ``hub.verify_token`` is the platform's or an active
    tenant's verify token (and ``hub.mode`` is ``subscribe``); 403 otherwise."""
    params = ASGIConnection[Any, Any, Any, Any](scope, receive).query_params
    mode, token = params.get("hub.mode"), params.get("hub.verify_token") or ""
    if not await service.webhook.handshake(mode, token):
        log.info("whatsapp.handshake.refused", mode=mode)
        refusal = problem_document(
            403, "verification-failed", "hub.mode or hub.verify_token is wrong."
        )
        await _answer(send, 403, _PROBLEM, msgspec.json.encode(refusal))
        return
    log.info("whatsapp.handshake.accepted")
    challenge = params.get("hub.challenge") or ""
    await _answer(send, 200, _TEXT, challenge.encode("utf-8"))


async def _body(scope: HTTPScope, receive: Receive, limit: float) -> bytes:
    """The request body, or a 413 past ``limit`` bytes (announced or streamed)."""
    for name, value in scope["headers"]:
        if name == _CONTENT_LENGTH:
            if value.isdigit() and int(value) > limit:
                raise RequestEntityTooLarge
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InternalServerException("client disconnected prematurely")
        chunk: bytes = message.get("body", b"")  # type: ignore[assignment]
        if chunk:
            size += len(chunk)
            if size > limit:
                raise RequestEntityTooLarge
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _answer(send: Send, status: int, content_type: bytes, body: bytes) -> None:
    headers = [(b"content-type", content_type), (_CONTENT_LENGTH, str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _status_of(exc: Exception) -> int:
    """The status the app's exception handlers give ``exc`` (``problems.py``)."""
    if isinstance(exc, ChangarritoError):
        return status_for(exc)
    if isinstance(exc, HTTPException):
        return exc.status_code
    return 500


def _signature(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """``X-Hub-Signature-256`` straight from the ASGI scope's raw pairs (names arrive
    lower-cased)."""
    for name, value in headers:
        if name == _SIGNATURE_NAME:
            return value.decode("latin-1")
    return None


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


def document(app: Litestar) -> None:
    """Adds the route to the app's OpenAPI schema (Litestar leaves plain ASGI routes out);
    run at start-up, before the schema is first served."""
    text = {"text/plain": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))}
    problem_json = {PROBLEM_JSON: OpenAPIMediaType(schema=Schema(type=OpenAPIType.OBJECT))}

    def query(name: str, description: str) -> Parameter:
        return Parameter(name=name, param_in="query", required=True, description=description)

    def refusal(description: str) -> OpenAPIResponse:
        return OpenAPIResponse(description=description, content=problem_json)

    app.openapi_schema.paths = app.openapi_schema.paths or {}
    app.openapi_schema.paths[PATH] = PathItem(
        get=Operation(
            tags=["whatsapp"],
            summary="Meta's verification handshake",
            operation_id="WhatsappWebhookVerify",
            parameters=[
                query("hub.mode", "subscribe"),
                query("hub.verify_token", "the platform's or a tenant's verify token"),
                query("hub.challenge", "echoed back on success"),
            ],
            responses={
                "200": OpenAPIResponse(description="hub.challenge", content=text),
                "403": refusal("hub.mode or hub.verify_token is wrong (verification-failed)"),
            },
        ),
        post=Operation(
            tags=["whatsapp"],
            summary="Meta's webhook updates",
            description="200 once every update of the body is stored durably.",
            operation_id="WhatsappWebhookReceive",
            parameters=[
                Parameter(
                    name=SIGNATURE_HEADER,
                    param_in="header",
                    required=True,
                    description="sha256=<hex HMAC-SHA256 of the raw body under the app secret>",
                )
            ],
            request_body=RequestBody(
                content={
                    "application/json": OpenAPIMediaType(schema=Schema(type=OpenAPIType.OBJECT))
                },
                required=True,
            ),
            responses={
                "200": OpenAPIResponse(description="stored", content=text),
                "400": refusal("not a WhatsApp webhook (invalid-webhook)"),
                "401": refusal("missing or wrong signature (invalid-signature)"),
                "413": refusal("larger than 3 MiB (body-too-large)"),
                "503": refusal("not stored; Meta delivers it again later"),
            },
        ),
    )
