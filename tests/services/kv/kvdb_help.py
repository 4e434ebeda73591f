"""Helpers of the kv tests: the same commands to both servers, side by side; polling."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from kv_raw import Raw
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock

from portsuite import testing

#: how a reply is compared: C{normalise(line, reply)} (unordered members sorted,
#: clock-dependent fields blanked…); the exact bytes by default
Normalise = Callable[[str, bytes], Any]


def same_replies(
    redis_port: int,
    kv_port: int,
    lines: list[str],
    resp3: bool,
    normalise: Normalise | None = None,
) -> None:
    """
    Run C{lines} (redis-cli syntax) on one connection to each server, the databases
    flushed before and after; the first reply that differs (byte for byte, or once
    both are C{normalise}d) fails the test.
    """
    ref, ours = Raw(redis_port, resp3), Raw(kv_port, resp3)
    try:
        for r in (ref, ours):
            r.call("FLUSHALL")
        for line in lines:
            args = shlex.split(line)
            want, got = ref.call(*args), ours.call(*args)
            if normalise is not None:
                want, got = normalise(line, want), normalise(line, got)
            assert got == want, f"{line!r}: redis {want!r}, kv {got!r}"
    finally:
        for r in (ref, ours):
            r.call("FLUSHALL")
            r.close()


def wait_for(what: Callable[[], Any], timeout: float = 30.0, message: str = "") -> Any:
    """L{portsuite.testing.wait_for}, failing the test when C{what()} never came true."""
    got = testing.wait_for(what, timeout)
    assert got, f"timed out waiting for {message or what}"
    return got


def wait_compacted(r: Any) -> None:
    """
    Until no compaction runs or waits: BGREWRITEAOF and BGSAVE answer when their child
    process starts, as Redis's do (C{r}: a redis-py client).
    """

    def done() -> bool:
        info = r.info("persistence")
        busy = ("aof_rewrite_in_progress", "aof_rewrite_scheduled", "rdb_bgsave_in_progress")
        return not any(info[k] for k in busy)

    wait_for(done, message="the compaction's end")


class _AfterPoll:
    """portsuite's reactor's C{call_after_poll} (internals.py): the test says when a poll ends."""

    def __init__(self) -> None:
        super().__init__()
        self.after: list[Any] = []

    def call_after_poll(self, f: Any) -> None:
        self.after.append(f)

    def end_poll(self) -> None:
        after, self.after = self.after, []
        for f in after:
            f()


class PollingClock(_AfterPoll, Clock):
    """A Clock whose reactor calls back after a poll."""


class PollReactor(_AfterPoll, MemoryReactorClock):
    """A MemoryReactorClock (it can watch a child's pipe) calling back after a poll."""
