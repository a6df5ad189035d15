"""The templates' schedule (``entrypoints/template_schedule.py``): every owner synced through
the use case, spread over the interval, a failure logged and skipped; with a fake clock."""

from __future__ import annotations

from uuid import UUID, uuid4

import structlog

from changarrito.domain.errors import ProviderAuthError
from changarrito.domain.templates import SyncResult
from changarrito.entrypoints.template_schedule import run_schedule, sync_round


class FakeCatalog:
    def __init__(self, owners: list[UUID | None], failing: set[UUID | None] | None = None) -> None:
        self._owners = owners
        self.failing = failing or set()
        self.synced: list[UUID | None] = []
        #: Owners another worker synced moments ago; the freshness each check asked for.
        self.fresh: set[UUID | None] = set()
        self.fresh_for: list[float] = []

    async def owners(self) -> list[UUID | None]:
        return list(self._owners)

    async def sync(self, owner: UUID | None) -> SyncResult:
        self.synced.append(owner)
        if owner in self.failing:
            raise ProviderAuthError("the token expired", provider="whatsapp")
        return SyncResult("1", 2, 0)

    async def sync_due(self, owner: UUID | None, fresh_for: float) -> SyncResult | None:
        self.fresh_for.append(fresh_for)
        if owner in self.fresh:
            return None
        return await self.sync(owner)


class Clock:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


async def test_a_round_syncs_every_owner_spread_evenly_over_the_interval() -> None:
    owners: list[UUID | None] = [uuid4(), uuid4(), uuid4(), None]
    catalog, clock = FakeCatalog(owners), Clock()

    with structlog.testing.capture_logs() as logs:
        done = await sync_round(catalog, 3600.0, sleep=clock.sleep)  # type: ignore[arg-type]

    assert done == 4 and catalog.synced == owners
    assert clock.slept == [900.0] * 4
    progress = [e for e in logs if e["event"] == "templates.sync_progress"]
    assert {k: progress[-1][k] for k in ("done", "skipped", "failed", "total")} == {
        "done": 4,
        "skipped": 0,
        "failed": 0,
        "total": 4,
    }


async def test_a_failing_owner_is_logged_and_the_others_still_sync() -> None:
    bad = uuid4()
    owners: list[UUID | None] = [bad, uuid4()]
    catalog, clock = FakeCatalog(owners, {bad}), Clock()

    with structlog.testing.capture_logs() as logs:
        done = await sync_round(catalog, 60.0, sleep=clock.sleep)  # type: ignore[arg-type]

    assert done == 1 and catalog.synced == owners
    failed = [e for e in logs if e["event"] == "templates.sync_failed"]
    assert [e["owner"] for e in failed] == [str(bad)]


async def test_rounds_start_at_once_and_repeat_every_interval_even_with_no_owners() -> None:
    owner = uuid4()
    catalog, clock = FakeCatalog([owner]), Clock()
    await run_schedule(catalog, 6, sleep=clock.sleep, rounds=2)  # type: ignore[arg-type]
    assert catalog.synced == [owner, owner] and clock.slept == [6 * 3600.0] * 2

    empty, idle = FakeCatalog([]), Clock()
    await run_schedule(empty, 1, sleep=idle.sleep, rounds=1)  # type: ignore[arg-type]
    assert idle.slept == [3600.0]


async def test_an_owner_another_worker_synced_within_half_an_interval_is_skipped() -> None:
    first, recent = uuid4(), uuid4()
    catalog, clock = FakeCatalog([first, recent]), Clock()
    catalog.fresh = {recent}

    with structlog.testing.capture_logs() as logs:
        done = await sync_round(catalog, 3600.0, sleep=clock.sleep)  # type: ignore[arg-type]

    assert done == 1 and catalog.synced == [first]
    assert catalog.fresh_for == [1800.0, 1800.0]
    progress = [e for e in logs if e["event"] == "templates.sync_progress"]
    assert (progress[-1]["done"], progress[-1]["skipped"]) == (1, 1)
