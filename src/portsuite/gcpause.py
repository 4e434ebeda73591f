"""
Short garbage-collection pauses, however much a service holds.

CPython collects its oldest generation whenever the objects that survived into it
grew by a quarter, and that pass visits every tracked object and every entry of every
dict those hold: the suite answers nobody meanwhile. Measured on kv, with 3.5 million
string keys a pass took 100-120 ms, every second or two while clients wrote; with 3
million small sets, 200-840 ms. (Redis clients loading test data reach such sizes.)

So a suite run by twistd takes the oldest generation out of the allocator's hands:

- once the reactor runs, what startup built (modules, services, a kv's AOF replayed
  into memory) is collected once and frozen (C{gc.freeze}): no pass visits it again;
- the oldest generation is never collected by an allocation; a timer collects it at
  most four times a second, and only after ten collections of the younger ones
  (Python's own rule), so an idle suite does nothing; a pass visits at most a quarter
  of a second's new objects (a kv filled at 150,000 sets a second: 10-20 ms; once a
  second it was 30-57 ms);
- a pass that took longer than L{SLOW} means the heap grew (a kv being filled): what
  survived it is frozen too, and the next passes visit only what came after;
- when a quarter of a second made far more objects than that (L{FREEZE_PASSES}
  collections of the middle generation, each moving up to some 7,000 survivors: a kv
  command building a million-member value in slices, a bulk load of big values), a
  pass would visit them all at once (100-200 ms for a million pairs): they are frozen
  without one.

A service about to build or hold a container of a million elements (kv's work in
slices, bigwork.py) calls L{portsuite.api.freeze_young}: what is young is frozen at
once, so no young collection walks the million elements of that container, and no
timer pass either (a ZADD of a million pairs made young passes of 33-66 ms, and a timer
pass of 57).

Cyclic garbage is still reclaimed within a second, except in one case: an object
frozen while in use that later becomes part of a reference cycle nobody holds stays in
memory. (A connection that was open at a freeze and closes is not one: the services'
wrapper breaks a closed connection's cycles, L{portsuite.wrappers.ServiceProtocol}.)
Freezes happen at startup, after slow passes and after such bursts only, that is while
the data grows by tens of thousands of objects a second: what stays is a small fraction
of that growth.
Young generations are collected as before.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from twisted.internet import task

from portsuite.api import collector

#: a pass longer than this (seconds) freezes what survived it
SLOW = 0.010
#: how often the timer looks (seconds)
PERIOD = 0.25
#: collections of the middle generation before the oldest one is collected (CPython's)
YOUNG_PASSES = 10
#: more than this many since the last look: frozen without a pass (about 200,000 new
#: objects, whose pass would take 10-20 ms or more)
FREEZE_PASSES = 30
#: the oldest generation's threshold while a timer owns it: never reached
NEVER = 2**30
#: L{portsuite.api.freeze_young} freezes at most once in this many seconds
FREEZE_EVERY = 0.05


class OldGeneration:
    """The timer that collects the oldest generation (see the module's docstring)."""

    def __init__(self, clock: Any, slow: float = SLOW) -> None:
        self.clock = clock
        self.slow = slow
        self.passes = 0
        self.freezes = 0
        self.bursts = 0  # freezes without a pass (L{FREEZE_PASSES})
        self.longest = 0.0
        self.last_freeze = 0.0
        self._loop: task.LoopingCall | None = None
        self._thresholds: tuple[int, int, int] | None = None

    def start(self, period: float = PERIOD) -> None:
        """Freeze what exists, and own the oldest generation from now on."""
        if self._loop is not None:
            return
        gc.collect()
        gc.freeze()
        self.freezes += 1
        self._thresholds = gc.get_threshold()
        young, middle, _ = self._thresholds
        gc.set_threshold(young, middle, NEVER)
        self._loop = task.LoopingCall(self.tick)
        self._loop.clock = self.clock
        self._loop.start(period, now=False)
        self.last_freeze = self.clock.seconds()
        collector.set_freezer(self.freeze_young)

    def stop(self) -> None:
        """Give the oldest generation back to CPython (what is frozen stays frozen)."""
        if self._loop is not None:
            self._loop.stop()
            self._loop = None
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            self._thresholds = None
        if collector.freezer() == self.freeze_young:
            collector.set_freezer(None)

    def freeze_young(self, now: bool = False) -> None:
        """L{portsuite.api.freeze_young}, while this timer owns the collector."""
        when = self.clock.seconds()
        if when - self.last_freeze < FREEZE_EVERY and not now:
            return
        self.last_freeze = when
        gc.freeze()  # (O(1): the generations' lists are moved, not walked)
        self.freezes += 1

    def tick(self) -> None:
        young = gc.get_count()[2]
        if young < YOUNG_PASSES:
            return
        if young > FREEZE_PASSES:
            gc.freeze()  # (O(1): the generations' lists are moved, not walked)
            gc.collect(2)  # of nothing now: sets the oldest generation's count back to 0
            self.freezes += 1
            self.bursts += 1
            self.last_freeze = self.clock.seconds()
            return
        began = time.perf_counter()
        gc.collect(2)
        took = time.perf_counter() - began
        self.passes += 1
        self.longest = max(self.longest, took)
        if took > self.slow:
            # everything young was just merged into the oldest generation: what is
            # frozen here is exactly what survived the pass
            gc.freeze()
            self.freezes += 1
            self.last_freeze = self.clock.seconds()


def install(reactor: Any) -> OldGeneration:
    """Start owning the oldest generation once C{reactor} runs; stop when it stops."""
    owner = OldGeneration(reactor)
    reactor.callWhenRunning(owner.start)
    reactor.addSystemEventTrigger("after", "shutdown", owner.stop)
    return owner
