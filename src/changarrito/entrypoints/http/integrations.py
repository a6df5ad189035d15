"""The tenant API: ``/api/v1/integrations`` (tenant JWT). Thin: parse, call a use case, render.

Unknown payment provider in the path: 404 ``unknown-payment-provider`` (the resource does not
exist), its detail listing the installed ones. Unknown LLM provider in a body: 422
``unknown-llm-provider``, listing the installed ones. A body that does not match the
documented shape: 400 ``invalid-request``; values the provider's schema refuses: 422
``validation`` with field-level ``errors``.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter

from changarrito.adapters.jwt_auth import TenantPrincipal
from changarrito.domain.integrations import Actor, Integrations
from changarrito.domain.model import IntegrationType
from changarrito.entrypoints.http.auth import BEARER
from changarrito.entrypoints.http.schemas import (
    Integration,
    IntegrationsStatus,
    LLMIntegrationUpdate,
    PaymentIntegrationUpdate,
    VerificationResult,
    WhatsAppIntegrationUpdate,
    problem_responses,
)

#: Largest body of a tenant API request (credentials and a system prompt fit easily).
MAX_BODY_BYTES = 64 * 1024

WA = IntegrationType.WHATSAPP
LLM = IntegrationType.LLM
PAY = IntegrationType.PAYMENTS

ProviderPath = Annotated[
    str,
    PathParameter(
        title="provider",
        description="Payment provider id (stripe, mercadopago, clip, or a plugin's).",
        pattern=r"^[a-z0-9][a-z0-9-]{0,62}$",
    ),
]


def actor(request: Request[Any, Any, Any], principal: TenantPrincipal) -> Actor:
    client = request.client
    return Actor(
        subject=principal.subject,
        client_ip=client.host if client else None,
        user_agent=request.headers.get("user-agent"),
    )


READ = problem_responses(401, 503)
WRITE = problem_responses(400, 401, 409, 413, 422, 503)
VERIFY = problem_responses(401, 409, 503)


class IntegrationsController(Controller):
    path = "/api/v1/integrations"
    tags = ["integrations"]
    security = BEARER
    request_max_body_size = MAX_BODY_BYTES

    @get("/status", responses=READ, summary="The tenant's integrations at a glance")
    async def status(
        self,
        principal: NamedDependency[TenantPrincipal],
        integrations: NamedDependency[Integrations],
    ) -> IntegrationsStatus:
        return IntegrationsStatus.of(await integrations.status(principal.tenant_id))

    # --- WhatsApp -----------------------------------------------------------------------

    @get("/whatsapp", responses=problem_responses(401, 404, 503), summary="The tenant's number")
    async def get_whatsapp(
        self,
        principal: NamedDependency[TenantPrincipal],
        integrations: NamedDependency[Integrations],
    ) -> Integration:
        return Integration.of(await integrations.get(principal.tenant_id, WA))

    @put("/whatsapp", responses=WRITE, summary="Use the tenant's own WhatsApp number")
    async def put_whatsapp(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[TenantPrincipal],
        integrations: NamedDependency[Integrations],
        data: JSONBody[WhatsAppIntegrationUpdate],
    ) -> Integration:
        c = data.credentials
        secrets = {
            "accessToken": c.access_token,
            "appSecret": c.app_secret,
            "verifyToken": c.verify_token,
        }
        config = {
            "phoneNumberId": c.phone_number_id,
            "businessAccountId": c.business_account_id,
            "phoneNumber": data.phone_number,
            "displayName": data.display_name,
        }
        config = {k: v for k, v in config.items() if v is not None}
        view = await integrations.configure(
            actor(request, principal), principal.tenant_id, WA, "meta", secrets, config
        )
        return Integration.of(view)

    @delete("/whatsapp", responses=READ, summary="Back to the platform's number")
    async def delete_whatsapp(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[TenantPrincipal],
        integrations: NamedDependency[Integrations],
    ) -> None:
        await integrations.delete(actor(request, principal), principal.tenant_id, WA)

    @post("/whatsapp/verify", status_code=200, responses=VERIFY, summary="Check the token")
    async def verify_whatsapp(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[TenantPrincipal],
        integrations: NamedDependency[Integrations],
    ) -> VerificationResult:
        result = await integrations.verify(actor(request, principal), principal.tenant_id, WA)
        return VerificationResult.of(result)

    # --- LLM ----------------------------------------------------------------------------

    @get("/llm", responses=problem_responses(401, 404, 503), summary="The tenant's LLM")
    async def get_llm(
        self,
        principal: NamedDependency[TenantPrincipal],
        integrations: NamedDependency[Integrations],
    ) -> Integration:
        return Integration.of(await integrations.get(principal.tenant_id, LLM))

    @put("/llm", responses=WRITE, summary="Use the tenant's own LLM provider and key")
    async def put_llm(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[TenantPrincipal],
        integrations: NamedDependency[Integrations],
        data: JSONBody[LLMIntegrationUpdate],
    ) -> Integration:
        view = await integrations.configure(
            actor(request, principal),
            principal.tenant_id,
            LLM,
            data.provider,
            data.credentials,
            data.config,
        )
        return Integration.of(view)

    @delete("/llm", responses=READ, summary="Back to the platform's LLM")
    async def delete_llm(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[TenantPrincipal],
        integrations: NamedDependency[Integrations],
    ) -> None:
        await integrations.delete(actor(request, principal), principal.tenant_id, LLM)

    @post("/llm/verify", status_code=200, responses=VERIFY, summary="Check the LLM key")
    async def verify_llm(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[TenantPrincipal],
        integrations: NamedDependency[Integrations],
    ) -> VerificationResult:
        result = await integrations.verify(actor(request, principal), principal.tenant_id, LLM)
        return VerificationResult.of(result)

    # --- payments -----------------------------------------------------------------------

    @get(
        "/payments/{provider:str}",
        responses=problem_responses(400, 401, 404, 503),
        summary="The tenant's credentials for a payment provider",
    )
    async def get_payment(
        self,
        principal: NamedDependency[TenantPrincipal],
        integrations: NamedDependency[Integrations],
        provider: ProviderPath,
    ) -> Integration:
        return Integration.of(await integrations.get(principal.tenant_id, PAY, provider))

    @put(
        "/payments/{provider:str}",
        responses=problem_responses(400, 401, 404, 413, 422, 503),
        summary="Use the tenant's own account with a payment provider",
    )
    async def put_payment(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[TenantPrincipal],
        integrations: NamedDependency[Integrations],
        data: JSONBody[PaymentIntegrationUpdate],
        provider: ProviderPath,
    ) -> Integration:
        view = await integrations.configure(
            actor(request, principal),
            principal.tenant_id,
            PAY,
            provider,
            data.credentials,
            data.config,
        )
        return Integration.of(view)

    @delete(
        "/payments/{provider:str}",
        responses=problem_responses(400, 401, 404, 503),
        summary="Back to the platform's account with this provider",
    )
    async def delete_payment(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[TenantPrincipal],
        integrations: NamedDependency[Integrations],
        provider: ProviderPath,
    ) -> None:
        await integrations.delete(actor(request, principal), principal.tenant_id, PAY, provider)

    @post(
        "/payments/{provider:str}/verify",
        status_code=200,
        responses=problem_responses(400, 401, 404, 409, 503),
        summary="Check the payment credentials",
    )
    async def verify_payment(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[TenantPrincipal],
        integrations: NamedDependency[Integrations],
        provider: ProviderPath,
    ) -> VerificationResult:
        result = await integrations.verify(
            actor(request, principal), principal.tenant_id, PAY, provider
        )
        return VerificationResult.of(result)
