"""
One share of the reactor's turn for all of a kv service's work in slices.

Each kind of kv work that goes on across turns took its own few milliseconds a turn:
a long pipeline's commands (5 ms), active expiry (3 ms), a big command's steps (5 ms),
a big reply's slice, lazyfree's piece. Several of them are often due in the same turn
of the reactor: 100,000 pipelined PEXPIREs with the AOF on while their keys expired
gave turns of a 3 ms expiry slice and 5 ms of the pipeline, plus the next read's 3 ms
of parsing and 5 ms of its commands (every turn 9-20 ms of CPU, 64-100 ms of the
suite's time at load 5-6); ZMPOP/BZMPOP … COUNT of a million members sent its reply
(11 ms a slice) while lazyfree freed the popped set (5 ms) in the same turns (14-17 ms
of CPU each, p99 41-67 ms at load 4-7).

So they all draw on one L{Turn}: the first of them in a turn of the reactor starts
its share (L{TURN} seconds), the others stop at its end, each after a small piece of
its own at least (so none of them waits forever behind another), and the next turn
gives a new share.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

TURN = 0.005  # seconds of kv's work in slices a turn of the reactor, all of it together


class Turn:
    """The end of this turn's share of kv's work in slices (C{perf_counter} time)."""

    __slots__ = ("reactor", "share", "end", "_call")

    def __init__(self, reactor: Any, share: float = TURN) -> None:
        self.reactor = reactor
        self.share = share  # seconds a turn
        self.end = 0.0
        self._call: Any = None

    def deadline(self, since: float | None = None) -> float:
        """
        When this turn's share ends: started now (or at C{since}, a C{perf_counter}
        time: a read's parsing counts) by the turn's first caller.
        """
        if self._call is None:
            self.end = (perf_counter() if since is None else since) + self.share
            self._call = self.reactor.callLater(0, self._next_turn)
        return self.end

    def left(self, since: float | None = None) -> float:
        """Seconds left of this turn's share (0 once spent)."""
        return max(0.0, self.deadline(since) - perf_counter())

    def _next_turn(self) -> None:
        self._call = None
