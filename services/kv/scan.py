"""
SCAN, SSCAN, HSCAN and ZSCAN cursors that cost O(COUNT) a call.

A scan starts (cursor 0) by taking a snapshot of the collection's elements (a
C-level list copy: tens of milliseconds for a million, where sorting them by hash
on every call took over a second); the cursor names that snapshot and a position
in it, so each later call is one slice. What Redis guarantees holds: an element
present from the first call to the last is in the snapshot, so it is returned;
elements added meanwhile may or may not be (they are not); elements removed
meanwhile are dropped from the slice they would be in.

Snapshots are kept for the latest scans, up to C{MAX_REFS} elements in all (past that,
the least recently used snapshot of the client holding the most goes first, so a
client starting scan after scan evicts its own). A cursor whose snapshot is gone
(evicted, or a cursor kv did not give) starts the scan again on a new snapshot: every
element present all along is still returned (some twice, which Redis allows too), and
no call ever answers more than COUNT elements, so a forged cursor on a collection of
millions cannot hold the event loop with one giant reply. (The price: a client whose
snapshot is evicted again and again, by scans of C{MAX_REFS} elements between each of
its calls, starts over each time.)

A call is a bigwork generator (L{steps}): the snapshot copied and the page matched,
typed and paired with values a piece at a time, so a call of many elements (a
million, COUNT 10^7, with MATCH or TYPE) runs in slices, the server busy meanwhile,
and still answers what Redis does: every element of the page in one reply (Redis
reads COUNT as a number of buckets to visit, and visits them all in one call).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection
from time import perf_counter
from typing import Any

from portsuite_services.kv.bigwork import PIECE, Steps, as_list, run_through
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


Keep = Callable[[list[Any]], list[Any]]  # what a call answers of a piece of its page
FILTERED = 8  # a page's element costs about this many when matched, typed or paired
SLOW_PIECE = 0.004  # seconds: a piece of the page taking longer halves the next ones


def where(
    snaps: Snapshots, coll: Collection[Any], cursor: int
) -> tuple[int, int, list[Any] | None]:
    """C{cursor}'s snapshot id, position and snapshot (None: a new scan, from the start)."""
    if cursor:
        sid, pos = cursor >> POSITION_BITS, cursor & ((1 << POSITION_BITS) - 1)
        found = snaps.get(sid, coll)
        if found is not None:
            return sid, pos, found
    return 0, 0, None


def cost(coll: Collection[Any], count: int, pos: int, items: list[Any] | None, weight: int) -> int:
    """About how many elements one call touches (L{bigwork.compute}'s cost)."""
    if items is None:  # a new snapshot, then the page
        return len(coll) + min(count, len(coll)) * weight
    return max(0, min(count, len(items) - pos)) * weight


def steps(
    snaps: Snapshots,
    coll: Collection[Any],
    count: int,
    keep: Keep,
    owner: int,
    at: tuple[int, int, list[Any] | None],
    piece: int = PIECE,
) -> Steps[tuple[int, list[Any]]]:
    """
    One SCAN call over C{coll} from C{at} (L{where}), as a bigwork generator: the next
    cursor and what C{keep} makes of each piece of up to C{count} elements (those
    still present, matching, paired with their values), C{piece} elements a step.
    """
    sid, pos, items = at
    if items is None:  # a new scan, or one whose snapshot is gone: from the start
        items = yield from as_list(coll)
        if len(items) > count:
            sid, pos = snaps.start(coll, items, owner), 0
    end = min(pos + count, len(items))
    out: list[Any] = []
    lo, most = pos, piece
    while lo < end:
        hi = min(end, lo + piece)
        began = perf_counter()
        out += keep(items[lo:hi])
        took = perf_counter() - began
        if took > SLOW_PIECE:  # (long keys matched against a long pattern: fewer a step)
            piece = max(1, piece // 2)
        elif took < SLOW_PIECE / 4:
            piece = min(most, piece * 2)
        lo = hi
        yield
    if end >= len(items):
        if sid:
            snaps.done(sid)
        return 0, out
    return sid << POSITION_BITS | end, out


def step(
    snaps: Snapshots,
    coll: Collection[Any],
    cursor: int,
    count: int,
    present: Callable[[Any], bool],
    owner: int = 0,
) -> tuple[int, list[Any]]:
    """One SCAN call over C{coll} at once: the next cursor and up to C{count} elements."""
    at = where(snaps, coll, cursor)
    return run_through(
        steps(snaps, coll, count, lambda xs: [x for x in xs if present(x)], owner, at)
    )
