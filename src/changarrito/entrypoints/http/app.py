"""The Litestar application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components

from changarrito import __version__
from changarrito.bootstrap import Database, Service, bootstrap, check_role, prepare_database
from changarrito.entrypoints.collector import settle_after_start
from changarrito.entrypoints.http.auth import security_schemes
from changarrito.entrypoints.http.dependencies import DEPENDENCIES
from changarrito.entrypoints.http.health import health, ready
from changarrito.entrypoints.http.hygiene import body_deadline, security_headers
from changarrito.entrypoints.http.metrics import metrics
from changarrito.entrypoints.http.problems import EXCEPTION_HANDLERS
from changarrito.entrypoints.workers import start_workers
from changarrito.settings import Role, Settings

log = structlog.get_logger("changarrito.serve")

#: Largest request body accepted anywhere (Meta's webhook payloads go up to 3 MB).
MAX_BODY_BYTES = 3 * 1024 * 1024


def documented_for(role: Role) -> list[Any]:
    """Start-up hooks that add the plain ASGI routes of ``role`` to the OpenAPI schema."""
    if role in ("all", "whatsapp"):
        from changarrito.entrypoints.http.webhook import document

        return [document]
    return []


def handlers_for(role: Role) -> list[Any]:
    """The route handlers a role serves: ``backend`` the tenant, internal, payment and
    conversation APIs, ``whatsapp`` the Meta webhook; ``all`` both. Register new controllers
    here."""
    handlers: list[Any] = [health, ready, metrics]
    if role in ("all", "backend"):
        from changarrito.entrypoints.http.integrations import integration_controllers
        from changarrito.entrypoints.http.internal import InternalController

        handlers += [*integration_controllers(), InternalController]
        from changarrito.entrypoints.http.payments import PAYMENT_HANDLERS

        handlers += PAYMENT_HANDLERS
        from changarrito.entrypoints.http.conversations import CONVERSATION_HANDLERS

        handlers += CONVERSATION_HANDLERS
        from changarrito.entrypoints.http.templates import TEMPLATE_HANDLERS

        handlers += TEMPLATE_HANDLERS
        from changarrito.entrypoints.http.usage import USAGE_HANDLERS

        handlers += USAGE_HANDLERS
        from changarrito.entrypoints.http.budgets import BUDGET_HANDLERS

        handlers += BUDGET_HANDLERS
    if role in ("all", "whatsapp"):
        from changarrito.entrypoints.http.webhook import whatsapp_webhook

        handlers += [whatsapp_webhook]
    return handlers


def create_app(
    settings: Settings,
    database: Database | None = None,
    *,
    role: Role | None = None,
    service: Service | None = None,
    settle_gc: bool = False,
) -> Litestar:
    """The HTTP app for ``role`` (default: the configured one). With ``service`` given
    (tests), it is used as is and not closed; otherwise one is bootstrapped in the lifespan
    from ``database``, with the message workers running in-process for roles that answer.
    ``settle_gc``: the process is a server that owns its interpreter (``serve``), so once
    the service is built the garbage collector is set for it (``entrypoints/collector.py``)."""
    role = role or (service.role if service is not None else settings.role.name)
    check_role(settings, role)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if service is not None:
            app.state.service = service
            yield
            return
        assert database is not None, "create_app needs a database or a service"
        built = await bootstrap(settings, database, role=role, listen=False)
        app.state.service = built
        if role in ("all", "whatsapp"):  # message workers in-process; aclose stops them
            workers = start_workers(built)
            built.tasks += [workers] if workers else []
        await built.listen()  # after the workers registered their wake-up channel
        if settle_gc:
            log.info("changarrito.gc_settled", frozen_objects=settle_after_start())
        try:
            yield
        finally:
            await built.aclose()

    return Litestar(
        route_handlers=handlers_for(role),
        lifespan=[lifespan],
        on_startup=documented_for(role),
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=MAX_BODY_BYTES,
        middleware=[body_deadline(settings.request_timeout)],
        before_send=[security_headers],
        openapi_config=OpenAPIConfig(
            title="Changarrito",
            version=__version__,
            path="/schema",
            components=Components(security_schemes=security_schemes()),
        ),
        logging_config=None,
        debug=False,
    )


def app_from_env() -> Litestar:
    """Factory for multi-process ``serve --workers N`` (each worker builds its own app from
    the environment ``serve`` prepared, ``CHANGARRITO_ROLE`` included)."""
    from changarrito.adapters.logs import configure_logging

    settings = Settings.from_env()
    configure_logging(settings.log_level or "INFO")
    return create_app(settings, prepare_database(settings), settle_gc=True)
