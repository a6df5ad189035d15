"""Credentials for the ``whatsapp`` role, read from the backend's internal API.

``RemoteResolver`` is the ``whatsapp`` role's ``Resolver`` (``CredentialResolver`` reads the
store directly in the other roles). For one tenant and integration it asks
``GET {BACKEND_URL}/api/v1/internal/integrations/{tenantId}/{whatsapp|llm}`` with
``X-Internal-Key`` and applies the usual fallback policy (``domain.resolution``) with the
backend's answer as the tenant's stored credential:

1. the tenant's own credential (``source: tenant``);
2. else this process's own environment (its platform credentials, as in the original
   two-service design);
3. else the platform credential the backend answered with (``source: platform``);
4. else ``NotConfigured``.

Answers are cached for ``CREDENTIALS_CACHE_TTL`` seconds (default 300). When the backend
cannot be reached (connection refused, timeout, 5xx), the last good answer is served past its
TTL, marked ``stale``, with one warning per key until the backend answers again; with nothing
to serve, the call fails with the retryable ``CredentialsUnavailable``.

A number the backend says nobody owns is remembered for a second (``cache.UnknownNumbers``,
as the store does in the other roles), so a stream of webhooks for a shop that left costs the
backend one request a second, not one each; a change notification naming the number forgets
it at once.

Changes made through the tenant API reach this process within a second, not a TTL later: the
``whatsapp`` role still connects to the same PostgreSQL (its message queue lives there), and
the backend's store sends ``pg_notify('changarrito_changes', 'tenant:<uuid>' | 'number:<id>')``
in every write's transaction. ``bootstrap`` feeds those notifications
(``notify.Listener``) to ``on_change``, which expires the matching entries. Expired
entries are kept as the last good value, so an outage right after a change still has something
to serve. Polling the backend, or having it call every ``whatsapp`` process back, would need
either a short TTL (load on the backend) or a registry of processes; the database's own
notifications need neither.

One class of about 250 lines (past the house's 250-line aim, on purpose): its cache,
single-flight fetches, stale-on-outage and invalidation rules are one policy and read best
together; the bounded cache itself is ``adapters/last_good.py``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import quote
from uuid import UUID

import httpx
import msgspec
import structlog

from changarrito.adapters.cache import UnknownNumbers
from changarrito.adapters.http import HttpClients, translate_transport_errors
from changarrito.adapters.internal_api import (
    ResolvedCredential,
    TenantRoute,
    llm_path,
    resolve_tenant_path,
    whatsapp_path,
)
from changarrito.adapters.last_good import LastGood
from changarrito.adapters.single_flight import SingleFlight
from changarrito.domain import resolution
from changarrito.domain.changes import Change
from changarrito.domain.errors import (
    ConfigurationError,
    CredentialsUnavailable,
    NotConfigured,
    ProviderError,
    RetryableProviderError,
    TenantNotFound,
    UnknownPhoneNumber,
)
from changarrito.domain.model import (
    Credential,
    IntegrationType,
    PlatformDefaults,
    Resolved,
    Route,
    Secrets,
    Source,
)

log = structlog.get_logger(__name__)

#: The backend is on the same network: fail fast and serve the last good value instead.
BACKEND_TIMEOUT = httpx.Timeout(connect=2.0, read=5.0, write=5.0, pool=2.0)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class _Answer:
    """The backend's answer for one tenant and integration: its credential, or ``None``
    when it has none (409 ``not-configured``)."""

    resolved: Resolved | None


class _Unreachable(Exception):
    """The backend did not answer usefully this time (transport error, timeout, 5xx...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RemoteResolver:
    """Implements the domain's ``Resolver`` over the backend's internal API."""

    def __init__(
        self,
        http: HttpClients,
        backend_url: str,
        internal_key: str,
        platform: PlatformDefaults,
        *,
        ttl: float = 300.0,
        timeout: httpx.Timeout = BACKEND_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self.backend_url = backend_url.rstrip("/")
        self._key = internal_key
        self.platform = platform
        self.timeout = timeout
        self._answers: LastGood[tuple[UUID, IntegrationType], _Answer] = LastGood(ttl, clock)
        self._routes: LastGood[str, Route] = LastGood(ttl, clock)
        self._unknown = UnknownNumbers(clock=clock)
        #: Concurrent misses of one key share one request to the backend.
        self._inflight: SingleFlight[Hashable, Any] = SingleFlight()
        self._stale_logged: set[Hashable] = set()
        #: Requests sent to the backend (diagnostics and tests: a cache hit sends none).
        self.requests = 0
        #: Answers served from the cache, and those that were not (``/metrics``).
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"RemoteResolver(backend_url={self.backend_url!r})"

    # --- the Resolver port ----------------------------------------------------------------

    async def resolve(
        self, tenant_id: UUID, itype: IntegrationType, provider: str | None = None
    ) -> Resolved:
        if itype is IntegrationType.PAYMENTS:
            raise NotConfigured(
                "the whatsapp role reads only WhatsApp and LLM credentials from the backend; "
                "payments are served by the backend role"
            )
        answer, stale = await self._answer(tenant_id, itype)
        own = _as_stored(answer.resolved)
        try:
            resolved = resolution.resolve(tenant_id, itype, own, self.platform, provider)
        except NotConfigured:
            theirs = answer.resolved
            if theirs is None or (provider is not None and theirs.provider != provider):
                raise
            resolved = theirs  # the backend's platform credential, as it answered it
        return replace(resolved, stale=True) if stale else resolved

    async def route(self, phone_number_id: str) -> Route:
        if phone_number_id == self.platform.whatsapp_phone_number_id:
            return Route(phone_number_id=phone_number_id, tenant_id=None)
        if phone_number_id in self._unknown:
            self.hits += 1
            raise _nobodys(phone_number_id)
        generation = self._unknown.generation
        try:
            route, _ = await self._cached(
                self._routes,
                phone_number_id,
                lambda: self._fetch_route(phone_number_id),
                what={"phone_number_id": phone_number_id},
            )
        except UnknownPhoneNumber:
            self._unknown.add(phone_number_id, generation)
            raise
        return route

    async def sender(self, phone_number_id: str) -> Resolved:
        """The WhatsApp credential that replies from ``phone_number_id``: a tenant's number
        only ever with that tenant's own credential (``resolution.resolve_sender``)."""
        route = await self.route(phone_number_id)
        if route.tenant_id is None:
            return resolution.resolve_sender(route, [], self.platform)
        answer, stale = await self._answer(route.tenant_id, IntegrationType.WHATSAPP)
        resolved = resolution.resolve_sender(route, _as_stored(answer.resolved), self.platform)
        return replace(resolved, stale=True) if stale else resolved

    def invalidate_tenant(self, tenant_id: UUID) -> None:
        self._answers.expire(lambda key, _: key[0] == tenant_id)

    def invalidate_number(self, phone_number_id: str) -> None:
        self._unknown.on_change(Change(phone_number_id=phone_number_id))
        route = self._routes.last(phone_number_id)
        self._routes.expire(lambda key, _: key == phone_number_id)
        if route is not None and route.tenant_id is not None:
            self.invalidate_tenant(route.tenant_id)

    def on_change(self, change: Change) -> None:
        """A change notification (``notify.Listener``): expire what it names;
        anything else (``EVERYTHING``, after a reconnection) expires everything."""
        self._unknown.on_change(change)
        if change.tenant_id is not None:
            self.invalidate_tenant(change.tenant_id)
            return
        if change.phone_number_id is not None:
            self.invalidate_number(change.phone_number_id)
            return
        self._answers.expire(lambda *_: True)
        self._routes.expire(lambda *_: True)

    # --- cache ------------------------------------------------------------------------------

    async def _answer(self, tenant_id: UUID, itype: IntegrationType) -> tuple[_Answer, bool]:
        return await self._cached(
            self._answers,
            (tenant_id, itype),
            lambda: self._fetch_answer(tenant_id, itype),
            what={"tenant_id": str(tenant_id), "integration": itype.value},
        )

    async def _cached(
        self,
        store: LastGood[K, V],
        key: K,
        fetch: Callable[[], Awaitable[V]],
        *,
        what: dict[str, str],
    ) -> tuple[V, bool]:
        """(value, stale): the fresh value, else a new one from the backend, else the last
        good one when the backend is unreachable."""
        fresh = store.fresh(key)
        if fresh is not None:
            self.hits += 1
            return fresh, False
        self.misses += 1
        try:
            value: V = await self._inflight.run((id(store), key), fetch)
        except _Unreachable as exc:
            last = store.last(key)
            if last is None:
                raise CredentialsUnavailable(
                    f"the backend at {self.backend_url} (BACKEND_URL) cannot be reached "
                    f"({exc.reason}) and nothing is cached to serve meanwhile"
                ) from None
            if (id(store), key) not in self._stale_logged:
                self._stale_logged.add((id(store), key))
                log.warning("credentials.serving_stale", reason=exc.reason, **what)
            return last, True
        store.put(key, value)
        if self._stale_logged:
            self._stale_logged.discard((id(store), key))
        return value, False

    # --- the internal API -------------------------------------------------------------------

    async def _fetch_answer(self, tenant_id: UUID, itype: IntegrationType) -> _Answer:
        path = (
            whatsapp_path(tenant_id) if itype is IntegrationType.WHATSAPP else llm_path(tenant_id)
        )
        response = await self._get(path)
        if response.status_code == 404:
            raise TenantNotFound(f"no tenant {tenant_id}")
        if response.status_code == 409:
            return _Answer(None)
        body = self._decode(response, ResolvedCredential)
        if body.tenant_id not in (None, tenant_id) or body.integration != itype.value:
            raise _Unreachable("the backend answered for another tenant or integration")
        return _Answer(
            Resolved(
                tenant_id=tenant_id,
                integration_type=itype,
                provider=body.provider,
                secrets=Secrets(body.credentials),
                config=body.config,
                source=Source(body.source),
                is_verified=body.is_verified,
            )
        )

    async def _fetch_route(self, phone_number_id: str) -> Route:
        response = await self._get(resolve_tenant_path(quote(phone_number_id, safe="")))
        if response.status_code == 404:
            raise _nobodys(phone_number_id)
        body = self._decode(response, TenantRoute)
        return Route(phone_number_id=phone_number_id, tenant_id=body.tenant_id)

    async def _get(self, path: str) -> httpx.Response:
        url = self.backend_url + path
        self.requests += 1
        try:
            async with translate_transport_errors("backend"):
                response = await self.http.get(url).get(
                    url,
                    headers={"X-Internal-Key": self._key, "Accept": "application/json"},
                    timeout=self.timeout,
                )
        except RetryableProviderError as exc:
            raise _Unreachable(exc.message) from None
        status = response.status_code
        if status in (401, 403):
            raise ConfigurationError(
                f"the backend at {self.backend_url} refused this process's INTERNAL_API_KEY "
                f"(HTTP {status}): give both roles the same key"
            )
        if status >= 500 or status == 429:
            raise _Unreachable(f"HTTP {status}")
        if status not in (200, 404, 409):
            raise ProviderError(
                f"the backend answered HTTP {status} to {path.split('/integrations/')[0]}",
                provider="backend",
                status=status,
            )
        return response

    @staticmethod
    def _decode(response: httpx.Response, schema: type[V]) -> V:
        try:
            decoded: V = msgspec.json.decode(response.content, type=schema)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise _Unreachable(
                f"the backend answered HTTP {response.status_code} with an unexpected body"
            ) from None
        return decoded


def _as_stored(resolved: Resolved | None) -> list[Credential]:
    """The backend's answer as the tenant's stored credential (none unless it is the
    tenant's own), so ``domain.resolution`` applies the usual policy to it."""
    if resolved is None or resolved.source is not Source.TENANT or resolved.tenant_id is None:
        return []
    return [
        Credential(
            tenant_id=resolved.tenant_id,
            integration_type=resolved.integration_type,
            provider=resolved.provider,
            secrets=resolved.secrets,
            config=resolved.config,
            is_verified=resolved.is_verified,
        )
    ]


def _nobodys(phone_number_id: str) -> UnknownPhoneNumber:
    return UnknownPhoneNumber(
        f"WhatsApp phone number id {phone_number_id} belongs to no active tenant and is not "
        "the platform's"
    )
