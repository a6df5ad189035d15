"""Tenants come and go: the platform's sign-up (internal API) and the operator's CLI.

Every creation and deletion appends an ``AuditEntry`` naming who did it (``internal-api``,
``cli``); the audit log has no foreign key to tenants, so a deleted tenant's record stays.
"""

from __future__ import annotations

from uuid import UUID

from changarrito.domain.errors import ValidationFailed
from changarrito.domain.integration_views import Actor
from changarrito.domain.model import AuditEntry, Tenant
from changarrito.domain.ports import AuditLog, TenantStore

#: Longest tenant name (the internal API's schema says the same).
MAX_NAME = 200


class Tenants:
    """The tenant use cases over the store and the audit log."""

    def __init__(self, store: TenantStore, audit: AuditLog) -> None:
        self.store = store
        self.audit = audit

    async def create(self, name: str, actor: Actor) -> Tenant:
        """A new tenant named ``name`` (trimmed; ``ValidationFailed`` when blank or too long)."""
        name = name.strip()
        if not name or len(name) > MAX_NAME:
            raise ValidationFailed(
                f"A tenant name is 1 to {MAX_NAME} characters.",
                errors=[("name", f"must be 1 to {MAX_NAME} characters, not blank")],
            )
        tenant = await self.store.create_tenant(name)
        await self._record(tenant.id, "create", actor)
        return tenant

    async def list(self) -> list[Tenant]:
        return await self.store.list_tenants()

    async def get(self, tenant_id: UUID) -> Tenant:
        """The tenant, or ``TenantNotFound``."""
        return await self.store.get_tenant(tenant_id)

    async def delete(self, tenant_id: UUID, actor: Actor) -> None:
        """Deletes the tenant with its credentials and numbers (``TenantNotFound`` if none)."""
        await self.store.delete_tenant(tenant_id)
        await self._record(tenant_id, "delete", actor)

    async def _record(self, tenant_id: UUID, action: str, actor: Actor) -> None:
        await self.audit.record(
            AuditEntry(
                tenant_id=tenant_id,
                actor=actor.subject,
                integration="tenant",
                action=action,
                client_ip=actor.client_ip,
                user_agent=actor.user_agent,
            )
        )
