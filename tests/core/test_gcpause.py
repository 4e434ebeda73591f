"""
portsuite.gcpause: under twistd the oldest generation is collected by a timer, in short
passes, and cyclic garbage is still reclaimed.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet.task import Clock

from portsuite import gcpause
from portsuite.api import freeze_young


class Node:
    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def owner() -> Iterator[gcpause.OldGeneration]:
    thresholds = gc.get_threshold()
    owner = gcpause.OldGeneration(Clock())
    owner.start()
    try:
        yield owner
    finally:
        owner.stop()
        gc.unfreeze()  # the test process's objects go back to the oldest generation
        assert gc.get_threshold() == thresholds


def old_cycle() -> weakref.ref[Node]:
    """A reference cycle that nobody holds, already in the oldest generation."""
    node = Node()
    ref = weakref.ref(node)
    gc.collect(1)  # what the middle generation holds moves to the oldest
    del node
    return ref


def young_passes() -> None:
    for _ in range(gcpause.YOUNG_PASSES):
        gc.collect(1)


def test_allocations_never_collect_the_oldest_generation(owner: gcpause.OldGeneration) -> None:
    full: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 2:
            full.append(1)

    gc.callbacks.append(seen)
    try:
        # far more survivors than CPython's rule needs for a full collection (a
        # quarter of what the oldest generation held at the last one, and ten
        # collections of the middle one)
        kept = [[i] for i in range(2 * len(gc.get_objects()) + 300_000)]
    finally:
        gc.callbacks.remove(seen)
    assert full == []
    assert len(kept) > 300_000


def test_the_timer_reclaims_cycles(owner: gcpause.OldGeneration) -> None:
    ref = old_cycle()
    young_passes()
    assert ref() is not None  # young collections leave the oldest generation alone
    owner.clock.advance(gcpause.PERIOD)
    assert ref() is None
    assert owner.passes == 1


def test_an_idle_suite_collects_nothing(owner: gcpause.OldGeneration) -> None:
    ref = old_cycle()
    for _ in range(3):
        owner.clock.advance(gcpause.PERIOD)
    assert owner.passes == 0
    assert ref() is not None  # (reclaimed once allocations resume)
    young_passes()
    owner.clock.advance(gcpause.PERIOD)
    assert ref() is None


def test_startup_is_frozen(owner: gcpause.OldGeneration) -> None:
    # what existed when the reactor started is never visited again
    assert gc.get_freeze_count() > 1000
    assert owner.freezes == 1


def test_a_slow_pass_freezes_its_survivors(owner: gcpause.OldGeneration) -> None:
    before = gc.get_freeze_count()
    kept = [[i] for i in range(5000)]
    owner.slow = float("inf")
    young_passes()
    owner.clock.advance(gcpause.PERIOD)
    assert (owner.passes, owner.freezes) == (1, 1)
    assert gc.get_freeze_count() == before
    owner.slow = 0.0  # every pass is slow now
    young_passes()
    owner.clock.advance(gcpause.PERIOD)
    assert (owner.passes, owner.freezes) == (2, 2)
    assert gc.get_freeze_count() >= before + len(kept)


def test_stop_gives_the_collections_back() -> None:
    thresholds = gc.get_threshold()
    owner = gcpause.OldGeneration(Clock())
    owner.start()
    try:
        assert gc.get_threshold()[2] == gcpause.NEVER
    finally:
        owner.stop()
        gc.unfreeze()
    assert gc.get_threshold() == thresholds
    owner.clock.advance(gcpause.PERIOD)
    assert owner.passes == 0


def test_twistd_installs_it_when_the_reactor_starts() -> None:
    class Reactor:
        running = False

        def __init__(self) -> None:
            self.calls: list[Any] = []
            self.triggers: list[Any] = []

        def callWhenRunning(self, f: Any) -> None:
            self.calls.append(f)

        def addSystemEventTrigger(self, phase: str, event: str, f: Any) -> None:
            self.triggers.append((phase, event, f))

    reactor = Reactor()
    owner = gcpause.install(reactor)
    assert reactor.calls == [owner.start]
    assert reactor.triggers == [("after", "shutdown", owner.stop)]


def test_a_burst_of_new_objects_is_frozen_without_a_pass(owner: gcpause.OldGeneration) -> None:
    # far more new objects in a quarter of a second than a short pass can visit (a kv
    # command building a million-member value): frozen, not walked
    before = gc.get_freeze_count()
    kept = [[i] for i in range(5000)]
    for _ in range(gcpause.FREEZE_PASSES + 1):
        gc.collect(1)
    owner.clock.advance(gcpause.PERIOD)
    assert (owner.passes, owner.bursts) == (0, 1)
    assert gc.get_freeze_count() >= before + len(kept)
    assert gc.get_count()[2] == 0  # the next look starts counting again
    ref = old_cycle()  # and what comes after is collected by passes as before
    young_passes()
    owner.clock.advance(gcpause.PERIOD)
    assert ref() is None and owner.passes == 1


def test_freeze_young_freezes_what_is_young_at_most_so_often(
    owner: gcpause.OldGeneration,
) -> None:
    owner.clock.advance(1)
    before = gc.get_freeze_count()
    kept = [[i] for i in range(5000)]
    freeze_young()
    assert gc.get_freeze_count() >= before + len(kept)
    more = [[i] for i in range(5000)]
    freeze_young()  # too soon: left to the collections
    frozen = gc.get_freeze_count()
    assert frozen < before + len(kept) + len(more)
    owner.clock.advance(2 * gcpause.FREEZE_EVERY)
    freeze_young()
    assert gc.get_freeze_count() >= frozen + len(more)


def test_freeze_young_does_nothing_without_the_timer() -> None:
    before = gc.get_freeze_count()
    kept = [[i] for i in range(5000)]
    freeze_young()
    assert gc.get_freeze_count() == before and kept
