"""The collector settings the server applies once started."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from widget_store.server import heap


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restore_gc")
def test_startup_objects_are_frozen_and_the_young_collected_less_often() -> None:
    made_at_startup = [object() for _ in range(1000)]
    heap.settle_after_startup()
    assert gc.get_freeze_count() >= len(made_at_startup)
    assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD
    # Later objects are still tracked and collected: a cycle made now is found.
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1
