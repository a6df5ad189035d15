"""The workers' claiming loop over a fake queue and pipeline: every message answered once,
each claim for the slots that are free."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from changarrito.domain.pipeline import Outcome
from changarrito.domain.queued import QueuedMessage
from changarrito.entrypoints.workers import Workers
from changarrito.settings import WorkerSettings


def queued(n: int) -> QueuedMessage:
    sent = datetime(2026, 5, 1, tzinfo=UTC)
    return QueuedMessage(n, f"wamid.{n}", "1065", None, "text", "hola", sent, 1)


@dataclass
class FakeQueue:
    waiting: list[QueuedMessage]
    limits: list[int] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)

    async def claim(
        self, worker: str, limit: int = 1, *, one_per_conversation: bool = False
    ) -> list[QueuedMessage]:
        self.limits.append(limit)
        taken, self.waiting = self.waiting[:limit], self.waiting[limit:]
        return taken

    async def finish(self, worker: str, message_id: int, state: str, error: str | None) -> bool:
        self.finished.append(message_id)
        return True

    async def extend(self, worker: str, ids: list[int]) -> set[int]:
        return set(ids)


class FakePipeline:
    def __init__(self) -> None:
        self.rng = random.Random(11)

    async def handle(self, message: QueuedMessage) -> Outcome:
        await asyncio.sleep(self.rng.uniform(0.001, 0.01))
        return Outcome("answered")


async def run_until_drained(queue: FakeQueue, concurrency: int) -> None:
    settings = WorkerSettings(concurrency=concurrency, poll=0.01, grace=5.0)
    service: Any = SimpleNamespace(
        storage=SimpleNamespace(queue=queue),
        settings=None,
        pipeline=FakePipeline(),
        listener=None,
        templates=None,
        notices=None,
        events=None,
    )
    workers = Workers(service, settings)
    running = asyncio.create_task(workers.run())
    total = len(queue.waiting)
    async with asyncio.timeout(20):
        while len(queue.finished) < total:
            await asyncio.sleep(0.01)
    workers.stop()
    await running


async def test_every_message_is_answered_once_by_claims_for_the_free_slots() -> None:
    queue = FakeQueue([queued(n) for n in range(400)])

    await run_until_drained(queue, concurrency=16)

    assert sorted(queue.finished) == list(range(400))
    assert queue.limits[0] == 16 and max(queue.limits) == 16 and min(queue.limits) >= 1


async def test_a_single_slot_claims_as_soon_as_it_is_free() -> None:
    queue = FakeQueue([queued(n) for n in range(20)])

    await run_until_drained(queue, concurrency=1)

    assert queue.finished == list(range(20))
    assert set(queue.limits) == {1}
