"""A ``Resolver`` that reports every credential it serves to the process's metrics."""

from __future__ import annotations

from uuid import UUID

from changarrito.adapters.metrics import Metrics
from changarrito.domain.model import IntegrationType, Resolved, Route
from changarrito.domain.ports import Resolver


class MeteredResolver:
    """A ``Resolver`` that counts every credential it serves by source (tenant/platform);
    everything else is the wrapped resolver's."""

    def __init__(self, inner: Resolver, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics
        self.platform = inner.platform

    async def resolve(
        self, tenant_id: UUID, itype: IntegrationType, provider: str | None = None
    ) -> Resolved:
        resolved = await self.inner.resolve(tenant_id, itype, provider)
        self.metrics.credential(resolved)
        return resolved

    async def route(self, phone_number_id: str) -> Route:
        return await self.inner.route(phone_number_id)

    async def sender(self, phone_number_id: str) -> Resolved:
        resolved = await self.inner.sender(phone_number_id)
        self.metrics.credential(resolved)
        return resolved

    def invalidate_tenant(self, tenant_id: UUID) -> None:
        self.inner.invalidate_tenant(tenant_id)

    def invalidate_number(self, phone_number_id: str) -> None:
        self.inner.invalidate_number(phone_number_id)
