"""Tenant JWTs: who is calling the tenant API.

- HS256 signed with ``JWT_SECRET``, or RS256/ES256 signed by a key of ``JWT_JWKS_URL`` (fetched
  with the shared httpx pool, never blocking the event loop, cached for ``JWKS_TTL`` seconds and
  refetched early, at most every ``JWKS_MIN_REFRESH`` seconds, when a token names an unknown
  ``kid``);
- ``exp`` is required, ``iss``/``aud`` are checked when ``JWT_ISSUER``/``JWT_AUDIENCE`` are set;
- the ``tenant_id`` claim must be the UUID of an existing tenant.

Every failure is an ``Unauthorized`` error with a stable ``code`` (``missing-token``,
``invalid-token``, ``expired-token``) and a short reason that says nothing about keys, claims
or tenants. The HTTP side (``entrypoints/http/auth.py``) turns it into a 401.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import jwt
import structlog

from changarrito.adapters.http import HttpClients, json_body, translate_transport_errors
from changarrito.domain.errors import RetryableProviderError, TenantNotFound, Unauthorized
from changarrito.domain.ports import TenantStore
from changarrito.settings import AuthSettings

log = structlog.get_logger("changarrito.auth")

#: Seconds a fetched JWKS is trusted before it is fetched again.
JWKS_TTL = 300.0
#: Least seconds between two fetches caused by tokens naming an unknown ``kid``.
JWKS_MIN_REFRESH = 30.0
#: Clock skew tolerated on ``exp``/``nbf``/``iat``.
LEEWAY_SECONDS = 30
ASYMMETRIC_ALGORITHMS = ("RS256", "ES256")


# --- errors ---------------------------------------------------------------------------------


class MissingToken(Unauthorized):
    """A bearer token is required: send Authorization: Bearer <JWT>."""

    code = "missing-token"
    challenge = "Bearer"


class InvalidToken(Unauthorized):
    """The bearer token is not valid."""

    code = "invalid-token"
    challenge = 'Bearer error="invalid_token"'


class ExpiredToken(InvalidToken):
    """The bearer token has expired."""

    code = "expired-token"


class JwksUnavailable(RetryableProviderError):
    """The key set that signs tenant tokens (JWT_JWKS_URL) cannot be fetched right now."""

    code = "jwks-unavailable"


# --- tenant JWTs ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TenantPrincipal:
    """The authenticated caller of the tenant API: its tenant and who it is (``sub``)."""

    tenant_id: UUID
    subject: str


class JwksCache:
    """The JWKS at ``url``, fetched on the shared pool and kept for ``ttl`` seconds.

    A fetch that fails while a previous set is held keeps serving that set (logged).
    """

    def __init__(
        self,
        url: str,
        http: HttpClients,
        *,
        ttl: float = JWKS_TTL,
        min_refresh: float = JWKS_MIN_REFRESH,
    ) -> None:
        self.url = url
        self.http = http
        self.ttl = ttl
        self.min_refresh = min_refresh
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        """The signing key named ``kid`` (the only key, when ``kid`` is absent), or ``None``."""
        now = time.monotonic()
        if self._fetched_at is None or now - self._fetched_at > self.ttl:
            await self._refresh(now)
        found = self._pick(kid)
        stale = self._fetched_at is not None and now - self._fetched_at > self.min_refresh
        if found is None and stale:  # perhaps a rotated key: look again, but rarely
            await self._refresh(now)
            found = self._pick(kid)
        return found

    def _pick(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _refresh(self, asked_at: float) -> None:
        async with self._lock:
            if self._fetched_at is not None and self._fetched_at >= asked_at:
                return  # another request refreshed it while this one waited
            try:
                self._keys = await self._fetch()
            except RetryableProviderError as exc:
                if not self._keys:
                    raise JwksUnavailable() from None
                log.warning("jwks.refresh_failed", error=exc.message, serving="previous key set")
            self._fetched_at = time.monotonic()

    async def _fetch(self) -> dict[str, jwt.PyJWK]:
        client = self.http.get(self.url)
        async with translate_transport_errors("jwks"):
            response = await client.get(self.url, headers={"Accept": "application/json"})
        if not response.is_success:
            raise RetryableProviderError(f"JWKS answered HTTP {response.status_code}")
        data = json_body(response, "jwks")
        keys: dict[str, jwt.PyJWK] = {}
        for raw in data.get("keys", []) if isinstance(data, dict) else []:
            try:
                key = jwt.PyJWK.from_dict(raw)
            except (jwt.PyJWKError, jwt.InvalidKeyError, TypeError, ValueError):
                continue  # a key type or algorithm we do not use
            if key.algorithm_name in ASYMMETRIC_ALGORITHMS:
                keys[str(raw.get("kid") or f"#{len(keys)}")] = key
        if not keys:
            raise RetryableProviderError("JWKS holds no RS256/ES256 key")
        return keys


class TenantAuthenticator:
    """Turns an ``Authorization`` header into a ``TenantPrincipal`` or a 401 error."""

    def __init__(self, settings: AuthSettings, tenants: TenantStore, http: HttpClients) -> None:
        self.settings = settings
        self.tenants = tenants
        self.jwks = JwksCache(settings.jwt_jwks_url, http) if settings.jwt_jwks_url else None

    async def authenticate(self, authorization: str | None) -> TenantPrincipal:
        token = _bearer_token(authorization)
        claims = await self.claims(token)
        try:
            tenant_id = UUID(str(claims["tenant_id"]))
        except (KeyError, ValueError):
            raise InvalidToken("The token does not name a tenant.") from None
        try:
            await self.tenants.get_tenant(tenant_id)
        except TenantNotFound:
            raise InvalidToken("The token does not name a tenant.") from None
        subject = claims.get("sub")
        return TenantPrincipal(tenant_id, str(subject) if subject else f"tenant:{tenant_id}")

    async def claims(self, token: str) -> dict[str, Any]:
        """The verified claims of ``token``; ``InvalidToken`` (or ``ExpiredToken``) otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("The token is malformed.") from None
        alg = header.get("alg")
        key: Any
        if alg == "HS256" and self.settings.jwt_secret:
            key = self.settings.jwt_secret
        elif alg in ASYMMETRIC_ALGORITHMS and self.jwks is not None:
            kid = header.get("kid")
            found = await self.jwks.key(str(kid) if kid is not None else None)
            if found is None or found.algorithm_name != alg:
                raise InvalidToken("The token is not signed by a known key.")
            key = found.key
        elif not (self.settings.jwt_secret or self.jwks):
            raise InvalidToken("Tenant tokens are not accepted: JWT_SECRET is not configured.")
        else:
            raise InvalidToken("The token's algorithm is not accepted.")
        audience = self.settings.jwt_audience
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=audience,
                issuer=self.settings.jwt_issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "tenant_id"], "verify_aud": audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise ExpiredToken() from None
        except (jwt.InvalidAudienceError, jwt.InvalidIssuerError):
            raise InvalidToken("The token is not meant for this service.") from None
        except jwt.MissingRequiredClaimError:
            raise InvalidToken("The token lacks a required claim.") from None
        except jwt.PyJWTError:
            raise InvalidToken() from None


def _bearer_token(authorization: str | None) -> str:
    if not authorization or not authorization.strip():
        raise MissingToken()
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MissingToken("Use Authorization: Bearer <JWT>.")
    return token.strip()
