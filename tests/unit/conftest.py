"""In-memory fakes of the domain's ports, handed to tests as fixtures.

``tests/`` is not a package, so the fakes live here rather than in an importable module. They
satisfy the protocols in ``changarrito.domain.ports`` structurally (no inheritance) and count
their calls, so tests can tell a cache hit from a store read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from uuid import UUID

import pytest

from changarrito.domain.errors import Conflict
from changarrito.domain.model import Credential, IntegrationType, Resolved, Route, WhatsAppNumber


class FakeCredentialStore:
    """A credential store in a list.

    ``leaky=True`` makes ``credentials_for`` hand over every tenant's rows, like a query that
    forgot its ``WHERE tenant_id``: the domain must still only ever serve the asked-for tenant.
    """

    def __init__(
        self,
        credentials: list[Credential] | None = None,
        numbers: list[WhatsAppNumber] | None = None,
        *,
        leaky: bool = False,
    ) -> None:
        self.credentials: list[Credential] = list(credentials or [])
        self.numbers: dict[str, WhatsAppNumber] = {n.phone_number_id: n for n in numbers or []}
        self.leaky = leaky
        self.calls: Counter[str] = Counter()

    async def credentials_for(
        self, tenant_id: UUID, integration_type: IntegrationType | None = None
    ) -> list[Credential]:
        self.calls["credentials_for"] += 1
        return [
            c
            for c in self.credentials
            if (self.leaky or c.tenant_id == tenant_id)
            and (integration_type is None or c.integration_type == integration_type)
        ]

    async def save_credential(
        self, credential: Credential, number: WhatsAppNumber | None = None
    ) -> Credential:
        self.calls["save_credential"] += 1
        if number is not None:
            owner = self.numbers.get(number.phone_number_id)
            if owner is not None and owner.tenant_id != credential.tenant_id:
                raise Conflict(f"number {number.phone_number_id} belongs to another tenant")
            self.numbers[number.phone_number_id] = replace(number, tenant_id=credential.tenant_id)
        same = (credential.tenant_id, credential.integration_type, credential.provider)
        self.credentials = [
            c for c in self.credentials if (c.tenant_id, c.integration_type, c.provider) != same
        ]
        self.credentials.append(credential)
        return credential

    async def delete_credentials(
        self, tenant_id: UUID, integration_type: IntegrationType, provider: str | None = None
    ) -> int:
        self.calls["delete_credentials"] += 1

        def doomed(c: Credential) -> bool:
            return (
                c.tenant_id == tenant_id
                and c.integration_type == integration_type
                and (provider is None or c.provider == provider)
            )

        kept = [c for c in self.credentials if not doomed(c)]
        deleted = len(self.credentials) - len(kept)
        self.credentials = kept
        if integration_type is IntegrationType.WHATSAPP:
            self.numbers = {k: n for k, n in self.numbers.items() if n.tenant_id != tenant_id}
        return deleted

    async def set_verified(
        self,
        tenant_id: UUID,
        integration_type: IntegrationType,
        provider: str,
        verified: bool,
        error: str | None = None,
    ) -> None:
        self.calls["set_verified"] += 1
        self.credentials = [
            replace(c, is_verified=verified, verification_error=error)
            if (c.tenant_id, c.integration_type, c.provider)
            == (tenant_id, integration_type, provider)
            else c
            for c in self.credentials
        ]

    async def number_owner(self, phone_number_id: str) -> WhatsAppNumber | None:
        self.calls["number_owner"] += 1
        return self.numbers.get(phone_number_id)

    async def number_with_credentials(
        self, phone_number_id: str
    ) -> tuple[WhatsAppNumber | None, list[Credential]]:
        self.calls["number_with_credentials"] += 1
        owner = self.numbers.get(phone_number_id)
        if owner is None:
            return None, []
        return owner, [
            c
            for c in self.credentials
            if c.tenant_id == owner.tenant_id and c.integration_type == IntegrationType.WHATSAPP
        ]

    async def numbers_for(self, tenant_id: UUID) -> list[WhatsAppNumber]:
        self.calls["numbers_for"] += 1
        return [n for n in self.numbers.values() if n.tenant_id == tenant_id]


class FakeResolutionCache:
    """A resolution cache in two dicts that never expires and refuses cross-tenant entries.

    ``put_resolved`` asserts that the value was resolved for the tenant it is filed under, so
    any code path that would cache one tenant's answer under another's key fails loudly.
    """

    def __init__(self) -> None:
        self.resolved: dict[tuple[UUID, IntegrationType, str | None], Resolved] = {}
        self.routes: dict[str, Route] = {}
        self.senders: dict[str, Resolved] = {}
        self.calls: Counter[str] = Counter()

    def get_resolved(
        self, tenant_id: UUID, integration_type: IntegrationType, provider: str | None
    ) -> Resolved | None:
        self.calls["get_resolved"] += 1
        return self.resolved.get((tenant_id, integration_type, provider))

    def put_resolved(
        self,
        tenant_id: UUID,
        integration_type: IntegrationType,
        provider: str | None,
        value: Resolved,
    ) -> None:
        self.calls["put_resolved"] += 1
        assert value.tenant_id == tenant_id, (
            f"caching tenant {value.tenant_id}'s credential under tenant {tenant_id}"
        )
        assert value.integration_type == integration_type
        self.resolved[(tenant_id, integration_type, provider)] = value

    def get_route(self, phone_number_id: str) -> Route | None:
        self.calls["get_route"] += 1
        return self.routes.get(phone_number_id)

    def put_route(self, route: Route) -> None:
        self.calls["put_route"] += 1
        self.routes[route.phone_number_id] = route

    def get_sender(self, phone_number_id: str) -> Resolved | None:
        self.calls["get_sender"] += 1
        return self.senders.get(phone_number_id)

    def put_sender(self, phone_number_id: str, value: Resolved) -> None:
        self.calls["put_sender"] += 1
        assert value.config.get("phoneNumberId") == phone_number_id
        self.senders[phone_number_id] = value

    def invalidate_tenant(self, tenant_id: UUID) -> None:
        self.calls["invalidate_tenant"] += 1
        self.resolved = {k: v for k, v in self.resolved.items() if k[0] != tenant_id}
        self.senders = {k: v for k, v in self.senders.items() if v.tenant_id != tenant_id}

    def invalidate_number(self, phone_number_id: str) -> None:
        self.calls["invalidate_number"] += 1
        route = self.routes.pop(phone_number_id, None)
        sender = self.senders.pop(phone_number_id, None)
        for owner in {route and route.tenant_id, sender and sender.tenant_id}:
            if isinstance(owner, UUID):  # as the TTL cache does
                self.invalidate_tenant(owner)

    def clear(self) -> None:
        self.calls["clear"] += 1
        self.resolved.clear()
        self.routes.clear()
        self.senders.clear()


@pytest.fixture(scope="session")
def make_store() -> type[FakeCredentialStore]:
    """The fake store class (session-scoped so hypothesis tests can use it)."""
    return FakeCredentialStore


@pytest.fixture(scope="session")
def make_cache() -> type[FakeResolutionCache]:
    """The fake cache class (session-scoped so hypothesis tests can use it)."""
    return FakeResolutionCache
