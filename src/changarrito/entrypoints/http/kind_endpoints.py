"""The tenant API endpoints of a kind, built from its row (``changarrito.domain.kinds``).

``kind_controller(kind)`` gives ``GET``/``PUT``/``DELETE`` and ``POST .../verify``, each with a
literal path (``/api/v1/integrations/llm``, ``/api/v1/integrations/payments/{provider}``) and
named after the kind's label (``get_llm``, ``put_payment``: the OpenAPI operation ids):

- a ``SINGLE`` kind (one provider at a time) on ``/<kind>``, its body
  ``{"provider", "credentials", "config"}``;
- a ``PER_PROVIDER`` kind on ``/<kind>/{provider}``, its body ``{"credentials", "config"}``.

Also what every controller of the tenant API shares (``TenantController``, ``actor``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, post, put
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.params import JSONBody, PathParameter

from changarrito.adapters.jwt_auth import TenantPrincipal
from changarrito.domain.integrations import Actor, Integrations
from changarrito.domain.kinds import Kind
from changarrito.entrypoints.http.auth import BEARER
from changarrito.entrypoints.http.limits import RATE_LIMITED, rate_limited
from changarrito.entrypoints.http.limits import VERIFY as VERIFY_LIMIT
from changarrito.entrypoints.http.schemas import (
    ChosenProviderUpdate,
    Integration,
    ProviderUpdate,
    VerificationResult,
    problem_responses,
    update_body,
)

#: Largest body of a tenant API request (credentials and a system prompt fit easily).
MAX_BODY_BYTES = 64 * 1024
PREFIX = "/api/v1/integrations"

#: What a built kind's handlers are annotated with; each kind's controller resolves them to
#: its own body (``update_body``) and path parameter (``_provider_path``).
ChosenBody = ChosenProviderUpdate
PathBody = ProviderUpdate
ProviderPath = Annotated[str, PathParameter()]


def actor(request: Request[Any, Any, Any], principal: TenantPrincipal) -> Actor:
    client = request.client
    return Actor(
        subject=principal.subject,
        client_ip=client.host if client else None,
        user_agent=request.headers.get("user-agent"),
    )


READ = problem_responses(401, 503)
WRITE = problem_responses(400, 401, 409, 413, 422, 503)
VERIFY = {**problem_responses(401, 409, 503), **RATE_LIMITED}
#: Every verify is an outbound call on someone's key: held to the tenant's allowance.
VERIFY_GUARDS = [rate_limited(VERIFY_LIMIT)]


class TenantController(Controller):
    """What every controller of the tenant API shares."""

    path = PREFIX
    tags = ["integrations"]
    security = BEARER
    request_max_body_size = MAX_BODY_BYTES


def kind_controller(kind: Kind) -> type[Controller]:
    """``GET``/``PUT``/``DELETE`` ``/<kind>[/{provider}]`` and ``POST .../verify`` of ``kind``,
    named after its label (``get_llm``, ``put_payment``: the OpenAPI operation ids)."""
    build = _per_provider if kind.provider_in_path else _chosen_provider
    namespace: dict[str, Any] = {h.handler_name: h for h in build(kind)}
    namespace["signature_namespace"] = {
        "ChosenBody": update_body(kind),
        "PathBody": update_body(kind),
        "ProviderPath": _provider_path(kind),
    }
    return type(f"{kind.title}Controller", (TenantController,), namespace)


def _provider_path(kind: Kind) -> Any:
    known = ", ".join(kind.provider_order)
    return Annotated[
        str,
        PathParameter(
            title="provider",
            description=f"{kind.title} provider id ({known + ', or ' if known else ''}a plugin's).",
            pattern=r"^[a-z0-9][a-z0-9-]{0,62}$",
        ),
    ]


def _named(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    fn.__name__ = fn.__qualname__ = name
    return fn


def _chosen_provider(kind: Kind) -> list[HTTPRouteHandler]:
    """One provider at a time, named in the body (``/llm``)."""
    itype, word, label, path = kind.type, kind.label.lower(), kind.label, f"/{kind.name}"

    async def read(
        self: Any,
        principal: NamedDependency[TenantPrincipal],
        integrations: NamedDependency[Integrations],
    ) -> Integration:
        return Integration.of(await integrations.get(principal.tenant_id, itype))

    async def write(
        self: Any,
        request: Request[Any, Any, Any],
        principal: NamedDependency[TenantPrincipal],
        integrations: NamedDependency[Integrations],
        data: JSONBody[ChosenBody],
    ) -> Integration:
        view = await integrations.configure(
            actor(request, principal),
            principal.tenant_id,
            itype,
            data.provider,
            data.credentials,
            data.config,
        )
        return Integration.of(view)

    async def remove(
        self: Any,
        request: Request[Any, Any, Any],
        principal: NamedDependency[TenantPrincipal],
        integrations: NamedDependency[Integrations],
    ) -> None:
        await integrations.delete(actor(request, principal), principal.tenant_id, itype)

    async def check(
        self: Any,
        request: Request[Any, Any, Any],
        principal: NamedDependency[TenantPrincipal],
        integrations: NamedDependency[Integrations],
    ) -> VerificationResult:
        result = await integrations.verify(actor(request, principal), principal.tenant_id, itype)
        return VerificationResult.of(result)

    return [
        get(path, responses=problem_responses(401, 404, 503), summary=f"The tenant's {label}")(
            _named(f"get_{word}", read)
        ),
        put(path, responses=WRITE, summary=f"Use the tenant's own {label} provider and key")(
            _named(f"put_{word}", write)
        ),
        delete(path, responses=READ, summary=f"Back to the platform's {label}")(
            _named(f"delete_{word}", remove)
        ),
        post(
            f"{path}/verify",
            status_code=200,
            guards=VERIFY_GUARDS,
            responses=VERIFY,
            summary=f"Check the {label} key",
        )(_named(f"verify_{word}", check)),
    ]


def _per_provider(kind: Kind) -> list[HTTPRouteHandler]:
    """One endpoint per provider, named in the URL (``/payments/{provider}``)."""
    itype, word, label = kind.type, kind.label.lower(), kind.label
    path = f"/{kind.name}/{{provider:str}}"

    async def read(
        self: Any,
        principal: NamedDependency[TenantPrincipal],
        integrations: NamedDependency[Integrations],
        provider: ProviderPath,
    ) -> Integration:
        return Integration.of(await integrations.get(principal.tenant_id, itype, provider))

    async def write(
        self: Any,
        request: Request[Any, Any, Any],
        principal: NamedDependency[TenantPrincipal],
        integrations: NamedDependency[Integrations],
        data: JSONBody[PathBody],
        provider: ProviderPath,
    ) -> Integration:
        view = await integrations.configure(
            actor(request, principal),
            principal.tenant_id,
            itype,
            provider,
            data.credentials,
            data.config,
        )
        return Integration.of(view)

    async def remove(
        self: Any,
        request: Request[Any, Any, Any],
        principal: NamedDependency[TenantPrincipal],
        integrations: NamedDependency[Integrations],
        provider: ProviderPath,
    ) -> None:
        await integrations.delete(actor(request, principal), principal.tenant_id, itype, provider)

    async def check(
        self: Any,
        request: Request[Any, Any, Any],
        principal: NamedDependency[TenantPrincipal],
        integrations: NamedDependency[Integrations],
        provider: ProviderPath,
    ) -> VerificationResult:
        result = await integrations.verify(
            actor(request, principal), principal.tenant_id, itype, provider
        )
        return VerificationResult.of(result)

    return [
        get(
            path,
            responses=problem_responses(400, 401, 404, 503),
            summary=f"The tenant's credentials for a {label} provider",
        )(_named(f"get_{word}", read)),
        put(
            path,
            responses=problem_responses(400, 401, 404, 413, 422, 503),
            summary=f"Use the tenant's own account with a {label} provider",
        )(_named(f"put_{word}", write)),
        delete(
            path,
            responses=problem_responses(400, 401, 404, 503),
            summary="Back to the platform's account with this provider",
        )(_named(f"delete_{word}", remove)),
        post(
            f"{path}/verify",
            status_code=200,
            guards=VERIFY_GUARDS,
            responses={**problem_responses(400, 401, 404, 409, 503), **RATE_LIMITED},
            summary=f"Check the {label} credentials",
        )(_named(f"verify_{word}", check)),
    ]
