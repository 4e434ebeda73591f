"""
SCAN, SSCAN, HSCAN and ZSCAN cursors that cost O(COUNT) a call.

A scan starts (cursor 0) by taking a snapshot of the collection's elements (a
C-level list copy: tens of milliseconds for a million, where sorting them by hash
on every call took over a second); the cursor names that snapshot and a position
in it, so each later call is one slice. What Redis guarantees holds: an element
present from the first call to the last is in the snapshot, so it is returned;
elements added meanwhile may or may not be (they are not); elements removed
meanwhile are dropped from the slice they would be in.

Snapshots are kept for the latest scans, up to C{MAX_REFS} elements in all (past
that, the least recently used snapshot of the client holding the most goes first, so
a client starting scan after scan evicts its own). A cursor whose snapshot is gone
(evicted, or a cursor kv did not give) starts the scan again on a new snapshot: every element present all
along is still returned (some twice, which Redis allows too), and no call ever
answers more than COUNT elements, so a forged cursor on a collection of millions
cannot hold the event loop with one giant reply. (The price: a client whose
snapshot is evicted again and again, by scans of C{MAX_REFS} elements between each
of its calls, starts over each time.)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import Any

from portsuite_services.kv.sharded import KIND

POSITION_BITS = 32
MAX_REFS = 8_000_000  # elements held by all snapshots together (8 bytes each)
MAX_ID = 1 << 30  # cursor = id << 32 | position stays a positive 63-bit integer


class Snapshots:
    """
    The snapshots of the scans in progress: id -> (collection, elements, owner).

    Past C{max_refs} elements in all, the owner holding the most loses its least
    recently used snapshot first: a client that starts scan after scan (SSCAN 0 in
    a loop) evicts its own, not the scans other clients are in the middle of.
    """

    def __init__(self, max_refs: int = MAX_REFS) -> None:
        self.max_refs = max_refs
        self.entries: dict[int, tuple[Any, list[Any], int]] = {}
        self.mine: dict[int, OrderedDict[int, None]] = {}  # owner -> its ids, oldest first
        self.held: dict[int, int] = {}  # owner -> elements its snapshots hold
        self.refs = 0
        self.last_id = 0

    def start(self, coll: Any, items: list[Any], owner: int = 0) -> int:
        self.last_id = self.last_id % MAX_ID + 1
        sid = self.last_id
        self.done(sid)
        self.entries[sid] = (coll, items, owner)
        self.mine.setdefault(owner, OrderedDict())[sid] = None
        self.held[owner] = self.held.get(owner, 0) + len(items)
        self.refs += len(items)
        new = len(items)

        def weight(o: int) -> float:  # (not counting the new one; the starter loses ties)
            return self.held[o] - new + 0.5 if o == owner else self.held[o]

        while self.refs > self.max_refs and len(self.entries) > 1:
            hog = max(self.held, key=weight)
            self.done(next(i for i in self.mine[hog] if i != sid))
        return sid

    def get(self, sid: int, coll: Any) -> list[Any] | None:
        entry = self.entries.get(sid)
        if entry is None:
            return None
        if entry[0] is not coll and not (type(coll) in KIND and entry[0] is coll.grown_from):
            return (
                None  # (a keyspace, hash or set sharded since the scan began: still its snapshot)
            )
        self.mine[entry[2]].move_to_end(sid)
        return entry[1]

    def done(self, sid: int) -> None:
        entry = self.entries.pop(sid, None)
        if entry is None:
            return
        n, owner = len(entry[1]), entry[2]
        self.refs -= n
        ids = self.mine[owner]
        del ids[sid]
        if ids:
            self.held[owner] -= n
        else:
            del self.mine[owner]
            self.held.pop(owner, None)


def step(
    snaps: Snapshots,
    coll: Collection[Any],
    cursor: int,
    count: int,
    present: Callable[[Any], bool],
    owner: int = 0,
    take: Callable[[Collection[Any]], Any] = list,
) -> tuple[int, list[Any]] | None:
    """
    One SCAN call over C{coll}: the next cursor and up to C{count} elements. A new
    snapshot is C{take(coll)}; None from it (being copied in slices, see bigwork.py)
    is None here: the command answers when it runs again.
    """
    found = None
    if cursor:
        sid, pos = cursor >> POSITION_BITS, cursor & ((1 << POSITION_BITS) - 1)
        found = snaps.get(sid, coll)
    if found is None:  # a new scan, or one whose snapshot is gone: from the start
        if len(coll) <= count:
            return 0, list(coll)
        items = take(coll)
        if items is None:
            return None
        sid, pos = snaps.start(coll, items, owner), 0
    else:
        items = found
    end = pos + count
    out = [x for x in items[pos:end] if present(x)]
    if end >= len(items):
        snaps.done(sid)
        return 0, out
    return sid << POSITION_BITS | end, out
