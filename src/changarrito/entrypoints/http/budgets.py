"""The budgets API, for the operator (``X-Internal-Key``): limits on each tenant's use of the
platform's credentials, and where the tenant stands this period.

- ``PUT /api/v1/internal/tenants/{tenantId}/budgets`` and ``GET`` on it: the tenant's own
  limits (replaced as a whole by a PUT; ``{}`` removes them) and, for every metric, the limit
  that applies (its own, else the default's), this period and its figure;
- ``PUT /api/v1/internal/budgets/default`` and ``GET`` on it: the default limits.

A body is ``{"llmTokens": {"soft"?, "hard"?}, "transcriptionSeconds": {...},
"platformMessages": {...}, "platformTemplateContacts": {...}}``; anything else is a 422
naming it (see ``domain/budgets.py`` for what each counts and when it stops).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from litestar import Controller, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from changarrito.adapters.internal_api import INTERNAL_PREFIX
from changarrito.bootstrap import Service
from changarrito.domain.budgets import Budgets, Standing
from changarrito.entrypoints.http.auth import INTERNAL, require_internal_key
from changarrito.entrypoints.http.schemas import Wire, problem_responses

READ = problem_responses(401, 404, 503)
WRITE = problem_responses(400, 401, 404, 413, 422, 503)
MAX_BODY_BYTES = 8 * 1024


class MetricBudget(Wire, frozen=True):
    """A metric's limits and this period's figure: ``inherited`` when the limits are the
    default's; ``stopped`` when the hard limit is reached (the platform's credential is not
    used for it until the period ends); ``softReachedAt`` and ``hardReachedAt`` when each was
    first reached in the period."""

    soft: int | None
    hard: int | None
    inherited: bool
    period: str
    figure: int
    stopped: bool
    soft_reached_at: datetime | None
    hard_reached_at: datetime | None


class BudgetsView(Wire, frozen=True):
    """Each metric's budget (``tenantId`` null: the defaults, without figures)."""

    tenant_id: UUID | None
    budgets: dict[str, MetricBudget]

    @classmethod
    def of(cls, tenant_id: UUID | None, standing: list[Standing]) -> BudgetsView:
        return cls(
            tenant_id=tenant_id,
            budgets={
                s.metric: MetricBudget(
                    soft=s.limit.soft,
                    hard=s.limit.hard,
                    inherited=s.inherited,
                    period=s.period,
                    figure=s.figure,
                    stopped=s.stopped,
                    soft_reached_at=s.soft_reached_at,
                    hard_reached_at=s.hard_reached_at,
                )
                for s in standing
            },
        )


class BudgetsController(Controller):
    path = INTERNAL_PREFIX
    tags = ["internal"]
    guards = [require_internal_key]
    security = INTERNAL

    @get("/tenants/{tenant_id:uuid}/budgets", responses=READ, summary="A tenant's budgets")
    async def tenant_budgets(
        self,
        tenant_id: FromPath[UUID],
        service: NamedDependency[Service],
        budgets: NamedDependency[Budgets],
    ) -> BudgetsView:
        await service.storage.store.get_tenant(tenant_id)  # an unknown tenant is a 404
        return BudgetsView.of(tenant_id, await budgets.standing(tenant_id))

    @put(
        "/tenants/{tenant_id:uuid}/budgets",
        responses=WRITE,
        summary="Set a tenant's own budgets",
        request_max_body_size=MAX_BODY_BYTES,
    )
    async def set_tenant_budgets(
        self,
        tenant_id: FromPath[UUID],
        data: JSONBody[dict[str, Any]],
        service: NamedDependency[Service],
        budgets: NamedDependency[Budgets],
    ) -> BudgetsView:
        await service.storage.store.get_tenant(tenant_id)
        return BudgetsView.of(tenant_id, await budgets.set(tenant_id, data))

    @get("/budgets/default", responses=READ, summary="The default budgets")
    async def default_budgets(self, budgets: NamedDependency[Budgets]) -> BudgetsView:
        return BudgetsView.of(None, await budgets.standing(None, default_only=True))

    @put(
        "/budgets/default",
        responses=WRITE,
        summary="Set the default budgets",
        request_max_body_size=MAX_BODY_BYTES,
    )
    async def set_default_budgets(
        self, data: JSONBody[dict[str, Any]], budgets: NamedDependency[Budgets]
    ) -> BudgetsView:
        return BudgetsView.of(None, await budgets.set(None, data))


#: What the backend role registers (see ``app.handlers_for``).
BUDGET_HANDLERS: list[Any] = [BudgetsController]
