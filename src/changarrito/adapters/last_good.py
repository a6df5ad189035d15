"""A bounded cache whose values are fresh for a while and then kept as the last good ones.

The ``whatsapp`` role's credential client (``adapters/remote.py``) serves fresh answers from
it, and the last good answer while the backend cannot be reached.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

#: Entries kept at most (each is a few hundred bytes); the oldest go first.
MAX_ENTRIES = 100_000

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    expires_at: float


class LastGood(Generic[K, V]):
    """Values that are fresh for ``ttl`` seconds and kept afterwards as the last good one."""

    def __init__(self, ttl: float, clock: Callable[[], float], maxsize: int = MAX_ENTRIES):
        self.ttl = ttl
        self.clock = clock
        self.maxsize = maxsize
        self._entries: dict[K, _Entry[V]] = {}

    def fresh(self, key: K) -> V | None:
        entry = self._entries.get(key)
        return entry.value if entry is not None and entry.expires_at > self.clock() else None

    def last(self, key: K) -> V | None:
        entry = self._entries.get(key)
        return entry.value if entry is not None else None

    def put(self, key: K, value: V) -> None:
        self._entries.pop(key, None)
        while len(self._entries) >= self.maxsize:
            del self._entries[next(iter(self._entries))]  # dicts keep insertion order
        self._entries[key] = _Entry(value, self.clock() + self.ttl)

    def expire(self, matches: Callable[[K, V], bool]) -> None:
        for key, entry in self._entries.items():
            if matches(key, entry.value):
                entry.expires_at = float("-inf")

    def items(self) -> list[tuple[K, V]]:
        return [(k, e.value) for k, e in self._entries.items()]
