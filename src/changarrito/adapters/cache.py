"""The resolution cache: plain dicts with monotonic expiry, scoped by tenant.

A hit is two dictionary lookups and a clock read (no locks, no cachetools bookkeeping): the
WhatsApp hot path resolves a sender on every message. Entries live under their tenant's id,
so invalidating a tenant is one ``pop`` and an entry can only be stored under the tenant it
was resolved for (anything else is refused). A tenant's entries expire together, at most
``ttl`` seconds after the first was stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar
from uuid import UUID

from changarrito.domain.changes import Change
from changarrito.domain.model import IntegrationType, Resolved, Route

_Entries = dict[tuple[IntegrationType, str | None], Resolved]
K = TypeVar("K")
V = TypeVar("V")


class TTLResolutionCache:
    """Implements the domain's ``ResolutionCache``."""

    def __init__(
        self,
        ttl: float = 300.0,
        maxsize: int = 200_000,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.maxsize = maxsize
        self._clock = clock
        self._tenants: dict[UUID, tuple[float, _Entries]] = {}
        self._routes: dict[str, tuple[float, Route]] = {}
        # WhatsApp senders by receiving number: the webhook's hot path is one lookup. Each
        # is also indexed under its tenant, so invalidating the tenant forgets it.
        self._senders: dict[str, tuple[float, Resolved]] = {}
        self._senders_of: dict[UUID, set[str]] = {}
        self.hits = 0
        self.misses = 0

    def get_resolved(
        self, tenant_id: UUID, integration_type: IntegrationType, provider: str | None
    ) -> Resolved | None:
        item = self._tenants.get(tenant_id)
        if item is not None and item[0] > self._clock():
            value = item[1].get((integration_type, provider))
            if value is not None:
                self.hits += 1
                return value
        self.misses += 1
        return None

    def put_resolved(
        self,
        tenant_id: UUID,
        integration_type: IntegrationType,
        provider: str | None,
        value: Resolved,
    ) -> None:
        if value.tenant_id != tenant_id:
            raise ValueError("refusing to cache a resolution under another tenant's key")
        now = self._clock()
        item = self._tenants.get(tenant_id)
        if item is None or item[0] <= now:
            item = (now + self.ttl, {})
            self._store(self._tenants, tenant_id, item, now)
        item[1][(integration_type, provider)] = value

    def get_route(self, phone_number_id: str) -> Route | None:
        item = self._routes.get(phone_number_id)
        if item is not None and item[0] > self._clock():
            self.hits += 1
            return item[1]
        self.misses += 1
        return None

    def put_route(self, route: Route) -> None:
        now = self._clock()
        self._store(self._routes, route.phone_number_id, (now + self.ttl, route), now)

    def get_sender(self, phone_number_id: str) -> Resolved | None:
        item = self._senders.get(phone_number_id)
        if item is not None and item[0] > self._clock():
            self.hits += 1
            return item[1]
        self.misses += 1
        return None

    def put_sender(self, phone_number_id: str, value: Resolved) -> None:
        if value.tenant_id is None:
            return  # the platform's own sender is built without any I/O: nothing to save
        now = self._clock()
        self._store(self._senders, phone_number_id, (now + self.ttl, value), now)
        self._senders_of.setdefault(value.tenant_id, set()).add(phone_number_id)

    def invalidate_tenant(self, tenant_id: UUID) -> None:
        self._tenants.pop(tenant_id, None)
        for number in self._senders_of.pop(tenant_id, ()):
            self._senders.pop(number, None)

    def invalidate_number(self, phone_number_id: str) -> None:
        item = self._routes.pop(phone_number_id, None)
        sender = self._senders.pop(phone_number_id, None)
        for owner in {item and item[1].tenant_id, sender and sender[1].tenant_id}:
            if isinstance(owner, UUID):
                self.invalidate_tenant(owner)

    def clear(self) -> None:
        self._tenants.clear()
        self._routes.clear()
        self._senders.clear()
        self._senders_of.clear()

    def on_change(self, change: Change) -> None:
        """Applies a change notification from another process (see the Postgres listener)."""
        if change.tenant_id is not None:
            self.invalidate_tenant(change.tenant_id)
        elif change.phone_number_id is not None:
            self.invalidate_number(change.phone_number_id)
        else:
            self.clear()

    def _store(
        self, table: dict[K, tuple[float, V]], key: K, item: tuple[float, V], now: float
    ) -> None:
        table[key] = item
        if len(table) > self.maxsize:
            # Drop what has expired; if still full, the oldest insertions (dicts keep order).
            for stale in [k for k, (expiry, _) in table.items() if expiry <= now]:
                del table[stale]
            while len(table) > self.maxsize:
                del table[next(iter(table))]


class UnknownNumbers:
    """WhatsApp numbers the store found nobody owning: a negative cache, so that a body for a
    number no tenant has claimed (a shop that left but whose number still points here) costs
    no database lookup.

    An entry never outlives ``ttl`` seconds (one: a claim confirmed in another process routes
    within a second even when its change notification was lost while the listener
    reconnected), and a number's change notification forgets it at once (``on_change``, fed
    by the Postgres listener). At most ``maxsize`` numbers are kept, the oldest dropped
    first, so endless random numbers cost bounded memory. Entries expire in insertion order
    (one ``ttl`` for all), so the expired ones are always at the front of the dict.

    A lookup that started before a change arrived must not store its (maybe stale) answer:
    the store reads ``generation`` before its query and hands it to ``add``, which drops the
    entry when any change arrived in between.
    """

    def __init__(
        self,
        ttl: float = 1.0,
        maxsize: int = 10_000,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.maxsize = maxsize
        self._clock = clock
        self._expiry: dict[str, float] = {}
        #: Bumped by every change notification (see ``add``).
        self.generation = 0

    def __len__(self) -> int:
        return len(self._expiry)

    def __contains__(self, phone_number_id: str) -> bool:
        expiry = self._expiry.get(phone_number_id)
        if expiry is None:
            return False
        if expiry > self._clock():
            return True
        del self._expiry[phone_number_id]
        return False

    def add(self, phone_number_id: str, generation: int) -> None:
        """Remembers that nobody owns the number, unless a change arrived since the lookup
        that found it began (``generation`` as read then)."""
        if generation != self.generation:
            return
        table = self._expiry
        now = self._clock()
        table.pop(phone_number_id, None)  # re-inserted at the back: insertion order is expiry
        table[phone_number_id] = now + self.ttl
        while table:
            oldest = next(iter(table))
            if len(table) <= self.maxsize and table[oldest] > now:
                break
            del table[oldest]

    def on_change(self, change: Change) -> None:
        """A number's change (a claim names its number) forgets it; a tenant's alone claims
        nothing; anything else (a reconnected listener) forgets everything."""
        self.generation += 1
        if change.phone_number_id is not None:
            self._expiry.pop(change.phone_number_id, None)
        elif change.tenant_id is None:
            self._expiry.clear()
