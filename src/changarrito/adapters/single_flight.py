"""Concurrent calls for one key share the one in flight (a thundering herd costs one call).

The store's uncached number lookup and the ``whatsapp`` role's backend requests both use it:
the bodies or messages that arrive while the first lookup of a key is in flight wait for its
answer instead of each sending their own.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """``run(key, call)``: ``call()``'s result, shared by every caller of ``key`` while it
    runs. A caller that is cancelled leaves the call running for the others."""

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        """Calls in flight."""
        return len(self._running)

    async def run(self, key: K, call: Callable[[], Awaitable[V]]) -> V:
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(call())
            self._running[key] = running
            running.add_done_callback(functools.partial(self._done, key))
        return await asyncio.shield(running)

    def _done(self, key: K, call: asyncio.Future[V]) -> None:
        if self._running.get(key) is call:
            del self._running[key]
        if not call.cancelled():
            call.exception()  # retrieved: every caller may have gone (cancelled) meanwhile
