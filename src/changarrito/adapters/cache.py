"""The resolution cache: cachetools TTL caches scoped by tenant, invalidated on change."""

from __future__ import annotations

from uuid import UUID

from cachetools import TTLCache

from changarrito.domain.model import IntegrationType, Resolved, Route

_Entries = dict[tuple[IntegrationType, str | None], Resolved]


class TTLResolutionCache:
    """Implements the domain's ``ResolutionCache``.

    Entries live under their tenant's id, so invalidating a tenant is one ``pop`` and an entry
    can only be stored under the tenant it was resolved for (anything else is refused).
    A tenant's entries expire together, at most ``ttl`` seconds after the first was stored.
    """

    def __init__(self, ttl: float = 300.0, maxsize: int = 200_000) -> None:
        self._tenants: TTLCache[UUID, _Entries] = TTLCache(maxsize=maxsize, ttl=ttl)
        self._routes: TTLCache[str, Route] = TTLCache(maxsize=maxsize, ttl=ttl)
        self.hits = 0
        self.misses = 0

    def get_resolved(
        self, tenant_id: UUID, integration_type: IntegrationType, provider: str | None
    ) -> Resolved | None:
        entries = self._tenants.get(tenant_id)
        value = entries.get((integration_type, provider)) if entries is not None else None
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def put_resolved(
        self,
        tenant_id: UUID,
        integration_type: IntegrationType,
        provider: str | None,
        value: Resolved,
    ) -> None:
        if value.tenant_id != tenant_id:
            raise ValueError("refusing to cache a resolution under another tenant's key")
        entries = self._tenants.get(tenant_id)
        if entries is None:
            entries = self._tenants[tenant_id] = {}
        entries[(integration_type, provider)] = value

    def get_route(self, phone_number_id: str) -> Route | None:
        route = self._routes.get(phone_number_id)
        if route is None:
            self.misses += 1
        else:
            self.hits += 1
        return route

    def put_route(self, route: Route) -> None:
        self._routes[route.phone_number_id] = route

    def invalidate_tenant(self, tenant_id: UUID) -> None:
        self._tenants.pop(tenant_id, None)

    def invalidate_number(self, phone_number_id: str) -> None:
        route = self._routes.pop(phone_number_id, None)
        if route is not None and route.tenant_id is not None:
            self._tenants.pop(route.tenant_id, None)

    def clear(self) -> None:
        self._tenants.clear()
        self._routes.clear()

    def on_change(self, kind: str, value: str) -> None:
        """Applies a change notification from another process (see the Postgres listener)."""
        if kind == "tenant":
            try:
                self.invalidate_tenant(UUID(value))
            except ValueError:
                self.clear()
        elif kind == "number":
            self.invalidate_number(value)
        else:
            self.clear()
