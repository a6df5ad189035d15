"""Per-tenant rate limits of the tenant API calls that spend someone's provider quota.

``POST /api/v1/payments/links`` creates a link with the tenant's (or the platform's) payment
account, and every ``POST /api/v1/integrations/.../verify`` calls a provider with a stored
key: each is one outbound call a tenant could otherwise repeat without bound. A route opts in
with ``guards=[rate_limited(PAYMENT_LINKS)]`` (or ``VERIFY``) and documents the 429 with
``RATE_LIMITED`` among its ``responses``.

The guard authenticates the tenant (a 401 first, so anonymous calls spend nobody's
allowance), then takes one call from the tenant's allowance of that action in the service's
``RateLimiter`` (PostgreSQL: global across processes): a burst of the operator's per-minute
limit (``CHANGARRITO_PAYMENT_LINKS_PER_MINUTE``, ``CHANGARRITO_VERIFY_PER_MINUTE``), then one
every ``60 / limit`` seconds. Past it: 429 problem ``rate-limited`` with ``Retry-After`` in
whole seconds. A limit of ``0`` turns the action's limit off.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import Guard

from changarrito.bootstrap import Service
from changarrito.entrypoints.http.problems import PROBLEM_JSON
from changarrito.entrypoints.http.schemas import Problem

Action = Literal["payment-links", "verify"]
PAYMENT_LINKS: Action = "payment-links"
VERIFY: Action = "verify"

#: Seconds the per-minute limits are counted over.
PERIOD = 60.0

#: The OpenAPI documentation of the guard's answer, for the routes that carry it.
RATE_LIMITED: dict[int, ResponseSpec] = {
    429: ResponseSpec(
        Problem,
        description="Past the tenant's rate limit for this call; `Retry-After` says when "
        "to try again.",
        media_type=PROBLEM_JSON,
        generate_examples=False,
    )
}


class RateLimited(HTTPException):
    status_code = 429


def _limit(service: Service, action: Action) -> int:
    limits = service.settings.limits
    return limits.payment_links if action == PAYMENT_LINKS else limits.verify


def rate_limited(action: Action) -> Guard:
    """The Litestar guard that holds a tenant to its allowance of ``action``."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        service: Service = connection.app.state.service
        limit, limiter = _limit(service, action), service.storage.rate_limits
        if limit <= 0 or limiter is None:
            return
        principal = await service.authenticator.authenticate(
            connection.headers.get("authorization")
        )
        wait = await limiter.acquire(principal.tenant_id, action, limit, PERIOD)
        if wait > 0:
            retry = max(1, math.ceil(wait))
            raise RateLimited(
                detail=f"Too many {action} calls for this tenant: at most {limit} a minute. "
                f"Try again in {retry} s.",
                headers={"Retry-After": str(retry)},
            )

    guard.__name__ = f"rate_limited_{action.replace('-', '_')}"
    return guard
