"""The two ways in: tenant JWTs for the tenant API, the internal key for the internal API.

Tenant API: ``dependencies.principal`` authenticates ``Authorization: Bearer <JWT>`` with the
service's ``TenantAuthenticator`` (``adapters/jwt_auth.py``: algorithms, JWKS, claims) and
binds the tenant to the request's log lines; every failure is a 401 problem with a stable
``type``. A controller asks for it by name::

    @get("/things", security=BEARER)
    async def things(principal: NamedDependency[TenantPrincipal]) -> ...: ...

Internal API: ``guards=[require_internal_key]`` compares ``X-Internal-Key`` with
``INTERNAL_API_KEY`` in constant time; the backend role refuses to start without the key
(``bootstrap.check_role``).
"""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from changarrito.domain.errors import Unauthorized

INTERNAL_KEY_HEADER = "X-Internal-Key"

#: OpenAPI security requirement of the tenant API and of the internal API (the schemes are
#: in ``security_schemes``, which the app factory puts in the OpenAPI components).
BEARER: list[dict[str, list[str]]] = [{"BearerAuth": []}]
INTERNAL: list[dict[str, list[str]]] = [{"InternalKey": []}]


class InvalidInternalKey(Unauthorized):
    """A valid X-Internal-Key header is required."""

    code = "invalid-internal-key"


def internal_key_matches(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison; an unset key never matches anything."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def require_internal_key(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Litestar guard of the internal API."""
    expected = connection.app.state.service.settings.auth.internal_api_key
    if not internal_key_matches(expected, connection.headers.get(INTERNAL_KEY_HEADER)):
        raise InvalidInternalKey()


def security_schemes() -> dict[str, Any]:
    """OpenAPI security schemes of the two APIs (``components.securitySchemes``)."""
    from litestar.openapi.spec import SecurityScheme

    return {
        "BearerAuth": SecurityScheme(
            type="http",
            scheme="bearer",
            bearer_format="JWT",
            description="A tenant JWT whose tenant_id claim names the tenant.",
        ),
        "InternalKey": SecurityScheme(
            type="apiKey",
            name=INTERNAL_KEY_HEADER,
            security_scheme_in="header",
            description="INTERNAL_API_KEY, for the platform's own services.",
        ),
    }
