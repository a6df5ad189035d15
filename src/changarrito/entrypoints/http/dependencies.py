"""What handlers receive, by name, registered once on the app (``app.create_app``).

Every value comes from the one ``Service`` the composition root built (``app.state.service``);
no handler builds or caches an adapter. A handler declares what it uses::

    async def create_link(self, principal: NamedDependency[TenantPrincipal],
                          payments: NamedDependency[Payments]) -> ...: ...

``principal`` authenticates the request (a 401 problem otherwise), so only handlers that
name it, all under the tenant API, require a tenant JWT.
"""

from __future__ import annotations

from typing import Any

import structlog
from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide

from changarrito.adapters.jwt_auth import TenantPrincipal
from changarrito.bootstrap import Service
from changarrito.domain.budgets import Budgets
from changarrito.domain.errors import StorageUnavailable
from changarrito.domain.inbox import Inbox
from changarrito.domain.integrations import Integrations
from changarrito.domain.payments import Payments
from changarrito.domain.template_sync import TemplateCatalog
from changarrito.domain.usage import UsageReports


def provide_service(state: State) -> Service:
    service: Service = state.service
    return service


def provide_integrations(state: State) -> Integrations:
    return provide_service(state).integrations


def provide_payments(state: State) -> Payments:
    return provide_service(state).payments


def provide_inbox(state: State) -> Inbox:
    inbox = provide_service(state).inbox
    if inbox is None:  # a service on the in-memory fakes: conversations live in PostgreSQL
        raise StorageUnavailable("conversations are kept in PostgreSQL, which this service lacks")
    return inbox


def provide_templates(state: State) -> TemplateCatalog:
    templates = provide_service(state).templates
    if templates is None:  # a service on the in-memory fakes: templates live in PostgreSQL
        raise StorageUnavailable("templates are kept in PostgreSQL, which this service lacks")
    return templates


def provide_usage(state: State) -> UsageReports:
    usage = provide_service(state).usage
    if usage is None:  # a service on the in-memory fakes: the ledger lives in PostgreSQL
        raise StorageUnavailable("usage is kept in PostgreSQL, which this service lacks")
    return usage


def provide_budgets(state: State) -> Budgets:
    budgets = provide_service(state).budgets
    if budgets is None:  # a service on the in-memory fakes: budgets live in PostgreSQL
        raise StorageUnavailable("budgets are kept in PostgreSQL, which this service lacks")
    return budgets


async def provide_principal(request: Request[Any, Any, Any]) -> TenantPrincipal:
    """The authenticated tenant, bound to the request's log lines."""
    service = provide_service(request.app.state)
    principal = await service.authenticator.authenticate(request.headers.get("authorization"))
    structlog.contextvars.bind_contextvars(tenant_id=str(principal.tenant_id))
    return principal


DEPENDENCIES: dict[str, Provide] = {
    "service": Provide(provide_service, sync_to_thread=False),
    "integrations": Provide(provide_integrations, sync_to_thread=False),
    "payments": Provide(provide_payments, sync_to_thread=False),
    "inbox": Provide(provide_inbox, sync_to_thread=False),
    "templates": Provide(provide_templates, sync_to_thread=False),
    "usage": Provide(provide_usage, sync_to_thread=False),
    "budgets": Provide(provide_budgets, sync_to_thread=False),
    "principal": Provide(provide_principal),
}
