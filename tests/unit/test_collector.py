"""The garbage collector settings a serving process takes once it is ready."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from changarrito.entrypoints.collector import THRESHOLDS, settle_after_start


@pytest.fixture
def restored_collector() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_collector")
def test_what_start_up_built_is_frozen_and_young_collections_come_less_often() -> None:
    frozen = settle_after_start()

    assert frozen == gc.get_freeze_count() > 1000
    assert gc.get_threshold() == THRESHOLDS
    assert THRESHOLDS[0] > 700  # CPython's default


@pytest.mark.usefixtures("restored_collector")
def test_garbage_in_cycles_made_after_start_is_still_collected_on_its_own() -> None:
    settle_after_start()

    class Node:
        other: object = None

    first = Node()
    first.other = Node()
    first.other.other = first
    gone = weakref.ref(first)
    del first
    for _ in range(THRESHOLDS[0]):  # enough new objects for a young collection
        a = Node()
        a.other = Node()
        a.other.other = a

    assert gone() is None
