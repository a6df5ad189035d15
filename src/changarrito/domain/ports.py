"""The ports: what the domain needs from the outside world, as structural protocols.

Adapters implement these without inheriting from them; tests pass fakes the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol
from uuid import UUID

from changarrito.domain.model import (
    AuditEntry,
    Credential,
    IntegrationType,
    Resolved,
    Route,
    Tenant,
    WhatsAppNumber,
)


class Cipher(Protocol):
    """Encrypts credential secrets; the ``context`` binds a ciphertext to its owner row.

    The envelope is a JSON-able mapping stored as-is in ``credentials`` (JSONB). It names the
    algorithm and key id, so rows written under an old key stay readable during a rotation.
    """

    name: str

    async def encrypt(self, plaintext: bytes, context: bytes) -> dict[str, Any]: ...

    async def decrypt(self, envelope: Mapping[str, Any], context: bytes) -> bytes: ...

    def is_current(self, envelope: Mapping[str, Any]) -> bool:
        """True when the envelope is under this cipher's primary key (nothing to rotate)."""
        ...


class TenantStore(Protocol):
    async def create_tenant(self, name: str) -> Tenant: ...

    async def get_tenant(self, tenant_id: UUID) -> Tenant:
        """The tenant, or ``TenantNotFound``."""
        ...

    async def list_tenants(self) -> list[Tenant]: ...

    async def delete_tenant(self, tenant_id: UUID) -> None:
        """Deletes the tenant with its credentials and numbers, or ``TenantNotFound``."""
        ...


class CredentialStore(Protocol):
    async def credentials_for(
        self, tenant_id: UUID, integration_type: IntegrationType | None = None
    ) -> list[Credential]:
        """The tenant's stored credentials (active or not), decrypted."""
        ...

    async def save_credential(
        self, credential: Credential, number: WhatsAppNumber | None = None
    ) -> Credential:
        """Inserts or replaces the (tenant, type, provider) credential, and claims ``number``
        for the tenant in the same transaction (``Conflict`` if another tenant owns it)."""
        ...

    async def delete_credentials(
        self, tenant_id: UUID, integration_type: IntegrationType, provider: str | None = None
    ) -> int:
        """Deletes credentials (and, for WhatsApp, the tenant's numbers); returns how many."""
        ...

    async def set_verified(
        self,
        tenant_id: UUID,
        integration_type: IntegrationType,
        provider: str,
        verified: bool,
        error: str | None = None,
    ) -> None: ...

    async def number_owner(self, phone_number_id: str) -> WhatsAppNumber | None: ...

    async def numbers_for(self, tenant_id: UUID) -> list[WhatsAppNumber]: ...


class ResolutionCache(Protocol):
    """A short-lived cache of resolutions, scoped by tenant, invalidated on change."""

    def get_resolved(
        self, tenant_id: UUID, integration_type: IntegrationType, provider: str | None
    ) -> Resolved | None: ...

    def put_resolved(
        self,
        tenant_id: UUID,
        integration_type: IntegrationType,
        provider: str | None,
        value: Resolved,
    ) -> None: ...

    def get_route(self, phone_number_id: str) -> Route | None: ...

    def put_route(self, route: Route) -> None: ...

    def invalidate_tenant(self, tenant_id: UUID) -> None: ...

    def invalidate_number(self, phone_number_id: str) -> None: ...

    def clear(self) -> None: ...


class AuditLog(Protocol):
    """An append-only record of changes to tenants' integrations."""

    async def record(self, entry: AuditEntry) -> None: ...

    async def entries_for(self, tenant_id: UUID, limit: int = 100) -> list[AuditEntry]:
        """The tenant's most recent entries, newest first."""
        ...
