"""The tenant API: ``/api/v1/integrations`` (tenant JWT). Thin: parse, call a use case, render.

The status and every kind's endpoints come from the kinds' rows
(``changarrito.domain.kinds.KINDS``): ``kind_endpoints.kind_controller`` builds a kind's
``GET``/``PUT``/``DELETE`` and ``POST .../verify``, each with a literal path in the OpenAPI
schema. WhatsApp's body is the contract's own (the ids and the number beside the secrets), so
its controller is written out here (``WRITTEN_OUT``).

Unknown payment provider in the path: 404 ``unknown-payment-provider`` (the resource does not
exist), its detail listing the installed ones. Unknown LLM provider in a body: 422
``unknown-llm-provider``, listing the installed ones. A body that does not match the
documented shape: 400 ``invalid-request``; values the provider's schema refuses: 422
``validation`` with field-level ``errors``.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody

from changarrito.adapters.jwt_auth import TenantPrincipal
from changarrito.bootstrap import Service
from changarrito.domain.integrations import IntegrationNotConfigured, Integrations
from changarrito.domain.kinds import KINDS
from changarrito.domain.model import IntegrationType
from changarrito.domain.template_send import mapping_from_json, mapping_to_json
from changarrito.entrypoints.http.kind_endpoints import (
    READ,
    VERIFY,
    VERIFY_GUARDS,
    WRITE,
    TenantController,
    actor,
    kind_controller,
)
from changarrito.entrypoints.http.schemas import (
    Integration,
    VerificationResult,
    WhatsAppIntegrationUpdate,
    problem_responses,
)
from changarrito.entrypoints.http.status import IntegrationsStatus, status_of, status_struct


class StatusController(TenantController):
    @get("/status", responses=READ, summary="The tenant's integrations at a glance")
    async def status(
        self,
        principal: NamedDependency[TenantPrincipal],
        integrations: NamedDependency[Integrations],
        service: NamedDependency[Service],
    ) -> IntegrationsStatus:
        budgets = service.budgets
        standing = await budgets.standing(principal.tenant_id) if budgets is not None else []
        return status_of(await integrations.status(principal.tenant_id), standing)


class WhatsAppController(TenantController):
    """The tenant's own WhatsApp number (``PUT`` takes the contract's body)."""

    kind = IntegrationType.WHATSAPP

    @get("/whatsapp", responses=problem_responses(401, 404, 503), summary="The tenant's number")
    async def get_whatsapp(
        self,
        principal: NamedDependency[TenantPrincipal],
        integrations: NamedDependency[Integrations],
    ) -> Integration:
        return Integration.of(await integrations.get(principal.tenant_id, self.kind))

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
            "templates": await _templates(integrations, principal, data.templates),
        }
        config = {k: v for k, v in config.items() if v is not None}
        provider = KINDS[self.kind].default_provider or ""
        view = await integrations.configure(
            actor(request, principal), principal.tenant_id, self.kind, provider, secrets, config
        )
        return Integration.of(view)

    @delete("/whatsapp", responses=READ, summary="Back to the platform's number")
    async def delete_whatsapp(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[TenantPrincipal],
        integrations: NamedDependency[Integrations],
    ) -> None:
        await integrations.delete(actor(request, principal), principal.tenant_id, self.kind)

    @post(
        "/whatsapp/verify",
        status_code=200,
        guards=VERIFY_GUARDS,
        responses=VERIFY,
        summary="Check the token",
    )
    async def verify_whatsapp(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[TenantPrincipal],
        integrations: NamedDependency[Integrations],
    ) -> VerificationResult:
        result = await integrations.verify(
            actor(request, principal), principal.tenant_id, self.kind
        )
        return VerificationResult.of(result)


async def _templates(
    integrations: Integrations, principal: TenantPrincipal, given: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The purposes mapping to store: the one given (checked; ``{}`` clears it), else the
    stored one, so a PUT that rotates the token keeps the shop's templates."""
    if given is not None:
        return mapping_to_json(mapping_from_json(given)) or None
    try:
        stored = await integrations.get(principal.tenant_id, IntegrationType.WHATSAPP)
    except IntegrationNotConfigured:
        return None
    kept = stored.config.get("templates")
    return kept if isinstance(kept, dict) else None


#: Kinds whose endpoints are written out above; every other kind's are built from its row.
WRITTEN_OUT: dict[IntegrationType, type[Controller]] = {
    IntegrationType.WHATSAPP: WhatsAppController,
}


def integration_controllers() -> list[type[Controller]]:
    """The tenant API's controllers, from today's rows: the status (its response shape
    ``status_struct()``), then each kind's, in ``KINDS`` order."""
    shape = {"IntegrationsStatus": status_struct()}
    status = type("StatusController", (StatusController,), {"signature_namespace": shape})
    return [status] + [WRITTEN_OUT.get(t) or kind_controller(kind) for t, kind in KINDS.items()]
