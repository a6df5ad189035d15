"""Use cases over the ports: cached credential resolution and its invalidation."""

from __future__ import annotations

from uuid import UUID

from changarrito.domain import resolution
from changarrito.domain.model import (
    Credential,
    IntegrationType,
    PlatformDefaults,
    Resolved,
    Route,
)
from changarrito.domain.ports import CredentialStore, ResolutionCache


class CredentialResolver:
    """Resolves credentials for tenants and WhatsApp numbers through a cache.

    A hit costs a dictionary lookup: no database, no decryption. A miss reads the store once
    and caches the answer under the tenant it was resolved for. Writes call ``invalidate_*``
    in this process; other processes are told through the store's change notifications.
    """

    def __init__(
        self, store: CredentialStore, cache: ResolutionCache, platform: PlatformDefaults
    ) -> None:
        self.store = store
        self.cache = cache
        self.platform = platform

    async def resolve(
        self, tenant_id: UUID, itype: IntegrationType, provider: str | None = None
    ) -> Resolved:
        cached = self.cache.get_resolved(tenant_id, itype, provider)
        if cached is not None:
            return cached
        stored = await self.store.credentials_for(tenant_id, itype)
        resolved = resolution.resolve(tenant_id, itype, stored, self.platform, provider)
        self.cache.put_resolved(tenant_id, itype, provider, resolved)
        return resolved

    async def route(self, phone_number_id: str) -> Route:
        cached = self.cache.get_route(phone_number_id)
        if cached is not None:
            return cached
        if phone_number_id == self.platform.whatsapp_phone_number_id:
            owner = None
        else:
            owner = await self.store.number_owner(phone_number_id)
        route = resolution.route_number(phone_number_id, owner, self.platform)
        self.cache.put_route(route)
        return route

    async def sender(self, phone_number_id: str) -> Resolved:
        """The WhatsApp credential that replies from ``phone_number_id``.

        A hit is two cache lookups; a miss on both the route and the sender is one store
        round trip (the number's owner together with its WhatsApp credentials).
        """
        cached = self.cache.get_sender(phone_number_id)
        if cached is not None:
            return cached
        route = self.cache.get_route(phone_number_id)
        stored: list[Credential] | None = None
        if route is None:
            if phone_number_id == self.platform.whatsapp_phone_number_id:
                owner = None
            else:
                owner, stored = await self.store.number_with_credentials(phone_number_id)
            route = resolution.route_number(phone_number_id, owner, self.platform)
            self.cache.put_route(route)
        key = route.tenant_id
        if key is None:
            return resolution.resolve_sender(route, [], self.platform)
        if stored is None:
            stored = await self.store.credentials_for(key, IntegrationType.WHATSAPP)
        resolved = resolution.resolve_sender(route, stored, self.platform)
        self.cache.put_sender(phone_number_id, resolved)
        return resolved

    def invalidate_tenant(self, tenant_id: UUID) -> None:
        self.cache.invalidate_tenant(tenant_id)

    def invalidate_number(self, phone_number_id: str) -> None:
        self.cache.invalidate_number(phone_number_id)
