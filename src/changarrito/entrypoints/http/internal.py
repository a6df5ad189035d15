"""The internal API (``X-Internal-Key``): the platform's own services ask here.

The only endpoints that return secrets; shapes in ``adapters/internal_api.py`` (shared with the
``whatsapp`` role's remote client).
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import structlog
from litestar import Controller, Request, get, post
from litestar.params import FromPath, JSONBody, PathParameter

from changarrito.adapters.internal_api import (
    INTERNAL_PREFIX,
    ResolvedCredential,
    TenantCreate,
    TenantCreated,
    TenantRoute,
)
from changarrito.domain.integration_views import Actor
from changarrito.domain.model import IntegrationType, Resolved, Source
from changarrito.entrypoints.http.auth import INTERNAL, require_internal_key
from changarrito.entrypoints.http.schemas import problem_responses

log = structlog.get_logger("changarrito.internal")

MAX_BODY_BYTES = 16 * 1024

PhoneNumberIdPath = Annotated[
    str,
    PathParameter(description="A WhatsApp phone number id (Graph's decimal id).", max_length=64),
]


def _resolved(resolved: Resolved, request: Request[Any, Any, Any]) -> ResolvedCredential:
    config = dict(resolved.config)
    if resolved.integration_type is IntegrationType.LLM and not config.get("model"):
        registry = request.app.state.service.registry
        try:
            config["model"] = registry.llm(resolved.provider).default_model
        except Exception:  # a provider that is not installed any more: leave it out
            log.warning("internal.no_default_model", provider=resolved.provider)
    return ResolvedCredential(
        tenant_id=resolved.tenant_id,
        integration="llm" if resolved.integration_type is IntegrationType.LLM else "whatsapp",
        provider=resolved.provider,
        source="tenant" if resolved.source is Source.TENANT else "platform",
        is_verified=resolved.is_verified,
        credentials=resolved.secrets.reveal(),
        config=config,
    )


class InternalController(Controller):
    path = INTERNAL_PREFIX
    tags = ["internal"]
    guards = [require_internal_key]
    security = INTERNAL
    request_max_body_size = MAX_BODY_BYTES

    @get(
        "/integrations/{tenant_id:uuid}/whatsapp",
        responses=problem_responses(400, 401, 404, 409, 503),
        summary="A tenant's resolved WhatsApp credentials (contains secrets)",
    )
    async def whatsapp(
        self, request: Request[Any, Any, Any], tenant_id: FromPath[UUID]
    ) -> ResolvedCredential:
        resolver = request.app.state.service.resolver
        return _resolved(await resolver.resolve(tenant_id, IntegrationType.WHATSAPP), request)

    @get(
        "/integrations/{tenant_id:uuid}/llm",
        responses=problem_responses(400, 401, 404, 409, 503),
        summary="A tenant's resolved LLM provider, key, model and options (contains secrets)",
    )
    async def llm(
        self, request: Request[Any, Any, Any], tenant_id: FromPath[UUID]
    ) -> ResolvedCredential:
        resolver = request.app.state.service.resolver
        return _resolved(await resolver.resolve(tenant_id, IntegrationType.LLM), request)

    @get(
        "/integrations/resolve-tenant/{phone_number_id:str}",
        responses=problem_responses(400, 401, 404, 503),
        summary="Which tenant owns a WhatsApp phone number id (null: the platform's number)",
    )
    async def resolve_tenant(
        self,
        request: Request[Any, Any, Any],
        phone_number_id: PhoneNumberIdPath,
    ) -> TenantRoute:
        route = await request.app.state.service.resolver.route(phone_number_id)
        return TenantRoute(tenant_id=route.tenant_id)

    @post(
        "/tenants",
        status_code=201,
        responses=problem_responses(400, 401, 413, 422, 503),
        summary="Create a tenant (the platform's sign-up)",
    )
    async def create_tenant(
        self, request: Request[Any, Any, Any], data: JSONBody[TenantCreate]
    ) -> TenantCreated:
        client = request.client
        actor = Actor(
            subject="internal-api",
            client_ip=client.host if client else None,
            user_agent=request.headers.get("user-agent"),
        )
        tenant = await request.app.state.service.tenants.create(data.name, actor)
        return TenantCreated(id=tenant.id, name=tenant.name)
