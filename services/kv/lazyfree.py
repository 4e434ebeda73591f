"""
Freeing big values a slice at a time (Redis's lazyfree): DEL, UNLINK, FLUSHALL and
FLUSHDB of a value with a million members, or a SET, RENAME, RESTORE/COPY REPLACE,
*STORE or expiry that drops one (L{Store.free}), no longer hold the event loop the
whole suite shares while Python deallocates every member.

The key is gone at once (the command's effect and reply are unchanged); the value,
no longer reachable from the keyspace, goes to a queue that the reactor empties
C{PIECE} elements per turn (C{callLater(0)}: other connections are served in
between). Values of at most C{THRESHOLD} elements are freed at once, as Redis does
(C{LAZYFREE_THRESHOLD}). Nested values (FLUSHALL's old keyspace holds a set of a
million members) are queued in turn. INFO's C{lazyfree_pending_objects} is
C{pending}.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from portsuite_services.kv.sharded import ShardedDict, ShardedSet
from portsuite_services.kv.stream import PEL, Stream
from portsuite_services.kv.zset import ZSet

THRESHOLD = 64  # Redis's LAZYFREE_THRESHOLD: smaller values are freed at once
PIECE = 8192  # elements freed per turn of the reactor (a few ms)


def effort(value: Any) -> int:
    """How many elements freeing C{value} touches (0 for a string)."""
    t = type(value)
    if t is ZSet:
        return len(value.sl)  # (its dict may be gone first: see _drain)
    if t is set or t is dict or t is deque or t is list:
        return len(value)
    if t is PEL:  # (a consumer group's, destroyed)
        return len(value)
    if t is Stream:
        return len(value.entries) + sum(len(g.pel) for g in value.groups.values())
    if t is ShardedDict or t is ShardedSet:  # (FLUSHALL of a big keyspace; a big hash or set)
        return len(value)
    return 0


class LazyFree:
    """The queue of values to free, emptied a piece per reactor turn."""

    def __init__(self, reactor: Any):
        self.reactor = reactor
        self.queue: deque[Any] = deque()
        self.call: Any = None
        self.freed = 0  # INFO lazyfreed_objects

    @property
    def pending(self) -> int:
        return len(self.queue)

    def free(self, value: Any) -> None:
        """Drop C{value} (already out of the keyspace): now if small, else in slices."""
        if effort(value) <= THRESHOLD or not hasattr(self.reactor, "callLater"):
            return  # (no reactor to run the slices: a server only checking a data file)
        self.queue.append(value)
        if self.call is None:
            self.call = self.reactor.callLater(0, self._step)

    def _step(self) -> None:
        self.call = None
        budget = PIECE
        queue = self.queue
        while queue and budget > 0:
            budget -= self._drain(queue[0], budget)
            if not effort(queue[0]):
                queue.popleft()
                self.freed += 1
        if queue:
            self.call = self.reactor.callLater(0, self._step)

    def _drain(self, v: Any, n: int) -> int:
        """Remove up to C{n} elements of C{v}; how many were removed."""
        t = type(v)
        n = min(n, len(v.sl) if t is ZSet else len(v))  # (a ZSet's dict may be gone first)
        if t is set or t is deque:
            pop = v.pop
            for _ in range(n):
                pop()
        elif t is dict:
            popitem = v.popitem
            for _ in range(n):
                _, inner = popitem()
                if effort(inner) > THRESHOLD:  # (FLUSHALL: a big value inside the keyspace)
                    self.queue.append(inner)
        elif t is list:
            del v[-n:]
        elif t is ZSet:
            n = min(n, PIECE // 2)  # (a SortedList pop costs more)
            d = v.dict
            if type(d) is not dict:  # a big one's sharded dict: its dicts freed in turn
                self.queue.extend(d.take_parts())
                v.dict = d = {}
            popitem, pop = d.popitem, v.sl.pop
            for _ in range(n):
                if d:
                    popitem()
                pop()
        elif t is ShardedDict or t is ShardedSet:  # its dicts (or sets), each freed in turn
            self.queue.extend(v.take_parts())
            return 1
        elif t is PEL:
            v.forget()
            popitem = dict.popitem
            for _ in range(n):
                popitem(v)
        elif t is Stream:  # its entries (the ids and nodes go with the last piece)
            if v.groups:  # its groups' pending lists, each freed in turn
                for g in v.groups.values():
                    self.queue.append(g.pel)
                    self.queue.extend(cons.pel for cons in g.consumers.values())
                v.groups = {}
                return 1
            n = min(n, len(v.entries))
            del v.ids[-n:]
            popitem = v.entries.popitem
            for _ in range(n):
                popitem()
        return max(n, 1)
