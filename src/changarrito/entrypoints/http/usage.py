"""The usage API: what a tenant used, and on whose credentials, over whole UTC days.

- ``GET /api/v1/usage?from=&to=&groupBy=day|provider|source`` (tenant JWT): the tenant's;
- ``GET /api/v1/internal/usage?from=&to=&tenantId=&groupBy=`` (``X-Internal-Key``): one
  tenant's (``tenantId``; ``platform`` for the platform's own number), or every tenant's,
  each row naming its ``tenantId``.

``from`` and ``to`` are dates (``2026-12-01``), both included; by default this month up to
today; at most 366 days (a 422 naming the parameter otherwise). Each row is one group's use of
one kind (see ``domain/usage.py``).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from changarrito.adapters.internal_api import INTERNAL_PREFIX
from changarrito.adapters.jwt_auth import TenantPrincipal
from changarrito.domain.errors import ValidationFailed
from changarrito.domain.usage import Report, UsageReports
from changarrito.entrypoints.http.auth import BEARER, INTERNAL, require_internal_key
from changarrito.entrypoints.http.schemas import Wire, problem_responses

# Read as text and checked here, so that a bad value's problem names the parameter as sent.
First = Annotated[
    str | None,
    QueryParameter(
        name="from", max_length=10, description="First day (YYYY-MM-DD), UTC.", required=False
    ),
]
Last = Annotated[
    str | None,
    QueryParameter(
        name="to", max_length=10, description="Last day (YYYY-MM-DD), included.", required=False
    ),
]
Grouping = Annotated[
    str | None,
    QueryParameter(
        name="groupBy",
        max_length=10,
        description="day (default), provider or source.",
        required=False,
    ),
]
READ = problem_responses(400, 401, 422, 503)


class UsageLine(Wire, frozen=True):
    """One group's use of one kind: ``group`` is the day, the provider or the source
    (``tenant``: the tenant's own credential paid; ``platform``: the operator's); ``kind`` one
    of ``llm_call``, ``transcription``, ``image_to_model``, ``document_to_model``,
    ``whatsapp_message`` and ``payment_link``; ``acts`` how many; tokens as the providers
    reported them; ``seconds`` of audio transcribed; ``billable`` messages Meta bills.
    ``tenantId`` in the internal API's report across tenants (``null``: the platform's own
    number)."""

    group: str
    kind: str
    acts: int
    input_tokens: int
    output_tokens: int
    seconds: float
    billable: int
    tenant_id: UUID | None = None


class UsageReport(Wire, frozen=True):
    """The period (``from`` and ``to``, both included), the grouping, and the rows."""

    from_: date = msgspec.field(name="from")
    to: date
    group_by: str
    data: list[UsageLine]

    @classmethod
    def of(cls, report: Report) -> UsageReport:
        return cls(
            from_=report.period.first,
            to=report.period.last,
            group_by=report.group_by,
            data=[
                UsageLine(
                    group=r.group,
                    kind=r.kind,
                    acts=r.acts,
                    input_tokens=r.input_tokens,
                    output_tokens=r.output_tokens,
                    seconds=r.seconds,
                    billable=r.billable,
                    tenant_id=r.tenant_id,
                )
                for r in report.rows
            ],
        )


class TenantUsage(Controller):
    path = "/api/v1/usage"
    tags = ["usage"]
    security = BEARER

    @get("/", responses=READ, summary="The tenant's usage, by day, provider or source")
    async def tenant_usage(
        self,
        principal: NamedDependency[TenantPrincipal],
        usage: NamedDependency[UsageReports],
        first: First = None,
        last: Last = None,
        group_by: Grouping = None,
    ) -> UsageReport:
        report = await usage.report(
            principal.tenant_id, _day("from", first), _day("to", last), group_by
        )
        return UsageReport.of(report)


class PlatformUsage(Controller):
    path = f"{INTERNAL_PREFIX}/usage"
    tags = ["internal"]
    guards = [require_internal_key]
    security = INTERNAL

    @get("/", responses=READ, summary="Usage of one tenant, the platform's number, or all")
    async def platform_usage(
        self,
        usage: NamedDependency[UsageReports],
        first: First = None,
        last: Last = None,
        group_by: Grouping = None,
        tenant: Annotated[
            str | None,
            QueryParameter(
                name="tenantId",
                max_length=64,
                description="A tenant's id, or `platform` for the platform's own number; "
                "absent: every tenant, each row with its `tenantId`.",
                required=False,
            ),
        ] = None,
    ) -> UsageReport:
        every = tenant is None
        tenant_id = None if every or tenant == "platform" else _tenant(tenant)
        report = await usage.report(
            tenant_id, _day("from", first), _day("to", last), group_by, every_tenant=every
        )
        return UsageReport.of(report)


def _day(name: str, value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        problem = "must be a date as YYYY-MM-DD"
        raise ValidationFailed(f"{name} {problem}", errors=[(name, problem)]) from None


def _tenant(value: str | None) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        problem = "must be a tenant id (a UUID) or platform"
        raise ValidationFailed(f"tenantId {problem}", errors=[("tenantId", problem)]) from None


#: What the backend role registers (see ``app.handlers_for``).
USAGE_HANDLERS: list[Any] = [TenantUsage, PlatformUsage]
