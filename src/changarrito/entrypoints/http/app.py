"""The Litestar application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components

from changarrito import __version__
from changarrito.entrypoints.http.auth import check_role_settings, security_schemes
from changarrito.entrypoints.http.health import health, ready
from changarrito.entrypoints.http.metrics import metrics
from changarrito.entrypoints.http.problems import EXCEPTION_HANDLERS

if TYPE_CHECKING:
    from changarrito.bootstrap import Container, Database
    from changarrito.entrypoints.settings import Settings

Role = Literal["all", "backend", "whatsapp"]

#: Largest request body accepted anywhere (Meta's webhook payloads go up to 3 MB).
MAX_BODY_BYTES = 3 * 1024 * 1024


def handlers_for(role: Role) -> list[Any]:
    """The route handlers a role serves: ``backend`` the tenant, internal and payment APIs,
    ``whatsapp`` the Meta webhook; ``all`` both. Register new controllers here."""
    handlers: list[Any] = [health, ready, metrics]
    if role in ("all", "backend"):
        from changarrito.entrypoints.http.integrations import IntegrationsController
        from changarrito.entrypoints.http.internal import InternalController

        handlers += [IntegrationsController, InternalController]
        from changarrito.entrypoints.http.payments import PAYMENT_HANDLERS

        handlers += PAYMENT_HANDLERS
    if role in ("all", "whatsapp"):
        from changarrito.entrypoints.http.webhook import WhatsAppWebhook

        handlers += [WhatsAppWebhook]
    return handlers


def create_app(
    settings: Settings,
    database: Database | None = None,
    *,
    role: Role = "all",
    container: Container | None = None,
) -> Litestar:
    """The HTTP app for ``role``. With ``container`` given (tests), it is used as is and not
    closed; otherwise one is bootstrapped in the lifespan from ``database``."""
    check_role_settings(settings, role)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        from changarrito.bootstrap import bootstrap

        if container is not None:
            app.state.container = container
            yield
            return
        assert database is not None, "create_app needs a database or a container"
        built = await bootstrap(settings, database, role=role, listen=True)
        app.state.container = built
        if role in ("all", "whatsapp"):  # message workers in-process; aclose stops them
            from changarrito.entrypoints.worker import start_workers

            workers = start_workers(built)
            built.tasks += [workers] if workers else []
        try:
            yield
        finally:
            await built.aclose()

    return Litestar(
        route_handlers=handlers_for(role),
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=MAX_BODY_BYTES,
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
    """Factory for multi-process ``serve --workers N`` (each worker builds its own app)."""
    import os

    from changarrito.adapters.logs import configure_logging
    from changarrito.bootstrap import prepare_database
    from changarrito.entrypoints.settings import Settings

    settings = Settings.from_env()
    configure_logging(settings.log_level)
    role = os.environ.get("CHANGARRITO_ROLE", "all")
    return create_app(settings, prepare_database(settings), role=role)  # type: ignore[arg-type]
