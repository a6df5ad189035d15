"""Concurrent calls for one key share the one in flight (``adapters/single_flight.py``)."""

from __future__ import annotations

import asyncio

import pytest

from changarrito.adapters.single_flight import SingleFlight


async def test_callers_of_one_key_share_one_call_and_the_next_caller_starts_a_new_one() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    calls = 0
    release = asyncio.Event()

    async def lookup() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return calls

    waiting = [asyncio.create_task(flight.run("n", lookup)) for _ in range(5)]
    other = asyncio.create_task(flight.run("m", lookup))
    await asyncio.sleep(0)
    release.set()

    assert await asyncio.gather(*waiting) == [1] * 5
    assert await other == 2
    assert len(flight) == 0
    assert await flight.run("n", lookup) == 3


async def test_a_cancelled_caller_leaves_the_call_to_the_others_and_errors_reach_all() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    release = asyncio.Event()

    async def failing() -> int:
        await release.wait()
        raise LookupError("down")

    first, second = (asyncio.create_task(flight.run("n", failing)) for _ in range(2))
    await asyncio.sleep(0)
    first.cancel()
    release.set()

    with pytest.raises(LookupError):
        await second
    assert first.cancelled()
    assert len(flight) == 0
