"""Delivering the events of ``events.py`` to the platform's backend.

Its ports are ``EventStore`` and ``EventPoster`` (``domain/ports.py``; the Postgres outbox
``adapters/postgres/events.py`` and the HTTP poster ``adapters/events_http.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from changarrito.domain.events import (
    LEASE_SECONDS,
    MAX_ATTEMPTS,
    MAX_ERROR,
    RETRY_BASE,
    Delivery,
    Event,
    Receiver,
    after_failure,
    body_of,
    headers_for,
)
from changarrito.domain.model import utcnow
from changarrito.domain.ports import EventPoster, EventStore


class EventDelivery:
    """Posts the due events to the receiver (see the module)."""

    def __init__(
        self,
        store: EventStore,
        poster: EventPoster,
        receiver: Receiver,
        *,
        max_attempts: int = MAX_ATTEMPTS,
        retry_base: float = RETRY_BASE,
        lease: float = LEASE_SECONDS,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.poster = poster
        self.receiver = receiver
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.lease = lease
        self.clock = clock

    async def deliver_due(self, worker: str, limit: int = 50) -> list[Delivery]:
        """One round: the due events (at most one per ordering key, the oldest), posted at
        once (their keys differ, so no key's order is at stake); what became of each."""
        claimed = await self.store.claim_events(worker, limit, self.lease)
        return list(await asyncio.gather(*(self.deliver(event) for event in claimed)))

    async def deliver(self, event: Event) -> Delivery:
        body = body_of(event)
        headers = headers_for(self.receiver, event, body, self.clock().timestamp())
        posted = await self.poster.post(self.receiver.url, body, headers)
        if posted.ok:
            await self.store.event_delivered(event.id, posted.status)
            return Delivery(event, "delivered", posted)
        done = after_failure(event, posted, max_attempts=self.max_attempts, base=self.retry_base)
        error = (posted.error or f"the receiver answered {posted.status}")[:MAX_ERROR]
        await self.store.event_failed(event.id, done.delay, error, posted.status)
        return done
