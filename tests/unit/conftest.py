"""In-memory fakes of the domain's ports, handed to tests as fixtures.

The store is ``fakes.memory.MemoryStore`` (the one fake of the Postgres store, checked against
it by ``tests/integration/test_fakes_match_postgres.py``); the cache fake lives here. They
satisfy the protocols in ``changarrito.domain.ports`` structurally (no inheritance) and count
their calls, so tests can tell a cache hit from a store read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import partial
from uuid import UUID

import pytest

from changarrito.domain.model import IntegrationType, Resolved, Route
from fakes.memory import MemoryStore


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
def make_store() -> Callable[..., MemoryStore]:
    """The fake store's class, taking every tenant id as existing (these tests never create
    tenants); session-scoped so hypothesis tests can use it."""
    return partial(MemoryStore, any_tenant=True)


@pytest.fixture(scope="session")
def make_cache() -> type[FakeResolutionCache]:
    """The fake cache class (session-scoped so hypothesis tests can use it)."""
    return FakeResolutionCache
